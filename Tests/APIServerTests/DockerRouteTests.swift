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
        ("GET", "/v1.41/networks", .listNetworks),
        ("GET", "/v1.41/events", .events),
        ("GET", "/v1.41/containers/abc/stats", .containerStats("abc")),
        ("GET", "/v1.41/containers/abc/top", .topContainer("abc")),
        ("POST", "/networks/n1/connect", .changeNetworkMembers("n1")),
        ("POST", "/v1.41/networks/n1/disconnect", .changeNetworkMembers("n1")),
        ("HEAD", "/v1.41/containers/abc/archive", .statArchive("abc")),
        ("GET", "/v1.41/containers/abc/archive", .getArchive("abc")),
        ("PUT", "/v1.41/containers/abc/archive", .putArchive("abc")),
        ("POST", "/v1.41/images/load", .loadImage),
        ("GET", "/v1.41/images/get", .saveImage("")),
        ("GET", "/v1.41/images/localhost:5000/a/b:1/get", .saveImage("localhost:5000/a/b:1")),
        ("POST", "/v1.41/images/localhost:5000/a/b:1/tag", .tagImage("localhost:5000/a/b:1")),
        ("DELETE", "/v1.41/images/localhost:5000/a/b:1", .deleteImage("localhost:5000/a/b:1")),
        ("POST", "/v1.41/networks/create", .createNetwork),
        ("GET", "/v1.41/networks/n1", .inspectNetwork("n1")),
        ("DELETE", "/v1.41/networks/n1", .deleteNetwork("n1")),
        ("POST", "/v1.41/networks/prune", .pruneNetworks),
        ("GET", "/v1.41/volumes", .listVolumes),
        ("POST", "/v1.41/volumes/create", .createVolume),
        ("GET", "/v1.41/volumes/v1", .inspectVolume("v1")),
        ("DELETE", "/v1.41/volumes/v1", .deleteVolume("v1")),
        ("POST", "/v1.41/volumes/prune", .pruneVolumes),
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
        ("GET", "/v1.41/system/df"), ("GET", "/v1.41/containers/abc/attach"), ("GET", "/v1.41/networks/n1/connect"), ("GET", "/v1.41/exec/e1/start"), ("GET", "/v1/containers/json"),
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
        (#"{"Image":"busybox","HostConfig":{"VolumeDriver":"block"}}"#, "HostConfig.VolumeDriver block"),
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

    /// Compose's networking: the network by its endpoint, the service's aliases; a `Volumes`
    /// path without a bind becomes an anonymous volume.
    @Test func endpointsAliasesAndVolumesAreCarriedOver() throws {
        let body = #"{"Image":"busybox","Volumes":{"/data":{},"/cache":{}},"HostConfig":{"Binds":["proj_data:/data:rw"],"NetworkMode":"proj_default"},"NetworkingConfig":{"EndpointsConfig":{"proj_default":{"Aliases":["web","a1b2"],"IPAMConfig":null}}}}"#
        let request = try DockerCreate.request(Data(body.utf8), name: nil)
        #expect(request.networks == ["proj_default"] && request.networkAliases == ["web", "a1b2"])
        let mounts = try #require(request.mounts)
        #expect(mounts.count == 2 && mounts.contains { $0.target == "/data" && $0.source == "proj_data" }
                && mounts.contains { $0.target == "/cache" && $0.anonymous == true })
        for bad in [#"{"Image":"busybox","NetworkingConfig":{"EndpointsConfig":{"a":{},"b":{}}}}"#,
                    #"{"Image":"busybox","NetworkingConfig":{"EndpointsConfig":{"a":{"IPAMConfig":{"IPv4Address":"10.1.1.1"}}}}}"#] {
            #expect(throws: HVCError.self, "\(bad)") { try DockerCreate.request(Data(bad.utf8), name: nil) }
        }
        #expect(throws: HVCError.self) {
            try DockerCreate.request(Data(#"{"Image":"busybox","NetworkingConfig":{"EndpointsConfig":{"n":{"Aliases":["bad name"]}}}}"#.utf8), name: nil).runOptions()
        }
    }

    @Test func networkBodiesBecomeHvcsRequestsOrAreRefusedByName() throws {
        let request = try DockerHandler.networkRequest(Data(#"{"Name":"proj_default","Driver":"bridge","Labels":{"com.docker.compose.project":"proj"},"IPAM":{"Driver":"default","Config":[{"Subnet":"10.213.0.0/24","Gateway":"10.213.0.1"}]},"Internal":false,"EnableIPv6":false,"Options":{}}"#.utf8))
        #expect(request.name == "proj_default" && request.subnet == "10.213.0.0/24" && request.labels?["com.docker.compose.project"] == "proj")
        for (body, field) in [(#"{"Name":"n","Driver":"overlay"}"#, "Driver overlay"), (#"{"Name":"n","EnableIPv6":true}"#, "EnableIPv6"),
                              (#"{"Name":"n","Options":{"com.docker.network.bridge.name":"x"}}"#, "Options"),
                              (#"{"Name":"n","IPAM":{"Config":[{"Subnet":"10.213.0.0/24","Gateway":"10.213.0.9"}]}}"#, "IPAM.Config.Gateway 10.213.0.9")] {
            do {
                _ = try DockerHandler.networkRequest(Data(body.utf8))
                Issue.record("\(body) was taken")
            } catch {
                #expect((error as? HVCError)?.message.hasPrefix("\(field) is not supported by hvc") == true, "\(error)")
            }
        }
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
