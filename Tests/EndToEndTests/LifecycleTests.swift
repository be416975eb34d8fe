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

        /// A restart policy brings a container back in a new VM (its log going on, the count in
        /// its state) until it succeeds, reaches its bound, or a user stops it; an exited
        /// container starts again, and `restart` stops and starts a running one.
        @Test func restartPoliciesStartAndRestart() throws {
            let volume = "restart-runs-\(getpid())"
            defer { _ = h.hvc(["rm", "-f", "rs-third", "rs-fails", "rs-always", "rs-live"]); _ = h.hvc(["volume", "rm", volume]) }
            func settled(_ name: String, restarts: Int) -> [String: Any]? {
                var state: [String: Any]?
                _ = Harness.eventually(90) {
                    state = try? h.state(name)
                    return state?["status"] as? String == "exited" && state?["restarting"] == nil && state?["restartCount"] as? Int == restarts
                }
                return state
            }

            // Fails twice (a volume counts the runs), then succeeds: two restarts, exit 0.
            let third = h.hvc(["run", "-d", "--name", "rs-third", "--restart", "on-failure:5", "-v", volume + ":/v", "busybox", "sh", "-c",
                               "echo run >> /v/runs; echo ran; [ $(wc -l < /v/runs) -ge 3 ]"])
            try #require(third.status == 0, "\(third.stderr)")
            let thirdState = settled("rs-third", restarts: 2)
            #expect(thirdState?["exitCode"] as? Int == 0, "\(String(describing: thirdState))")
            #expect(h.hvc(["logs", "rs-third"]).stdout == "ran\nran\nran\n")
            // Started again by hand: a fourth run, the count from zero.
            #expect(h.hvc(["start", "rs-third"]).status == 0)
            #expect(h.hvc(["wait", "rs-third"]).stdout == "0\n")
            #expect(Harness.eventually(10) { h.hvc(["logs", "rs-third"]).stdout == "ran\nran\nran\nran\n" })
            #expect(try h.state("rs-third")["restartCount"] == nil)

            // Always failing under on-failure:2: two restarts, then it stays exited.
            _ = h.hvc(["run", "-d", "--name", "rs-fails", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo try; exit 3"])
            let failsState = settled("rs-fails", restarts: 2)
            #expect(failsState?["exitCode"] as? Int == 3, "\(String(describing: failsState))")
            #expect(h.hvc(["logs", "rs-fails"]).stdout == "try\ntry\ntry\n")
            #expect(Harness.eventually(10) { h.supervisors().isEmpty })

            // Always: back after each exit, until stopped; then it stays down.
            _ = h.hvc(["run", "-d", "--name", "rs-always", "--restart", "always", "busybox", "sh", "-c", "echo up; sleep 1"])
            #expect(Harness.eventually(60) { (try? h.state("rs-always")["restartCount"] as? Int ?? 0) ?? 0 >= 2 })
            let stop = h.hvc(["stop", "-t", "1", "rs-always"])
            #expect(stop.status == 0, "\(stop.stderr)")
            let stopped = try h.state("rs-always")
            #expect(stopped["status"] as? String == "exited" && stopped["restarting"] == nil, "\(stopped)")
            let lines = h.hvc(["logs", "rs-always"]).stdout
            Thread.sleep(forTimeInterval: 3)
            #expect(h.hvc(["logs", "rs-always"]).stdout == lines, "it came back after a stop")
            #expect(try h.state("rs-always")["status"] as? String == "exited")

            // restart: the same container in a new VM.
            _ = h.hvc(["run", "-d", "--name", "rs-live", "busybox", "sh", "-c", "echo boot; sleep 300"])
            #expect(Harness.eventually { h.hvc(["logs", "rs-live"]).stdout == "boot\n" })
            let firstVMM = try h.state("rs-live")["vmmPID"] as? Int
            let restart = h.hvc(["restart", "-t", "1", "rs-live"])
            #expect(restart.status == 0, "\(restart.stderr)")
            let live = try h.state("rs-live")
            #expect(live["status"] as? String == "running" && live["vmmPID"] as? Int != firstVMM, "\(live)")
            #expect(Harness.eventually { h.hvc(["logs", "rs-live"]).stdout == "boot\nboot\n" })

            for (arguments, said) in [(["create", "--rm", "--restart", "always", "busybox", "true"], "cannot be combined"),
                                      (["run", "-d", "--restart", "sometimes", "busybox", "true"], "restart policy \"sometimes\" is not known"),
                                      (["run", "--restart", "always", "busybox", "true"], "--restart needs --detach")] {
                let refused = h.hvc(arguments)
                #expect(refused.status != 0 && refused.stderr.contains(said), "\(arguments): \(refused.stderr)")
            }
            #expect(h.hvc(["rm", "-f", "rs-third", "rs-fails", "rs-always", "rs-live"]).status == 0)
            expectNothingLeft()
        }

        /// Labels are kept and filter `ps`, as the other filters do.
        @Test func labelsAndFilters() throws {
            let web = h.hvc(["run", "-d", "--name", "lb-web", "--label", "tier=web", "--label", "team", "busybox", "sleep", "300"])
            let db = h.hvc(["run", "-d", "--name", "lb-db", "--label", "tier=db", "busybox", "sh", "-c", "exit 4"])
            try #require(web.status == 0 && db.status == 0, "\(web.stderr) \(db.stderr)")
            defer { _ = h.hvc(["rm", "-f", "lb-web", "lb-db"]) }
            #expect(h.hvc(["wait", "lb-db"]).stdout == "4\n")
            func ids(_ filters: [String]) -> [String] {
                h.hvc(["ps", "-a", "-q"] + filters.flatMap { ["--filter", $0] }).stdout.split(separator: "\n").map(String.init).sorted()
            }
            let (webID, dbID) = (String(web.stdout.prefix(12)), String(db.stdout.prefix(12)))
            #expect(ids(["label=tier=web"]) == [webID])
            #expect(ids(["label=team"]) == [webID])
            #expect(ids(["label=tier"]) == [dbID, webID].sorted())
            #expect(ids(["label=tier=web", "label=tier=db"]).isEmpty)
            #expect(ids(["label=tier=web", "label=team"]) == [webID])
            #expect(ids(["name=lb-web", "name=lb-db"]) == [dbID, webID].sorted())
            #expect(ids(["label=tier=web", "status=exited"]).isEmpty)
            #expect(ids(["exited=4"]) == [dbID])
            #expect(ids(["ancestor=busybox", "name=lb-w"]) == [webID])
            #expect(h.hvc(["ps", "-q", "--filter", "status=exited"]).stdout.hasPrefix(dbID))
            let labels = try #require((try h.inspect("lb-web"))["config"] as? [String: Any])["labels"] as? [String: String]
            #expect(labels == ["tier": "web", "team": ""])
            let bad = h.hvc(["ps", "--filter", "colour=red"])
            #expect(bad.status != 0 && bad.stderr.contains("the colour filter is not supported"), "\(bad.stderr)")
        }

        /// A health check turns a container healthy once its test passes, and unhealthy after
        /// its retries fail in a row; ps shows it and filters by it.
        @Test func healthChecksRunInTheContainer() throws {
            let run = h.hvc(["run", "-d", "--name", "hc-web", "--health-cmd", "test -f /tmp/ready && echo ready-said",
                             "--health-interval", "1s", "--health-retries", "2", "--health-timeout", "5s",
                             "busybox", "sh", "-c", "sleep 2; touch /tmp/ready; exec sleep 300"])
            try #require(run.status == 0, "\(run.stderr)")
            defer { _ = h.hvc(["rm", "-f", "hc-web"]) }
            func health() -> [String: Any]? { (try? h.state("hc-web"))?["health"] as? [String: Any] }
            #expect(Harness.eventually(60) { health()?["status"] as? String == "healthy" }, "\(String(describing: health()))")
            let log = health()?["log"] as? [[String: Any]] ?? []
            #expect(log.last?["exitCode"] as? Int == 0 && log.last?["output"] as? String == "ready-said\n", "\(log)")
            #expect(h.hvc(["ps"]).stdout.contains("(healthy)"))
            #expect(h.hvc(["ps", "-q", "--filter", "health=healthy"]).stdout.hasPrefix(String(run.stdout.prefix(12))))
            #expect(h.hvc(["exec", "hc-web", "rm", "/tmp/ready"]).status == 0)
            #expect(Harness.eventually(60) { health()?["status"] as? String == "unhealthy" }, "\(String(describing: health()))")
            #expect((health()?["failingStreak"] as? Int ?? 0) >= 2)
            let bad = h.hvc(["run", "-d", "--health-interval", "1x", "busybox", "true"])
            #expect(bad.status != 0 && bad.stderr.contains("duration \"1x\""), "\(bad.stderr)")
        }

        /// `hvc stats` reads each VM's use on the host: a guest spinning shows a CPU share an
        /// idle one does not; traffic and memory show.
        @Test func statsShowWhatEachVMUses() throws {
            let busy = h.hvc(["run", "-d", "--name", "st-busy", "busybox", "sh", "-c", "while :; do :; done"])
            let idle = h.hvc(["run", "-d", "--name", "st-idle", "busybox", "sleep", "300"])
            try #require(busy.status == 0 && idle.status == 0, "\(busy.stderr) \(idle.stderr)")
            defer { _ = h.hvc(["rm", "-f", "st-busy", "st-idle"]) }
            let ping = h.hvc(["exec", "st-idle", "sh", "-c",
                              "gw=$(ip route | awk '/default/ {print $3}'); for i in 1 2 3 4 5 6 7 8 9 10; do ping -c 1 -W 1 $gw >/dev/null && exit 0; sleep 1; done; exit 1"])
            #expect(ping.status == 0, "the guest did not reach its gateway: \(ping.stderr)")
            let sampled = h.hvc(["stats", "--no-stream", "--format", "json", "st-busy", "st-idle"])
            try #require(sampled.status == 0, "\(sampled.stderr)")
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(sampled.stdout.utf8)) as? [[String: String]])
            func share(_ name: String) -> Double { Double(rows.first { $0["name"] == name }?["cpu"]?.dropLast() ?? "") ?? -1 }
            #expect(share("st-busy") > 40 && share("st-busy") > share("st-idle") + 25, "\(rows)")
            let idleRow = rows.first { $0["name"] == "st-idle" } ?? [:]
            #expect(idleRow["network"].map { !$0.hasPrefix("0B /") || !$0.hasSuffix("/ 0B") } == true, "\(idleRow)")
            #expect(idleRow["memory"]?.contains("MiB / ") == true && idleRow["pids"].flatMap { Int($0) } ?? 0 > 0, "\(idleRow)")
            let stopped = h.hvc(["stats", "--no-stream", "no-such-container"])
            #expect(stopped.status != 0 && stopped.stderr.contains("no such container"), "\(stopped.stderr)")
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
