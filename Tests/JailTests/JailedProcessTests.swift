import Foundation
import Jail
import Testing

/// The jail's C sequence on a real process: busybox from the host's /usr stands in for QEMU,
/// so the test can make the jailed process try what an escaped VMM would. Its `/usr` is a
/// `UsrTree` of busybox alone, as a VMM's is of QEMU's files.
@Suite(.serialized)
struct JailedProcessTests {
    static let policyPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Specs/seccomp/vmm.json").path
    static let uid: UInt32 = 2_100_000
    static let busybox = "/usr/bin/busybox"
    static let usr = Result { () throws(JailError) -> UsrTree in
        let tree = UsrTree(directory: "/tmp/hvc-jail-test-usr-\(getpid())", contents: .init(objects: [busybox]))
        try tree.prepare()
        atexit { _ = try? FileManager.default.removeItem(atPath: "/tmp/hvc-jail-test-usr-\(getpid())") }
        return tree
    }

    /// Runs `busybox sh -c script` in a fresh jail; returns its exit status and output.
    /// With `allowListOnly`, calls outside the policy's allow list fail (as for QEMU); else only
    /// the deny rules apply (busybox makes calls QEMU does not).
    func jailed(_ script: String, cgroup: VMCgroup? = nil, keeping capabilities: [Int32] = [],
                allowListOnly: Bool = false) throws -> (status: Int32, output: String) {
        let root = "/tmp/hvc-jail-test-\(getpid())-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let policy = try SeccompPolicy.load(path: JailedProcessTests.policyPath)
        let rules = try policy.compile(isKnownSyscall: seccompKnowsSyscall)
        var plan = JailPlan(root: root, mounts: JailPlan.hostMounts(usr: try JailedProcessTests.usr.get().path), cgroup: cgroup,
                            uid: JailedProcessTests.uid, gid: JailedProcessTests.uid, rules: rules)
        plan.keptCapabilities = capabilities
        if allowListOnly { plan.seccompDefaultError = try policy.defaultError() }
        try plan.prepareRoot()
        let output = Pipe()
        let pid = try plan.spawn(path: JailedProcessTests.busybox, arguments: ["busybox", "sh", "-c", script],
                                 environment: ["PATH=/usr/bin"], outputFD: output.fileHandleForWriting.fileDescriptor).get()
        try output.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return ((status >> 8) & 0xff, text)
    }

    @Test func runsAsItsOwnUnprivilegedIdentityWithNothingLeft() throws {
        let r = try jailed("id -u; id -g; grep -E '^(Cap(Prm|Eff|Bnd|Inh|Amb)|NoNewPrivs|Seccomp):' /proc/self/status")
        let lines = r.output.split(separator: "\n").map { $0.replacingOccurrences(of: "\t", with: " ") }
        #expect(lines.prefix(2) == ["\(JailedProcessTests.uid)", "\(JailedProcessTests.uid)"])
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            #expect(lines.contains("\(cap): 0000000000000000"))
        }
        #expect(lines.contains("NoNewPrivs: 1"))
        #expect(lines.contains("Seccomp: 2"))
    }

    /// A VMM serving shared folders keeps the file capabilities, across its exec, and nothing
    /// else; its /proc shows no sysctls or sysrq-trigger for them to open, and set-ID modes fail.
    @Test func keptFileCapabilitiesStayNarrow() throws {
        // The pipe behind fd 1 belongs to root: CAP_FOWNER alone would let the chmod through.
        let r = try jailed("grep -E '^Cap(Prm|Eff|Bnd|Inh|Amb):' /proc/self/status; ls /proc/sys /proc/sysrq-trigger 2>&1; "
                           + "chmod 4755 /proc/self/fd/1; echo chmod=$?",
                           keeping: [0, 1, 3, 4])
        let lines = r.output.split(separator: "\n").map { $0.replacingOccurrences(of: "\t", with: " ") }
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            #expect(lines.contains("\(cap): 000000000000001b"), "\(r.output)")
        }
        #expect(r.output.contains("/proc/sys: No such file or directory"))
        #expect(r.output.contains("/proc/sysrq-trigger: No such file or directory"))
        #expect(r.output.contains("chmod=1"), "\(r.output)")
    }

    @Test func seesOnlyItsJail() throws {
        let r = try jailed("ls -a /; ls /etc/shadow /home /root 2>&1; echo pid=$$")
        let entries = Set(r.output.split(separator: "\n").prefix { !$0.hasPrefix("ls:") }.map(String.init))
        #expect(entries.isSubset(of: [".", "..", "bin", "lib", "lib64", "usr", "dev", "proc"]))
        #expect(r.output.contains("/etc/shadow: No such file or directory"))
        #expect(r.output.contains("/home: No such file or directory"))
        #expect(r.output.contains("pid=1\n"))
    }

    /// The jail's /usr is its tree: busybox alone, none of the host's other programs or files.
    @Test func usrHoldsOnlyItsTree() throws {
        let r = try jailed("find /usr; ls /usr/bin/python3 /usr/sbin/nft /usr/share 2>&1")
        #expect(r.output.hasPrefix("/usr\n/usr/bin\n/usr/bin/busybox\n"), "\(r.output)")
        for path in ["/usr/bin/python3", "/usr/sbin/nft", "/usr/share"] {
            #expect(r.output.contains("\(path): No such file or directory"), "\(r.output)")
            #expect(FileManager.default.fileExists(atPath: path))
        }
    }

    @Test(arguments: [
        "mount -t tmpfs none /proc",
        "unshare -n true",
        "chroot / true",
        "mknod /dev/x c 1 3",
        "hostname evil",
    ])
    func deniedCallsFail(_ command: String) throws {
        let r = try jailed(command + "; echo status=$?")
        #expect(!r.output.contains("status=0"))
    }

    /// ioprio_set(2) is outside QEMU's allow list and named by no deny rule: under the allow list
    /// it fails as missing; outside the jail the same command works.
    @Test func callsOutsideTheAllowListFailAsMissing() throws {
        let outside = try Process.run(URL(fileURLWithPath: "/usr/bin/busybox"), arguments: ["ionice", "-c", "3", "true"])
        outside.waitUntilExit()
        #expect(outside.terminationStatus == 0)
        let denied = try jailed("ionice -c 3 true 2>&1; echo status=$?", allowListOnly: true)
        #expect(denied.output.contains("Function not implemented") && denied.output.contains("status=1"), "\(denied.output)")
        let allowed = try jailed("echo hi > /dev/null && uname -s", allowListOnly: true)
        #expect(allowed.output == "Linux\n", "\(allowed.output)")
    }

    @Test func userNamespacesAreDeniedBySeccomp() throws {
        // An unprivileged user may make a user namespace on this kernel (shown outside the
        // jail below); inside it, only the seccomp filter stands in the way.
        let outside = Process()
        outside.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        outside.arguments = ["--reuid", "\(JailedProcessTests.uid)", "--regid", "\(JailedProcessTests.uid)",
                             "--clear-groups", "/usr/bin/busybox", "unshare", "-U", "true"]
        try outside.run()
        outside.waitUntilExit()
        #expect(outside.terminationStatus == 0)
        let r = try jailed("unshare -U true 2>&1; echo status=$?")
        #expect(r.output.contains("Operation not permitted"))
        #expect(r.output.contains("status=1"))
    }

    @Test func networkIsEmpty() throws {
        let r = try jailed("ls /proc/self/net/dev >/dev/null && cat /proc/self/net/dev | tail -n +3 | cut -d: -f1")
        #expect(r.output.trimmingCharacters(in: .whitespacesAndNewlines) == "lo")
    }

    @Test func cgroupLimitsApply() throws {
        let cgroup = VMCgroup(version: CgroupVersion.detect(), tenant: "jail-test", vm: "\(getpid())")
        try cgroup.create(CgroupLimits(memoryBytes: 64 << 20, cpus: 1, pids: 40))
        defer { cgroup.remove() }
        let r = try jailed("i=0; while [ $i -lt 60 ]; do sleep 5 & i=$((i+1)); done 2>&1 | head -1; kill $(jobs -p) 2>/dev/null; echo done", cgroup: cgroup)
        #expect(r.output.contains("done"))
        #expect(r.output.lowercased().contains("resource temporarily unavailable") || r.output.contains("can't fork"))
    }
}
