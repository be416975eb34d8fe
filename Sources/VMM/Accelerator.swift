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

    /// Whether the host's KVM lets its guests run KVM of their own (the `nested` parameter of
    /// kvm_intel or kvm_amd), and which module says so.
    public var kvmNesting: KVMNesting? = nil

    public struct KVMNesting: Equatable, Sendable {
        public var enabled: Bool
        public var module: String
        public init(enabled: Bool, module: String) {
            self.enabled = enabled
            self.module = module
        }
    }
}

/// Whether a guest can have KVM of its own (`--nested`), and how.
public enum Nesting: Equatable, Sendable, CustomStringConvertible {
    /// TCG's emulated AMD SVM with nested paging: works on any host, at TCG's speed.
    case emulatedSVM
    /// The host's VMX or SVM, passed through (`-cpu host`); `module` has nesting on.
    case hardware(module: String)
    case unavailable(reason: String)

    public static func choose(accelerator: Accelerator, host: HostVirtualization) -> Nesting {
        switch accelerator {
        case .tcg:
            return .emulatedSVM
        case .kvm:
            guard let nesting = host.kvmNesting else { return .unavailable(reason: "the host's KVM module (kvm_intel or kvm_amd) is not loaded") }
            guard nesting.enabled else {
                return .unavailable(reason: "\(nesting.module) has nesting off: load it with nested=1 (modprobe \(nesting.module) nested=1)")
            }
            return .hardware(module: nesting.module)
        }
    }

    public var isAvailable: Bool { if case .unavailable = self { false } else { true } }

    public var description: String {
        switch self {
        case .emulatedSVM: "emulated SVM (TCG, nested paging)"
        case .hardware(let module): "hardware (\(module) nested=1; exposes more of the host's KVM to guests)"
        case .unavailable(let reason): "unavailable: \(reason)"
        }
    }
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
