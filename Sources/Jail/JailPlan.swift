import CJail
import CLinux
import Foundation
import HVCSystem

/// How one VMM process is confined: everything `hvc_spawn_jailed` needs, in Swift.
public struct JailPlan: Sendable {
    public struct Mount: Equatable, Sendable {
        public var source: String
        public var target: String
        public var writable = false
        public var device = false

        public init(source: String, target: String, writable: Bool = false, device: Bool = false) {
            self.source = source
            self.target = target
            self.writable = writable
            self.device = device
        }
    }

    /// The jail directory, which becomes the VMM's `/`.
    public var root: String
    public var mounts: [Mount]
    public var cgroup: VMCgroup?
    public var uid: UInt32
    public var gid: UInt32
    public var extraGroup: UInt32 = 0
    public var maxOpenFiles: UInt64 = 1024
    /// Bounds what the VMM can write to a file (the guest console log).
    public var maxFileSize: UInt64 = 64 << 20
    public var rules: [CompiledSeccompRule]
    /// The errno of calls no rule allows (`SeccompPolicy.defaultError`); 0: they are allowed.
    public var seccompDefaultError: Int32 = 0
    /// A descriptor the VMM gets as its fd 3 (a template's memory), or -1.
    public var inheritedFD: Int32 = -1
    /// A descriptor the VMM gets as its fd 4 (its TAP device), or -1.
    public var secondInheritedFD: Int32 = -1
    /// An open network namespace the VMM enters instead of a new empty one, or -1.
    public var networkNamespaceFD: Int32 = -1
    /// Capabilities the VMM keeps (ambient, so that they survive its exec); none by default.
    public var keptCapabilities: [Int32] = []

    public init(root: String, mounts: [Mount], cgroup: VMCgroup?, uid: UInt32, gid: UInt32, rules: [CompiledSeccompRule]) {
        self.root = root
        self.mounts = mounts
        self.cgroup = cgroup
        self.uid = uid
        self.gid = gid
        self.rules = rules
    }

    /// What the VMM needs of the host, read-only: `usr` as its `/usr` (a `UsrTree`: its binary,
    /// libraries and firmware, nothing else of the host's), and the null and random devices.
    public static func hostMounts(usr: String) -> [Mount] {
        [
            Mount(source: usr, target: "/usr"),
            Mount(source: "/dev/null", target: "/dev/null", writable: true, device: true),
            Mount(source: "/dev/urandom", target: "/dev/urandom", device: true),
        ]
    }

    /// The merged-/usr symlinks a jail root has (`/lib -> usr/lib`, ...), where the host has them:
    /// the dynamic loader and the libraries name their files by these paths.
    public static let usrLinks = ["lib", "lib64", "bin"]

    /// Makes the jail directory: owned by the VM's uid, with the mount points and the
    /// merged-/usr symlinks (`usrLinks`) the dynamic loader expects.
    public func prepareRoot() throws(JailError) {
        let fileManager = FileManager.default
        do {
            try fileManager.createDirectory(atPath: root, withIntermediateDirectories: true)
            for directory in ["proc", "dev"] {
                try fileManager.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
            }
            for link in JailPlan.usrLinks where fileManager.fileExists(atPath: "/" + link) {
                try fileManager.createSymbolicLink(atPath: root + "/" + link, withDestinationPath: "usr/" + link)
            }
            for mount in mounts {
                let target = root + mount.target
                var isDirectory: ObjCBool = false
                _ = fileManager.fileExists(atPath: mount.source, isDirectory: &isDirectory)
                if isDirectory.boolValue {
                    try fileManager.createDirectory(atPath: target, withIntermediateDirectories: true)
                } else {
                    try fileManager.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                    guard fileManager.createFile(atPath: target, contents: nil) else { throw JailError.setup("create \(target)") }
                }
            }
        } catch let error as JailError {
            throw error
        } catch {
            throw .setup("prepare \(root): \(error.localizedDescription)")
        }
        guard chown(root, uid, gid) == 0, chmod(root, 0o700) == 0 else {
            throw .setup("chown \(root): \(Errno.current)")
        }
    }

    /// Spawns `path` (valid inside the jail) under this plan; output to `outputFD`.
    /// Returns the pid, or the stage and errno where the jail sequence failed.
    public func spawn(path: String, arguments: [String], environment: [String], outputFD: Int32) -> Result<Int32, JailError> {
        let procs = cgroup?.procsFiles ?? []
        var result = hvc_spawn_result()
        let status: Int32 = withCStringArray(arguments) { argv in
            withCStringArray(environment) { envp in
                withCStringArray(procs) { cgroupProcs in
                    withMounts { cMounts in
                        withRules { cRules in
                            root.withCString { cRoot in
                                var jail = hvc_jail(
                                    root: cRoot, mounts: cMounts, mount_count: mounts.count,
                                    cgroup_procs: cgroupProcs, cgroup_count: procs.count,
                                    uid: uid, gid: gid, extra_gid: extraGroup,
                                    max_open_files: maxOpenFiles, max_file_size: maxFileSize,
                                    rules: cRules, rule_count: rules.count, seccomp_default_error: seccompDefaultError,
                                    inherit_fds: (inheritedFD, secondInheritedFD),
                                    netns_fd: networkNamespaceFD,
                                    kept_capabilities: keptCapabilities.reduce(UInt64(0)) { $0 | (1 << UInt64($1)) })
                                return hvc_spawn_jailed(&jail, path, argv, envp, outputFD, &result)
                            }
                        }
                    }
                }
            }
        }
        guard status == 0 else { return .failure(.setup("clone: \(Errno.current)")) }
        if result.stage != 0 {
            var ignored: Int32 = 0
            // No pid when the filter or capabilities could not be built (before any clone).
            if result.pid > 0 { waitpid(result.pid, &ignored, 0) }
            return .failure(.setup("\(JailPlan.stageName(result.stage)): \(String(cString: strerror(result.error)))"))
        }
        return .success(result.pid)
    }

    static func stageName(_ stage: Int32) -> String {
        switch UInt32(stage) {
        case HVC_JAIL_NAMESPACES.rawValue: "namespaces"
        case HVC_JAIL_CGROUP.rawValue: "joining the cgroup"
        case HVC_JAIL_MOUNTS.rawValue: "mounts"
        case HVC_JAIL_PIVOT_ROOT.rawValue: "pivot_root"
        case HVC_JAIL_RLIMITS.rawValue: "rlimits"
        case HVC_JAIL_CAPABILITIES.rawValue: "dropping capabilities"
        case HVC_JAIL_IDENTITY.rawValue: "changing uid/gid"
        case HVC_JAIL_SECCOMP.rawValue: "seccomp filter"
        case HVC_JAIL_EXEC.rawValue: "exec"
        default: "stdio"
        }
    }

    private func withMounts<R>(_ body: (UnsafePointer<hvc_jail_mount>?) -> R) -> R {
        let sources = mounts.map { strdup($0.source) }
        let targets = mounts.map { strdup($0.target) }
        defer { (sources + targets).forEach { free($0) } }
        let cMounts = mounts.indices.map { i in
            hvc_jail_mount(source: sources[i], target: targets[i], writable: mounts[i].writable ? 1 : 0,
                           device: mounts[i].device ? 1 : 0)
        }
        return cMounts.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    private func withRules<R>(_ body: (UnsafePointer<hvc_seccomp_rule>?) -> R) -> R {
        let names = rules.map { strdup($0.syscall) }
        defer { names.forEach { free($0) } }
        let cRules = rules.indices.map { i in
            let rule = rules[i]
            let (action, error): (Int32, Int32) = switch rule.action {
            case .kill: (Int32(HVC_SECCOMP_KILL), 0)
            case .errno(let value): (Int32(HVC_SECCOMP_ERRNO), value)
            case .allow: (Int32(HVC_SECCOMP_ALLOW), 0)
            }
            return hvc_seccomp_rule(syscall: names[i], action: action, error: error, arg_index: rule.argumentIndex,
                                    arg_mask: rule.argumentMask, arg_value: rule.argumentValue)
        }
        return cRules.withUnsafeBufferPointer { body($0.baseAddress) }
    }
}

/// Whether libseccomp knows this system call here.
public func seccompKnowsSyscall(_ name: String) -> Bool { hvc_seccomp_syscall_known(name) != 0 }
