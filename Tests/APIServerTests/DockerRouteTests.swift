import AgentProtocol
@testable import APIServer
import CLinux
import Foundation
import HVCSystem
import Runtime
import Testing
import VMM

struct DockerRouteTests {
    @Test(arguments: [
        ("GET", "/_ping", DockerRoute.ping),
        ("HEAD", "/v1.41/_ping", .ping),
        ("GET", "/v1.41/version", .version),
        ("GET", "/info", .info),
        ("GET", "/v1.24/containers/json", .listContainers),
        ("POST", "/v1.41/containers/create", .createContainer),
        ("GET", "/v1.41/containers/abc/json", .inspectContainer("abc")),
        ("POST", "/v1.41/containers/abc/start", .startContainer("abc")),
        ("POST", "/v1.41/containers/abc/stop", .stopContainer("abc")),
        ("POST", "/v1.41/containers/abc/restart", .restartContainer("abc")),
        ("POST", "/v1.41/containers/abc/kill", .killContainer("abc")),
        ("POST", "/v1.41/containers/abc/wait", .waitContainer("abc")),
        ("GET", "/v1.41/containers/abc/logs", .containerLogs("abc")),
        ("DELETE", "/v1.41/containers/abc", .deleteContainer("abc")),
        ("GET", "/v1.41/images/json", .listImages),
        ("POST", "/v1.41/images/create", .pullImage),
        ("GET", "/v1.41/images/localhost:5000/team/app:1/json", .inspectImage("localhost:5000/team/app:1")),
        ("POST", "/v1.41/containers/abc/attach", .attachContainer("abc")),
        ("POST", "/v1.41/containers/abc/resize", .resizeContainer("abc")),
        ("POST", "/v1.41/containers/abc/exec", .createExec("abc")),
        ("POST", "/v1.41/exec/e1/start", .startExec("e1")),
        ("POST", "/v1.41/exec/e1/resize", .resizeExec("e1")),
        ("GET", "/v1.41/exec/e1/json", .inspectExec("e1")),
    ])
    func routes(_ method: String, _ path: String, _ route: DockerRoute) {
        #expect(DockerRoute(method: method, path: path) == route)
    }

    @Test(arguments: [
        ("GET", "/v1.41/networks"), ("GET", "/v1.41/containers/abc/attach"), ("GET", "/v1.41/exec/e1/start"), ("GET", "/v1/containers/json"),
        ("GET", "/v1.x/version"), ("PUT", "/v1.41/containers/create"), ("GET", "/v1.41/containers//json"), ("GET", "/"),
    ])
    func unknownRoutes(_ method: String, _ path: String) {
        #expect(DockerRoute(method: method, path: path) == nil)
    }

    /// The docker CLI's body for `docker run -d -p 8080:80 -v /srv:/data:ro --memory 512m --cpus 1.5 --rm -e A=1 busybox sh`,
    /// with the zero values it sends for everything else.
    @Test func aCreateBodyBecomesHvcsRequest() throws {
        let body = Data(#"""
            {"Hostname":"","User":"","Tty":false,"Env":["A=1"],"Cmd":["sh"],"Image":"busybox","WorkingDir":"","Entrypoint":null,
             "Labels":{},"Volumes":{},"StopSignal":"",
             "HostConfig":{"Binds":["/srv:/data:ro"],"NetworkMode":"default","PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]},
              "RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":true,"CapAdd":null,"Privileged":false,
              "PidMode":"","Memory":536870912,"NanoCpus":1500000000,"PidsLimit":null,"LogConfig":{"Type":"","Config":{}},
              "Tmpfs":{"/run":"size=64m"}}}
            """#.utf8)
        let request = try DockerCreate.request(body, name: "web")
        #expect(request.image == "busybox" && request.name == "web" && request.cmd == ["sh"] && request.env == ["A=1"])
        #expect(request.entrypoint == nil && request.workdir == nil && request.user == nil)
        #expect(request.memory == "512m" && request.cpus == 2 && request.autoRemove == true && request.networks == nil)
        #expect(request.ports == ["8080:80/tcp"])
        #expect(request.mounts?.count == 2)
        #expect(request.mounts?.first { $0.type == .bind }.map { $0.source == "/srv" && $0.target == "/data" && $0.readOnly } == true)
        #expect(request.mounts?.contains { $0.type == .tmpfs && $0.target == "/run" } == true)
        _ = try request.runOptions()
    }

    @Test(arguments: [
        (#"{"Image":"busybox","HostConfig":{"Privileged":true}}"#, "HostConfig.Privileged"),
        (#"{"Image":"busybox","HostConfig":{"NetworkMode":"host"}}"#, "HostConfig.NetworkMode host"),
        (#"{"Image":"busybox","HostConfig":{"NetworkMode":"container:abc"}}"#, "HostConfig.NetworkMode container:abc"),
        (#"{"Image":"busybox","HostConfig":{"IpcMode":"host"}}"#, "HostConfig.IpcMode host"),
        (#"{"Image":"busybox","HostConfig":{"CapAdd":["SYS_ADMIN"]}}"#, "HostConfig.CapAdd"),
        (#"{"Image":"busybox","HostConfig":{"Devices":[{"PathOnHost":"/dev/sda"}]}}"#, "HostConfig.Devices"),
        (#"{"Image":"busybox","StopSignal":"SIGINT"}"#, "StopSignal SIGINT"),
    ])
    func setFieldsHvcDoesNotCarryOutAreRefusedByName(_ body: String, _ field: String) {
        #expect(throws: HVCError.self) { try DockerCreate.request(Data(body.utf8), name: nil) }
        do {
            _ = try DockerCreate.request(Data(body.utf8), name: nil)
        } catch {
            #expect(error.message.hasPrefix("\(field) is not supported by hvc"), "\(error.message)")
        }
    }

    @Test func restartPoliciesAndLabelsAreCarriedOver() throws {
        let body = #"{"Image":"busybox","Labels":{"com.example.tier":"web"},"HostConfig":{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3}}}"#
        let request = try DockerCreate.request(Data(body.utf8), name: nil)
        #expect(request.restart == "on-failure:3" && request.labels == ["com.example.tier": "web"])
        let options = try request.runOptions()
        #expect(options.restartPolicy == RestartPolicy(name: .onFailure, maximumRetries: 3) && options.labels["com.example.tier"] == "web")
        let always = try DockerCreate.request(Data(#"{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"always"},"AutoRemove":true}}"#.utf8), name: nil)
        #expect(throws: HVCError.self) { try always.runOptions() }
    }

    @Test func badBodiesAreRefused() {
        for body in ["", "[]", #"{"Cmd":["sh"]}"#, #"{"Image":"busybox","Cmd":[1]}"#] {
            #expect(throws: HVCError.self, "\(body)") { try DockerCreate.request(Data(body.utf8), name: nil) }
        }
    }

    @Test func dockerStatusTexts() {
        #expect(DockerViews.duration(0) == "Less than a second")
        #expect(DockerViews.duration(5) == "5 seconds")
        #expect(DockerViews.duration(90) == "About a minute")
        #expect(DockerViews.duration(600) == "10 minutes")
        #expect(DockerViews.duration(4000) == "About an hour")
        #expect(DockerViews.duration(36000) == "10 hours")
        #expect(DockerViews.duration(3 * 86400) == "3 days")
    }
}

/// The relay between a Docker client's connection and a supervisor, over socket pairs.
struct DockerRelayTests {
    /// Output in Docker's multiplexed frames without a terminal, raw with one; the exit code
    /// returned; frames for other processes passed over.
    @Test(arguments: [false, true])
    func outputIsFramedUnlessOnATerminal(_ terminal: Bool) throws {
        let (supervisor, relayEnd) = try FrameChannel.pair()
        var fds: [Int32] = [-1, -1]
        try #require(hvc_socketpair(&fds) == 0)
        let (client, relayClient) = (FileDescriptor(fds[0]), FileDescriptor(fds[1]))
        try supervisor.send(Frame(process: 1, .stdout(Array("out".utf8))))
        try supervisor.send(Frame(process: 2, .stdout(Array("other".utf8))))
        try supervisor.send(Frame(process: 1, .stderr(Array("err".utf8))))
        try supervisor.send(Frame(process: 1, .exited(.exited(6))))
        let relay = DockerRelay(channel: relayEnd, client: relayClient, terminal: terminal, stdin: false, stdout: true, stderr: true)
        #expect(relay.run() == 6)
        relayClient.close()
        var received: [UInt8] = []
        while let bytes = try? client.read(max: 4096), !bytes.isEmpty { received += bytes }
        let expected: [UInt8] = terminal ? Array("outerr".utf8)
            : [1, 0, 0, 0, 0, 0, 0, 3] + Array("out".utf8) + [2, 0, 0, 0, 0, 0, 0, 3] + Array("err".utf8)
        #expect(received == expected)
    }

    /// A start that fails ends with the shell's codes, its message on stderr.
    @Test func aCommandNotFoundIs127() throws {
        let (supervisor, relayEnd) = try FrameChannel.pair()
        try supervisor.send(Frame(process: 1, .startFailed(.notFound, "exec \"nope\": not found")))
        let relay = DockerRelay(channel: relayEnd, client: nil, terminal: false, stdin: false, stdout: true, stderr: true)
        #expect(relay.run() == 127)
    }
}
