import Foundation

/// A seccomp policy as data (`Specs/seccomp/*.json`): everything is allowed except the listed
/// system calls, each with the reason it is denied.
public struct SeccompPolicy: Codable, Equatable, Sendable {
    public struct Rule: Codable, Equatable, Sendable {
        public var syscalls: [String]
        /// `errno` (fail with `errno`) or `kill` (kill the process).
        public var action: String
        public var errno: String?
        /// Deny only when argument `index` carries any of these flags.
        public var whenArgumentHasFlag: FlagCondition?
        public var reason: String
    }

    public struct FlagCondition: Codable, Equatable, Sendable {
        public var index: UInt32
        public var flags: [String]
    }

    public var description: String
    public var rules: [Rule]
}

/// One rule as the C layer installs it.
public struct CompiledSeccompRule: Equatable, Sendable {
    public enum Action: Equatable, Sendable { case errno(Int32), kill }
    public var syscall: String
    public var action: Action
    public var argumentIndex: UInt32
    public var argumentMask: UInt64

    public init(syscall: String, action: Action, argumentIndex: UInt32, argumentMask: UInt64) {
        self.syscall = syscall
        self.action = action
        self.argumentIndex = argumentIndex
        self.argumentMask = argumentMask
    }
}

extension SeccompPolicy {
    static let errnoValues: [String: Int32] = ["EPERM": EPERM, "ENOSYS": ENOSYS, "EACCES": EACCES]
    static let flagValues: [String: UInt64] = [
        "CLONE_NEWNS": 0x0002_0000, "CLONE_NEWCGROUP": 0x0200_0000, "CLONE_NEWUTS": 0x0400_0000,
        "CLONE_NEWIPC": 0x0800_0000, "CLONE_NEWUSER": 0x1000_0000, "CLONE_NEWPID": 0x2000_0000,
        "CLONE_NEWNET": 0x4000_0000,
        // Mode bits (octal 04000, 02000, and the bit every character and block device type has).
        "S_ISUID": 0o4000, "S_ISGID": 0o2000, "S_IFCHR": 0o020000,
    ]

    public static func load(path: String) throws(JailError) -> SeccompPolicy {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .policy("\(path) is missing: run `make assets`")
        }
        do {
            return try JSONDecoder().decode(SeccompPolicy.self, from: data)
        } catch {
            throw .policy("\(path): \(error)")
        }
    }

    /// Checks the policy and flattens it into rules; `isKnownSyscall` names the calls this
    /// architecture has.
    public func compile(isKnownSyscall: (String) -> Bool) throws(JailError) -> [CompiledSeccompRule] {
        var compiled: [CompiledSeccompRule] = []
        var unconditional = Set<String>()
        for rule in rules {
            guard !rule.reason.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw .policy("rule for \(rule.syscalls.joined(separator: ", ")) has no reason")
            }
            guard !rule.syscalls.isEmpty else { throw .policy("a rule names no system call") }
            let action: CompiledSeccompRule.Action
            switch (rule.action, rule.errno) {
            case ("kill", nil):
                action = .kill
            case ("errno", let name?):
                guard let value = SeccompPolicy.errnoValues[name] else { throw .policy("unknown errno \(name)") }
                action = .errno(value)
            default:
                throw .policy("action \"\(rule.action)\" must be kill, or errno with an errno name")
            }
            for syscall in rule.syscalls {
                guard isKnownSyscall(syscall) else { throw .policy("unknown system call \(syscall)") }
                if let condition = rule.whenArgumentHasFlag {
                    guard condition.index < 6, !condition.flags.isEmpty else {
                        throw .policy("\(syscall): bad argument condition")
                    }
                    for flag in condition.flags {
                        guard let mask = SeccompPolicy.flagValues[flag] else { throw .policy("unknown flag \(flag)") }
                        compiled.append(CompiledSeccompRule(syscall: syscall, action: action, argumentIndex: condition.index, argumentMask: mask))
                    }
                } else {
                    guard unconditional.insert(syscall).inserted else { throw .policy("\(syscall) is listed twice") }
                    compiled.append(CompiledSeccompRule(syscall: syscall, action: action, argumentIndex: 0, argumentMask: 0))
                }
            }
        }
        return compiled
    }
}
