import Foundation

/// Builds the QEMU `microvm` command line for a `VMConfiguration`.
///
/// microvm with `acpi=off` describes its virtio-mmio devices on the kernel command line, which
/// our ACPI-less kernel needs; the kernel is a PVH ELF booted directly with no firmware.
public struct QEMUCommandLine: Sendable {
    public let configuration: VMConfiguration

    /// TCG's translated-code cache; bounded so that the VMM's memory limit can be stated.
    public static let translationCacheMiB = 64
    /// What QEMU itself needs beyond guest RAM: the translation cache and its own heap.
    public static let overheadMiB = translationCacheMiB + 96

    public init(_ configuration: VMConfiguration) { self.configuration = configuration }

    /// Kernel parameters: quiet boot, reboot by triple fault (QEMU exits on it with
    /// `-no-reboot`), no reboot delay on panic, and where the agent finds the root image.
    public var kernelParameters: String {
        [
            "console=ttyS0", "quiet", "reboot=t", "panic=-1", "random.trust_cpu=on",
            "hvc.root=vda", "hvc.rootfstype=\(configuration.rootFilesystemType)",
        ].joined(separator: " ")
    }

    /// QEMU option values are comma-separated: a comma inside a value is written twice.
    static func escaped(_ value: String) -> String { value.replacingOccurrences(of: ",", with: ",,") }

    public var arguments: [String] {
        let c = configuration
        let e = QEMUCommandLine.escaped
        var args = [
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on,acpi=off",
        ]
        switch c.accelerator {
        case .kvm: args += ["-accel", "kvm", "-cpu", "host"]
        case .tcg: args += ["-accel", "tcg,tb-size=\(QEMUCommandLine.translationCacheMiB)", "-cpu", "max"]
        }
        if c.sandbox {
            args += ["-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"]
        }
        args += [
            "-m", "\(c.memoryMiB)M", "-smp", "\(c.cpus)",
            "-kernel", c.kernel, "-initrd", c.initramfs, "-append", kernelParameters,
            "-chardev", "file,id=console,path=\(e(c.consoleLog))", "-serial", "chardev:console",
            "-drive", "id=root,file=\(e(c.rootDisk)),format=raw,if=none,readonly=on",
            "-device", "virtio-blk-device,drive=root",
            "-device", "virtio-serial-device,max_ports=2",
            "-chardev", "socket,id=agent,path=\(e(c.agentSocket)),server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=hvc.agent",
            "-qmp", "unix:\(e(c.qmpSocket)),server=on,wait=off",
        ]
        return args
    }
}
