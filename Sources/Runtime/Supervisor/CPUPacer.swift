import Foundation
import HVCSystem

/// Holds one thread's CPU use to a share of a core by making it sleep when it is over. The
/// supervisor's relay paces itself so: its work is what its guest writes, and a guest writing
/// as fast as it can would otherwise keep a host core busy outside its VM's cgroup. While the
/// relay sleeps the guest's writes wait (the agent socket and virtio-serial pass the
/// back-pressure on), so nothing piles up in between.
public struct CPUPacer: Sendable {
    /// The most of one core the thread may use.
    public let share: Double
    /// The span over which use is measured; a thread idle for one does not save up for the next.
    public let window: UInt64
    private var start: (cpu: UInt64, wall: UInt64)?

    public init(share: Double, windowNanoseconds: UInt64 = 1_000_000_000) {
        self.share = share
        self.window = windowNanoseconds
    }

    /// How long to sleep now (nanoseconds), given the thread's CPU time and the monotonic
    /// clock, both in nanoseconds.
    public mutating func delay(cpu: UInt64, wall: UInt64) -> UInt64 {
        guard let start, wall >= start.wall, cpu >= start.cpu else {
            start = (cpu, wall)
            return 0
        }
        let used = cpu - start.cpu
        let elapsed = wall - start.wall
        // The wall time that much CPU may take at `share`.
        let allowed = UInt64(Double(used) / share)
        let delay = allowed > elapsed ? allowed - elapsed : 0
        if elapsed + delay >= window { self.start = (cpu, wall + delay) }
        return delay
    }

    /// Sleeps the calling thread for as long as its use is over its share.
    public mutating func pace() {
        let nanoseconds = delay(cpu: threadCPUNanoseconds(), wall: monotonicNanoseconds())
        if nanoseconds > 0 { usleep(useconds_t(min(nanoseconds / 1000, 1_000_000))) }
    }
}
