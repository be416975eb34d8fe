import Foundation

extension HostVirtualization {
    /// Reads this host's facts.
    public static func probe() -> HostVirtualization {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        return HostVirtualization(
            cpuFlags: cpuFlags(fromCPUInfo: cpuinfo),
            kvmDeviceUsable: access("/dev/kvm", R_OK | W_OK) == 0,
            kvmIsPVM: FileManager.default.fileExists(atPath: "/sys/module/kvm_pvm"))
    }
}
