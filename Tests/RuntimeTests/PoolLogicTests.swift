import AgentProtocol
import Foundation
@testable import Runtime
import Testing
import VMM

/// Which containers a warm pool's VMs fit, how pools are named, and the pooled VM's warm-up program.
@Suite struct PoolLogicTests {
    static let pool = Pool(image: "busybox", imageID: String(repeating: "a", count: 64), memoryMiB: 256, cpus: 1,
                           accelerator: .tcg, size: 2)

    static func config(network: String?, joined: Bool = false) -> ContainerConfig {
        var config = ContainerConfig(
            id: String(repeating: "c", count: 64), name: "c", image: "busybox", imageID: String(repeating: "a", count: 64),
            process: .init(ProcessSpec(arguments: ["true"])), hostname: "c",
            memoryMiB: 256, cpus: 1, pidsLimit: 256, accelerator: .tcg, tenant: "default", created: Date(), autoRemove: false,
            logMaxBytes: 1 << 20, template: nil, network: network, ports: nil)
        if joined {
            config.joinedInterface = JoinedInterface(namespace: "/run/netns/x", device: "eth0", mac: "02:00:00:00:00:01",
                                                     address: IPv4Address("10.0.0.2")!, prefix: 24, gateway: IPv4Address("10.0.0.1"),
                                                     mtu: 1500)
        }
        return config
    }

    @Test func aPoolOfVMsWithAnInterfaceServesContainersOnANetworkOnly() {
        let pool = Self.pool
        #expect(pool.fits(Self.config(network: "hvc")))
        #expect(!pool.fits(Self.config(network: nil)))
        // A joined namespace's interface is the caller's own: no pooled VM has it.
        #expect(!pool.fits(Self.config(network: nil, joined: true)))
        var other = Self.config(network: "hvc")
        other.memoryMiB = 512
        #expect(!pool.fits(other))
        other = Self.config(network: "hvc")
        other.template = false
        #expect(!pool.fits(other), "a container that asks for a cold boot")
    }

    @Test func aPoolWithoutAnInterfaceServesContainersWithoutANetwork() {
        var pool = Self.pool
        pool.networkInterface = false
        #expect(pool.fits(Self.config(network: nil)))
        #expect(!pool.fits(Self.config(network: "hvc")))
        #expect(!pool.fits(Self.config(network: nil, joined: true)))
    }

    @Test func poolsOfOtherShapesHaveOtherNames() {
        var none = Self.pool
        none.networkInterface = false
        var nested = Self.pool
        nested.nested = true
        let names = Set([Self.pool.name, none.name, nested.name])
        #expect(names.count == 3)
        #expect(names.allSatisfy(Pool.isName))
        // Pools recorded before the interface was a choice keep their names.
        var explicit = Self.pool
        explicit.networkInterface = nil
        #expect(explicit.name == Self.pool.name)
        #expect(!Pool.isName("../../etc") && !Pool.isName(String(repeating: "A", count: 16)))
    }

    @Test func theRehearsalRootIsTheEntryTheAgentLooksFor() {
        #expect(PoolRehearsal.prefix + SharedFolders.rootEntry == GuestMount.rehearsalRoot)
    }

    /// The program the rehearsal container runs is a real one: on this (x86-64) host it runs and exits 0.
    @Test func theWarmUpProgramRunsAndExitsZero() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("hvc-exit-\(getpid())").path
        defer { unlink(path) }
        try Data(PoolRehearsal.exitProgram).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o755)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
        #expect(PoolRehearsal.exitProgram.count == 64 + 56 + 9)
    }

    @Test func aVMDirectoryNamesTheCgroupItsVMWasPutIn() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("hvc-vmdir-\(getpid())").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let directory = VMDirectory(path: path)
        #expect(directory.recordedCgroup() == nil)
        try directory.recordCgroups(["/sys/fs/cgroup/hvc/hvc-pool/0123456789abcdef"])
        let named = try #require(directory.recordedCgroup())
        #expect(named.tenant == "hvc-pool" && named.vm == "0123456789abcdef")
        try directory.recordCgroups(["/sys/fs/cgroup/elsewhere"])
        #expect(directory.recordedCgroup() == nil)
    }
}
