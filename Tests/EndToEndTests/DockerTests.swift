import Foundation
import Testing

extension EndToEnd {
    /// The Docker Engine API on hvcd's `docker.sock`, driven by Debian's docker CLI (20.10).
    @Suite(.serialized) struct DockerTests {
        let h: Harness

        init() throws { h = try Harness.make() }

        /// Debian's docker CLI (not another one a machine may have on its PATH).
        static let cli = "/usr/bin/docker"

        /// `docker ARGS` against `socket`, as `uid` (root when nil), with a private config directory.
        func docker(_ socket: String, as uid: Int? = nil, _ arguments: [String]) -> Harness.Result3 {
            let config = h.root + "/../docker-config-\(uid ?? 0)"
            try? FileManager.default.createDirectory(atPath: config, withIntermediateDirectories: true)
            if let uid { chown(config, uid_t(uid), gid_t(uid)) }
            let command = ["/usr/bin/env", "DOCKER_HOST=unix://" + socket, "DOCKER_CONFIG=" + config, DockerTests.cli] + arguments
            let argv = uid.map { ["/usr/bin/setpriv", "--reuid", "\($0)", "--regid", "\($0)", "--clear-groups"] + command } ?? command
            return h.execute(argv, timeout: 180)
        }

        /// Runs `body` with an hvcd whose Docker socket has come up.
        func withDockerSocket(tenants: String = "{}", _ body: (String, Harness.Daemon) throws -> Void) throws {
            try h.withDaemon(tenants: tenants) { daemon in
                let socket = (daemon.socket as NSString).deletingLastPathComponent + "/docker.sock"
                try #require(Harness.eventually(10) { FileManager.default.fileExists(atPath: socket) }, "no \(socket)")
                try body(socket, daemon)
            }
        }

        @Test func theDockerCLIRunsContainersInVMs() throws {
            try withDockerSocket { socket, _ in
                let version = docker(socket, ["version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}"])
                #expect(version.status == 0 && version.stdout == "1.41 linux\n", "\(version.stdout) \(version.stderr)")

                let run = docker(socket, ["run", "-d", "--name", "dk-web", "busybox", "sh", "-c",
                                          "echo hello-from-a-vm; uname -r; echo to-stderr >&2; exec sleep 300"])
                try #require(run.status == 0, "\(run.stderr)")
                let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(id.count == 64 && id.allSatisfy(\.isHexDigit), "\(run.stdout)")
                defer { _ = h.hvc(["rm", "-f", id]) }
                // The same container, as hvc sees it.
                #expect(h.hvc(["inspect", "dk-web"]).stdout.contains(id))

                let ps = docker(socket, ["ps", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.Status}}"])
                #expect(ps.status == 0 && ps.stdout.hasPrefix(String(id.prefix(12)) + " dk-web busybox Up "), "\(ps.stdout) \(ps.stderr)")

                var logs = docker(socket, ["logs", "dk-web"])
                #expect(Harness.eventually(15) {
                    logs = docker(socket, ["logs", "dk-web"])
                    return logs.stdout.hasPrefix("hello-from-a-vm\n") && logs.stderr == "to-stderr\n"
                }, "\(logs.stdout) \(logs.stderr)")
                // Its kernel is the guest's, not the host's.
                let guestRelease = logs.stdout.split(separator: "\n").dropFirst().first.map(String.init) ?? ""
                #expect(guestRelease.hasSuffix("-hvc") && guestRelease != Harness.hostKernelRelease, "\(guestRelease)")

                let inspect = docker(socket, ["inspect", "--format", "{{.State.Running}} {{.Config.Image}} {{.Name}}", "dk-web"])
                #expect(inspect.stdout == "true busybox /dk-web\n", "\(inspect.stdout) \(inspect.stderr)")

                let stop = docker(socket, ["stop", "-t", "1", "dk-web"])
                #expect(stop.status == 0 && stop.stdout == "dk-web\n", "\(stop.stderr)")
                let exited = docker(socket, ["ps", "-a", "--filter", "name=dk-web", "--format", "{{.Status}}"])
                #expect(exited.stdout.hasPrefix("Exited ("), "\(exited.stdout) \(exited.stderr)")
                let waited = docker(socket, ["wait", "dk-web"])
                #expect(waited.status == 0 && ["137\n", "143\n"].contains(waited.stdout), "\(waited.stdout) \(waited.stderr)")

                let rm = docker(socket, ["rm", "dk-web"])
                #expect(rm.status == 0 && rm.stdout == "dk-web\n", "\(rm.stderr)")
                #expect(docker(socket, ["ps", "-a", "-q"]).stdout.isEmpty)
                #expect(h.hvc(["inspect", id]).status == 125)

                let images = docker(socket, ["images", "--format", "{{.Repository}}:{{.Tag}}"])
                #expect(images.stdout.split(separator: "\n").contains { $0.hasSuffix("busybox:latest") }, "\(images.stdout) \(images.stderr)")
            }
        }

        /// `docker run` without `-d` attaches before it starts: output, stdin, a terminal and the
        /// exit code come through; `--rm` leaves nothing; exec runs in the VM, with and without
        /// a terminal; `-p` publishes a page the host fetches; `-v` binds a host folder and a
        /// named volume that outlives its container.
        @Test func theDockerCLIAttachesExecsPublishesAndMounts() throws {
            try withDockerSocket { socket, _ in
                let run = docker(socket, ["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"])
                #expect(run.status == 3 && run.stdout == "out\n" && run.stderr == "err\n", "\(run.status) \(run.stdout) \(run.stderr)")
                #expect(docker(socket, ["ps", "-a", "-q"]).stdout.isEmpty, "--rm left a container")
                #expect(h.hvc(["ps", "-a", "-q"]).stdout.isEmpty)

                let piped = h.execute(["/usr/bin/env", "DOCKER_HOST=unix://" + socket, DockerTests.cli, "run", "-i", "--rm", "busybox",
                                       "sh", "-c", "tr a-z A-Z; echo end"], stdin: "through stdin\n", timeout: 120)
                #expect(piped.status == 0 && piped.stdout == "THROUGH STDIN\nend\n", "\(piped.stdout) \(piped.stderr)")

                // A terminal: `script` gives the CLI one, as a user's shell would.
                let terminal = h.execute(["/usr/bin/script", "-qec", "/usr/bin/env DOCKER_HOST=unix://\(socket) \(DockerTests.cli) run -it --rm busybox sh -c 'tty; exit 4'",
                                          "/dev/null"], timeout: 120)
                #expect(terminal.status == 4 && terminal.stdout.contains("/dev/pts/0"), "\(terminal.status) \(terminal.stdout) \(terminal.stderr)")

                let started = docker(socket, ["run", "-d", "--name", "dk-exec", "busybox", "sleep", "300"])
                try #require(started.status == 0, "\(started.stderr)")
                defer { _ = h.hvc(["rm", "-f", "dk-exec"]) }
                let exec = docker(socket, ["exec", "dk-exec", "sh", "-c", "echo in-the-vm; uname -r; exit 7"])
                let lines = exec.stdout.split(separator: "\n").map(String.init)
                #expect(exec.status == 7 && lines.first == "in-the-vm" && lines.last?.hasSuffix("-hvc") == true, "\(exec.stdout) \(exec.stderr)")
                let execTerminal = h.execute(["/usr/bin/script", "-qec", "/usr/bin/env DOCKER_HOST=unix://\(socket) \(DockerTests.cli) exec -it dk-exec sh -c 'tty; exit 9'",
                                              "/dev/null"], timeout: 120)
                #expect(execTerminal.status == 9 && execTerminal.stdout.contains("/dev/pts/"), "\(execTerminal.stdout) \(execTerminal.stderr)")
                let stats = docker(socket, ["stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", "dk-exec"])
                #expect(stats.status == 0 && stats.stdout.hasPrefix("dk-exec ") && stats.stdout.contains("MiB / "), "\(stats.stdout) \(stats.stderr)")
                // top: the container's own processes, its pid 1 among them, never the ps that listed them.
                let top = docker(socket, ["top", "dk-exec"])
                let topLines = top.stdout.split(separator: "\n").map(String.init)
                #expect(top.status == 0 && topLines.first?.contains("PID") == true && topLines.contains { $0.hasSuffix("sleep 300") }
                        && !topLines.contains { $0.contains("ps -ef") }, "\(top.stdout) \(top.stderr)")
                let connect = docker(socket, ["network", "connect", "bridge", "dk-exec"])
                #expect(connect.status != 0 && connect.stderr.contains("network connect and disconnect are not supported"), "\(connect.stderr)")
                let missing = docker(socket, ["exec", "dk-exec", "no-such-command"])
                #expect(missing.status == 127 && missing.stderr.contains("no-such-command"), "\(missing.status) \(missing.stderr)")

                let port = Harness.freePort()
                let web = docker(socket, ["run", "-d", "--name", "dk-page", "-p", "\(port):80", "busybox", "sh", "-c",
                                          "echo page-from-a-vm > /tmp/index.html; exec httpd -f -p 80 -h /tmp"])
                try #require(web.status == 0, "\(web.stderr)")
                defer { _ = h.hvc(["rm", "-f", "dk-page"]) }
                var page = Harness.Result3(status: -1, stdout: "", stderr: "")
                #expect(Harness.eventually(30) {
                    page = h.execute(["/usr/bin/curl", "-sS", "--max-time", "5", "http://127.0.0.1:\(port)/index.html"], timeout: 10)
                    return page.stdout == "page-from-a-vm\n"
                }, "\(page.stdout) \(page.stderr)")
                #expect(docker(socket, ["port", "dk-page"]).stdout.contains("80/tcp -> 0.0.0.0:\(port)"))

                let folder = Harness.scratch + "/docker-bind-\(getpid())"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                try "from-the-host\n".write(toFile: folder + "/in", atomically: true, encoding: .utf8)
                let bound = docker(socket, ["run", "--rm", "-v", folder + ":/data", "busybox", "sh", "-c", "cat /data/in; echo from-the-vm > /data/out"])
                #expect(bound.status == 0 && bound.stdout == "from-the-host\n", "\(bound.stdout) \(bound.stderr)")
                #expect((try? String(contentsOfFile: folder + "/out", encoding: .utf8)) == "from-the-vm\n")
                let volume = "dk-volume-\(getpid())"
                defer { _ = h.hvc(["volume", "rm", volume]) }
                let wrote = docker(socket, ["run", "--rm", "-v", volume + ":/v", "busybox", "sh", "-c", "echo kept > /v/k"])
                let read = docker(socket, ["run", "--rm", "-v", volume + ":/v", "busybox", "cat", "/v/k"])
                #expect(wrote.status == 0 && read.stdout == "kept\n", "\(wrote.stderr) \(read.stdout) \(read.stderr)")
                // A block volume through Docker's driver options, its driver shown and kept to.
                let block = "dk-block-\(getpid())"
                defer { _ = h.hvc(["volume", "rm", block]) }
                let made = docker(socket, ["volume", "create", "--driver", "block", "--opt", "size=64m", block])
                #expect(made.status == 0, "\(made.stderr)")
                #expect(docker(socket, ["volume", "inspect", "--format", "{{.Driver}} {{.Options.size}}", block]).stdout == "block 67108864\n")
                let blockWrote = docker(socket, ["run", "--rm", "-v", block + ":/v", "busybox", "sh", "-c", "echo kept > /v/k"])
                let blockRead = docker(socket, ["run", "--rm", "-v", block + ":/v", "busybox", "sh", "-c", "cat /v/k; mount | grep -c 'on /v type ext4'"])
                #expect(blockWrote.status == 0 && blockRead.stdout == "kept\n1\n", "\(blockWrote.stderr) \(blockRead.stdout) \(blockRead.stderr)")
                let unknown = docker(socket, ["volume", "create", "--driver", "nfs", "dk-nfs-\(getpid())"])
                #expect(unknown.status != 0 && unknown.stderr.contains("use local or block"), "\(unknown.stderr)")
            }
        }

        /// A restart policy, labels and label filters, start of an exited container, restart.
        @Test func restartPoliciesLabelsAndRestartThroughTheDockerCLI() throws {
            try withDockerSocket { socket, _ in
                defer { _ = h.hvc(["rm", "-f", "dk-retry", "dk-again"]) }
                let retry = docker(socket, ["run", "-d", "--name", "dk-retry", "--restart", "on-failure:2", "--label", "app=retry",
                                            "busybox", "sh", "-c", "echo try; exit 1"])
                try #require(retry.status == 0, "\(retry.stderr)")
                var state = ""
                #expect(Harness.eventually(90) {
                    state = docker(socket, ["inspect", "--format", "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}} {{.HostConfig.RestartPolicy.Name}}", "dk-retry"]).stdout
                    return state == "2 exited 1 on-failure\n"
                }, "\(state)")
                #expect(docker(socket, ["logs", "dk-retry"]).stdout == "try\ntry\ntry\n")
                // Each run's end is an event in the journal: three of them.
                let since = Int(Date().timeIntervalSince1970) - 600, until = Int(Date().timeIntervalSince1970) + 1
                let died = docker(socket, ["events", "--since", "\(since)", "--until", "\(until)", "--filter", "container=dk-retry",
                                           "--filter", "event=die", "--format", "{{.Action}} {{.Actor.Attributes.exitCode}}"])
                #expect(died.stdout == "die 1\ndie 1\ndie 1\n", "\(died.stdout) \(died.stderr)")
                let labelled = docker(socket, ["ps", "-a", "--filter", "label=app=retry", "--format", "{{.Names}} {{.Label \"app\"}}"])
                #expect(labelled.stdout == "dk-retry retry\n", "\(labelled.stdout) \(labelled.stderr)")
                #expect(docker(socket, ["ps", "-a", "-q", "--filter", "label=app=other"]).stdout.isEmpty)

                let again = docker(socket, ["run", "-d", "--name", "dk-again", "busybox", "sh", "-c", "echo boot; sleep 300"])
                try #require(again.status == 0, "\(again.stderr)")
                #expect(Harness.eventually { docker(socket, ["logs", "dk-again"]).stdout == "boot\n" })
                let restart = docker(socket, ["restart", "-t", "1", "dk-again"])
                #expect(restart.status == 0 && restart.stdout == "dk-again\n", "\(restart.stderr)")
                #expect(Harness.eventually { docker(socket, ["logs", "dk-again"]).stdout == "boot\nboot\n" })
                #expect(docker(socket, ["stop", "-t", "1", "dk-again"]).status == 0)
                let start = docker(socket, ["start", "dk-again"])
                #expect(start.status == 0, "\(start.stderr)")
                #expect(Harness.eventually { docker(socket, ["logs", "dk-again"]).stdout == "boot\nboot\nboot\n" })
                #expect(docker(socket, ["inspect", "--format", "{{.State.Running}}", "dk-again"]).stdout == "true\n")

                let checked = docker(socket, ["run", "-d", "--name", "dk-health", "--health-cmd", "true", "--health-interval", "1s",
                                              "busybox", "sleep", "300"])
                try #require(checked.status == 0, "\(checked.stderr)")
                defer { _ = h.hvc(["rm", "-f", "dk-health"]) }
                var status = ""
                #expect(Harness.eventually(60) {
                    status = docker(socket, ["inspect", "--format", "{{.State.Health.Status}}", "dk-health"]).stdout
                    return status == "healthy\n"
                }, "\(status)")
                #expect(docker(socket, ["ps", "--filter", "name=dk-health", "--format", "{{.Status}}"]).stdout.contains("(healthy)"))
            }
        }

        /// Debian's docker-compose (1.29) brings up two services on a network of their own, the
        /// client reaching the web by its service name, the web's page published and kept on a
        /// named volume; `down -v` leaves no container, network, volume, VM or bridge.
        @Test func composeBringsUpTwoServicesAndTearsThemDown() throws {
            try withDockerSocket { socket, _ in
                let port = Harness.freePort()
                let project = "hvcc\(getpid())"
                let folder = Harness.scratch + "/compose-\(getpid())"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                try """
                version: "3"
                services:
                  web:
                    image: busybox
                    command: sh -c "echo page-from-web > /www/index.html; exec httpd -f -p 80 -h /www"
                    ports: ["\(port):80"]
                    volumes: ["pages:/www"]
                  client:
                    image: busybox
                    command: sh -c "until wget -qO- http://web/index.html; do sleep 1; done; exec sleep 300"
                    depends_on: [web]
                volumes:
                  pages: {}
                """.write(toFile: folder + "/docker-compose.yml", atomically: true, encoding: .utf8)
                let networksBefore = h.hvc(["network", "ls", "-q"]).stdout
                let links = { h.execute(["/usr/sbin/ip", "-o", "link", "show"]).stdout.split(separator: "\n").filter { $0.contains(": hvc") }.count }
                let linksBefore = links()
                func compose(_ arguments: [String]) -> Harness.Result3 {
                    h.execute(["/usr/bin/env", "DOCKER_HOST=unix://" + socket, "/usr/bin/docker-compose", "--no-ansi", "-f",
                               folder + "/docker-compose.yml", "-p", project] + arguments, timeout: 240)
                }
                defer { _ = compose(["down", "-v"]) }
                let up = compose(["up", "-d"])
                try #require(up.status == 0, "\(up.stdout) \(up.stderr)")
                var page = Harness.Result3(status: -1, stdout: "", stderr: "")
                #expect(Harness.eventually(60) {
                    page = h.execute(["/usr/bin/curl", "-sS", "--max-time", "5", "http://127.0.0.1:\(port)/index.html"], timeout: 10)
                    return page.stdout == "page-from-web\n"
                }, "\(page.stdout) \(page.stderr)")
                var logs = Harness.Result3(status: -1, stdout: "", stderr: "")
                #expect(Harness.eventually(60) {
                    logs = compose(["logs", "--no-color", "client"])
                    return logs.stdout.contains("page-from-web")
                }, "the client did not reach the web by its name: \(logs.stdout) \(logs.stderr)")
                let ps = docker(socket, ["ps", "--filter", "label=com.docker.compose.project=\(project)", "--format", "{{.Names}}"])
                #expect(ps.stdout.split(separator: "\n").sorted() == ["\(project)_client_1", "\(project)_web_1"], "\(ps.stdout)")
                #expect(h.hvc(["volume", "ls"]).stdout.contains("\(project)_pages"))
                #expect(h.hvc(["network", "ls"]).stdout.contains("\(project)_default"))

                let down = compose(["down", "-v"])
                #expect(down.status == 0, "\(down.stdout) \(down.stderr)")
                #expect(h.hvc(["ps", "-a", "-q"]).stdout.isEmpty)
                #expect(h.hvc(["network", "ls", "-q"]).stdout == networksBefore)
                #expect(!h.hvc(["volume", "ls"]).stdout.contains(project))
                #expect(h.leftoverVMDirectories().isEmpty && h.leftoverVMMs().isEmpty)
                #expect(links() == linksBefore, "a bridge or veth of the project is left")
            }
        }

        /// Images through the docker CLI: a pull from a loopback registry, run; tag, save and
        /// load again, remove; a tenant may not name or remove the shared images.
        @Test func imagesPullTagSaveLoadAndRemove() throws {
            let directory = h.root + "/../docker-registry-\(getpid())"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let (address, registry) = try h.startRegistry(directory)
            defer { registry.terminate(); registry.waitUntilExit() }
            let salt = try h.pushSaltedImage(to: address, as: "dk-pulled:v1", staging: directory)
            let tenants = #"{"tenants": {"dk-img": {"uids": [2503]}}}"#
            try withDockerSocket(tenants: tenants) { socket, _ in
                let pulled = docker(socket, ["pull", "\(address)/dk-pulled:v1"])
                #expect(pulled.status == 0 && pulled.stdout.contains("Downloaded newer image"), "\(pulled.stdout) \(pulled.stderr)")
                let run = docker(socket, ["run", "--rm", "\(address)/dk-pulled:v1", "cat", "/etc/salt"])
                #expect(run.stdout == salt, "\(run.stdout) \(run.stderr)")

                #expect(docker(socket, ["tag", "\(address)/dk-pulled:v1", "dk-renamed:v2"]).status == 0)
                let listed = docker(socket, ["images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout
                #expect(listed.contains("dk-renamed:v2") && listed.contains("\(address)/dk-pulled:v1"), "\(listed)")
                let saved = directory + "/saved.tar"
                let save = docker(socket, ["save", "-o", saved, "dk-renamed:v2"])
                #expect(save.status == 0, "\(save.stderr)")
                let removed = docker(socket, ["rmi", "dk-renamed:v2", "\(address)/dk-pulled:v1"])
                #expect(removed.status == 0, "\(removed.stderr)")
                #expect(!docker(socket, ["images", "--format", "{{.Repository}}"]).stdout.contains("dk-renamed"))
                let load = docker(socket, ["load", "-i", saved])
                #expect(load.status == 0 && load.stdout.contains("Loaded image: "), "\(load.stdout) \(load.stderr)")
                let again = docker(socket, ["run", "--rm", "dk-renamed:v2", "cat", "/etc/salt"])
                #expect(again.stdout == salt, "\(again.stdout) \(again.stderr)")

                for arguments in [["tag", "dk-renamed:v2", "busybox:taken"], ["rmi", "dk-renamed:v2"]] {
                    let refused = docker(socket, as: 2503, arguments)
                    #expect(refused.status != 0 && refused.stderr.contains("only an admin"), "\(arguments): \(refused.stderr)")
                }
                #expect(docker(socket, ["rmi", "dk-renamed:v2"]).status == 0)
            }
        }

        /// schemathesis against the Docker routes (`Specs/docker-api.yaml`) on a store holding an
        /// image and live containers: a fixed seed, a bounded number of cases per operation;
        /// every answer as the spec says, no 5xx, the daemon still answering.
        @Test func fuzzingTheDockerRoutesFindsNoNonconformingResponses() throws {
            let python = try #require(ProcessInfo.processInfo.environment["HVC_FUZZ_PYTHON"], "HVC_FUZZ_PYTHON is unset: run through `make test`")
            try #require(FileManager.default.isExecutableFile(atPath: python), "\(python) is missing: run `make fuzz-deps`")
            let (store, directory, cleanup) = try h.fuzzStore()
            defer { cleanup() }
            let (socket, daemon) = try store.startDaemon(directory, tenants: "{}")
            defer { daemon.terminate(); daemon.waitUntilExit() }
            let docker = (socket as NSString).deletingLastPathComponent + "/docker.sock"
            try #require(Harness.eventually(10) { FileManager.default.fileExists(atPath: docker) })
            let fuzz = h.execute([python, Harness.repository + "/Tests/EndToEndTests/Fixtures/fuzz_api.py", docker,
                                  Harness.repository + "/Specs/docker-api.yaml", "30", "busybox", "fuzz-live", "fuzz-created"], timeout: 900)
            print("docker fuzz: " + fuzz.stdout.split(separator: "\n").prefix(1).joined())
            #expect(fuzz.status == 0, "\(fuzz.stdout)\(fuzz.stderr)")
            #expect(daemon.isRunning)
            #expect(self.docker(docker, ["version"]).status == 0)
        }

        /// What hvc does not carry out is refused by name, and leaves no container behind.
        @Test func unsupportedOptionsAreRefusedByName() throws {
            try withDockerSocket { socket, _ in
                for (flags, field) in [(["--privileged"], "HostConfig.Privileged"), (["--network", "host"], "HostConfig.NetworkMode host"),
                                       (["--pid", "host"], "HostConfig.PidMode host"), (["--cap-add", "SYS_ADMIN"], "HostConfig.CapAdd")] {
                    let r = docker(socket, ["run", "-d"] + flags + ["busybox", "true"])
                    #expect(r.status == 125 && r.stderr.contains("\(field) is not supported by hvc"), "\(flags): \(r.stderr)")
                }
                #expect(h.hvc(["ps", "-a", "-q"]).stdout.isEmpty)
                let unknown = docker(socket, ["system", "df"])
                #expect(unknown.status != 0 && unknown.stderr.contains("is not supported by hvc's Docker API"), "\(unknown.stderr)")
            }
        }

        /// Two tenants through the Docker socket: each sees its own containers only, and the
        /// other's id is not found.
        @Test func tenantsSeeOnlyTheirOwnThroughTheDockerSocket() throws {
            let tenants = #"{"tenants": {"dk-a": {"uids": [2501]}, "dk-b": {"uids": [2502]}}}"#
            try withDockerSocket(tenants: tenants) { socket, _ in
                let a = docker(socket, as: 2501, ["run", "-d", "--name", "dk-a1", "busybox", "sleep", "300"])
                let b = docker(socket, as: 2502, ["run", "-d", "--name", "dk-b1", "busybox", "sleep", "300"])
                try #require(a.status == 0 && b.status == 0, "\(a.stderr) \(b.stderr)")
                let idB = b.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                defer { _ = h.hvc(["rm", "-f", "dk-a1", "dk-b1"]) }
                #expect(docker(socket, as: 2501, ["ps", "-a", "--format", "{{.Names}}"]).stdout == "dk-a1\n")
                #expect(docker(socket, as: 2502, ["ps", "-a", "--format", "{{.Names}}"]).stdout == "dk-b1\n")
                for arguments in [["inspect", idB], ["logs", idB], ["stop", idB], ["kill", idB], ["exec", idB, "true"], ["attach", idB], ["top", idB]] {
                    let r = docker(socket, as: 2501, arguments)
                    let said = r.stderr.lowercased()
                    #expect(r.status != 0 && (said.contains("no such container") || said.contains("no such object")), "\(arguments): \(r.stderr)")
                }
                _ = docker(socket, as: 2501, ["rm", "-f", idB])
                // Networks and volumes are per tenant too: B's are not found by A, and A may use the same names.
                #expect(docker(socket, as: 2502, ["network", "create", "dk-net"]).status == 0)
                #expect(docker(socket, as: 2502, ["volume", "create", "dk-vol"]).status == 0)
                defer {
                    _ = docker(socket, as: 2502, ["network", "rm", "dk-net"]); _ = docker(socket, as: 2502, ["volume", "rm", "dk-vol"])
                    _ = docker(socket, as: 2501, ["network", "rm", "dk-net"]); _ = docker(socket, as: 2501, ["volume", "rm", "dk-vol"])
                }
                for arguments in [["network", "inspect", "dk-net"], ["volume", "inspect", "dk-vol"], ["network", "rm", "dk-net"], ["volume", "rm", "dk-vol"]] {
                    let r = docker(socket, as: 2501, arguments)
                    #expect(r.status != 0 && (r.stderr.lowercased().contains("not found") || r.stderr.lowercased().contains("no such")), "\(arguments): \(r.stderr)")
                }
                #expect(!docker(socket, as: 2501, ["network", "ls", "--format", "{{.Name}}"]).stdout.contains("dk-net"))
                #expect(!docker(socket, as: 2501, ["volume", "ls", "--format", "{{.Name}}"]).stdout.contains("dk-vol"))
                #expect(docker(socket, as: 2502, ["volume", "ls", "--format", "{{.Name}}"]).stdout == "dk-vol\n")
                #expect(docker(socket, as: 2501, ["network", "create", "dk-net"]).status == 0, "names are per tenant")
                // B's container ran on through A's attempts, its removal among them.
                #expect(docker(socket, as: 2502, ["inspect", "--format", "{{.State.Running}}", idB]).stdout == "true\n")
            }
        }
    }
}
