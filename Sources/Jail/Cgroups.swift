import CJail
import Foundation
import HVCSystem

/// Which cgroup layout the host has.
public enum CgroupVersion: Equatable, Sendable, CustomStringConvertible {
    /// The unified hierarchy at `root` (cgroup v2).
    case v2(root: String)
    /// Per-controller v1 hierarchies (the "hybrid" layout), controller name → mount point.
    case v1(controllers: [String: String])
    case unavailable

    public var description: String {
        switch self {
        case .v2: "v2 (unified)"
        case .v1(let controllers): "v1/hybrid (\(controllers.keys.sorted().joined(separator: ", ")))"
        case .unavailable: "unavailable"
        }
    }

    /// Reads the layout under `/sys/fs/cgroup`: cgroup2 mounted there is v2; otherwise the
    /// v1 controllers hvc uses, each found by its directory.
    public static func detect(root: String = "/sys/fs/cgroup") -> CgroupVersion {
        let type = hvc_filesystem_type(root)
        guard type != 0 else { return .unavailable }
        if type == 0x6367_7270 { return .v2(root: root) }  // CGROUP2_SUPER_MAGIC
        var controllers: [String: String] = [:]
        for name in ["memory", "pids", "cpu"] where FileManager.default.fileExists(atPath: root + "/" + name + "/cgroup.procs") {
            controllers[name] = root + "/" + name
        }
        return controllers.isEmpty ? .unavailable : .v1(controllers: controllers)
    }
}

/// What one VM's cgroup may use.
public struct CgroupLimits: Equatable, Sendable {
    public var memoryBytes: Int64
    public var cpus: Int
    public var pids: Int

    public init(memoryBytes: Int64, cpus: Int, pids: Int) {
        self.memoryBytes = memoryBytes
        self.cpus = cpus
        self.pids = pids
    }
}

/// The cgroup of one VM: `hvc/<tenant>/<vm>` in each hierarchy.
public struct VMCgroup: Equatable, Sendable {
    public let version: CgroupVersion
    public let tenant: String
    public let vm: String

    public static let period = 100_000

    public init(version: CgroupVersion, tenant: String, vm: String) {
        self.version = version
        self.tenant = tenant
        self.vm = vm
    }

    /// The VM's directories, one per hierarchy, parents first for each.
    public var directories: [String] {
        switch version {
        case .v2(let root): ["\(root)/hvc/\(tenant)/\(vm)"]
        case .v1(let controllers): controllers.keys.sorted().compactMap { controllers[$0] }.map { "\($0)/hvc/\(tenant)/\(vm)" }
        case .unavailable: []
        }
    }

    /// The `cgroup.procs` files a process writes itself into to join.
    public var procsFiles: [String] { directories.map { $0 + "/cgroup.procs" } }

    /// Files to write, in order, to enable controllers down the tree (v2 only).
    public var controllerWrites: [(file: String, value: String)] {
        guard case .v2(let root) = version else { return [] }
        return [root, root + "/hvc", root + "/hvc/" + tenant].map { ($0 + "/cgroup.subtree_control", "+memory +pids +cpu") }
    }

    /// The limit files and their values: memory (without swap), then pids and CPU as
    /// `updateWrites` gives them.
    public func limitWrites(_ limits: CgroupLimits) -> [(file: String, value: String)] {
        var writes: [(file: String, value: String)] = []
        switch version {
        case .v2(let root):
            let dir = "\(root)/hvc/\(tenant)/\(vm)"
            writes = [(dir + "/memory.max", "\(limits.memoryBytes)"), (dir + "/memory.swap.max", "0")]
        case .v1(let controllers):
            if let memory = controllers["memory"] {
                writes.append(("\(memory)/hvc/\(tenant)/\(vm)/memory.limit_in_bytes", "\(limits.memoryBytes)"))
            }
        case .unavailable:
            return []
        }
        return writes + updateWrites(cpu: (Int64(limits.cpus * VMCgroup.period), UInt64(VMCgroup.period)), pids: Int64(limits.pids))
    }

    /// The files and values that change a running VM's pids limit and CPU quota (`quota` per
    /// `period` microseconds; nil: unlimited), where given.
    public func updateWrites(cpu: (quota: Int64?, period: UInt64)?, pids: Int64?) -> [(file: String, value: String)] {
        var writes: [(String, String)] = []
        switch version {
        case .v2(let root):
            let dir = "\(root)/hvc/\(tenant)/\(vm)"
            if let pids { writes.append((dir + "/pids.max", "\(pids)")) }
            if let cpu { writes.append((dir + "/cpu.max", "\(cpu.quota.map(String.init) ?? "max") \(cpu.period)")) }
        case .v1(let controllers):
            if let pids, let directory = controllers["pids"] { writes.append(("\(directory)/hvc/\(tenant)/\(vm)/pids.max", "\(pids)")) }
            if let cpu, let directory = controllers["cpu"] {
                writes.append(("\(directory)/hvc/\(tenant)/\(vm)/cpu.cfs_period_us", "\(cpu.period)"))
                writes.append(("\(directory)/hvc/\(tenant)/\(vm)/cpu.cfs_quota_us", "\(cpu.quota ?? -1)"))
            }
        case .unavailable:
            break
        }
        return writes
    }

    /// Writes what `updateWrites` names.
    public func update(cpu: (quota: Int64?, period: UInt64)?, pids: Int64?) throws(JailError) {
        for (file, value) in updateWrites(cpu: cpu, pids: pids) { try write(file, value) }
    }

    /// Creates the directories and writes the limits.
    public func create(_ limits: CgroupLimits) throws(JailError) {
        for directory in directories {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw .cgroup("create \(directory): \(error.localizedDescription)")
            }
        }
        for (file, value) in controllerWrites {
            try? write(file, value)  // an already-enabled or unavailable controller is not fatal
        }
        for (file, value) in limitWrites(limits) {
            // A kernel built without swap (hvc's own guest kernel, when hvc runs in a nested
            // container) has no swap to bound and no file for it.
            if file.hasSuffix("/memory.swap.max"), access(file, F_OK) != 0, Errno.current == .noEntry { continue }
            try write(file, value)
        }
    }

    /// Removes the VM's directories (its processes must be gone), and the tenant's if empty.
    public func remove() {
        for directory in directories {
            rmdir(directory)
            rmdir((directory as NSString).deletingLastPathComponent)
        }
    }

    private func write(_ file: String, _ value: String) throws(JailError) {
        let fd = open(file, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .cgroup("open \(file): \(Errno.current)") }
        defer { close(fd) }
        let written = value.withCString { Glibc.write(fd, $0, strlen($0)) }
        guard written >= 0 else { throw .cgroup("write \(value) to \(file): \(Errno.current)") }
    }
}

public enum JailError: Error, Equatable, CustomStringConvertible {
    case cgroup(String)
    case policy(String)
    case identity(String)
    case setup(String)
    case usrTree(String)

    public var description: String {
        switch self {
        case .cgroup(let m): "cgroup: \(m)"
        case .policy(let m): "seccomp policy: \(m)"
        case .identity(let m): "jail identity: \(m)"
        case .setup(let m): "jail: \(m)"
        case .usrTree(let m): "jail /usr: \(m)"
        }
    }
}
