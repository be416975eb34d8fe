import Foundation

/// A seccomp policy as data (`Specs/seccomp/*.json`): what a call no rule names gets
/// (`defaultAction`; without one it is allowed), and rules, each with its reason.
public struct SeccompPolicy: Codable, Equatable, Sendable {
    public struct Rule: Codable, Equatable, Sendable {
        public var syscalls: [String]
        /// `allow`, `errno` (fail with `errno`) or `kill` (kill the process).
        public var action: String
        public var errno: String?
        /// Deny only when argument `index` carries any of these flags. An allowed call that
        /// such a rule also names is allowed only when the argument carries none of them.
        public var whenArgumentHasFlag: FlagCondition?
        public var reason: String
    }

    /// `errno` with an errno name: every call no rule allows fails so.
    public struct DefaultAction: Codable, Equatable, Sendable {
        public var action: String
        public var errno: String?
        public var reason: String
    }

    public struct FlagCondition: Codable, Equatable, Sendable {
        public var index: UInt32
        public var flags: [String]
    }

    public var description: String
    public var defaultAction: DefaultAction?
    public var rules: [Rule]
}

/// One rule as the C layer installs it.
public struct CompiledSeccompRule: Equatable, Sendable {
    public enum Action: Equatable, Sendable { case errno(Int32), kill, allow }
    public var syscall: String
    public var action: Action
    public var argumentIndex: UInt32
    /// With a mask, the rule applies when (argument & argumentMask) == argumentValue.
    public var argumentMask: UInt64
    public var argumentValue: UInt64

    /// `argumentValue` nil: the rule applies when the argument has every bit of the mask.
    public init(syscall: String, action: Action, argumentIndex: UInt32, argumentMask: UInt64, argumentValue: UInt64? = nil) {
        self.syscall = syscall
        self.action = action
        self.argumentIndex = argumentIndex
        self.argumentMask = argumentMask
        self.argumentValue = argumentValue ?? argumentMask
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

    /// The errno a call no rule allows fails with; 0: such calls are allowed.
    public func defaultError() throws(JailError) -> Int32 {
        guard let defaultAction else { return 0 }
        guard defaultAction.action == "errno", let name = defaultAction.errno, let value = SeccompPolicy.errnoValues[name] else {
            throw .policy("defaultAction must be errno with an errno name (EPERM, ENOSYS or EACCES)")
        }
        guard !defaultAction.reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw .policy("defaultAction has no reason") }
        return value
    }

    /// Checks the policy and flattens it into rules; `isKnownSyscall` names the calls this
    /// architecture has.
    public func compile(isKnownSyscall: (String) -> Bool) throws(JailError) -> [CompiledSeccompRule] {
        var compiled: [CompiledSeccompRule] = []
        var unconditional = Set<String>()
        // Calls denied only with some flags: allowed only without all of them.
        var denyingFlags: [String: (index: UInt32, mask: UInt64)] = [:]
        for rule in rules where rule.action != "allow" {
            guard let condition = rule.whenArgumentHasFlag else { continue }
            let mask = condition.flags.reduce(UInt64(0)) { $0 | (SeccompPolicy.flagValues[$1] ?? 0) }
            for syscall in rule.syscalls {
                let previous = denyingFlags[syscall]
                guard previous == nil || previous!.index == condition.index else {
                    throw .policy("\(syscall): flag conditions on two arguments")
                }
                denyingFlags[syscall] = (condition.index, (previous?.mask ?? 0) | mask)
            }
        }
        for rule in rules {
            guard !rule.reason.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw .policy("rule for \(rule.syscalls.joined(separator: ", ")) has no reason")
            }
            guard !rule.syscalls.isEmpty else { throw .policy("a rule names no system call") }
            let action: CompiledSeccompRule.Action
            switch (rule.action, rule.errno) {
            case ("allow", nil):
                guard rule.whenArgumentHasFlag == nil else { throw .policy("an allow rule takes no flag condition: deny the flags in a rule of their own") }
                for syscall in rule.syscalls {
                    guard isKnownSyscall(syscall) else { throw .policy("unknown system call \(syscall)") }
                    guard unconditional.insert(syscall).inserted else { throw .policy("\(syscall) is listed twice") }
                    if let flags = denyingFlags[syscall] {
                        compiled.append(CompiledSeccompRule(syscall: syscall, action: .allow, argumentIndex: flags.index,
                                                            argumentMask: flags.mask, argumentValue: 0))
                    } else {
                        compiled.append(CompiledSeccompRule(syscall: syscall, action: .allow, argumentIndex: 0, argumentMask: 0))
                    }
                }
                continue
            case ("kill", nil):
                action = .kill
            case ("errno", let name?):
                guard let value = SeccompPolicy.errnoValues[name] else { throw .policy("unknown errno \(name)") }
                action = .errno(value)
            default:
                throw .policy("action \"\(rule.action)\" must be allow, kill, or errno with an errno name")
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
