import AgentProtocol
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

    /// The QMP id of the agent's serial port (its VSERPORT_CHANGE events name it).
    public static let agentPortID = "agent0"
    static let memoryBackendID = "ram"
    /// Where a template's or clone's guest memory is: the descriptor the jail passes as fd 3.
    static let memoryPath = "/proc/self/fd/3"
    /// The VM's TAP device: the jail passes it as fd 4.
    static let tapFD = 4
    /// The MAC the device starts with; the guest agent sets the container's own before the
    /// interface comes up, so that every clone of one template gets a MAC of its own.
    public static let placeholderMAC = "02:00:00:00:00:01"

    public init(_ configuration: VMConfiguration) { self.configuration = configuration }

    /// The guest's CPU model. Under TCG it is QEMU's `max`, which emulates AMD's SVM with nested
    /// paging (not VMX); under KVM the host's. Virtualization shows only to a VM that nests.
    /// Under TCG, ERMS and FSRM are hidden: with them the guest's kernel and libc copy memory
    /// with `rep movsb`, which TCG runs a step per byte; without them they copy by words (a pipe
    /// in the guest moves 500 MB 3-8x faster).
    public static func cpuModel(accelerator: Accelerator, nested: Bool, bytewiseCopies: Bool) -> String {
        switch accelerator {
        case .kvm: return nested ? "host" : "host,vmx=off,svm=off"
        case .tcg: return (nested ? "max" : "max,svm=off") + (bytewiseCopies ? "" : ",erms=off,fsrm=off")
        }
    }

    public var cpu: String {
        let c = configuration
        return QEMUCommandLine.cpuModel(accelerator: c.accelerator, nested: c.nested, bytewiseCopies: c.bytewiseCopies)
    }

    /// Kernel parameters: quiet boot, reboot by triple fault (QEMU exits on it with
    /// `-no-reboot`), no reboot delay on panic, and where the agent finds the root image.
    public var kernelParameters: String {
        // A template's VM readies what its clones would otherwise each do on first use.
        let prewarm = configuration.memory == .capture ? ["hvc.prewarm=1"] : []
        return ([
            "console=ttyS0", "quiet", "reboot=t", "panic=-1", "random.trust_cpu=on",
            "hvc.root=vda", "hvc.rootfstype=\(configuration.rootFilesystemType)",
        ] + configuration.clock.kernelParameters + prewarm).joined(separator: " ")
    }

    /// QEMU option values are comma-separated: a comma inside a value is written twice.
    static func escaped(_ value: String) -> String { value.replacingOccurrences(of: ",", with: ",,") }

    public var arguments: [String] {
        let c = configuration
        let e = QEMUCommandLine.escaped
        var machine = "microvm,x-option-roms=off,isa-serial=on,rtc=on,acpi=off"
        if c.memory != .anonymous { machine += ",memory-backend=\(QEMUCommandLine.memoryBackendID)" }
        var args = ["-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-M", machine]
        args += ["-accel", c.accelerator == .kvm ? "kvm" : "tcg,tb-size=\(QEMUCommandLine.translationCacheMiB)", "-cpu", cpu]
        if c.sandbox {
            args += ["-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"]
        }
        args += ["-m", "\(c.memoryMiB)M", "-smp", "\(c.cpus)"]
        switch c.memory {
        case .anonymous:
            break
        case .capture:
            args += ["-object", memoryBackend(share: true), "-S"]
        case .clone:
            args += ["-object", memoryBackend(share: false), "-incoming", "defer"]
            // No self-announcement after the restore: its RARP broadcasts (five rounds) would
            // wake every VM on the clone's network. The guest's own first frames teach the bridge.
            if c.networkInterface { args += ["-global", "migration.announce-rounds=0"] }
        }
        // A clone's kernel is already in the memory it starts from.
        if c.memory != .clone {
            args += ["-kernel", c.kernel, "-initrd", c.initramfs, "-append", kernelParameters]
        }
        args += [
            "-chardev", "file,id=console,path=\(e(c.consoleLog))", "-serial", "chardev:console",
            "-drive", "id=root,file=\(e(c.rootDisk)),format=raw,if=none,readonly=on",
            "-device", "virtio-blk-device,drive=root",
            "-device", "virtio-serial-device,max_ports=2",
            "-chardev", "socket,id=agent,path=\(e(c.agentSocket)),server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=hvc.agent,id=\(QEMUCommandLine.agentPortID)",
            "-qmp", "unix:\(e(c.qmpSocket)),server=on,wait=off",
        ]
        if let shares = c.sharedFolders {
            // passthrough: files get the guest writer's uid and gid, as with Docker's bind mounts.
            // remap: the shared folders are mounts of their own below the exported directory.
            args += [
                "-fsdev", "local,id=shares,path=\(e(shares)),security_model=passthrough,multidevs=remap",
                "-device", "virtio-9p-device,fsdev=shares,mount_tag=\(GuestMount.sharesTag)",
            ]
        }
        if c.networkInterface {
            args += [
                "-netdev", "tap,id=net0,fd=\(QEMUCommandLine.tapFD)",
                "-device", "virtio-net-device,netdev=net0,mac=\(QEMUCommandLine.placeholderMAC)",
            ]
        }
        return args
    }

    /// Guest RAM from the file at fd 3: written through for a template being captured,
    /// mapped private (copy-on-write) for a clone.
    private func memoryBackend(share: Bool) -> String {
        "memory-backend-file,id=\(QEMUCommandLine.memoryBackendID),size=\(configuration.memoryMiB)M,"
            + "mem-path=\(QEMUCommandLine.memoryPath),share=\(share ? "on" : "off")"
    }
}
