import Runtime
import Testing

/// The relay's pacing: over its share of a core it sleeps, under it never.
struct CPUPacerTests {
    let second: UInt64 = 1_000_000_000

    @Test func aThreadUnderItsShareNeverSleeps() {
        var pacer = CPUPacer(share: 0.5)
        #expect(pacer.delay(cpu: 0, wall: 0) == 0)
        // 10 ms of CPU in every 100 ms: a tenth of a core.
        for step in UInt64(1)...30 {
            #expect(pacer.delay(cpu: step * 10_000_000, wall: step * 100_000_000) == 0)
        }
    }

    @Test func aBusyThreadSleepsDownToItsShare() {
        var pacer = CPUPacer(share: 0.5)
        _ = pacer.delay(cpu: 0, wall: 0)
        // Busy all of 100 ms: at half a core that much work takes 200 ms.
        #expect(pacer.delay(cpu: 100_000_000, wall: 100_000_000) == 100_000_000)
        // Over a long run, CPU over wall time (with the sleeps) stays at the share.
        var cpu: UInt64 = 100_000_000, wall: UInt64 = 200_000_000
        for _ in 0..<100 {
            cpu += 10_000_000
            wall += 10_000_000
            wall += pacer.delay(cpu: cpu, wall: wall)
        }
        let share = Double(cpu) / Double(wall)
        #expect(share > 0.45 && share <= 0.5, "\(share)")
    }

    @Test func idleTimeIsNotSavedUpBeyondAWindow() {
        var pacer = CPUPacer(share: 0.5)
        _ = pacer.delay(cpu: 0, wall: 0)
        // Ten idle seconds, then a busy burst: only the current window's idle time counts.
        _ = pacer.delay(cpu: 0, wall: 10 * second)
        #expect(pacer.delay(cpu: second, wall: 11 * second) == second)
    }
}
