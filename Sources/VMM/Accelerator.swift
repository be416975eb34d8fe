/// How QEMU executes guest code.
public enum Accelerator: String, Sendable, CaseIterable, Codable {
    /// Hardware virtualization through `/dev/kvm` (VMX or SVM).
    case kvm
    /// QEMU's binary translator: slower, works everywhere.
    case tcg
}

/// What the host offers, read from `/proc/cpuinfo`, `/dev/kvm` and `/sys/module`.
public struct HostVirtualization: Equatable, Sendable {
    public var cpuFlags: Set<String>
    public var kvmDeviceUsable: Bool
    /// The PVM flavour of KVM, which runs only PVM-enlightened guest kernels at speed.
    public var kvmIsPVM: Bool

    public init(cpuFlags: Set<String>, kvmDeviceUsable: Bool, kvmIsPVM: Bool) {
        self.cpuFlags = cpuFlags
        self.kvmDeviceUsable = kvmDeviceUsable
        self.kvmIsPVM = kvmIsPVM
    }

    /// The `flags` line of the first processor in `/proc/cpuinfo`.
    public static func cpuFlags(fromCPUInfo text: String) -> Set<String> {
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        }
        return []
    }

    public var hasHardwareVirtualization: Bool { cpuFlags.contains("vmx") || cpuFlags.contains("svm") }
}

/// The accelerator hvc uses, and why.
public struct AcceleratorChoice: Equatable, Sendable {
    public var accelerator: Accelerator
    public var reason: String

    public init(accelerator: Accelerator, reason: String) {
        self.accelerator = accelerator
        self.reason = reason
    }

    /// Picks `kvm` only where it can run our (non-PVM) kernel at speed; `requested`, from
    /// `--accel` or `HVC_ACCEL`, wins when given.
    public static func choose(host: HostVirtualization, requested: Accelerator? = nil) -> AcceleratorChoice {
        if let requested {
            return AcceleratorChoice(accelerator: requested, reason: "requested")
        }
        guard host.kvmDeviceUsable else {
            return AcceleratorChoice(accelerator: .tcg, reason: "/dev/kvm is missing or not accessible")
        }
        if host.kvmIsPVM {
            return AcceleratorChoice(
                accelerator: .tcg,
                reason: "/dev/kvm is PVM (kvm_pvm), which cannot run the non-PVM guest kernel at speed")
        }
        guard host.hasHardwareVirtualization else {
            return AcceleratorChoice(accelerator: .tcg, reason: "the CPU shows no vmx or svm flag")
        }
        return AcceleratorChoice(accelerator: .kvm, reason: "hardware virtualization (vmx/svm) and a usable /dev/kvm")
    }
}
