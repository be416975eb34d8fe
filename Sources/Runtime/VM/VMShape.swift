import VMM

/// What shapes a VM: the image it boots, its memory, its CPUs and its accelerator. Made once per
/// launch; cold boot, template capture and clone all take their machine from it, and a template
/// serves exactly the VMs of one shape.
public struct VMShape: Sendable {
    public let image: Image
    public let memoryMiB: Int
    public let cpus: Int
    public let accelerator: Accelerator
    /// A virtio-net device (on a TAP device in the VM's own network namespace); containers
    /// with `--network none` have none.
    public let networkInterface: Bool
    /// The guest may run VMs of its own (`--nested`): its CPU shows SVM or VMX.
    public let nested: Bool

    public init(image: Image, memoryMiB: Int, cpus: Int, accelerator: Accelerator, networkInterface: Bool, nested: Bool = false) {
        self.image = image
        self.memoryMiB = memoryMiB
        self.cpus = cpus
        self.accelerator = accelerator
        self.networkInterface = networkInterface
        self.nested = nested
    }

    /// The machine as its jailed VMM sees it (every path the jail's), with guest RAM from
    /// `memory` and the clock the runtime gives guests under this accelerator.
    func configuration(_ memory: VMConfiguration.MemorySource, runtime: Runtime) -> VMConfiguration {
        var configuration = VMConfiguration(
            kernel: VMDirectory.Jailed.kernel, initramfs: VMDirectory.Jailed.initramfs,
            rootDisk: VMDirectory.Jailed.rootDisk, rootFilesystemType: image.rootfsType,
            memoryMiB: memoryMiB, cpus: cpus, accelerator: accelerator,
            agentSocket: VMDirectory.Jailed.agentSocket, qmpSocket: VMDirectory.Jailed.qmpSocket,
            consoleLog: VMDirectory.Jailed.consoleLog)
        configuration.memory = memory
        configuration.clock = runtime.guestClock(accelerator)
        configuration.bytewiseCopies = runtime.guestBytewiseCopies
        configuration.networkInterface = networkInterface
        configuration.nested = nested
        // Every VM has the device, so that one template serves runs with and without folders.
        configuration.sharedFolders = VMDirectory.Jailed.shares
        return configuration
    }
}
