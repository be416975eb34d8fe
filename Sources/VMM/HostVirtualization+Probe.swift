import Foundation

extension HostVirtualization {
    /// Reads this host's facts.
    public static func probe() -> HostVirtualization {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        var host = HostVirtualization(
            cpuFlags: cpuFlags(fromCPUInfo: cpuinfo),
            kvmDeviceUsable: access("/dev/kvm", R_OK | W_OK) == 0,
            kvmIsPVM: FileManager.default.fileExists(atPath: "/sys/module/kvm_pvm"))
        for module in ["kvm_intel", "kvm_amd"] {
            guard let value = try? String(contentsOfFile: "/sys/module/\(module)/parameters/nested", encoding: .utf8) else { continue }
            let flag = value.trimmingCharacters(in: .whitespacesAndNewlines)
            host.kvmNesting = KVMNesting(enabled: flag == "Y" || flag == "1", module: module)
        }
        return host
    }
}
