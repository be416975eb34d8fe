import Testing
import VMM

struct GuestClockTests {
    @Test func eachAcceleratorGetsItsClock() {
        #expect(GuestClock.choose(accelerator: .kvm, hostTSCKHz: 2_600_000) == .kvmClock)
        #expect(GuestClock.choose(accelerator: .tcg, hostTSCKHz: 2_596_122) == .tsc(kHz: 2_596_122))
        #expect(GuestClock.choose(accelerator: .tcg, hostTSCKHz: nil) == .calibrated)
    }

    @Test func aTCGGuestIsToldTheFrequency() {
        var configuration = VMConfiguration(
            kernel: "/k", initramfs: "/i", rootDisk: "/r", memoryMiB: 256, cpus: 1, accelerator: .tcg,
            agentSocket: "/a", qmpSocket: "/q", consoleLog: "/c")
        configuration.clock = .tsc(kHz: 2_596_122)
        let parameters = QEMUCommandLine(configuration).kernelParameters.split(separator: " ")
        #expect(parameters.contains("tsc_early_khz=2596122"))
        #expect(parameters.contains("tsc=reliable"))
        configuration.clock = .kvmClock
        #expect(!QEMUCommandLine(configuration).kernelParameters.contains("tsc"))
    }

    @Test func noInvariantCounterNoFrequency() {
        #expect(HostTSC.measureKHz(milliseconds: 1, cpuFlags: ["tsc"]) == nil)
    }

    /// On this host (x86-64 with an invariant TSC) the measured rate is a plausible frequency,
    /// and two measurements agree to within 100 ppm.
    @Test func theHostRateIsMeasured() throws {
        let flags: Set<String> = ["constant_tsc"]
        let first = try #require(HostTSC.measureKHz(milliseconds: 20, cpuFlags: flags))
        let second = try #require(HostTSC.measureKHz(milliseconds: 20, cpuFlags: flags))
        #expect(first > 100_000 && first < 10_000_000)
        #expect(abs(first - second) * 10_000 < first)
    }
}
