import Foundation
import HVCSystem
import Runtime
import Synchronization
import Testing

/// Faults: a mixed workload runs while a killer sends SIGKILL, at random moments, to random hvc
/// processes (container supervisors, attached `hvc run`s, QEMUs, template keepers, pool
/// members, hvcd). Afterwards every container's recorded state must be true, the output of
/// every container that completed must be intact, and once everything is removed nothing of
/// it may remain on the host.
///
/// Seeded (`HVC_CHAOS_SEED`) and bounded: `HVC_CHAOS_FAULTS` kills (default 100) within
/// `HVC_CHAOS_SECONDS` (default 200), by `HVC_CHAOS_WORKERS` workers (default 3).
extension EndToEnd {
    @Suite struct ChaosTests {
        let h: Harness

        init() throws { h = try Harness.make() }

        @Test func randomKillsLeaveTrueStatesIntactLogsAndNoLeaks() throws {
            let settings = ChaosSettings()
            print("chaos: seed \(settings.seed), \(settings.faults) faults within \(Int(settings.seconds)) s, \(settings.workers) workers")
            let scratch = Harness.scratch + "/chaos"
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            // The default network and the busybox template exist before the snapshot: both outlive any container.
            let first = h.hvc(["run", "--rm", "busybox", "true"])
            try #require(first.status == 0, "\(first.stderr)")
            let before = HostSnapshot.take()

            // A registry on loopback holding one small image, for the workers' pulls.
            let registry = try ChaosRegistry.start(h, directory: scratch + "/registry")
            defer { registry.stop() }
            let daemon = ChaosDaemon(h, directory: scratch + "/daemon")
            try daemon.start()
            defer { daemon.stop() }
            let pool = h.hvc(["pool", "set", "busybox", "2"])
            try #require(pool.status == 0, "\(pool.stderr)")

            let ledger = ChaosLedger()
            let started = Date()
            let group = DispatchGroup()
            for index in 0..<settings.workers {
                group.enter()
                let worker = ChaosWorker(h: h, index: index, seed: settings.seed, ledger: ledger, daemon: daemon, image: registry.image)
                Thread.detachNewThread {
                    worker.run()
                    group.leave()
                }
            }
            let killer = ChaosKiller(h: h, settings: settings, ledger: ledger, daemon: daemon)
            killer.run(until: started.addingTimeInterval(settings.seconds))
            ledger.stop()
            #expect(group.wait(timeout: .now() + 300) == .success, "the workers did not stop")
            let faultSeconds = Date().timeIntervalSince(started)
            if !daemon.isRunning { try daemon.start() }

            // The states, as hvc reports them once it has settled.
            let ended = records()
            let states = ["running", "exited", "created"].map { status in "\(status) \(ended.filter { $0.status == status }.count)" }
            let wrongStates = checkStates(ledger) + checkRemoved(ledger, kept: ended)
            let lostLogs = checkLogs(ledger)

            // Everything removed: nothing may remain.
            let ids = h.hvc(["ps", "-a", "-q"]).stdout.split(separator: "\n").map(String.init)
            if !ids.isEmpty {
                let removed = h.hvc(["rm", "-f"] + ids)
                #expect(removed.status == 0, "rm -f: \(removed.stderr)")
            }
            #expect(h.hvc(["pool", "set", "busybox", "0"]).status == 0)
            #expect(h.hvc(["template", "rm", "--all"]).status == 0)
            daemon.stop()
            let leaks = leftovers(since: before, ledger: ledger)

            let figures = ledger.figures.withLock { $0 }
            let kinds = figures.faults.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            print("chaos: seed \(settings.seed), \(Int(faultSeconds)) s, \(figures.steps) steps (\(figures.completed) completed), "
                  + "faults by kind: \(kinds); slowest step \(figures.slowest.step), \(Int(figures.slowest.seconds)) s; "
                  + "containers left: \(states.joined(separator: ", "))")
            for problem in wrongStates + lostLogs + leaks { print("chaos: " + problem) }
            let injected = figures.faults.values.reduce(0, +)
            print("chaos: faults injected \(injected), leaks \(leaks.count), wrong states \(wrongStates.count), logs lost \(lostLogs.count)")
            #expect(injected >= settings.faults, "only \(injected) of \(settings.faults) faults fit in \(Int(settings.seconds)) s")
            #expect(leaks.isEmpty, "\(leaks)")
            #expect(wrongStates.isEmpty, "\(wrongStates)")
            #expect(lostLogs.isEmpty, "\(lostLogs)")
        }

        /// Every container's recorded state against the host: a running one has its supervisor
        /// and QEMU; an ended one has a code or an error and neither process; a created one none.
        func checkStates(_ ledger: ChaosLedger) -> [String] {
            var problems = ledger.figures.withLock { $0.wrong }
            for record in records() {
                let id = String(record.id.prefix(12))
                // By pid and start time: pids come back within a run (pid_max is 32768 here).
                func supervisorRuns() -> Bool {
                    record.supervisorPID.map { ProcessStamp(pid: $0, start: record.supervisorStart).isAlive } ?? false
                }
                func vmmRuns() -> Bool {
                    guard let pid = record.vmmPID, h.leftoverVMMs().contains(pid) else { return false }
                    let log = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/1")) ?? ""
                    return log.hasPrefix(h.runRoot + "/vms/" + record.id.prefix(16) + "/")
                }
                let supervisor = supervisorRuns()
                let vmm = vmmRuns()
                switch record.status {
                case "running":
                    if !supervisor || !vmm {
                        problems.append("wrong state: \(id) is recorded running, supervisor alive \(supervisor), QEMU alive \(vmm)")
                    }
                case "exited":
                    if record.exitCode == nil && record.error == nil {
                        problems.append("wrong state: \(id) exited with neither a code nor an error")
                    }
                    // A supervisor that has just recorded the exit is given a moment to finish.
                    let gone = Harness.eventually(10) { !supervisorRuns() && !vmmRuns() }
                    if !gone { problems.append("wrong state: \(id) is recorded exited, its supervisor or QEMU still runs") }
                case "created":
                    if supervisor || vmm || record.supervisorPID != nil {
                        problems.append("wrong state: \(id) is recorded created, yet supervisor \(record.supervisorPID ?? 0) took it")
                    }
                default:
                    problems.append("wrong state: \(id) has status \(record.status)")
                }
            }
            return problems
        }

        /// Every container the workers made and that `ps -a` no longer lists is removed whole:
        /// hvc knows it by neither id nor name, and no directory of it remains in the state.
        func checkRemoved(_ ledger: ChaosLedger, kept: [Record]) -> [String] {
            let (ids, names) = ledger.figures.withLock { ($0.ids, $0.names) }
            let listed = Set(kept.map(\.id)), listedNames = Set(kept.map(\.name))
            let directories = (try? FileManager.default.contentsOfDirectory(atPath: h.root + "/containers")) ?? []
            var problems: [String] = []
            for id in ids.subtracting(listed) {
                let r = h.hvc(["inspect", id])
                if r.status != 125 || !r.stderr.contains("no such container") {
                    problems.append("wrong state: \(id.prefix(12)) is not listed, yet inspect exited \(r.status): \(r.stderr.prefix(120))")
                }
                if directories.contains(where: { $0.hasPrefix(id) }) {
                    problems.append("wrong state: \(id.prefix(12)) is not listed, yet its directory remains")
                }
            }
            for name in names.subtracting(listedNames) {
                let r = h.hvc(["inspect", name])
                if r.status != 125 || !r.stderr.contains("no such container") {
                    problems.append("wrong state: \(name) is not listed, yet inspect exited \(r.status): \(r.stderr.prefix(120))")
                }
            }
            print("chaos: \(ids.count + names.count) containers made by the workers, \(ids.intersection(listed).count + names.intersection(listedNames).count) still listed at the end")
            return problems
        }

        /// Completed containers keep their whole output: those a worker saw complete, and every
        /// container recorded as having exited 0 from `echo TOKEN`.
        func checkLogs(_ ledger: ChaosLedger) -> [String] {
            var problems = ledger.figures.withLock { $0.lost }
            let all = records()
            let kept = ledger.figures.withLock { $0.kept }
            for (id, token) in kept where !all.contains(where: { $0.id == id }) {
                problems.append("log lost: completed container \(id.prefix(12)) (\(token)) is gone")
            }
            for record in all where record.status == "exited" && record.exitCode == 0 {
                guard record.arguments.count == 2, record.arguments[0] == "echo" else { continue }
                let token = record.arguments[1]
                let logs = h.hvc(["logs", record.id])
                if logs.stdout != token + "\n" {
                    problems.append("log lost: \(record.id.prefix(12)) exited 0 from echo \(token), its log holds \(logs.stdout.debugDescription)")
                }
            }
            return problems
        }

        struct Record {
            var id: String
            var name: String
            var status: String
            var supervisorPID: Int32?
            var supervisorStart: UInt64?
            var vmmPID: Int32?
            var exitCode: Int?
            var error: String?
            var arguments: [String]
        }

        /// Every container `ps -a` lists, as `inspect` shows it.
        func records() -> [Record] {
            h.hvc(["ps", "-a", "-q"]).stdout.split(separator: "\n").compactMap { id in
                let r = h.hvc(["inspect", String(id)])
                guard r.status == 0, let array = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]],
                      let entry = array.first, let config = entry["config"] as? [String: Any],
                      let state = entry["state"] as? [String: Any] else { return nil }
                let process = config["process"] as? [String: Any]
                return Record(id: config["id"] as? String ?? String(id), name: config["name"] as? String ?? "",
                              status: state["status"] as? String ?? "",
                              supervisorPID: (state["supervisorPID"] as? Int).map(Int32.init),
                              supervisorStart: (state["supervisorStart"] as? NSNumber)?.uint64Value,
                              vmmPID: (state["vmmPID"] as? Int).map(Int32.init),
                              exitCode: state["exitCode"] as? Int, error: state["error"] as? String,
                              arguments: process?["arguments"] as? [String] ?? [])
            }
        }

        /// What of the workload remains on the host once every container, pool and template is
        /// gone, waiting for what goes by itself: hvc sweeps what killed processes left at each
        /// command (`hvc ps` here), a VM directory without an owner once it is a minute old.
        func leftovers(since before: HostSnapshot, ledger: ChaosLedger) -> [String] {
            var found: [String] = []
            _ = Harness.eventually(90) {
                _ = h.hvc(["ps", "-a", "-q"])
                found = leaks(since: before, ledger: ledger)
                return found.isEmpty
            }
            return found
        }

        /// What a VM directory the sweep left holds: its files, whether its owner and VMM live,
        /// and its cgroups' processes (a busy cgroup keeps it), so that a leak says why.
        func describeVMDirectory(_ path: String) -> String {
            func text(_ name: String) -> String {
                ((try? String(contentsOfFile: path + "/" + name, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            }
            func alive(_ name: String) -> String {
                guard let stamp = ProcessStamp(parsing: text(name)) else { return "\(name): none" }
                let pid = stamp.pid
                return "\(name) \(stamp) " + (stamp.isAlive ? "alive: " + ChaosProcesses.commandLine(pid).prefix(3).joined(separator: " ") : "gone")
            }
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().joined(separator: " ")
            let cgroups = text("cgroups").split(separator: "\n").map { cgroup in
                "\(cgroup): " + (((try? String(contentsOfFile: cgroup + "/cgroup.procs", encoding: .utf8)) ?? "gone")
                    .split(separator: "\n").joined(separator: ","))
            }
            return "files: \(files); \(alive("owner")); \(alive("vmm")); cgroups: \(cgroups.joined(separator: "; "))"
        }

        func leaks(since before: HostSnapshot, ledger: ChaosLedger) -> [String] {
            var leaks: [String] = []
            func files(_ path: String) -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] }
            let (vmms, supervisors, keepers, runs) = (h.leftoverVMMs(), h.supervisors(), h.templateKeepers(), ChaosProcesses.attachedRuns(h))
            leaks += vmms.map { "process: QEMU \($0)" }
            leaks += supervisors.map { "process: hvc-shim \($0) \(ChaosProcesses.commandLine($0).joined(separator: " "))" }
            leaks += keepers.map { "process: template keeper \($0)" }
            leaks += runs.map { "process: hvc run \($0)" }
            leaks += h.leftoverMounts().map { "mount: \($0)" }
            leaks += files(h.runRoot + "/uids").map { "uid claim: \($0)" }
            leaks += h.leftoverVMDirectories().map { "VM run directory: \($0) (\(describeVMDirectory(h.runRoot + "/vms/" + $0)))" }
            leaks += files(h.runRoot + "/netns").map { "network namespace: \($0)" }
            for key in files(h.runRoot + "/pools") { leaks += files(h.runRoot + "/pools/" + key).map { "pool run file: \(key)/\($0)" } }
            leaks += files(h.runRoot + "/templates").filter { $0.hasSuffix(".keeper") }.map { "template keeper record: \($0)" }
            leaks += files(h.root + "/templates").filter { $0.hasPrefix(".staging-") }.map { "template staging directory: \($0)" }
            leaks += files(h.root + "/containers").filter { name in
                var isDirectory: ObjCBool = false
                return FileManager.default.fileExists(atPath: h.root + "/containers/" + name, isDirectory: &isDirectory) && isDirectory.boolValue
            }.map { "container directory: \($0)" }
            for network in files(h.runRoot + "/networks") {
                leaks += files(h.runRoot + "/networks/" + network).map { "network member: \(network)/\($0.prefix(12))" }
            }
            let ipam = h.root + "/networks/.ipam"
            for network in files(ipam) {
                leaks += files(ipam + "/" + network).filter { $0.first?.isNumber == true && !$0.hasPrefix("last_reserved_ip") }
                    .map { "address lease: \(network)/\($0)" }
            }
            let after = HostSnapshot.take()
            leaks += after.cgroups.subtracting(before.cgroups).sorted().map { "cgroup: \($0)" }
            leaks += after.links.subtracting(before.links).filter { !$0.hasPrefix("hvc") }.sorted().map { "network device: \($0)" }
            leaks += after.firewall.subtracting(before.firewall).sorted().map { "firewall rule: \($0)" }
            // Any other process of hvc's programs that this run started (a name server, an
            // hvcd, an hvc-oci, a pool member), besides those named above.
            let named = Set(vmms + supervisors + keepers + runs)
            leaks += after.processes.subtracting(before.processes).sorted { $0.pid < $1.pid }
                .filter { !named.contains($0.pid) }
                .map { "process: \($0.pid) \(ChaosProcesses.commandLine($0.pid).prefix(4).joined(separator: " "))" }
            return leaks
        }
    }
}

/// The test's knobs, from the environment.
struct ChaosSettings {
    var seed: UInt64
    var faults: Int
    var seconds: Double
    var workers: Int

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        seed = environment["HVC_CHAOS_SEED"].flatMap { UInt64($0) } ?? 15
        faults = environment["HVC_CHAOS_FAULTS"].flatMap { Int($0) } ?? 100
        seconds = environment["HVC_CHAOS_SECONDS"].flatMap { Double($0) } ?? 200
        workers = environment["HVC_CHAOS_WORKERS"].flatMap { Int($0) } ?? 3
    }
}

/// SplitMix64: a small seeded generator, so that a run's choices can be made again.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// What the workers and the killer count, shared under one lock.
final class ChaosLedger: Sendable {
    struct Figures {
        var steps = 0
        var completed = 0
        /// Faults injected, by kind of process.
        var faults: [String: Int] = [:]
        /// Steps that completed with output missing.
        var lost: [String] = []
        /// States seen wrong during the workload.
        var wrong: [String] = []
        /// Containers a worker saw exit 0, with the token they printed.
        var kept: [(id: String, token: String)] = []
        /// Every container id a worker was given, and every name it gave a container that
        /// printed no id (an attached run).
        var ids: Set<String> = []
        var names: Set<String> = []
        /// The longest step, in seconds.
        var slowest: (seconds: Double, step: String) = (0, "")
    }

    let figures = Mutex(Figures())
    private let stopping = Atomic<Bool>(false)

    var isStopping: Bool { stopping.load(ordering: .relaxed) }
    func stop() { stopping.store(true, ordering: .relaxed) }
}

/// Pids of hvc's processes on the host, from /proc.
enum ChaosProcesses {
    /// Alive and not a zombie.
    static func isAlive(_ pid: Int32) -> Bool {
        ProcessStamp(pid: pid, start: nil).isAlive
    }

    /// Starts `argv` with its output to /dev/null and every signal at its default; a thread
    /// reaps it when it ends.
    static func spawn(_ argv: [String], environment: [String]) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let (child, spawned) = Harness.spawn(argv, environment: environment, actions: &actions)
        guard spawned == 0 else { throw HarnessError(message: "\(argv[0]): \(String(cString: strerror(spawned)))") }
        let pid = child
        Thread.detachNewThread { var status: Int32 = 0; while waitpid(pid, &status, 0) < 0 && errno == EINTR {} }
        return pid
    }

    static func commandLine(_ pid: Int32) -> [String] { Harness.commandLine(pid) }

    /// Attached `hvc run`s on this harness's state (each supervises its container's VM).
    static func attachedRuns(_ h: Harness) -> [Int32] {
        h.processes(named: "hvc").filter { pid in
            let arguments = commandLine(pid)
            guard arguments.first?.split(separator: "/").last == "hvc", arguments.count > 1, arguments[1] == "run",
                  !arguments.contains("-d") else { return false }
            let environment = (FileManager.default.contents(atPath: "/proc/\(pid)/environ") ?? Data())
                .split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return environment.contains("HVC_ROOT=" + h.root) && !environment.contains { $0.hasPrefix("HVC_HOST=") }
        }
    }
}

/// The host's cgroups, network devices, firewall rules and hvc processes, to compare before and after.
struct HostSnapshot {
    var cgroups: Set<String>
    var links: Set<String>
    /// Every rule of every table, iptables' and nftables', without counters.
    var firewall: Set<String>
    /// Processes of hvc's binaries and QEMU, by pid and start time.
    var processes: Set<ProcessStamp>

    static func take() -> HostSnapshot {
        var cgroups = Set<String>()
        for hierarchy in ["/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/unified"] {
            let base = hierarchy + "/hvc"
            for tenant in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: base + "/" + tenant, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
                for vm in (try? FileManager.default.contentsOfDirectory(atPath: base + "/" + tenant)) ?? [] {
                    var isVM: ObjCBool = false
                    if FileManager.default.fileExists(atPath: base + "/" + tenant + "/" + vm, isDirectory: &isVM), isVM.boolValue {
                        cgroups.insert(base + "/" + tenant + "/" + vm)
                    }
                }
            }
        }
        let links = Set(((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []))
        return HostSnapshot(cgroups: cgroups, links: links, firewall: firewallRules(), processes: Set(hvcProcesses()))
    }

    /// The rules a container or a network of hvc's can leave, table by table: every rule of
    /// hvc's own nftables tables (`hvc_*`), and every rule of any table that names a per-container
    /// chain of the CNI portmap plugin (`CNI-DN-*`, named by a hash, not by the container's id);
    /// each as `TABLE: RULE`, without packet counters.
    static func firewallRules() -> Set<String> {
        var rules = Set<String>()
        func add(_ table: String, _ line: Substring) {
            var rule = line.trimmingCharacters(in: .whitespaces)
            rule = rule.replacingOccurrences(of: #"\[\d+:\d+\]"#, with: "[]", options: .regularExpression)
            rule = rule.replacingOccurrences(of: #"counter packets \d+ bytes \d+"#, with: "counter", options: .regularExpression)
            if !rule.isEmpty && (table.contains("hvc_") || rule.contains("CNI-DN-")) { rules.insert(table + ": " + rule) }
        }
        var table = ""
        for line in Harness.run(["/usr/sbin/iptables-save"]).split(separator: "\n") where !line.hasPrefix("#") {
            if line.hasPrefix("*") { table = "iptables " + line.dropFirst() } else { add(table, line) }
        }
        for line in Harness.run(["/usr/sbin/nft", "list", "ruleset"]).split(separator: "\n") {
            if line.hasPrefix("table ") { table = "nft " + line.dropFirst(6).dropLast(2) } else { add(table, line) }
        }
        return rules
    }

    /// Every process whose program is one of hvc's (those beside the hvc under test) or QEMU:
    /// supervisors, attached runs, keepers, pool members, name servers, hvcd, hvc-oci and VMMs.
    static func hvcProcesses() -> [ProcessStamp] {
        let directory = (Harness.binary as NSString).deletingLastPathComponent
        let programs = Set(["hvc", "hvc-shim", "hvcd", "hvc-oci"].map { directory + "/" + $0 } + ["/usr/bin/qemu-system-x86_64"])
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).compactMap { pid in
            guard pid != getpid(), let program = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe"),
                  programs.contains(program.hasSuffix(" (deleted)") ? String(program.dropLast(10)) : program) else { return nil }
            return ProcessStamp.running(pid)
        }
    }
}

/// hvcd on a private socket, which the killer may kill and then starts again.
final class ChaosDaemon: Sendable {
    let h: Harness
    let directory: String
    var socket: String { directory + "/hvc.sock" }
    private let pid = Mutex<Int32>(0)

    init(_ h: Harness, directory: String) {
        self.h = h
        self.directory = directory
    }

    /// The CLI talking through this daemon.
    var client: Harness {
        var remote = h
        remote.extraEnvironment["HVC_HOST"] = "unix://" + socket
        return remote
    }

    var currentPID: Int32 { pid.withLock { $0 } }
    var isRunning: Bool { ChaosProcesses.isAlive(currentPID) }

    func start() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o755)
        try "{}".write(toFile: directory + "/tenants.json", atomically: true, encoding: .utf8)
        unlink(socket)
        let started = try ChaosProcesses.spawn(
            [Harness.daemon, "--socket", socket, "--root", h.root, "--run-root", h.runRoot, "--assets", Harness.assets,
             "--tenants", directory + "/tenants.json"],
            environment: h.environment.map { "\($0.key)=\($0.value)" })
        pid.withLock { $0 = started }
        guard Harness.eventually(10, { FileManager.default.fileExists(atPath: socket) }) else {
            throw HarnessError(message: "hvcd did not start")
        }
    }

    /// Kills the daemon with `signal` and waits until it is gone.
    func kill(_ signal: Int32) {
        let current = currentPID
        guard current > 0 else { return }
        Glibc.kill(current, signal)
        _ = Harness.eventually(10) { !ChaosProcesses.isAlive(current) }
    }

    func stop() {
        guard isRunning else { return }
        kill(SIGTERM)
    }
}

/// A loopback registry holding `image`.
struct ChaosRegistry {
    let image: String
    let pid: Int32

    static func start(_ h: Harness, directory: String) throws -> ChaosRegistry {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let port = Harness.freePort()
        let config = try Harness.writeRegistryConfig(directory, port: port)
        let server = try ChaosProcesses.spawn(["/usr/bin/docker-registry", "serve", config], environment: ["PATH=/usr/bin:/bin"])
        let address = "127.0.0.1:\(port)"
        let up = h.registryComesUp(address)
        let registry = ChaosRegistry(image: "\(address)/chaos:v1", pid: server)
        guard up else {
            registry.stop()
            throw HarnessError(message: "registry did not start")
        }
        let archive = directory + "/layers.tar"
        let made = h.execute(["/usr/bin/python3", Harness.repository + "/Tests/EndToEndTests/Fixtures/make-image.py", "layers", archive,
                              "/tmp/hvc-outside", "chaos-\(UUID().uuidString)"])
        let push = h.execute(["/usr/bin/skopeo", "copy", "--dest-tls-verify=false", "oci-archive:" + archive, "docker://" + registry.image])
        guard made.status == 0, push.status == 0 else {
            registry.stop()
            throw HarnessError(message: "image for the registry: \(made.stderr) \(push.stderr)")
        }
        return registry
    }

    func stop() {
        kill(pid, SIGTERM)
        _ = Harness.eventually(10) { !ChaosProcesses.isAlive(pid) }
    }
}

/// One worker of the workload: loops over random steps until the ledger says stop.
struct ChaosWorker: Sendable {
    let h: Harness
    let index: Int
    let seed: UInt64
    let ledger: ChaosLedger
    let daemon: ChaosDaemon
    let image: String

    enum Step: CaseIterable {
        /// `run --rm` without a network: a clone of the template.
        case cloneRun
        /// `run --rm` on the default network: a pooled VM while the pool has one.
        case pooledRun
        /// `run -d`, `exec`, `logs`, `stop`, `rm`.
        case lifecycle
        /// `run -d` of `echo`, `wait`: kept to the end, its log checked then.
        case completed
        case pull
        case poolResize

        var weight: Int {
            switch self {
            case .cloneRun, .pooledRun, .lifecycle: 3
            case .completed: 2
            case .pull, .poolResize: 1
            }
        }
    }

    func run() {
        var random = SeededGenerator(seed: seed &+ UInt64(index) &* 0x1000_0001)
        var n = 0
        let steps = Step.allCases.flatMap { Array(repeating: $0, count: $0.weight) }
        while !ledger.isStopping {
            n += 1
            let token = "tok-\(seed)-\(index)-\(n)-\(String(random.next() & 0xffff_ffff, radix: 16))"
            let remote = Int.random(in: 0..<3, using: &random) == 0
            let client = remote ? daemon.client : h
            let step = steps.randomElement(using: &random) ?? .cloneRun
            let began = Date()
            let completed: Bool
            switch step {
            case .cloneRun:
                let cold = Int.random(in: 0..<8, using: &random) == 0
                completed = attachedRun(client, token: token, name: "chaos-run-\(index)-\(n)",
                                        arguments: ["--network", "none"] + (cold ? ["--no-template"] : []))
            case .pooledRun:
                completed = attachedRun(client, token: token, name: "chaos-run-\(index)-\(n)", arguments: [])
            case .lifecycle:
                completed = lifecycle(client, token: token, name: "chaos-\(index)-\(n)", publish: Bool.random(using: &random))
            case .completed:
                completed = completedRun(client, token: token)
            case .pull:
                if !remote && Int.random(in: 0..<3, using: &random) == 0 { _ = h.hvc(["rmi", "-f", image]) }
                completed = client.hvc(["pull", "-q", image]).status == 0
            case .poolResize:
                completed = h.hvc(["pool", "set", "busybox", "\(Int.random(in: 1...2, using: &random))"], timeout: 200).status == 0
            }
            let seconds = Date().timeIntervalSince(began)
            ledger.figures.withLock { figures in
                figures.steps += 1
                if completed { figures.completed += 1 }
                if seconds > figures.slowest.seconds { figures.slowest = (seconds, "\(step)") }
            }
        }
    }

    func lose(_ what: String) { ledger.figures.withLock { $0.lost.append(what) } }
    func saw(_ id: String) { ledger.figures.withLock { _ = $0.ids.insert(id) } }

    /// An attached run of `echo TOKEN`: when it says it succeeded, it printed the token.
    func attachedRun(_ client: Harness, token: String, name: String, arguments: [String]) -> Bool {
        ledger.figures.withLock { _ = $0.names.insert(name) }
        let r = client.hvc(["run", "--rm", "--name", name] + arguments + ["busybox", "echo", token])
        guard r.status == 0 else { return false }
        if r.stdout != token + "\n" { lose("log lost: run --rm \(arguments) exited 0, printed \(r.stdout.debugDescription) for \(token)") }
        return true
    }

    func status(_ client: Harness, _ container: String) -> String? {
        let r = client.hvc(["inspect", container])
        guard let array = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] else { return nil }
        return (array.first?["state"] as? [String: Any])?["status"] as? String
    }

    func lifecycle(_ client: Harness, token: String, name: String, publish: Bool) -> Bool {
        ledger.figures.withLock { _ = $0.names.insert(name) }
        let run = client.hvc(["run", "-d", "--name", name] + (publish ? ["-p", "80"] : []) + ["busybox", "sh", "-c", "echo \(token); sleep 60"])
        defer { _ = client.hvc(["rm", "-f", name]) }
        guard run.status == 0 else { return false }
        saw(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let execToken = token + "-exec"
        let exec = client.hvc(["exec", name, "echo", execToken])
        if exec.status == 0 && exec.stdout != execToken + "\n" {
            lose("log lost: exec in \(name) exited 0, printed \(exec.stdout.debugDescription) for \(execToken)")
        }
        // The command's first line reaches the log soon after it starts; a container that has
        // ended since (killed) may not have written it.
        // (A log that cannot be read, hvcd being killed, says nothing either way.)
        var logged = false
        var lastRead: Harness.Result3?
        _ = Harness.eventually(10) {
            let logs = client.hvc(["logs", name])
            if logs.status == 0 { lastRead = logs }
            logged = logs.status == 0 && logs.stdout.contains(token)
            return logged
        }
        if !logged, let lastRead, status(client, name) == "running" {
            lose("log lost: \(name) runs, its log holds \(lastRead.stdout.debugDescription), not \(token)")
        }
        let stop = client.hvc(["stop", "-t", "1", name])
        guard stop.status == 0 else { return false }
        if let state = status(client, name), state != "exited" {
            ledger.figures.withLock { $0.wrong.append("wrong state: \(name) is \(state) after stop") }
        }
        let after = client.hvc(["logs", name])
        if logged && after.status == 0 && !after.stdout.contains(token) {
            lose("log lost: \(name)'s log lost \(token) when it stopped: \(after.stdout.debugDescription)")
        }
        return exec.status == 0 && logged
    }

    /// `run -d busybox echo TOKEN` and `wait`: a container kept to the end, which must then
    /// still be there with its whole log.
    func completedRun(_ client: Harness, token: String) -> Bool {
        let run = client.hvc(["run", "-d", "busybox", "echo", token])
        guard run.status == 0 else { return false }
        let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        saw(id)
        guard client.hvc(["wait", id]).stdout == "0\n" else { return false }
        ledger.figures.withLock { $0.kept.append((id, token)) }
        return true
    }
}

/// Sends SIGKILL at random moments to a random live hvc process of a random kind.
struct ChaosKiller {
    let h: Harness
    let settings: ChaosSettings
    let ledger: ChaosLedger
    let daemon: ChaosDaemon

    enum Kind: String, CaseIterable {
        case supervisor, attachedRun = "attached run", qemu = "QEMU", keeper = "template keeper", poolMember = "pool member", hvcd

        var weight: Int {
            switch self {
            case .supervisor, .qemu: 3
            case .attachedRun, .poolMember: 2
            case .keeper, .hvcd: 1
            }
        }
    }

    func candidates(_ kind: Kind) -> [Int32] {
        switch kind {
        case .supervisor:
            h.supervisors().filter { !h.shims(.poolMember).contains($0) }
        case .attachedRun: ChaosProcesses.attachedRuns(h)
        case .qemu: h.leftoverVMMs()
        case .keeper: h.templateKeepers()
        case .poolMember: h.shims(.poolMember).filter { ChaosProcesses.commandLine($0).contains(h.root) }
        case .hvcd: daemon.isRunning ? [daemon.currentPID] : []
        }
    }

    func run(until deadline: Date) {
        var random = SeededGenerator(seed: settings.seed ^ 0xC4A0_5C4A_05C4_A05C)
        let mean = settings.seconds * 0.8 / Double(settings.faults)
        var injected = 0
        while injected < settings.faults && Date() < deadline {
            usleep(UInt32(Double.random(in: 0.1...(2 * mean - 0.1), using: &random) * 1e6))
            let kinds = Kind.allCases.flatMap { kind in Array(repeating: kind, count: kind.weight) }
            var kind = kinds.randomElement(using: &random) ?? .qemu
            var pids = candidates(kind)
            if pids.isEmpty {
                // Another kind that has a live process now.
                let present = Kind.allCases.filter { !candidates($0).isEmpty }
                guard let other = present.randomElement(using: &random) else { continue }
                kind = other
                pids = candidates(kind)
            }
            guard let pid = pids.randomElement(using: &random) else { continue }
            if kind == .hvcd {
                daemon.kill(SIGKILL)
                // Clients meet a dead daemon for a moment, then a new one.
                usleep(UInt32(Double.random(in: 0.1...1, using: &random) * 1e6))
                try? daemon.start()
            } else if kill(pid, SIGKILL) != 0 {
                continue
            }
            injected += 1
            ledger.figures.withLock { $0.faults[kind.rawValue, default: 0] += 1 }
        }
    }
}
