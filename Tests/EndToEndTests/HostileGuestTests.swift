import AgentProtocol
import Foundation
import Synchronization
import Testing

extension EndToEnd {
    /// Guests that speak the agent protocol badly (`Fixtures/hostile-agent.c` as their /init, one
    /// initramfs per misbehaviour): the supervisor ends only that container, in bounded time and
    /// memory, with an error naming what its guest did, and leaves nothing behind; a neighbour
    /// container and hvcd answer throughout.
    @Suite struct HostileGuestTests {
        let h: Harness
        /// How long a hostile guest may leave `start` unanswered here (the default suits slow boots).
        static let answerTimeout = 15

        init() throws { h = try Harness.make() }

        struct Attack: Sendable, CustomTestStringConvertible {
            var mode: String
            /// What the recorded error and `hvc run`'s message must say.
            var error: String
            var testDescription: String { mode }
        }

        static let attacks = [
            Attack(mode: "oversized", error: "the guest agent broke the protocol: frame of \(Limits.maxPayload + 1) bytes exceeds \(Limits.maxPayload)"),
            Attack(mode: "truncated", error: "the guest agent did not answer `start` within \(answerTimeout) s"),
            Attack(mode: "short-payload", error: "the guest agent broke the protocol: truncated message"),
            Attack(mode: "unknown-kind", error: "the guest agent broke the protocol: unknown message kind 200"),
            Attack(mode: "host-kind", error: "the guest agent broke the protocol: it sent `hello`, which only the host sends"),
            Attack(mode: "stray", error: "the guest agent broke the protocol: it sent `stdout` for process 7, which the host never started"),
            Attack(mode: "silent", error: "the guest agent did not answer `start` within \(answerTimeout) s"),
            Attack(mode: "panic", error: "the guest kernel panicked: Attempted to kill init!"),
            Attack(mode: "triple-fault", error: "the guest reset its VM (a reboot or a triple fault)"),
        ]

        /// What each misbehaviour is, for the isolation table.
        static let descriptions = [
            "oversized": "a frame longer than the protocol's bound, then endless bytes",
            "truncated": "half a frame, then silence",
            "short-payload": "a frame whose payload is too short for its message",
            "unknown-kind": "a frame of an unknown kind",
            "host-kind": "a message only the host sends (hello)",
            "stray": "output and an exit for a process the host never started",
            "silent": "ready, then silence",
            "panic": "the guest kernel panics (its PID 1 exits)",
            "triple-fault": "the guest CPU triple-faults (the kernel's reboot=t reset)",
        ]

        /// A guest that breaks the protocol, or never answers, ends its own container with a
        /// one-line error; the neighbour and hvcd answer while it happens and after.
        @Test(arguments: attacks)
        func aMisbehavingGuestEndsOnlyItsOwnContainer(_ attack: Attack) throws {
            let assets = try IsolationTable.attack(HostileGuestTests.assets(attack.mode, h), disabled: Harness.assets)
            try withNeighbour { probe in
                let hostile = harness(assets: assets)
                let name = "hostile-\(attack.mode)"
                defer { _ = h.hvc(["rm", "-f", name]) }
                let outcome = Mutex<Harness.Result3?>(nil)
                let began = Date()
                Thread.detachNewThread {
                    let r = hostile.hvc(["run", "--no-template", "--network", "none", "--name", name, "busybox", "true"], timeout: 120)
                    outcome.withLock { $0 = r }
                }
                var probes = 0, answered = 0
                while outcome.withLock({ $0 == nil }) {
                    if probe() { answered += 1 }
                    probes += 1
                }
                let seconds = Date().timeIntervalSince(began)
                let r = try #require(outcome.withLock { $0 })
                let message = r.stderr.trimmingCharacters(in: .newlines)
                print("\(attack.mode): exit \(r.status) after \(String(format: "%.1f", seconds)) s, \(probes) probes: \(message)")
                #expect(r.status == 125, "\(r.status): \(r.stderr)")
                #expect(message.contains(attack.error) && !message.contains("\n"), "\(r.stderr)")
                #expect(seconds < Double(HostileGuestTests.answerTimeout + 45), "\(attack.mode) took \(seconds) s")
                #expect(probes > 0)
                let state = try h.state(name)
                #expect(state["status"] as? String == "exited")
                #expect((state["error"] as? String)?.contains(attack.error) == true, "\(state)")
                #expect(h.hvc(["rm", name]).status == 0)
                let after = probe()
                IsolationTable.record([.init(
                    area: "guest faults", attack: "hostile guest: " + (HostileGuestTests.descriptions[attack.mode] ?? attack.mode),
                    expected: "only that container ends, with a one-line error; the neighbour and hvcd answer",
                    attempted: message.contains(attack.error) ? "the error names its misbehaviour" : nil,
                    observed: "exit \(r.status) after \(Int(seconds.rounded())) s: \(message.prefix(120)); \(answered) of \(probes) probes answered",
                    outcomeHeld: r.status == 125 && !message.contains("\n") && answered == probes && after,
                    control: "the neighbour's exec and hvcd's ps, probed meanwhile: \(probes) probes",
                    controlShown: probes > 0, test: "HostileGuestTests.aMisbehavingGuestEndsOnlyItsOwnContainer")])
            }
            expectNothingLeft()
        }

        /// Where a hostile guest runs: a templated clone without a network, a VM from a warm pool
        /// (on the default network), a container on the default network with a published port.
        /// Each with a misbehaviour of its own.
        struct Placement: Sendable, CustomTestStringConvertible {
            var name: String
            var mode: String
            var testDescription: String { name }
        }

        static let placements = [
            Placement(name: "templated clone", mode: "oversized"),
            Placement(name: "pooled VM", mode: "stray"),
            Placement(name: "networked container", mode: "truncated"),
        ]

        /// The misbehaviours above, in the VMs hvc starts fast and on a network: the template
        /// (captured from the hostile guest), the pool and the network side are what the guest
        /// meets there, and it ends only its own container; nothing of it remains, its port
        /// rules and address lease included, and the neighbour and hvcd answer throughout.
        @Test(arguments: placements)
        func aMisbehavingGuestInAFastOrNetworkedVMEndsOnlyItsOwnContainer(_ placement: Placement) throws {
            let attack = try #require(HostileGuestTests.attacks.first { $0.mode == placement.mode })
            let assets = try IsolationTable.attack(HostileGuestTests.assets(attack.mode, h), disabled: Harness.assets)
            let hostile = harness(assets: assets)
            let name = "hostile-\(placement.mode)-placed"
            let firewall = HostSnapshot.firewallRules(), leasesBefore = leases()
            let pooled = placement.name == "pooled VM", networked = placement.name == "networked container"
            defer {
                _ = h.hvc(["rm", "-f", name])
                if pooled { _ = hostile.hvc(["pool", "set", "busybox", "0"]) }
                _ = h.hvc(["template", "prune"])
            }
            var result: (r: Harness.Result3, seconds: Double, placed: Bool, probes: Int, answered: Int, after: Bool)?
            var placedEvidence = ""
            try withNeighbour { probe in
                var waiting: Set<Int32> = []
                if pooled {
                    let pool = hostile.hvc(["pool", "set", "busybox", "1"])
                    try #require(pool.status == 0, "\(pool.stderr)")
                    waiting = h.poolMembers()
                }
                let outcome = Mutex<Harness.Result3?>(nil)
                let began = Date()
                Thread.detachNewThread {
                    // Pools serve containers on a network (their VMs have an interface).
                    let network = networked ? ["-p", "80"] : pooled ? [] : ["--network", "none"]
                    let r = hostile.hvc(["run", "--name", name] + network + ["busybox", "true"], timeout: 120)
                    outcome.withLock { $0 = r }
                }
                // While it runs: its supervisor (a pooled VM's is the pool member that waited), its
                // address on the network and the rule of its published port.
                var supervisors: Set<Int32> = [], sawEndpoint = false, sawPortRule = false
                var probes = 0, answered = 0
                while outcome.withLock({ $0 == nil }) {
                    let running = stateOf(name)
                    if let pid = running?["supervisorPID"] as? Int { supervisors.insert(Int32(pid)) }
                    if networked {
                        sawEndpoint = sawEndpoint || running?["endpoint"] is [String: Any]
                        sawPortRule = sawPortRule || HostSnapshot.firewallRules().subtracting(firewall).contains { $0.contains("CNI-DN-") }
                    }
                    if probe() { answered += 1 }
                    probes += 1
                }
                let seconds = Date().timeIntervalSince(began)
                let r = try #require(outcome.withLock { $0 })
                let state = stateOf(name) ?? [:]
                if let pid = state["supervisorPID"] as? Int { supervisors.insert(Int32(pid)) }
                // Where it ran: a clone (its template's key recorded), a pooled VM (its supervisor
                // was a waiting pool member), a VM on the network (its address and port rule seen).
                let placed = switch placement.name {
                case "templated clone": state["template"] is String
                case "pooled VM": !supervisors.isEmpty && supervisors.isSubset(of: waiting)
                default: sawEndpoint && sawPortRule
                }
                placedEvidence = "supervisors \(supervisors.sorted()), pool members waiting before \(waiting.sorted()), endpoint \(sawEndpoint), "
                    + "port rule \(sawPortRule), state \(state)"
                #expect(h.hvc(["rm", name]).status == 0)
                if pooled {
                    #expect(hostile.hvc(["pool", "set", "busybox", "0"]).status == 0)
                    #expect(Harness.eventually(15) { h.poolMembers().isEmpty })
                }
                result = (r, seconds, placed, probes, answered, probe())
            }
            let (r, seconds, placed, probes, answered, after) = try #require(result)
            let message = r.stderr.trimmingCharacters(in: .newlines)
            print("\(placement.name) \(attack.mode): exit \(r.status) after \(String(format: "%.1f", seconds)) s, \(probes) probes: \(message)")
            #expect(placed, "not shown to run in a \(placement.name): \(placedEvidence)")
            #expect(r.status == 125, "\(r.status): \(r.stderr)")
            #expect(message.contains(attack.error) && !message.contains("\n"), "\(r.stderr)")
            // Nothing of it remains: VM directory, QEMU, jail mount, network namespace, port rules
            // (the network's own rules stay with the network).
            let leftovers = h.leftoverVMDirectories() + h.leftoverVMMs().map { "QEMU \($0)" } + h.leftoverMounts()
                + ((try? FileManager.default.contentsOfDirectory(atPath: h.runRoot + "/netns")) ?? []).map { "netns \($0)" }
                + HostSnapshot.firewallRules().subtracting(firewall).filter { $0.contains("CNI-DN-") }.sorted()
                + leases().subtracting(leasesBefore).sorted().map { "address lease \($0)" }
            #expect(leftovers.isEmpty, "\(leftovers)")
            IsolationTable.record([.init(
                area: "guest faults",
                attack: "hostile guest in a \(placement.name): " + (HostileGuestTests.descriptions[attack.mode] ?? attack.mode),
                expected: "only that container ends, with a one-line error; nothing of it remains; the neighbour and hvcd answer",
                attempted: message.contains(attack.error) && placed ? "the error names its misbehaviour, in a \(placement.name)" : nil,
                observed: "exit \(r.status) after \(Int(seconds.rounded())) s: \(message.prefix(100)); \(leftovers.count) things left; \(answered) of \(probes) probes answered",
                outcomeHeld: r.status == 125 && !message.contains("\n") && leftovers.isEmpty && answered == probes && after,
                control: "the neighbour's exec and hvcd's ps, probed meanwhile: \(probes) probes",
                controlShown: probes > 0, test: "HostileGuestTests.aMisbehavingGuestInAFastOrNetworkedVMEndsOnlyItsOwnContainer")])
        }

        /// The address leases of this harness's networks (host-local's files, one per address).
        func leases() -> Set<String> {
            let ipam = h.root + "/networks/.ipam"
            var found = Set<String>()
            for network in (try? FileManager.default.contentsOfDirectory(atPath: ipam)) ?? [] {
                for file in (try? FileManager.default.contentsOfDirectory(atPath: ipam + "/" + network)) ?? []
                where file.first?.isNumber == true && !file.hasPrefix("last_reserved_ip") {
                    found.insert(network + "/" + file)
                }
            }
            return found
        }

        /// `inspect`'s state of a container, nil while there is none.
        func stateOf(_ name: String) -> [String: Any]? {
            let r = h.hvc(["inspect", name])
            guard r.status == 0, let array = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] else { return nil }
            return array.first?["state"] as? [String: Any]
        }

        /// A guest that runs the container's command and then answers nothing: an `exec` fails
        /// after the answer timeout with a one-line error, and the container goes on.
        @Test func anExecTheGuestNeverAnswersFailsAndTheContainerGoesOn() throws {
            let assets = try IsolationTable.attack(HostileGuestTests.assets("deaf", h), disabled: Harness.assets)
            try withNeighbour { probe in
                let hostile = harness(assets: assets)
                defer { _ = h.hvc(["rm", "-f", "hostile-deaf"]) }
                let run = hostile.hvc(["run", "-d", "--no-template", "--network", "none", "--name", "hostile-deaf", "busybox", "true"])
                try #require(run.status == 0, "\(run.stderr)")
                let began = Date()
                let exec = h.hvc(["exec", "hostile-deaf", "echo", "never"], timeout: Double(HostileGuestTests.answerTimeout + 60))
                let seconds = Date().timeIntervalSince(began)
                let message = exec.stderr.trimmingCharacters(in: .newlines)
                print("deaf: exec exit \(exec.status) after \(String(format: "%.1f", seconds)) s: \(message)")
                let expected = "the guest agent did not answer `start` within \(HostileGuestTests.answerTimeout) s"
                #expect(exec.status != 0 && exec.status < 128, "\(exec.status): \(exec.stderr)")
                #expect(message.contains(expected) && !message.contains("\n"), "\(exec.stderr)")
                #expect(seconds >= Double(HostileGuestTests.answerTimeout) && seconds < Double(HostileGuestTests.answerTimeout + 30))
                let runsOn = try h.state("hostile-deaf")["status"] as? String == "running"
                #expect(runsOn)
                let answered = probe()
                #expect(h.hvc(["rm", "-f", "hostile-deaf"]).status == 0)
                IsolationTable.record([.init(
                    area: "guest faults", attack: "hostile guest: runs its command, then answers nothing (an exec)",
                    expected: "the exec fails after the answer timeout with a one-line error; the container runs on; the neighbour and hvcd answer",
                    attempted: seconds >= Double(HostileGuestTests.answerTimeout) ? "its exec waited \(Int(seconds.rounded())) s unanswered" : nil,
                    observed: "exec exit \(exec.status) after \(Int(seconds.rounded())) s: \(message.prefix(120)); the container \(runsOn ? "runs on" : "ended")",
                    outcomeHeld: exec.status == 125 && message.contains(expected) && runsOn,
                    control: "the same exec into the neighbour: \(answered ? "answered" : "no answer")",
                    controlShown: answered, test: "HostileGuestTests.anExecTheGuestNeverAnswersFailsAndTheContainerGoesOn")])
            }
            expectNothingLeft()
        }

        /// A guest writing as fast as it can: the supervisor's memory stays bounded, its log
        /// within the cap, and `hvc rm -f` still ends it at once.
        @Test func aFloodingGuestIsBoundedInMemoryAndLog() throws {
            let assets = try IsolationTable.attack(HostileGuestTests.assets("flood", h), disabled: Harness.assets)
            try withNeighbour { probe in
                let hostile = harness(assets: assets)
                let logCap = 1024 * 1024
                defer { _ = h.hvc(["rm", "-f", "hostile-flood"]) }
                let run = hostile.hvc(["run", "-d", "--no-template", "--network", "none", "--log-max-size", "1m",
                                       "--name", "hostile-flood", "busybox"] + IsolationTable.attack(["true"], disabled: ["sleep", "60"]))
                try #require(run.status == 0, "\(run.stderr)")
                let state = try h.state("hostile-flood")
                let supervisor = Int32(try #require(state["supervisorPID"] as? Int))
                let logPath = try #require(try h.inspect("hostile-flood")["logPath"] as? String)
                var peakRSS = 0
                let cpuBefore = Harness.cpuSeconds(supervisor)
                let began = Date()
                var probes = 0, answered = 0
                while Date().timeIntervalSince(began) < 10 {
                    peakRSS = max(peakRSS, HostileGuestTests.residentKiB(supervisor))
                    if probe() { answered += 1 }
                    probes += 1
                }
                let elapsed = Date().timeIntervalSince(began)
                let cpuShare = (Harness.cpuSeconds(supervisor) - cpuBefore) / elapsed
                let logBytes = Harness.fileSize(logPath), rotatedBytes = Harness.fileSize(logPath + ".1")
                print("flood: supervisor peak RSS \(peakRSS) KiB, CPU \(Int(cpuShare * 100))% of a core, log \(logBytes) + \(rotatedBytes) bytes")
                // The supervisor's footprint is about 38 MiB, all but a few MiB of it the shared
                // libraries (Swift runtime, Foundation) mapped in; the flood may add a frame
                // buffer and a log line, never a backlog of them.
                #expect(peakRSS > 0 && peakRSS < 64 * 1024, "supervisor RSS \(peakRSS) KiB")
                // Its relay paces itself to half a core (`Supervisor.relayCPUShare`).
                #expect(cpuShare < 0.7, "supervisor CPU \(cpuShare) of a core")
                // The flood did reach the log, which rotated at its cap: the current file and one rotated file.
                #expect(rotatedBytes > 0, "the flood never filled the log")
                #expect(logBytes <= logCap && rotatedBytes <= logCap)
                #expect(kill(supervisor, 0) == 0, "the supervisor died under the flood")
                let removed = Date()
                #expect(h.hvc(["rm", "-f", "hostile-flood"]).status == 0)
                #expect(Date().timeIntervalSince(removed) < 15)
                IsolationTable.record([.init(
                    area: "guest faults", attack: "hostile guest: a flood of output frames for 10 s",
                    expected: "the supervisor's memory bounded, at most half a core, the log within its cap; the neighbour answers",
                    attempted: rotatedBytes > 0 ? "the flood filled and rotated the 1 MiB log" : nil,
                    observed: "supervisor peak RSS \(peakRSS / 1024) MiB, \(Int(cpuShare * 100))% of a core, log \((logBytes + rotatedBytes) >> 10) KiB; \(answered) of \(probes) probes answered",
                    outcomeHeld: peakRSS < 64 * 1024 && cpuShare < 0.7 && logBytes <= logCap && rotatedBytes <= logCap && answered == probes,
                    control: "the supervisor's RSS and CPU read while it ran: \(peakRSS > 0 && cpuShare > 0 ? "read" : "not read")",
                    controlShown: peakRSS > 0 && cpuShare > 0,
                    test: "HostileGuestTests.aFloodingGuestIsBoundedInMemoryAndLog")])
                #expect(Harness.eventually { kill(supervisor, 0) != 0 })
                _ = probe()
            }
            expectNothingLeft()
        }

        // MARK: Helpers

        /// Runs `body` with a normal container and an hvcd; `probe` checks that both answer, and
        /// says whether they did.
        func withNeighbour(_ body: (_ probe: () -> Bool) throws -> Void) throws {
            let neighbour = h.hvc(["run", "-d", "--network", "none", "--name", "neighbour", "busybox", "sleep", "1000"])
            try #require(neighbour.status == 0, "\(neighbour.stderr)")
            defer { _ = h.hvc(["rm", "-f", "neighbour"]) }
            try h.withDaemon(tenants: "{}") { daemon in
                try body {
                    let exec = h.hvc(["exec", "neighbour", "echo", "alive"], timeout: 60)
                    #expect(exec.status == 0 && exec.stdout == "alive\n", "neighbour: \(exec.status) \(exec.stderr)")
                    let ps = h.hvc(["--host", "unix://" + daemon.socket, "ps"], timeout: 30)
                    #expect(ps.status == 0 && ps.stdout.contains("neighbour"), "hvcd: \(ps.status) \(ps.stderr)")
                    return exec.status == 0 && exec.stdout == "alive\n" && ps.status == 0 && ps.stdout.contains("neighbour")
                }
            }
        }

        /// This suite's harness, its VMs booting from `assets`.
        func harness(assets: String) -> Harness {
            var hostile = h
            hostile.extraEnvironment = ["HVC_ASSETS": assets, "HVC_AGENT_TIMEOUT": "\(HostileGuestTests.answerTimeout)"]
            return hostile
        }

        func expectNothingLeft(sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(h.leftoverVMDirectories() == [], sourceLocation: sourceLocation)
            #expect(h.leftoverVMMs() == [], sourceLocation: sourceLocation)
            #expect(h.leftoverMounts() == [], sourceLocation: sourceLocation)
        }

        /// An assets directory for `mode`: the real kernel and seccomp policy, and an initramfs
        /// whose /init is the hostile agent and whose /mode names the misbehaviour.
        static func assets(_ mode: String, _ h: Harness) throws -> String {
            let base = h.root + "/../hostile-assets"
            let agent = base + "/init"
            if !FileManager.default.fileExists(atPath: agent) {
                try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
                let built = h.execute(["/usr/bin/cc", "-static", "-O2", "-DPROTOCOL_VERSION=\(Limits.version)", "-o", agent,
                                       Harness.repository + "/Tests/EndToEndTests/Fixtures/hostile-agent.c"])
                guard built.status == 0 else { throw HarnessError(message: "hostile-agent.c: \(built.stderr)") }
            }
            let directory = base + "/" + mode
            if FileManager.default.fileExists(atPath: directory) { return directory }
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for entry in try FileManager.default.contentsOfDirectory(atPath: Harness.assets) where entry != "initramfs.cpio" {
                try FileManager.default.createSymbolicLink(atPath: directory + "/" + entry, withDestinationPath: Harness.assets + "/" + entry)
            }
            let initBytes = try Data(contentsOf: URL(fileURLWithPath: agent))
            let archive = NewcArchive(entries: [
                .init(name: "dev", mode: 0o040755),
                .init(name: "dev/console", mode: 0o020600, device: (5, 1)),
                .init(name: "sys", mode: 0o040755),
                .init(name: "init", mode: 0o100755, data: [UInt8](initBytes)),
                .init(name: "mode", mode: 0o100644, data: Array((mode + "\n").utf8)),
            ])
            try Data(archive.bytes).write(to: URL(fileURLWithPath: directory + "/initramfs.cpio"))
            return directory
        }

        static func residentKiB(_ pid: Int32) -> Int {
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }

    }
}

/// A newc ("070701") cpio archive, as the kernel unpacks an initramfs; written directly, so
/// that no cpio tool or mknod is needed.
struct NewcArchive {
    struct Entry {
        var name: String
        var mode: UInt32
        var data: [UInt8] = []
        var device: (major: UInt32, minor: UInt32) = (0, 0)
    }

    var entries: [Entry]

    var bytes: [UInt8] {
        var out: [UInt8] = []
        for (index, entry) in entries.enumerated() { append(entry, inode: UInt32(index + 1), to: &out) }
        append(Entry(name: "TRAILER!!!", mode: 0), inode: 0, to: &out)
        return out
    }

    private func append(_ entry: Entry, inode: UInt32, to out: inout [UInt8]) {
        let name = Array(entry.name.utf8) + [0]
        // inode, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
        let fields: [UInt32] = [inode, entry.mode, 0, 0, 1, 0, UInt32(entry.data.count), 0, 0,
                                entry.device.major, entry.device.minor, UInt32(name.count), 0]
        out += Array("070701".utf8)
        for field in fields { out += Array(String(format: "%08x", field).utf8) }
        out += name
        out += [UInt8](repeating: 0, count: (4 - out.count % 4) % 4)
        out += entry.data
        out += [UInt8](repeating: 0, count: (4 - out.count % 4) % 4)
    }
}
