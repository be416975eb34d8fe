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
        let clone = rules.filter { $0.syscall == "clone" }
        #expect(clone.count == 7)
        #expect(clone.allSatisfy { $0.argumentMask != 0 && $0.argumentMask.nonzeroBitCount == 1 })
        #expect(rules.first { $0.syscall == "clone3" }?.action == .errno(ENOSYS))
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
        (#"{"syscalls": ["mount"], "action": "allow", "reason": "r"}"#, "must be kill"),
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
