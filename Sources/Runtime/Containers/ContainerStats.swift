import Foundation
import HVCSystem

/// What a running container's VM uses, read on the host: CPU time and block I/O of its VMM
/// process, memory and pids of its cgroups, and the traffic of its VM's network interface (the
/// tap in its network namespace: what the tap sends, the guest receives).
public struct ContainerStats: Codable, Equatable, Sendable {
    public var id: String
    public var name: String
    public var read: Date
    /// The VMM's CPU time (user and system), nanoseconds.
    public var cpuNanoseconds: UInt64
    /// The host's CPU time, all CPUs, nanoseconds (`/proc/stat`), to make a share of.
    public var systemNanoseconds: UInt64
    public var onlineCPUs: Int
    /// The VM's cgroup's memory, and its bound.
    public var memoryBytes: UInt64
    public var memoryLimitBytes: UInt64
    /// Page cache the kernel may drop (Docker shows usage without it).
    public var inactiveFileBytes: UInt64
    public var pids: Int
    public var networkReceivedBytes: UInt64
    public var networkReceivedPackets: UInt64
    public var networkSentBytes: UInt64
    public var networkSentPackets: UInt64
    public var blockReadBytes: UInt64
    public var blockWrittenBytes: UInt64

    /// A sample of `record`'s VM now; `.conflict` when it is not running.
    public static func sample(_ record: ContainerRecord, runtime: Runtime) throws(HVCError) -> ContainerStats {
        guard record.state.status == .running, let pid = record.state.vmmPID, kill(pid, 0) == 0 else {
            throw HVCError(.conflict, "container \(record.name) is not running")
        }
        let directory = VMDirectory.path(in: runtime.paths.vms, id: record.id)
        let cgroups = text(directory + "/cgroups").split(separator: "\n").map(String.init)
        func controller(_ name: String) -> String? {
            cgroups.first { $0.contains("/\(name)/") } ?? cgroups.first { FileManager.default.fileExists(atPath: $0 + "/cgroup.controllers") }
        }
        let ticks = UInt64(max(sysconf(Int32(_SC_CLK_TCK)), 1))
        let stat = text("/proc/\(pid)/stat")
        let fields = stat.split(separator: ")").last.map { $0.split(separator: " ") } ?? []
        // After the command's name: state is field 3, utime 14 and stime 15 (1-based in proc(5)).
        let cpuTicks = fields.count > 12 ? (UInt64(fields[11]) ?? 0) + (UInt64(fields[12]) ?? 0) : 0
        // user, nice, system, idle, iowait, irq, softirq (guest time is inside user already).
        let system = text("/proc/stat").split(separator: "\n").first?.split(separator: " ").dropFirst().prefix(7).compactMap { UInt64($0) }.reduce(0, +) ?? 0
        var stats = ContainerStats(
            id: record.id, name: record.name, read: Date(), cpuNanoseconds: cpuTicks * 1_000_000_000 / ticks,
            systemNanoseconds: system * 1_000_000_000 / ticks, onlineCPUs: ProcessInfo.processInfo.activeProcessorCount,
            memoryBytes: 0, memoryLimitBytes: 0, inactiveFileBytes: 0, pids: 0, networkReceivedBytes: 0, networkReceivedPackets: 0,
            networkSentBytes: 0, networkSentPackets: 0, blockReadBytes: 0, blockWrittenBytes: 0)
        if let memory = controller("memory") {
            stats.memoryBytes = number(memory + "/memory.usage_in_bytes") ?? number(memory + "/memory.current") ?? 0
            let limit = number(memory + "/memory.limit_in_bytes") ?? number(memory + "/memory.max")
            stats.memoryLimitBytes = min(limit ?? .max, ProcessInfo.processInfo.physicalMemory)
            let pairs = text(memory + "/memory.stat").split(separator: "\n").map { $0.split(separator: " ") }
            let inactive = pairs.first { $0.first == "total_inactive_file" } ?? pairs.first { $0.first == "inactive_file" }
            stats.inactiveFileBytes = inactive.flatMap { $0.count == 2 ? UInt64($0[1]) : nil } ?? 0
        }
        if let pids = controller("pids") { stats.pids = Int(number(pids + "/pids.current") ?? 0) }
        for line in text("/proc/\(pid)/net/dev").split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == ":" })
            guard parts.count >= 11, parts[0] == "tap0" else { continue }
            // The tap's receive is what the guest sent; its transmit, what the guest received.
            stats.networkSentBytes = UInt64(parts[1]) ?? 0
            stats.networkSentPackets = UInt64(parts[2]) ?? 0
            stats.networkReceivedBytes = UInt64(parts[9]) ?? 0
            stats.networkReceivedPackets = UInt64(parts[10]) ?? 0
        }
        for line in text("/proc/\(pid)/io").split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = UInt64(parts[1]) else { continue }
            if parts[0] == "read_bytes:" { stats.blockReadBytes = value }
            if parts[0] == "write_bytes:" { stats.blockWrittenBytes = value }
        }
        return stats
    }

    /// The share of one CPU the VM used between `earlier` and this sample, in percent (as `docker stats`).
    public func cpuPercent(since earlier: ContainerStats) -> Double {
        let used = Double(cpuNanoseconds &- earlier.cpuNanoseconds), total = Double(systemNanoseconds &- earlier.systemNanoseconds)
        guard total > 0, cpuNanoseconds >= earlier.cpuNanoseconds else { return 0 }
        return used / total * Double(onlineCPUs) * 100
    }

    private static func text(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    private static func number(_ path: String) -> UInt64? {
        UInt64(text(path).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
