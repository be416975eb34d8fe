import Foundation
import Testing

extension EndToEnd {
    /// Attacks of one tenant on another, each with a control that removes the boundary, written
    /// to `docs/isolation.md` (see `IsolationTable`). The network rows come from NetworkTests,
    /// the API rows from APITests, the fork bomb and memory hog from JailTests, the protocol
    /// attacks from HostileGuestTests.
    @Suite(.serialized) struct IsolationTests {
        let h: Harness

        init() throws { h = try Harness.make() }

        /// The VM's run directory, from where its QEMU writes its output.
        func vmDirectory(_ vmm: Int32) throws -> String {
            let log = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(vmm)/fd/1")
            return try #require(log.hasSuffix("/root/qemu.log") ? String(log.dropLast("/root/qemu.log".count)) : nil, "\(log)")
        }

        /// `name -> (reached, detail)` from the attacker's `hvc-attack NAME reached|denied DETAIL` lines.
        static func attacks(_ text: String) -> [String: (reached: Bool, detail: String)] {
            var result: [String: (Bool, String)] = [:]
            for line in text.split(separator: "\n") where line.hasPrefix("hvc-attack ") {
                let fields = line.split(separator: " ", maxSplits: 3).map(String.init)
                // "absent": nothing there to attack, so no attempt.
                guard fields.count >= 3, fields[2] == "reached" || fields[2] == "denied" else { continue }
                result[fields[1]] = (fields[2] == "reached", fields.count > 3 ? fields[3] : fields[2])
            }
            return result
        }

        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

        /// Wall time of `hvc exec C true`, median of `runs`.
        func execLatency(_ container: String, runs: Int = 5) -> Double {
            median((0..<runs).map { _ in
                let start = Date()
                _ = h.hvc(["exec", container, "true"])
                return Date().timeIntervalSince(start)
            })
        }

        /// A program run in QEMU's place (`HVC_QEMU`) in a templated container's real jail tries
        /// what an escaped VMM would against a neighbour's VM, the state directories, hvcd and the
        /// host; the same program run unjailed (as root on the host) shows each attempt can succeed.
        @Test func anEscapedVMMReachesNothing() throws {
            let scratch = h.root + "/../isolation-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let (socket, daemon) = try h.startDaemon(scratch + "/hvcd", tenants: "{}")
            defer { daemon.terminate(); daemon.waitUntilExit() }
            let port = Harness.freePort()
            let listener = try TCPListener(port: port)
            defer { listener.stop() }

            let victim = h.hvc(["run", "-d", "--name", "iso-victim", "-v", "iso-secret:/data", "busybox", "sh", "-c",
                                "echo victim-secret > /data/secret; exec sleep 1000"])
            try #require(victim.status == 0, "\(victim.stderr)")
            defer { _ = h.hvc(["rm", "-f", "-v", "iso-victim"]); _ = h.hvc(["volume", "rm", "iso-secret"]) }
            let victimVMM = try h.vmmPID("iso-victim")
            let victimDirectory = try vmDirectory(victimVMM)
            let volume = try #require(try JSONSerialization.jsonObject(with: Data(h.hvc(["volume", "inspect", "iso-secret"]).stdout.utf8))
                as? [[String: Any]])
            let volumeFile = try #require((volume.first?["volume"] as? [String: Any])?["mountpoint"] as? String) + "/secret"
            #expect(Harness.eventually(30) { FileManager.default.fileExists(atPath: volumeFile) })

            // Installed under /usr: a VMM's jail holds files only from the host's /usr.
            let installed = "/usr/local/libexec/hvc-isolation-\(getpid())"
            try FileManager.default.createDirectory(atPath: installed, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: installed) }
            let attacker = installed + "/vmm-attacker"
            let defines = [
                "OTHER_VM_DIR": "\"\(victimDirectory)\"", "OTHER_VMM_PID": "\(victimVMM)", "STATE_ROOT": "\"\(h.root)\"",
                "RUN_ROOT": "\"\(h.runRoot)\"", "HVCD_SOCKET": "\"\(socket)\"", "OTHER_VOLUME_FILE": "\"\(volumeFile)\"",
                "HOST_ADDRESS": "\"\(NetworkTests.hostAddress())\"", "HOST_PORT": "\(port)", "HVC_BINARY": "\"\(Harness.binary)\"",
            ].map { "-D\($0.key)=\($0.value)" }
            let compiled = h.execute(["/usr/bin/cc", "-static", "-O2", "-o", attacker] + defines
                                     + IsolationTable.attack([], disabled: ["-DATTACKS_DISABLED"])
                                     + [Harness.repository + "/Tests/EndToEndTests/Fixtures/vmm-attacker.c"])
            try #require(compiled.status == 0, "\(compiled.stderr)")
            chmod(installed, 0o755)
            chmod(attacker, 0o755)

            let control = IsolationTests.attacks(h.execute([attacker, "--control"]).stderr)
            var jailedHarness = h
            jailedHarness.extraEnvironment["HVC_QEMU"] = attacker
            let run = jailedHarness.hvc(["run", "-d", "--name", "iso-attacker", "busybox", "sleep", "1000"])
            defer {
                _ = h.hvc(["rm", "-f", "iso-attacker"])
                // The template made with the stand-in is no current run's.
                _ = h.hvc(["template", "prune"])
            }
            try #require(run.status == 0, "\(run.stderr)")
            // The stand-in became QEMU: the container works.
            #expect(h.hvc(["exec", "iso-attacker", "echo", "up"]).stdout == "up\n")
            let log = try String(contentsOfFile: try vmDirectory(try h.vmmPID("iso-attacker")) + "/root/qemu.log", encoding: .utf8)
            let jailed = IsolationTests.attacks(log)

            // Each with the denial the jail's policy gives (the errno the attacker reports first).
            let attempts: [(name: String, area: String, attack: String, denial: String)] = [
                ("other-vm-console-log", "files", "open another VM's console log", "ENOENT"),
                ("other-vm-agent-socket", "files", "connect to another VM's agent socket", "ENOENT"),
                ("other-volume", "files", "read another container's volume", "ENOENT"),
                ("image-store", "files", "open the image store", "ENOENT"),
                ("state-directory", "files", "open the containers' state directory", "ENOENT"),
                ("run-directory", "files", "open the run directory (all VMs' sockets)", "ENOENT"),
                ("hvcd-socket", "files", "connect to hvcd's socket", "ENOENT"),
                ("signal-other-vmm", "processes", "signal another VM's QEMU", "ESRCH"),
                ("ptrace-other-vmm", "processes", "ptrace another VM's QEMU", "EPERM"),
                ("other-vmm-memory", "memory", "open another VM's /proc/PID/mem", "ENOENT"),
                ("read-other-vmm-memory", "memory", "process_vm_readv another VM's QEMU", "EPERM"),
                ("template-memory-write", "memory", "write the template memory it was given", "EBADF"),
                ("template-memory-shared-map", "memory", "map the template memory shared and writable", "EACCES"),
                ("template-memory-truncate", "memory", "truncate the template memory", "EINVAL"),
                ("template-memory-reopened-write", "memory", "write the template memory reopened read-write", "EPERM"),
                ("template-memory-reopened-shared-map", "memory", "map the reopened template memory shared and writable", "EPERM"),
                ("host-loopback", "VMM escape", "connect to a host service on 127.0.0.1", "ECONNREFUSED"),
                ("host-address", "VMM escape", "connect to a host service on the host's address", "ENETUNREACH"),
                ("raw-packet-socket", "VMM escape", "open a raw packet socket", "EPERM"),
                ("mount", "VMM escape", "mount a file system", "EPERM"),
                ("new-user-namespace", "VMM escape", "make a user namespace", "EPERM"),
                ("new-mount-namespace", "VMM escape", "make a mount namespace", "EPERM"),
                ("raise-rlimit", "VMM escape", "raise a hard resource limit (core size)", "EPERM"),
                ("device-node", "VMM escape", "make a device node", "EPERM"),
                ("io-uring", "VMM escape", "set up io_uring (its operations pass beside seccomp)", "ENOSYS"),
                ("load-kernel-module", "VMM escape", "load a kernel module", "EPERM"),
                ("bpf", "VMM escape", "create a BPF map", "EPERM"),
                ("perf-event-all-cpus", "VMM escape", "open a CPU-wide perf event", "EPERM"),
                ("open-dev-kmsg", "VMM escape", "open /dev/kmsg", "ENOENT"),
                ("open-dev-mem", "VMM escape", "open /dev/mem", "ENOENT"),
                ("devices", "VMM escape", "find devices other than null, urandom, kvm in /dev", "ENOENT"),
                ("usr-python", "VMM escape", "open a host program under /usr (/usr/bin/python3)", "ENOENT"),
                ("usr-nft", "VMM escape", "open the host's firewall tool (/usr/sbin/nft)", "ENOENT"),
                ("usr-share-doc", "VMM escape", "open the host's data under /usr (/usr/share/doc)", "ENOENT"),
                ("usr-bin-programs", "VMM escape", "find programs other than QEMU in /usr/bin", "ENOENT"),
                ("hvc-binary", "VMM escape", "open hvc's own binary", "ENOENT"),
            ]
            // Attacks whose success this host cannot show (its root lacks CAP_SYS_RESOURCE, its
            // kernel loads no modules and has no /dev/mem): checked, but not rows of the table.
            let unshowable: Set<String> = ["raise-rlimit", "load-kernel-module", "open-dev-mem"]
            var rows: [IsolationTable.Row] = []
            for attempt in attempts {
                let inJail = jailed[attempt.name]
                let outside = control[attempt.name]
                let denied = inJail.map { !$0.reached && $0.detail.hasPrefix(attempt.denial) } ?? false
                if unshowable.contains(attempt.name) {
                    #expect(denied, "\(attempt.name): \(String(describing: inJail))")
                    continue
                }
                rows.append(.init(
                    area: attempt.area, attack: "jailed VMM: " + attempt.attack, expected: "denied: \(attempt.denial)",
                    attempted: inJail.map { "its line: \($0.reached ? "reached" : "denied") \($0.detail)" },
                    observed: inJail.map { $0.reached ? "reached \($0.detail)" : "denied (\($0.detail))" } ?? "not attempted",
                    outcomeHeld: denied,
                    control: outside.map { $0.reached ? "unjailed root: reached" : "unjailed root: \($0.detail)" } ?? "not made",
                    controlShown: outside?.reached == true, test: "IsolationTests.anEscapedVMMReachesNothing"))
            }
            IsolationTable.record(rows)
        }

        /// Two tenants' containers through hvcd: neither sees, signals or reads the other's.
        @Test func tenantsGuestsSeeNothingOfEachOther() throws {
            let tenants = #"{"tenants": {"iso-a": {"uids": [2401]}, "iso-b": {"uids": [2402]}}}"#
            try h.withDaemon(tenants: tenants) { daemon in
                let a = 2401, b = 2402
                let started = [
                    daemon.hvc(as: b, ["run", "-d", "--name", "iso-b", "-v", "iso-b-data:/data", "busybox", "sh", "-c",
                                       "echo b-secret-4242 > /data/secret; sleep 4242 & exec sleep 1000"]),
                    daemon.hvc(as: a, ["run", "-d", "--name", "iso-a", "busybox", "sleep", "1000"]),
                ]
                defer { _ = h.hvc(["rm", "-f", "-v", "iso-a", "iso-b"]); _ = daemon.hvc(as: b, ["volume", "rm", "iso-b-data"]) }
                try #require(started.allSatisfy { $0.status == 0 }, "\(started.map(\.stderr))")
                let test = "IsolationTests.tenantsGuestsSeeNothingOfEachOther"
                var rows: [IsolationTable.Row] = []

                // Processes: B's `sleep 4242` is visible in B's guest, not in A's.
                let ps = "ps -o pid,args | grep -c '[s]leep 4242'"
                let seenByB = daemon.hvc(as: b, ["exec", "iso-b", "sh", "-c", ps]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                let seenByA = IsolationTable.attack(daemon.hvc(as: a, ["exec", "iso-a", "sh", "-c", ps]), disabled: .notRun).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                rows.append(.init(area: "processes", attack: "guest: list the other tenant's processes", expected: "not listed",
                                  attempted: Int(seenByA).map { _ in "its ps ran (a count printed)" },
                                  observed: "\(seenByA) listed", outcomeHeld: seenByA == "0",
                                  control: "in its own guest: \(seenByB) listed", controlShown: seenByB == "1", test: test))

                // Signals: A signals every process it can, and every pid B's sleep could have.
                let pidInB = daemon.hvc(as: b, ["exec", "iso-b", "sh", "-c", "ps -o pid,args | grep '[s]leep 4242' | awk '{print $1}'"])
                    .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                let reachable = daemon.hvc(as: b, ["exec", "iso-b", "sh", "-c", "kill -0 \(pidInB) && echo signalled"]).stdout
                // `kill -9 -1` ends the attacker's own shell too: what it printed before shows the attempt.
                let killed = IsolationTable.attack(daemon.hvc(as: a, ["exec", "iso-a", "sh", "-c", "kill -9 \(pidInB); echo kill-pid=$?; kill -9 -1; true"]),
                                                    disabled: .notRun)
                let stillThere = daemon.hvc(as: b, ["exec", "iso-b", "sh", "-c", ps]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                let attemptLine = killed.stdout.split(separator: "\n").first { $0.hasPrefix("kill-pid=") }
                rows.append(.init(area: "processes", attack: "guest: kill -9 the other tenant's process (its pid, then -1)",
                                  expected: "the process lives", attempted: attemptLine.map { "its kill ran (\($0), pid \(pidInB))" },
                                  observed: stillThere == "1" ? "it lives" : "it is gone", outcomeHeld: stillThere == "1",
                                  control: reachable.contains("signalled") ? "in its own guest: kill -0 reaches it" : "in its own guest: not reached",
                                  controlShown: reachable.contains("signalled") && !pidInB.isEmpty, test: test))

                // Files: search the whole guest for B's secret.
                let files = "find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -type f -print 2>/dev/null"
                let search = "echo searched=$(\(files) | wc -l); \(files) | xargs grep -l b-secret-4242 2>/dev/null; true"
                func searchResult(_ output: String) -> (searched: Int, found: [String]) {
                    let lines = output.split(separator: "\n").map(String.init)
                    let searched = lines.first { $0.hasPrefix("searched=") }.flatMap { Int($0.dropFirst(9)) } ?? 0
                    return (searched, lines.filter { !$0.hasPrefix("searched=") })
                }
                let byA = searchResult(IsolationTable.attack(daemon.hvc(as: a, ["exec", "iso-a", "sh", "-c", search]), disabled: .notRun).stdout)
                let byB = searchResult(daemon.hvc(as: b, ["exec", "iso-b", "sh", "-c", search]).stdout)
                rows.append(.init(area: "files", attack: "guest: search every file for the other tenant's volume content",
                                  expected: "not found", attempted: byA.searched > 0 ? "\(byA.searched) files searched" : nil,
                                  observed: byA.found.isEmpty ? "not found" : "found at \(byA.found.joined(separator: " "))",
                                  outcomeHeld: byA.found.isEmpty,
                                  control: "in its own guest: " + (byB.found.isEmpty ? "not found" : "found at \(byB.found.joined(separator: " "))"),
                                  controlShown: byB.found.contains("/data/secret"), test: test))

                // The other tenant's volume by name, and its container by name, through hvcd.
                let mount = IsolationTable.attack(daemon.hvc(as: a, ["run", "--rm", "-v", "iso-b-data:/data", "busybox", "cat", "/data/secret"]),
                                                  disabled: .notRun)
                let ownMount = daemon.hvc(as: b, ["run", "--rm", "-v", "iso-b-data:/data", "busybox", "cat", "/data/secret"])
                // Its run goes ahead on a volume of its own by that name, where `cat` finds nothing.
                let ownEmpty = mount.status == 1 && mount.stderr.contains("/data/secret") && mount.stderr.contains("No such file")
                rows.append(.init(area: "files", attack: "API: mount the other tenant's named volume",
                                  expected: "a volume of its own by that name (empty)",
                                  attempted: mount.status == 0 || mount.status == 1 ? "its container ran with the volume (exit \(mount.status))" : nil,
                                  observed: mount.stdout.contains("b-secret") ? "read the other's file"
                                      : "exit \(mount.status): \(mount.stderr.trimmingCharacters(in: .whitespacesAndNewlines).suffix(80))",
                                  outcomeHeld: !mount.stdout.contains("b-secret") && ownEmpty,
                                  control: ownMount.stdout.contains("b-secret-4242") ? "the owner reads the file" : "the owner did not read it",
                                  controlShown: ownMount.stdout == "b-secret-4242\n", test: test))
                _ = daemon.hvc(as: a, ["volume", "rm", "iso-b-data"])
                IsolationTable.record(rows)
            }
        }

        /// A CPU hog, a log flood and a filled writable layer stay within their container.
        @Test func exhaustionStaysWithinItsContainer() throws {
            let test = "IsolationTests.exhaustionStaysWithinItsContainer"
            _ = h.hvc(["run", "-d", "--name", "iso-neighbour", "busybox", "sleep", "1000"])
            defer { _ = h.hvc(["rm", "-f", "iso-neighbour"]) }
            var rows: [IsolationTable.Row] = []

            // CPU: two busy loops in a one-CPU container on this host's cores.
            let quiet = execLatency("iso-neighbour")
            let hog = h.hvc(["run", "-d", "--name", "iso-cpu-hog", "--cpus", "1", "busybox", "sh", "-c",
                             IsolationTable.attack("while :; do :; done & while :; do :; done", disabled: "exec sleep 1000")])
            defer { _ = h.hvc(["rm", "-f", "iso-cpu-hog"]) }
            try #require(hog.status == 0, "\(hog.stderr)")
            let hogVMM = try h.vmmPID("iso-cpu-hog")
            let before = Harness.cpuSeconds(hogVMM), start = Date()
            let busy = execLatency("iso-neighbour")
            let used = (Harness.cpuSeconds(hogVMM) - before) / Date().timeIntervalSince(start)
            _ = h.hvc(["rm", "-f", "iso-cpu-hog"])
            let bound = max(3 * quiet, quiet + 1.0)
            rows.append(.init(area: "resources", attack: "CPU hog (two busy loops, --cpus 1) beside a neighbour",
                              expected: "neighbour's exec within 3× its quiet time (or +1 s); the hog within its quota",
                              attempted: used > 0.5 ? String(format: "the hog's QEMU used %.2f CPUs", used) : nil,
                              observed: String(format: "neighbour's exec %.0f ms; the hog %.2f CPUs", busy * 1000, used),
                              outcomeHeld: busy <= bound && used < 1.2,
                              control: String(format: "the neighbour's exec alone: %.0f ms", quiet * 1000),
                              controlShown: quiet > 0 && quiet < 10, test: test))

            // Log: 64 MiB of output into a log bounded at 1 MiB (current file + one rotated).
            let flood = h.hvc(["run", "--name", "iso-log-flood", "--log-max-size", "1m", "busybox", "sh", "-c",
                               IsolationTable.attack("yes 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde | head -c 67108864; echo; echo flood-end",
                                                     disabled: "echo flood-end")],
                              timeout: 600)
            defer { _ = h.hvc(["rm", "-f", "iso-log-flood"]) }
            let logPath = try #require(try h.inspect("iso-log-flood")["logPath"] as? String)
            let logBytes = Harness.fileSize(logPath) + Harness.fileSize(logPath + ".1")
            let logs = h.hvc(["logs", "--tail", "1", "iso-log-flood"])
            let tail = logs.stdout
            let streamed = flood.stdout.utf8.count
            rows.append(.init(area: "resources", attack: "log flood: 64 MiB of output, --log-max-size 1m",
                              expected: "at most 2 MiB on the host (the log and one rotated)",
                              attempted: streamed >= 64 << 20 ? "\(streamed >> 20) MiB streamed to the caller" : nil,
                              observed: "\(logBytes / 1024) KiB on the host",
                              outcomeHeld: logBytes <= 2 << 20 + 64 << 10,
                              control: "the flood reached the log: its last line \(tail.contains("flood-end") ? "is" : "is not") there",
                              controlShown: tail.contains("flood-end"), test: test))
            #expect(tail.contains("flood-end"), """
                the run exited \(flood.status) (\(flood.stderr.suffix(300))), streamed \(flood.stdout.utf8.count) bytes ending \
                \(flood.stdout.suffix(80).debugDescription); logs exited \(logs.status) (\(logs.stderr.suffix(300))) with \
                \(tail.suffix(200).debugDescription); the log files hold \(logBytes) bytes
                """)

            // Writable layer: fill it past its bound; the host's disk must not change.
            func fill(_ extra: [String], attack: Bool = true) -> (mib: Int, hostChangeMiB: Int) {
                var disk = statvfs()
                statvfs(h.root, &disk)
                let before = Int(disk.f_bavail) * Int(disk.f_frsize)
                let r = attack ? h.hvc(["run", "--rm", "--memory", "256m"] + extra + ["busybox", "sh", "-c",
                                        "dd if=/dev/zero of=/fill bs=1M 2>&1 | grep 'records out'"], timeout: 300) : .notRun
                statvfs(h.root, &disk)
                let after = Int(disk.f_bavail) * Int(disk.f_frsize)
                // busybox dd: "N+0 records out", of 1 MiB each.
                let records = r.stdout.split(separator: "+").first.flatMap { Int($0) } ?? -1
                return (records, abs(before - after) >> 20)
            }
            let bounded = fill(["--storage-opt", "size=32m"], attack: IsolationTable.attack(true, disabled: false))
            let unbounded = fill([])
            rows.append(.init(area: "resources", attack: "fill the writable layer (dd until it fails), --storage-opt size=32m",
                              expected: "stops at 32 MiB; the host's disk unchanged",
                              attempted: bounded.mib > 0 ? "dd wrote \(bounded.mib) MiB before it failed" : nil,
                              observed: "stopped at \(bounded.mib) MiB; host free space changed by \(bounded.hostChangeMiB) MiB",
                              outcomeHeld: (31...32).contains(bounded.mib) && bounded.hostChangeMiB < 16,
                              control: "without size=: \(unbounded.mib) MiB (half the VM's memory), host changed by \(unbounded.hostChangeMiB) MiB",
                              controlShown: unbounded.mib > 64, test: test))
            IsolationTable.record(rows)
        }
    }
}

/// A TCP listener on every address of the host, accepting and closing connections.
final class TCPListener: @unchecked Sendable {
    private let fd: Int32
    private let thread: Thread

    init(port: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = INADDR_ANY
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw HarnessError(message: "listen on port \(port): \(String(cString: strerror(errno)))")
        }
        let listening = fd
        thread = Thread {
            while true {
                let connection = accept(listening, nil, nil)
                if connection < 0 { return }
                close(connection)
            }
        }
        thread.start()
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
