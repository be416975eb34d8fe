import CLinux
import Foundation
import HVCSystem
import OCI
import VMM

/// A warm pool: how many clones of an image's template wait, started and connected, for
/// containers of that image and shape to take them.
public struct Pool: Codable, Equatable, Sendable {
    public var image: String
    public var imageID: String
    public var memoryMiB: Int
    public var cpus: Int
    public var accelerator: Accelerator
    public var size: Int
    /// Its VMs serve nested containers (`--nested`); nil: no.
    public var nested: Bool?
    /// Its VMs have a network interface, for containers on a network; nil: yes. Without one
    /// they serve `--network none` containers and hvc-oci's bundles that bring no interface.
    public var networkInterface: Bool?

    /// Pools are named by what their VMs fit: image, memory, CPUs, accelerator, nesting, interface.
    public var name: String {
        let shape = "\(imageID)|\(memoryMiB)|\(cpus)|\(accelerator.rawValue)" + (nested == true ? "|nested" : "")
            + (networkInterface == false ? "|none" : "")
        return String(Digest.of(data: Data(shape.utf8)).hex.prefix(16))
    }

    /// Whether `text` is a pool's name as `name` makes them.
    static func isName(_ text: String) -> Bool { text.isLowercaseHex(length: 16) }

    /// The shape of its VMs.
    func shape(_ image: Image) -> VMShape {
        VMShape(image: image, memoryMiB: memoryMiB, cpus: cpus, accelerator: accelerator, networkInterface: networkInterface ?? true,
                nested: nested ?? false)
    }

    /// Whether a created container fits this pool's VMs: the same image and shape, and its
    /// network reached through the interface a pool VM has (a joined namespace's is the caller's own).
    func fits(_ config: ContainerConfig) -> Bool {
        config.startsFromTemplate && config.joinedInterface == nil && (config.network != nil) == (networkInterface ?? true)
            && config.imageID == imageID && config.memoryMiB == memoryMiB && config.cpus == cpus
            && config.accelerator == accelerator && (config.nested ?? false) == (nested ?? false)
    }
}

/// Pool settings under `<root>/pools/<name>.json`; the waiting VMs under
/// `<run-root>/pools/<template key>/<member>.sock`, one socket per VM, served by its
/// `hvc-shim pool-member` process.
public struct PoolStore: Sendable {
    public let directory: String
    public let runDirectory: String
    public static let largest = 32

    public init(paths: RuntimePaths) {
        directory = paths.root + "/pools"
        runDirectory = paths.runRoot + "/pools"
    }

    func path(_ name: String) -> String { directory + "/" + name + ".json" }
    /// Short names: a socket path must fit in 108 bytes.
    func memberDirectory(_ templateKey: String) -> String { runDirectory + "/" + templateKey.prefix(16) }

    public func list() -> [Pool] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".json") }.compactMap { name in
            FileManager.default.contents(atPath: directory + "/" + name).flatMap { try? JSONDecoder.hvc.decode(Pool.self, from: $0) }
        }.sorted { $0.image < $1.image }
    }

    func pool(named name: String) -> Pool? {
        FileManager.default.contents(atPath: path(name)).flatMap { try? JSONDecoder.hvc.decode(Pool.self, from: $0) }
    }

    func save(_ pool: Pool) throws(HVCError) {
        try makeDirectory(directory, mode: 0o700)
        if pool.size == 0 {
            unlink(path(pool.name))
        } else {
            try writeAtomically(path(pool.name), try JSONEncoder.hvc.encode(pool))
        }
    }

    /// Waits until `size` VMs of `templateKey` wait, at most `seconds`, or until every one of
    /// the `started` members has ended; returns how many wait. Woken by the member directory's
    /// changes (a member writes its files there once its VM is ready) and by members' ends.
    public func awaitMembers(_ templateKey: String, size: Int, started: [Int32], seconds: Double) -> Int {
        let directory = memberDirectory(templateKey)
        let deadline = Date().addingTimeInterval(seconds)
        var alive = started.map { ProcessStamp(pid: $0, start: nil) }
        try? makeDirectory(runDirectory, mode: 0o700)
        try? makeDirectory(directory, mode: 0o700)
        while members(templateKey).count < size {
            alive = alive.filter(\.isAlive)
            let left = deadline.timeIntervalSinceNow
            guard left > 0, started.isEmpty || !alive.isEmpty else { break }
            _ = awaitChange(in: directory, seconds: left, whileAlive: alive) { members(templateKey).count >= size }
        }
        return members(templateKey).count
    }

    /// The sockets of the VMs waiting in pools of `templateKey`, oldest first. The files of
    /// members that died waiting (killed: their VM died with them) are removed on the way.
    public func members(_ templateKey: String) -> [String] {
        let directory = memberDirectory(templateKey)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var sockets: [String] = []
        for name in names where name.hasSuffix(".pid") {
            let member = String(name.dropLast(".pid".count))
            let socket = directory + "/" + member + ".sock"
            // A member writes its pid before it makes its socket, and removes it after.
            guard memberPID(socket) != nil else {
                unlink(socket)
                unlink(directory + "/" + name)
                continue
            }
            if names.contains(member + ".sock") { sockets.append(socket) }
        }
        return sockets.sorted()
    }

    /// Removes the files of every pool's members that died waiting.
    func sweepMembers() {
        for key in (try? FileManager.default.contentsOfDirectory(atPath: runDirectory)) ?? [] {
            _ = members(key)
        }
    }

    /// The pid serving a member socket (recorded beside it), if that process lives.
    func memberPID(_ socket: String) -> Int32? {
        let pidFile = String(socket.dropLast(".sock".count)) + ".pid"
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let member = ProcessStamp(parsing: text), member.isAlive else { return nil }
        return member.pid
    }
}

extension Runtime {
    public var pools: PoolStore { PoolStore(paths: paths) }

    /// Sets a pool's size: makes its template, records the size, starts the VMs missing and
    /// stops those beyond it. Returns the pool, its template's key and the pids of the VMs started.
    /// `hvc-oci-base:1`, the image hvc-oci's VMs boot, is made here if hvc-oci has not made it yet.
    public func setPool(image reference: String, memoryMiB: Int, cpus: Int, size: Int, accelerator: Accelerator?,
                        nested: Bool = false, networkInterface: Bool = true) throws(HVCError) -> (pool: Pool, key: String, started: [Int32]) {
        guard (0...PoolStore.largest).contains(size) else {
            throw HVCError(.invalid, "pool size \(size) is out of range: give 0 to \(PoolStore.largest)")
        }
        let image = reference == OCIContainers.baseImage ? try OCIContainers.baseImage(of: self) : try images.resolve(reference)
        let accelerator = try chooseAccelerator(accelerator).accelerator
        let pool = Pool(image: reference, imageID: image.id, memoryMiB: memoryMiB, cpus: cpus, accelerator: accelerator, size: size,
                        nested: nested ? true : nil, networkInterface: networkInterface ? nil : false)
        if size == 0 {
            // Its waiting VMs notice within a second that the pool is gone, and leave.
            try pools.save(pool)
            return (pool, "", [])
        }
        try checkAssets()
        if nested { try checkNesting(accelerator) }
        let shape = pool.shape(image)
        let inputs = try templates.inputs(runtime: self, shape: shape)
        let template = try templates.ensure(runtime: self, shape: shape, reference: reference, inputs: inputs)
        try pools.save(pool)
        let members = pools.members(template.key)
        for socket in members.dropFirst(size) {
            if let pid = pools.memberPID(socket) { kill(pid, SIGTERM) }
        }
        var started: [Int32] = []
        if members.count < size {
            for _ in members.count..<size {
                if let pid = startPoolMember(templateKey: template.key, pool: pool.name) { started.append(pid) }
            }
        }
        return (pool, template.key, started)
    }

    /// Starts one more VM for a pool, in the background; returns its pid.
    @discardableResult
    func startPoolMember(templateKey: String, pool: String) -> Int32? {
        try? Shim.start(.poolMember(pool: pool), paths: paths)
    }

    /// Starts pool VMs until `pool` has its size again (after one was taken).
    func refillPool(named name: String, templateKey: String) {
        guard let pool = pools.pool(named: name) else { return }
        let waiting = pools.members(templateKey).count
        if waiting < pool.size {
            for _ in waiting..<pool.size { startPoolMember(templateKey: templateKey, pool: name) }
        }
    }
}

/// A pool as `hvc pool ls` shows it: its setting, and the VMs waiting now with what they cost.
public struct PoolSummary: Codable, Sendable {
    public var image: String
    public var memoryMiB: Int
    public var cpus: Int
    public var size: Int
    /// Its VMs have no network interface (`--network none`).
    public var noNetwork: Bool?
    public var waiting: Int
    /// PSS of the waiting VMs' QEMU and supervisor processes together.
    public var pssBytes: Int
}

extension Runtime {
    public func poolSummaries() -> [PoolSummary] {
        pools.list().map { pool in
            var sockets: [String] = []
            if let image = try? images.resolve(pool.imageID),
               let inputs = try? templates.inputs(runtime: self, shape: pool.shape(image)) {
                sockets = pools.members(inputs.key)
            }
            var pss = 0
            var waiting = 0
            for socket in sockets {
                guard let pid = pools.memberPID(socket) else { continue }
                waiting += 1
                pss += processPSS(pid)
                for child in childProcesses(of: pid) { pss += processPSS(child) }
            }
            return PoolSummary(image: pool.image, memoryMiB: pool.memoryMiB, cpus: pool.cpus, size: pool.size,
                               noNetwork: pool.networkInterface == false ? true : nil, waiting: waiting, pssBytes: pss)
        }
    }
}

/// Proportional set size of a process, in bytes (0 when unreadable).
func processPSS(_ pid: Int32) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("Pss:") {
        return (Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0) * 1024
    }
    return 0
}

/// Direct children of `pid` (from /proc/PID/task/*/children).
func childProcesses(of pid: Int32) -> [Int32] {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
    return tasks.flatMap { task -> [Int32] in
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }
}
