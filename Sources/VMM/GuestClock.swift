import CLinux
import Foundation

/// How a guest keeps time, chosen per accelerator. A guest on a tick-based clock (jiffies) can
/// neither idle without a periodic tick nor read time finer than 10 ms.
public enum GuestClock: Equatable, Sendable {
    /// KVM: the paravirtual kvm-clock, which the guest kernel finds and prefers by itself.
    case kvmClock
    /// TCG: the guest's TSC runs at the host's rate (QEMU reads the host's counter), but under
    /// emulation the kernel cannot calibrate it against a timer; it is told the frequency and
    /// that the counter is reliable, so that it need not watch it against a coarser clock.
    case tsc(kHz: Int)
    /// The frequency is unknown (no invariant TSC on the host): the kernel calibrates if it can.
    case calibrated

    /// Chooses the clock for `accelerator`; `hostTSCKHz` is the host's measured TSC frequency.
    public static func choose(accelerator: Accelerator, hostTSCKHz: Int?) -> GuestClock {
        switch accelerator {
        case .kvm: .kvmClock
        case .tcg: hostTSCKHz.map { .tsc(kHz: $0) } ?? .calibrated
        }
    }

    /// What the guest kernel is told on its command line.
    public var kernelParameters: [String] {
        switch self {
        case .tsc(let kHz): ["tsc_early_khz=\(kHz)", "tsc=reliable"]
        case .kvmClock, .calibrated: []
        }
    }

    /// One line for `hvc info`.
    public var explanation: String {
        switch self {
        case .kvmClock: "kvm-clock (paravirtual, from KVM)"
        case .tsc(let kHz): "tsc at the host's \(String(format: "%.3f", Double(kHz) / 1000)) MHz, given to the guest (TCG cannot let it calibrate)"
        case .calibrated: "calibrated by the guest (the host's TSC is not invariant); may fall back to jiffies"
        }
    }
}

/// The host's time-stamp counter frequency.
public enum HostTSC {
    /// Measures the TSC against `CLOCK_MONOTONIC` (the rate the host's wall clock keeps) over
    /// `milliseconds`; nil without an invariant TSC (`constant_tsc` in /proc/cpuinfo), whose
    /// rate a guest could not rely on. Each end takes the clock read that the two counter reads
    /// around it bracket most tightly: on a VM host a read can be delayed by tens of µs.
    public static func measureKHz(milliseconds: Int = 50, cpuFlags: Set<String>) -> Int? {
        guard cpuFlags.contains("constant_tsc") else { return nil }
        func sample() -> (tsc: Double, ns: Double) {
            var best = (width: UInt64.max, tsc: 0.0, ns: 0.0)
            for _ in 0..<50 {
                var time = timespec()
                let before = hvc_rdtsc()
                clock_gettime(CLOCK_MONOTONIC, &time)
                let after = hvc_rdtsc()
                guard after >= before, after - before < best.width else { continue }
                best = (after - before, Double(before) / 2 + Double(after) / 2, Double(time.tv_sec) * 1e9 + Double(time.tv_nsec))
            }
            return (best.tsc, best.ns)
        }
        let start = sample()
        usleep(useconds_t(milliseconds * 1000))
        let end = sample()
        guard end.tsc > start.tsc, end.ns > start.ns else { return nil }
        let kHz = (end.tsc - start.tsc) / (end.ns - start.ns) * 1_000_000
        return kHz.isFinite && kHz > 1000 ? Int(kHz.rounded()) : nil
    }

    /// The frequency measured once per host boot and kept in `file` (with the boot id), so that
    /// every VM of a boot, and every template key, sees one value. `cpuFlags` is read only when
    /// the value must be measured: every VM launch asks.
    public static func frequencyKHz(cachedIn file: String, cpuFlags: () -> Set<String>) -> Int? {
        let bootID = ((try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        func cached() -> Int?? {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
            let fields = text.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            guard fields.count == 2, fields[1] == bootID else { return nil }
            return .some(fields[0] == "none" ? nil : Int(fields[0]))
        }
        if let known = cached() { return known }
        unlink(file)
        let kHz = measureKHz(cpuFlags: cpuFlags())
        try? FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        let temporary = file + ".\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data("\(kHz.map(String.init) ?? "none") \(bootID)\n".utf8)) else {
            return kHz
        }
        defer { unlink(temporary) }
        // The first writer wins, so that concurrent first runs agree on one value.
        if link(temporary, file) != 0, let known = cached() { return known }
        return kHz
    }
}
