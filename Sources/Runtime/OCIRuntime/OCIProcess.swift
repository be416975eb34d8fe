import AgentProtocol
import Foundation

extension OCISpec {
    /// A bundle's `process` (and what `exec --process` reads).
    public struct Process: Decodable, Sendable {
        public struct ConsoleSize: Decodable, Sendable {
            public var height: UInt16
            public var width: UInt16
        }
        public struct Rlimit: Decodable, Sendable {
            public var type: String
            public var hard: UInt64
            public var soft: UInt64
        }
        public struct Capabilities: Decodable, Sendable {
            public var bounding: [String]?
            public var effective: [String]?
            public var inheritable: [String]?
            public var permitted: [String]?
            public var ambient: [String]?
        }
        public var terminal: Bool?
        public var consoleSize: ConsoleSize?
        public var user: User?
        public var args: [String]?
        public var env: [String]?
        public var cwd: String?
        public var rlimits: [Rlimit]?
        public var noNewPrivileges: Bool?
        public var capabilities: Capabilities?

        /// Reads a process file (`exec --process`): the `process` object of a config.json.
        static func load(_ path: String) throws(HVCError) -> Process {
            try OCISpec.decode(Process.self, path: path, missing: "give the JSON of the process to run", what: "an OCI process")
        }

        /// The process as the agent takes it: identity, limits, capabilities and no_new_privs
        /// are applied inside the guest to the container's process.
        public func spec() throws(HVCError) -> ProcessSpec {
            guard let args, let first = args.first, !first.isEmpty else {
                throw HVCError(.invalid, "the process has no args: give the command to run")
            }
            var spec = ProcessSpec(arguments: args, environment: env ?? [], workingDirectory: cwd ?? "/",
                                   user: user.map { "\($0.uid):\($0.gid)" } ?? "", terminal: terminal ?? false,
                                   rows: consoleSize?.height ?? 24, columns: consoleSize?.width ?? 80)
            let groups = user?.additionalGids ?? []
            guard groups.count <= Limits.maxGroups else { throw HVCError(.invalid, "more than \(Limits.maxGroups) additionalGids") }
            spec.additionalGroups = groups
            for limit in rlimits ?? [] {
                guard let resource = OCISpec.resourceLimits[limit.type] else {
                    throw HVCError(.invalid, "unknown rlimit \"\(limit.type)\": use RLIMIT_NOFILE, RLIMIT_NPROC, ...")
                }
                guard limit.soft <= limit.hard else { throw HVCError(.invalid, "rlimit \(limit.type): soft \(limit.soft) is above hard \(limit.hard)") }
                spec.resourceLimits.removeAll { $0.resource == resource }
                spec.resourceLimits.append(ResourceLimit(resource: resource, soft: limit.soft, hard: limit.hard))
            }
            if let capabilities {
                spec.capabilities = CapabilitySets(
                    bounding: OCISpec.capabilityMask(capabilities.bounding), effective: OCISpec.capabilityMask(capabilities.effective),
                    permitted: OCISpec.capabilityMask(capabilities.permitted),
                    inheritable: OCISpec.capabilityMask(capabilities.inheritable), ambient: OCISpec.capabilityMask(capabilities.ambient))
            }
            spec.noNewPrivileges = noNewPrivileges ?? false
            return spec
        }
    }

    /// `RLIMIT_*` names and their numbers on Linux.
    static let resourceLimits: [String: UInt32] = [
        "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5,
        "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
        "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
    ]

    /// Capability names in number order (Linux 6.1: CAP_CHOWN is 0, CAP_CHECKPOINT_RESTORE 40).
    static let capabilityNames = [
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
        "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
        "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
        "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
        "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
        "CHECKPOINT_RESTORE",
    ]

    /// One bit per named capability; names the guest kernel does not know are left out, as
    /// runc leaves them out with a warning.
    static func capabilityMask(_ names: [String]?) -> UInt64 {
        var mask: UInt64 = 0
        for name in names ?? [] {
            let bare = name.uppercased().hasPrefix("CAP_") ? String(name.uppercased().dropFirst(4)) : name.uppercased()
            if let bit = capabilityNames.firstIndex(of: bare) { mask |= 1 << UInt64(bit) }
        }
        return mask
    }
}
