import Foundation
import Testing

extension EndToEnd {
    /// hvcd end to end: a Python client over the Unix socket, every response checked against
    /// Specs/api.yaml; tenants by uid.
    @Suite struct APITests {
        let h: Harness
        static let client = Harness.repository + "/Tests/EndToEndTests/Fixtures/api_client.py"
        static let spec = Harness.repository + "/Specs/api.yaml"

        init() throws { h = try Harness.make() }

        func startDaemon(_ directory: String, tenants: String) throws -> (socket: String, process: Process) {
            try h.startDaemon(directory, tenants: tenants)
        }

        /// Runs the client as `uid` (nil: root).
        func client(_ socket: String, uid: Int? = nil, _ arguments: [String]) -> Harness.Result3 {
            var argv = ["/usr/bin/python3", APITests.client, socket, APITests.spec] + arguments
            if let uid {
                argv = ["/usr/bin/setpriv", "--reuid", "\(uid)", "--regid", "\(uid)", "--clear-groups"] + argv
            }
            return h.execute(argv, timeout: 600)
        }

        @Test func lifecycleImagesAndErrorsFollowTheSpec() throws {
            let directory = h.root + "/../api-\(UUID().uuidString.prefix(8))"
            let (socket, daemon) = try startDaemon(directory, tenants: "{}")
            defer { daemon.terminate(); daemon.waitUntilExit() }
            let archive = directory + "/layers.tar"
            _ = h.execute(["/usr/bin/python3", Harness.repository + "/Tests/EndToEndTests/Fixtures/make-image.py", "layers", archive])
            let r = client(socket, ["lifecycle", archive])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout == "ok\n")
        }

        @Test func networksFollowTheSpec() throws {
            let directory = h.root + "/../api-\(UUID().uuidString.prefix(8))"
            let (socket, daemon) = try startDaemon(directory, tenants: "{}")
            defer { daemon.terminate(); daemon.waitUntilExit() }
            let r = client(socket, ["networks"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout == "ok\n")
        }

        @Test func volumesFollowTheSpec() throws {
            let directory = h.root + "/../api-\(UUID().uuidString.prefix(8))"
            let (socket, daemon) = try startDaemon(directory, tenants: "{}")
            defer { daemon.terminate(); daemon.waitUntilExit() }
            let r = client(socket, ["volumes", URL(fileURLWithPath: directory).standardizedFileURL.path])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout == "ok\n")
        }

        @Test func tenantsSeeOnlyTheirOwnContainers() throws {
            let directory = h.root + "/../api-\(UUID().uuidString.prefix(8))"
            let tenants = #"{"tenants": {"tenant-a": {"uids": [2101], "maxContainers": 1}, "tenant-b": {"uids": [2102]}}}"#
            let (socket, daemon) = try startDaemon(directory, tenants: tenants)
            defer { daemon.terminate(); daemon.waitUntilExit() }
            let a = client(socket, uid: 2101, ["create", "of-a"])
            let b = client(socket, uid: 2102, ["create", "of-b"])
            try #require(a.status == 0 && b.status == 0, "\(a.stderr) \(b.stderr)")
            let idA = a.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let idB = b.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { _ = h.hvc(["rm", "-f", idA, idB]) }

            let aOnB = IsolationTable.attack(client(socket, uid: 2101, ["cannot-touch", idB]), disabled: .notRun)
            #expect(aOnB.status == 0, "\(aOnB.stderr)")
            let bOnA = client(socket, uid: 2102, ["cannot-touch", idA])
            #expect(bOnA.status == 0, "\(bOnA.stderr)")
            let admin = client(socket, ["sees", idA, idB])
            #expect(admin.status == 0, "\(admin.stderr)")
            let unmapped = client(socket, uid: 2199, ["cannot-touch", idA])
            #expect(unmapped.status == 0, "\(unmapped.stderr)")
            // tenant-a may have one container: a second is refused with a clear 403.
            // Nor can another tenant exec into it through the stream socket.
            let intruder = IsolationTable.attack(h.execute(["/usr/bin/setpriv", "--reuid", "2102", "--regid", "2102", "--clear-groups", "/usr/bin/env",
                                                            "HVC_HOST=unix://" + socket, Harness.binary, "exec", idA, "true"]), disabled: .notRun)
            #expect(intruder.status == 125)
            #expect(intruder.stderr.contains("no such container"))
            let owner = h.execute(["/usr/bin/setpriv", "--reuid", "2101", "--regid", "2101", "--clear-groups", "/usr/bin/env",
                                   "HVC_HOST=unix://" + socket, Harness.binary, "exec", idA, "echo", "mine"])
            #expect(owner.status == 0 && owner.stdout == "mine\n", "\(owner.stderr)")
            let quota = client(socket, uid: 2101, ["quota"])
            #expect(quota.status == 0, "\(quota.stderr)")
            #expect(h.hvc(["inspect", idB]).stdout.contains("\"tenant\" : \"tenant-b\""))

            // Events: while A stops its container, B's event stream shows none of it, but its own
            // container's creation made at the same time; an admin's shows A's.
            let watchers = [2102, 0].map { uid in
                let (done, output) = (DispatchSemaphore(value: 0), CapturedOutput())
                let argv = ["/usr/bin/curl", "-sN", "--max-time", "10", "--unix-socket", socket, "http://hvc/v1/events"]
                DispatchQueue.global().async {
                    let r = uid == 0 ? h.execute(argv)
                        : IsolationTable.attack(h.execute(["/usr/bin/setpriv", "--reuid", "\(uid)", "--regid", "\(uid)", "--clear-groups"] + argv),
                                                disabled: .notRun)
                    output.text = r.stdout
                    done.signal()
                }
                return (done, output)
            }
            Thread.sleep(forTimeInterval: 1)
            let ownEvent = client(socket, uid: 2102, ["create", "of-b-during-watch"])
            let idB2 = ownEvent.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { if !idB2.isEmpty { _ = h.hvc(["rm", "-f", idB2]) } }
            let stopped = h.execute(["/usr/bin/setpriv", "--reuid", "2101", "--regid", "2101", "--clear-groups", "/usr/bin/env",
                                     "HVC_HOST=unix://" + socket, Harness.binary, "stop", "-t", "1", idA])
            #expect(stopped.status == 0, "\(stopped.stderr)")
            for (done, _) in watchers { done.wait() }
            let seenByB = watchers[0].1.text, seenByAdmin = watchers[1].1.text
            let routesTried = aOnB.stdout.split(separator: "\n").first { $0.hasPrefix("tried ") }

            let test = "APITests.tenantsSeeOnlyTheirOwnContainers"
            IsolationTable.record([
                .init(area: "API", attack: "another tenant's container id on every container route (inspect, logs, stop, kill, wait, delete) and in the list",
                      expected: "404, not listed", attempted: routesTried.map(String.init),
                      observed: aOnB.status == 0 && bOnA.status == 0 ? "404 on every route, not listed" : "reached: \(aOnB.stderr)\(bOnA.stderr)",
                      outcomeHeld: aOnB.status == 0 && bOnA.status == 0,
                      control: "an admin lists both: \(admin.status == 0 ? "yes" : "no")", controlShown: admin.status == 0, test: test),
                .init(area: "API", attack: "exec into another tenant's container through the stream socket",
                      expected: "no such container", attempted: intruder.status >= 0 ? "its exec ran (exit \(intruder.status))" : nil,
                      observed: intruder.stderr.trimmingCharacters(in: .whitespacesAndNewlines),
                      outcomeHeld: intruder.status == 125 && intruder.stderr.contains("no such container") && !intruder.stdout.contains("mine"),
                      control: "its owner: \(owner.stdout == "mine\n" ? "ran" : "did not run")", controlShown: owner.stdout == "mine\n", test: test),
                .init(area: "API", attack: "follow the event stream while another tenant stops its container",
                      expected: "none of its events",
                      attempted: !idB2.isEmpty && seenByB.contains(idB2) ? "its stream ran: its own container's create seen" : nil,
                      observed: seenByB.contains(idA) ? "its events seen" : "none seen (\(seenByB.split(separator: "\n").count) events of its own)",
                      outcomeHeld: !seenByB.contains(idA),
                      control: "an admin's stream: \(seenByAdmin.contains(idA) ? "its events seen" : "not seen")",
                      controlShown: seenByAdmin.contains(idA), test: test),
            ])
            #expect(client(socket, uid: 2102, ["delete", idB]).status == 0)
        }

        @Test func twentyConcurrentClientsLeaveNothingBehind() throws {
            let directory = h.root + "/../api-\(UUID().uuidString.prefix(8))"
            let (socket, daemon) = try startDaemon(directory, tenants: "{}")
            defer { daemon.terminate(); daemon.waitUntilExit() }
            let r = client(socket, ["churn", "20"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(Harness.eventually(30) { h.leftoverVMMs().isEmpty && h.leftoverVMDirectories().isEmpty })
        }

        @Test func theCLITalksToTheDaemonWhenGivenOne() throws {
            let directory = h.root + "/../api-\(UUID().uuidString.prefix(8))"
            let (socket, daemon) = try startDaemon(directory, tenants: "{}")
            defer { daemon.terminate(); daemon.waitUntilExit() }
            var remote = h
            remote.extraEnvironment["HVC_HOST"] = "unix://" + socket
            let run = remote.hvc(["run", "-d", "--name", "via-daemon", "busybox", "sh", "-c", "echo remote; sleep 1000"])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(remote.hvc(["ps"]).stdout.contains("via-daemon"))
            #expect(Harness.eventually { remote.hvc(["logs", "via-daemon"]).stdout == "remote\n" })
            #expect(remote.hvc(["inspect", "via-daemon"]).stdout.contains("\"status\" : \"running\""))
            let exec = remote.hvc(["exec", "via-daemon", "sh", "-c", "echo from-exec; echo err >&2; exit 4"])
            #expect(exec.status == 4)
            #expect(exec.stdout == "from-exec\n" && exec.stderr == "err\n")
            #expect(remote.hvc(["exec", "-i", "via-daemon", "cat"], stdin: "piped\n").stdout == "piped\n")
            #expect(remote.hvc(["stop", "-t", "1", "via-daemon"]).status == 0)
            #expect(remote.hvc(["wait", "via-daemon"]).stdout == "137\n")
            #expect(remote.hvc(["rm", "via-daemon"]).status == 0)
            // The same state, seen without the daemon.
            #expect(!h.hvc(["ps", "-a"]).stdout.contains("via-daemon"))
            // Attached runs: all of the output, the streams kept apart, stdin, the exit code, --rm.
            let attached = remote.hvc(["run", "--rm", "--name", "attached-remote", "busybox", "sh", "-c", "echo out; echo err >&2; exit 4"])
            #expect(attached.status == 4, "\(attached.stderr)")
            #expect(attached.stdout == "out\n" && attached.stderr == "err\n")
            #expect(!h.hvc(["ps", "-a"]).stdout.contains("attached-remote"))
            #expect(remote.hvc(["run", "--rm", "-i", "busybox", "cat"], stdin: "through hvcd\n").stdout == "through hvcd\n")
            // Attaching to running containers, through the daemon and without it.
            for (client, name) in [(remote, "talker-remote"), (h, "talker-local")] {
                #expect(client.hvc(["run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 2; echo late; exit 5"]).status == 0)
                let attach = client.hvc(["attach", name])
                #expect(attach.status == 5 && attach.stdout == "late\n", "\(attach.stdout) \(attach.stderr)")
                _ = client.hvc(["rm", "-f", name])
            }
            let unreachable = h.hvc(["ps", "--host", "unix://" + directory + "/nothing.sock"])
            #expect(unreachable.status == 125 && unreachable.stderr.contains("cannot reach hvcd"))
        }

        @Test func containersOutliveTheDaemon() throws {
            let directory = h.root + "/../api-\(UUID().uuidString.prefix(8))"
            var (socket, daemon) = try startDaemon(directory, tenants: "{}")
            let created = client(socket, ["create", "survivor"])
            try #require(created.status == 0, "\(created.stderr)")
            let id = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { _ = h.hvc(["rm", "-f", id]) }
            kill(daemon.processIdentifier, SIGKILL)
            daemon.waitUntilExit()
            #expect(h.hvc(["ps", "-q"]).stdout.contains(String(id.prefix(12))))
            (socket, daemon) = try startDaemon(directory, tenants: "{}")
            defer { daemon.terminate(); daemon.waitUntilExit() }
            #expect(client(socket, ["sees", id]).status == 0)
            #expect(client(socket, ["delete", id]).status == 0)
        }

        @Test func logsFollowEventsAndPullProgressStream() throws {
            let directory = h.root + "/../api-\(UUID().uuidString.prefix(8))"
            let (socket, daemon) = try startDaemon(directory, tenants: "{}")
            defer { daemon.terminate(); daemon.waitUntilExit() }
            let r = client(socket, ["streams"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout == "ok\n")
        }

        /// schemathesis (from PyPI, installed by `make fuzz-deps`) against a daemon whose store
        /// holds an image and live containers: a fixed seed and a bounded number of cases per
        /// operation; every response as the spec says, no 5xx, no crash.
        @Test func fuzzingFromTheSpecFindsNoNonconformingResponses() throws {
            let python = try #require(ProcessInfo.processInfo.environment["HVC_FUZZ_PYTHON"], "HVC_FUZZ_PYTHON is unset: run through `make test`")
            try #require(FileManager.default.isExecutableFile(atPath: python), "\(python) is missing: run `make fuzz-deps`")
            let (store, directory, cleanup) = try h.fuzzStore()
            defer { cleanup() }
            let (socket, daemon) = try store.startDaemon(directory, tenants: "{}")
            defer { daemon.terminate(); daemon.waitUntilExit() }
            let fuzz = h.execute([python, Harness.repository + "/Tests/EndToEndTests/Fixtures/fuzz_api.py", socket, APITests.spec, "50",
                                  "busybox", "fuzz-live", "fuzz-created"], timeout: 900)
            #expect(fuzz.status == 0, "\(fuzz.stdout)\(fuzz.stderr)")
            #expect(daemon.isRunning)
            #expect(client(socket, ["version"]).status == 0)
        }

        @Test func hvcServeRunsTheDaemon() throws {
            let directory = h.root + "/../serve-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let socket = directory + "/hvc.sock"
            let serve = Process()
            serve.executableURL = URL(fileURLWithPath: Harness.binary)
            serve.arguments = ["serve", "--socket", socket]
            serve.environment = h.environment
            try serve.run()
            defer { serve.terminate(); serve.waitUntilExit() }
            try #require(Harness.eventually(10) { FileManager.default.fileExists(atPath: socket) }, "hvc serve did not start")
            var remote = h
            remote.extraEnvironment["HVC_HOST"] = "unix://" + socket
            let run = remote.hvc(["run", "--rm", "busybox", "echo", "served"])
            #expect(run.status == 0 && run.stdout == "served\n", "\(run.stderr)")
        }
    }
}

/// Output a background command leaves: written before its semaphore is signalled, read after
/// it is waited for.
final class CapturedOutput: @unchecked Sendable {
    var text = ""
}
