import Foundation
import Testing

/// Detached containers under their supervisor: the verbs Docker users expect.
extension EndToEnd {
    @Suite struct LifecycleTests {
        let h: Harness

        init() throws { h = try Harness.make() }

        func expectNothingLeft(sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(h.leftoverVMDirectories() == [], sourceLocation: sourceLocation)
            #expect(h.leftoverVMMs() == [], sourceLocation: sourceLocation)
            #expect(h.leftoverMounts() == [], sourceLocation: sourceLocation)
            #expect(h.supervisors().isEmpty, sourceLocation: sourceLocation)
        }

        @Test func detachedContainerFullLifecycle() throws {
            let run = h.hvc(["run", "-d", "--name", "web", "busybox", "sh", "-c", "echo up; sleep 1000"])
            #expect(run.status == 0)
            let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(id.count == 64 && id.allSatisfy(\.isHexDigit))

            let ps = h.hvc(["ps"])
            #expect(ps.stdout.contains("web"))
            #expect(ps.stdout.contains("Up "))

            #expect(Harness.eventually { h.hvc(["logs", "web"]).stdout == "up\n" })
            let hostname = h.hvc(["exec", "web", "cat", "/etc/hostname"])
            #expect(hostname.status == 0)
            #expect(hostname.stdout == String(id.prefix(12)) + "\n")
            #expect(h.hvc(["exec", String(id.prefix(8)), "sh", "-c", "exit 3"]).status == 3)

            let started = Date()
            let stop = h.hvc(["stop", "-t", "2", "web"])
            #expect(stop.status == 0)
            #expect(Date().timeIntervalSince(started) < 15)

            let all = h.hvc(["ps", "-a"])
            #expect(all.stdout.contains("Exited (137)") || all.stdout.contains("Exited (143)"))
            let state = try h.state("web")
            #expect(state["status"] as? String == "exited")
            #expect([137, 143].contains(state["exitCode"] as? Int ?? 0))
            #expect(h.hvc(["logs", "web"]).stdout == "up\n")

            #expect(h.hvc(["rm", "web"]).status == 0)
            #expect(!h.hvc(["ps", "-a"]).stdout.contains("web"))
            expectNothingLeft()
        }

        @Test func inspectShowsWhatWasAsked() throws {
            let id = h.hvc(["run", "-d", "--name", "probe", "--memory", "300m", "--cpus", "2", "busybox", "sleep", "100"])
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { _ = h.hvc(["rm", "-f", "probe"]) }
            let record = try h.inspect("probe")
            let config = try #require(record["config"] as? [String: Any])
            let state = try #require(record["state"] as? [String: Any])
            #expect(config["id"] as? String == id)
            #expect(config["memoryMiB"] as? Int == 300)
            #expect(config["cpus"] as? Int == 2)
            #expect(config["accelerator"] as? String == "tcg" || config["accelerator"] as? String == "kvm")
            #expect((config["imageID"] as? String)?.hasPrefix("sha256:") == true)
            #expect(state["status"] as? String == "running")
            let vmm = try #require(state["vmmPID"] as? Int)
            let supervisor = try #require(state["supervisorPID"] as? Int)
            #expect(kill(Int32(vmm), 0) == 0)
            #expect(kill(Int32(supervisor), 0) == 0)
            #expect(FileManager.default.fileExists(atPath: try #require(record["logPath"] as? String)))
        }

        @Test func createThenStart() throws {
            let id = h.hvc(["create", "--name", "later", "busybox", "sh", "-c", "echo started; sleep 100"])
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try h.state("later")["status"] as? String == "created")
            #expect(h.hvc(["ps", "-a"]).stdout.contains("Created"))
            #expect(h.hvc(["start", "later"]).status == 0)
            #expect(try h.state(id)["status"] as? String == "running")
            #expect(Harness.eventually { h.hvc(["logs", "later"]).stdout == "started\n" })
            #expect(h.hvc(["kill", "later"]).status == 0)
            #expect(h.hvc(["wait", "later"]).stdout == "137\n")
            #expect(h.hvc(["rm", "later"]).status == 0)
            expectNothingLeft()
        }

        @Test func waitPrintsTheExitCode() {
            _ = h.hvc(["run", "-d", "--name", "quick", "busybox", "sh", "-c", "sleep 1; exit 5"])
            let wait = h.hvc(["wait", "quick"])
            #expect(wait.stdout == "5\n")
            #expect(h.hvc(["rm", "quick"]).status == 0)
            expectNothingLeft()
        }

        @Test func namesAreUniqueAndPrefixesMustBeUnambiguous() {
            _ = h.hvc(["create", "--name", "twin", "busybox", "true"])
            let clash = h.hvc(["create", "--name", "twin", "busybox", "true"])
            #expect(clash.status == 125)
            #expect(clash.stderr.contains("twin"))
            #expect(clash.stderr.split(separator: "\n").count == 1)
            #expect(h.hvc(["rm", "twin"]).status == 0)
            let missing = h.hvc(["rm", "no-such-container"])
            #expect(missing.status == 125)
            #expect(missing.stderr.contains("no-such-container"))

            // Prefixes: of 17 containers two share a first hex digit, which is then ambiguous;
            // 12 digits name one.
            var ids: [String] = []
            defer { _ = h.hvc(["rm"] + ids) }
            for n in 0..<17 {
                let created = h.hvc(["create", "--name", "prefix-\(n)", "busybox", "true"])
                #expect(created.status == 0, "\(created.stderr)")
                ids.append(created.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            let byDigit = Dictionary(grouping: ids.filter { !$0.isEmpty }, by: { String($0.prefix(1)) })
            let shared = byDigit.first { $0.value.count > 1 }
            #expect(shared != nil, "17 ids, 16 digits")
            if let (digit, _) = shared {
                let ambiguous = h.hvc(["inspect", digit])
                #expect(ambiguous.status == 125 && ambiguous.stderr.contains("matches") && ambiguous.stderr.contains("give more of the id"),
                        "\(ambiguous.stderr)")
            }
            let unique = h.hvc(["inspect", String(ids[0].prefix(12))])
            #expect(unique.status == 0 && unique.stdout.contains(ids[0]), "\(unique.stderr)")
        }

        @Test func rmOfARunningContainerNeedsForceAndLeavesNothing() {
            _ = h.hvc(["run", "-d", "--name", "busy", "busybox", "sleep", "1000"])
            let refused = h.hvc(["rm", "busy"])
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("running"))
            #expect(h.hvc(["rm", "-f", "busy"]).status == 0)
            #expect(!h.hvc(["ps", "-a"]).stdout.contains("busy"))
            expectNothingLeft()
        }

        @Test func logsTailTimestampsAndFollow() {
            _ = h.hvc(["run", "-d", "--name", "talker", "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 1; echo late"])
            let follow = h.hvc(["logs", "-f", "talker"])
            #expect(follow.stdout == "line1\nline2\nline3\nline4\nline5\nlate\n")
            #expect(h.hvc(["logs", "--tail", "2", "talker"]).stdout == "line5\nlate\n")
            let stamped = h.hvc(["logs", "-t", "--tail", "1", "talker"]).stdout
            #expect(stamped.hasSuffix(" late\n"))
            #expect(stamped.hasPrefix("20"))
            #expect(h.hvc(["rm", "talker"]).status == 0)
        }

        @Test func logsRotateAtTheirCap() throws {
            _ = h.hvc(["run", "-d", "--name", "chatty", "--log-max-size", "64k", "busybox", "sh", "-c",
                       "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done"])
            _ = h.hvc(["wait", "chatty"])
            let path = try #require(try h.inspect("chatty")["logPath"] as? String)
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
            #expect(size <= 64 * 1024)
            #expect(FileManager.default.fileExists(atPath: path + ".1"))
            #expect(h.hvc(["logs", "--tail", "1", "chatty"]).stdout == "line-2999\n")
            #expect(h.hvc(["rm", "chatty"]).status == 0)
        }

        @Test func killingTheSupervisorEndsTheContainerWithAReason() throws {
            _ = h.hvc(["run", "-d", "--name", "orphan", "busybox", "sh", "-c", "echo alive; sleep 1000"])
            #expect(Harness.eventually { h.hvc(["logs", "orphan"]).stdout == "alive\n" })
            let before = try h.state("orphan")
            let supervisor = Int32(try #require(before["supervisorPID"] as? Int))
            let vmm = Int32(try #require(before["vmmPID"] as? Int))
            kill(supervisor, SIGKILL)
            #expect(Harness.eventually { kill(vmm, 0) != 0 })
            let after = try h.state("orphan")
            #expect(after["status"] as? String == "exited")
            #expect((after["error"] as? String)?.contains("supervisor") == true)
            #expect(h.hvc(["logs", "orphan"]).stdout == "alive\n")
            // Its cgroups went with the sweep that settled it.
            let id = try #require((try h.inspect("orphan")["config"] as? [String: Any])?["id"] as? String)
            for base in ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup"] {
                let dir = "\(base)/hvc/default/\(id.prefix(16))"
                #expect(!FileManager.default.fileExists(atPath: dir), "\(dir) remains")
            }
            #expect(h.hvc(["rm", "orphan"]).status == 0)
            expectNothingLeft()
        }

        @Test func tenConcurrentDetachedContainers() throws {
            let names = (0..<10).map { "par\($0)" }
            let group = DispatchGroup()
            for name in names {
                group.enter()
                DispatchQueue.global().async {
                    let r = h.hvc(["run", "-d", "--name", name, "busybox", "sleep", "1000"], timeout: 400)
                    if r.status != 0 { Issue.record("\(name): \(r.stderr)") }
                    group.leave()
                }
            }
            // ps stays consistent while they start: every line parses, no container listed twice.
            while group.wait(timeout: .now() + 0.5) == .timedOut {
                let ps = h.hvc(["ps", "-a", "--format", "json"])
                #expect(ps.status == 0)
                let list = try JSONSerialization.jsonObject(with: Data(ps.stdout.utf8)) as? [[String: Any]] ?? []
                let ids = list.compactMap { $0["id"] as? String }
                #expect(Set(ids).count == ids.count)
            }
            let running = h.hvc(["ps", "-q"]).stdout.split(separator: "\n")
            #expect(running.count == 10)
            let rm = h.hvc(["rm", "-f"] + names, timeout: 300)
            #expect(rm.status == 0)
            #expect(h.hvc(["ps", "-aq"]).stdout == "")
            expectNothingLeft()
        }
    }
}
