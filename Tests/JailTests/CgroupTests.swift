import Foundation
import HVCSystem
import Jail
import Testing

struct CgroupTests {
    let limits = CgroupLimits(memoryBytes: 512 << 20, cpus: 2, pids: 64)

    @Test func v2PathsAndLimits() {
        let cgroup = VMCgroup(version: .v2(root: "/sys/fs/cgroup"), tenant: "acme", vm: "abc")
        #expect(cgroup.directories == ["/sys/fs/cgroup/hvc/acme/abc"])
        #expect(cgroup.procsFiles == ["/sys/fs/cgroup/hvc/acme/abc/cgroup.procs"])
        let writes = cgroup.limitWrites(limits).map { "\($0.file)=\($0.value)" }
        #expect(writes == [
            "/sys/fs/cgroup/hvc/acme/abc/memory.max=536870912",
            "/sys/fs/cgroup/hvc/acme/abc/memory.swap.max=0",
            "/sys/fs/cgroup/hvc/acme/abc/pids.max=64",
            "/sys/fs/cgroup/hvc/acme/abc/cpu.max=200000 100000",
        ])
        #expect(cgroup.controllerWrites.map(\.file) == [
            "/sys/fs/cgroup/cgroup.subtree_control",
            "/sys/fs/cgroup/hvc/cgroup.subtree_control",
            "/sys/fs/cgroup/hvc/acme/cgroup.subtree_control",
        ])
    }

    @Test func v1HybridPathsAndLimits() {
        let version = CgroupVersion.v1(controllers: [
            "memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids", "cpu": "/sys/fs/cgroup/cpu",
        ])
        let cgroup = VMCgroup(version: version, tenant: "t", vm: "v")
        #expect(cgroup.directories == ["/sys/fs/cgroup/cpu/hvc/t/v", "/sys/fs/cgroup/memory/hvc/t/v", "/sys/fs/cgroup/pids/hvc/t/v"])
        let writes = cgroup.limitWrites(limits).map { "\($0.file)=\($0.value)" }
        #expect(writes == [
            "/sys/fs/cgroup/memory/hvc/t/v/memory.limit_in_bytes=536870912",
            "/sys/fs/cgroup/pids/hvc/t/v/pids.max=64",
            "/sys/fs/cgroup/cpu/hvc/t/v/cpu.cfs_period_us=100000",
            "/sys/fs/cgroup/cpu/hvc/t/v/cpu.cfs_quota_us=200000",
        ])
        #expect(cgroup.controllerWrites.isEmpty)
    }

    @Test func aRunningVMsQuotaAndPidsChange() {
        let v2 = VMCgroup(version: .v2(root: "/sys/fs/cgroup"), tenant: "oci", vm: "abc")
        #expect(v2.updateWrites(cpu: (nil, 100_000), pids: nil).map { "\($0.file)=\($0.value)" }
                == ["/sys/fs/cgroup/hvc/oci/abc/cpu.max=max 100000"])
        let v1 = VMCgroup(version: .v1(controllers: ["cpu": "/c"]), tenant: "oci", vm: "abc")
        #expect(v1.updateWrites(cpu: (50_000, 100_000), pids: 300).map { "\($0.file)=\($0.value)" }
                == ["/c/hvc/oci/abc/cpu.cfs_period_us=100000", "/c/hvc/oci/abc/cpu.cfs_quota_us=50000"])
    }

    @Test func missingV1ControllersAreSkipped() {
        let cgroup = VMCgroup(version: .v1(controllers: ["pids": "/p"]), tenant: "t", vm: "v")
        #expect(cgroup.limitWrites(limits).map(\.file) == ["/p/hvc/t/v/pids.max"])
    }

    @Test func thisHostIsDetected() {
        #expect(CgroupVersion.detect() != .unavailable)
    }

    @Test(arguments: [("2000000-2065535", 2_000_000...2_065_535), ("5000-5000", 5000...5000)])
    func uidRanges(_ text: String, _ range: ClosedRange<UInt32>) throws {
        #expect(try IdentityPool.parseRange(text) == range)
    }

    @Test(arguments: ["", "5", "10-5", "0-100", "a-b", "1-2-3"])
    func badUIDRanges(_ text: String) {
        #expect(throws: JailError.self) { try IdentityPool.parseRange(text) }
    }

    @Test func identitiesAreUniqueAndReleased() throws {
        let directory = "/tmp/hvc-uids-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pool = IdentityPool(directory: directory, range: 3000...3002)
        let a = try pool.claim(owner: "a"), b = try pool.claim(owner: "a"), c = try pool.claim(owner: "c")
        #expect(Set([a, b, c]).count == 3)
        #expect(throws: JailError.self) { try pool.claim(owner: "d") }
        pool.release(b)
        #expect(try pool.claim(owner: "d") == b)
    }

    /// A claim is taken back when its holder is dead, or when its pid now names a later process
    /// (the start time differs), never while its holder runs.
    @Test func staleClaimsAreTakenBack() throws {
        let directory = "/tmp/hvc-uids-stale-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pool = IdentityPool(directory: directory, range: 4000...4003)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let me = ProcessStamp.current
        let myStart = try #require(me.start)
        func write(_ uid: Int, _ text: String) throws { try text.write(toFile: "\(directory)/\(uid)", atomically: true, encoding: .utf8) }
        try write(4000, "\(me.pid) \(myStart) live\n")
        try write(4001, "\(me.pid) \(myStart + 1) reused-pid\n")
        try write(4002, "2147483646 \(myStart) dead\n")
        try write(4003, "")
        pool.reclaimStale()
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: directory))
        #expect(left == ["4000", "4003"], "an unnamed claim is kept for its grace period")
        #expect(try pool.claim(owner: "x") != 4000)
    }

    @Test func processStamps() throws {
        let me = ProcessStamp.current
        #expect(me.isAlive)
        #expect(ProcessStamp(parsing: me.description) == me)
        #expect(ProcessStamp(parsing: me.nameComponent + "-rest", separator: "-") == me)
        #expect(ProcessStamp(parsing: "\(me.pid)")?.start == nil)
        #expect(ProcessStamp(parsing: "\(me.pid) 0 owner")?.start == nil)
        #expect(ProcessStamp(pid: me.pid, start: nil).isAlive)
        #expect(!ProcessStamp(pid: me.pid, start: (me.start ?? 0) + 1).isAlive)
        #expect(ProcessStamp(parsing: "") == nil)
        #expect(ProcessStamp(parsing: "-5 3") == nil)
        #expect(ProcessStamp(parsing: "x 3") == nil)
    }
}
