import Foundation
import Jail
import Testing

struct SeccompPolicyTests {
    static let specPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Specs/seccomp/vmm.json").path

    func policy(_ rules: String) throws -> SeccompPolicy {
        try JSONDecoder().decode(SeccompPolicy.self, from: Data(#"{"description": "t", "rules": [\#(rules)]}"#.utf8))
    }

    @Test func theShippedPolicyCompiles() throws {
        let rules = try SeccompPolicy.load(path: SeccompPolicyTests.specPath).compile(isKnownSyscall: seccompKnowsSyscall)
        let names = Set(rules.map(\.syscall))
        for required in ["mount", "ptrace", "kexec_load", "init_module", "bpf", "keyctl", "perf_event_open", "unshare", "setns"] {
            #expect(names.contains(required), "\(required) must be denied")
        }
        // clone is denied only with namespace flags, one rule per flag.
        let clone = rules.filter { $0.syscall == "clone" && $0.action != .allow }
        #expect(clone.count == 7)
        #expect(clone.allSatisfy { $0.argumentMask != 0 && $0.argumentMask.nonzeroBitCount == 1 })
        #expect(rules.first { $0.syscall == "clone3" }?.action == .errno(ENOSYS))
    }

    /// An allow list: calls outside it fail with ENOSYS; clone is allowed only without
    /// namespace flags, chmod only without set-ID bits.
    @Test func theShippedPolicyIsAnAllowList() throws {
        let policy = try SeccompPolicy.load(path: SeccompPolicyTests.specPath)
        #expect(try policy.defaultError() == ENOSYS)
        let rules = try policy.compile(isKnownSyscall: seccompKnowsSyscall)
        let allowed = rules.filter { $0.action == .allow }
        for required in ["execve", "read", "mmap", "ppoll", "futex", "exit_group", "rt_sigreturn", "tgkill", "seccomp"] {
            #expect(allowed.contains { $0.syscall == required }, "\(required) must be allowed")
        }
        #expect(!allowed.contains { ["mount", "ptrace", "bpf", "io_uring_setup", "clone3"].contains($0.syscall) })
        let clone = try #require(allowed.first { $0.syscall == "clone" })
        #expect(clone.argumentMask.nonzeroBitCount == 7 && clone.argumentValue == 0)
        let chmod = try #require(allowed.first { $0.syscall == "chmod" })
        #expect(chmod.argumentIndex == 1 && chmod.argumentMask == 0o6000 && chmod.argumentValue == 0)
    }

    @Test func allowRulesAreConditionalOnlyWhereADenyRuleIs() throws {
        let rules = try policy(#"""
            {"syscalls": ["clone"], "action": "errno", "errno": "EPERM", "reason": "r", "whenArgumentHasFlag": {"index": 0, "flags": ["CLONE_NEWUSER"]}},
            {"syscalls": ["clone", "read"], "action": "allow", "reason": "r"}
            """#).compile { _ in true }
        #expect(rules == [
            CompiledSeccompRule(syscall: "clone", action: .errno(EPERM), argumentIndex: 0, argumentMask: 0x1000_0000),
            CompiledSeccompRule(syscall: "clone", action: .allow, argumentIndex: 0, argumentMask: 0x1000_0000, argumentValue: 0),
            CompiledSeccompRule(syscall: "read", action: .allow, argumentIndex: 0, argumentMask: 0),
        ])
    }

    @Test func flagConditionsExpandPerFlag() throws {
        let rules = try policy(#"{"syscalls": ["clone"], "action": "errno", "errno": "EPERM", "reason": "r", "whenArgumentHasFlag": {"index": 0, "flags": ["CLONE_NEWUSER", "CLONE_NEWNET"]}}"#)
            .compile { _ in true }
        #expect(rules == [
            CompiledSeccompRule(syscall: "clone", action: .errno(EPERM), argumentIndex: 0, argumentMask: 0x1000_0000),
            CompiledSeccompRule(syscall: "clone", action: .errno(EPERM), argumentIndex: 0, argumentMask: 0x4000_0000),
        ])
    }

    @Test(arguments: [
        (#"{"syscalls": ["mount"], "action": "errno", "errno": "EPERM", "reason": " "}"#, "no reason"),
        (#"{"syscalls": ["mount"], "action": "allow", "errno": "EPERM", "reason": "r"}"#, "must be allow, kill"),
        (#"{"syscalls": ["clone"], "action": "allow", "reason": "r", "whenArgumentHasFlag": {"index": 0, "flags": ["CLONE_NEWNS"]}}"#, "takes no flag condition"),
        (#"{"syscalls": ["mount"], "action": "errno", "errno": "EPERM", "reason": "r"}, {"syscalls": ["mount"], "action": "allow", "reason": "r"}"#, "listed twice"),
        (#"{"syscalls": ["mount"], "action": "errno", "errno": "EWHAT", "reason": "r"}"#, "unknown errno"),
        (#"{"syscalls": ["no_such_call"], "action": "kill", "reason": "r"}"#, "unknown system call"),
        (#"{"syscalls": [], "action": "kill", "reason": "r"}"#, "names no system call"),
        (#"{"syscalls": ["mount", "mount"], "action": "kill", "reason": "r"}"#, "listed twice"),
        (#"{"syscalls": ["clone"], "action": "kill", "reason": "r", "whenArgumentHasFlag": {"index": 0, "flags": ["CLONE_VM"]}}"#, "unknown flag"),
        (#"{"syscalls": ["clone"], "action": "kill", "reason": "r", "whenArgumentHasFlag": {"index": 9, "flags": ["CLONE_NEWNS"]}}"#, "bad argument"),
    ])
    func rejectsBadPolicies(_ rule: String, _ message: String) throws {
        let parsed = try policy(rule)
        #expect {
            _ = try parsed.compile(isKnownSyscall: seccompKnowsSyscall)
        } throws: { error in
            "\(error)".contains(message)
        }
    }
}
