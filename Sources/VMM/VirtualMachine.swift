import Jail

/// Everything that shapes one micro-VM.
public struct VMConfiguration: Equatable, Sendable {
    public var kernel: String
    public var initramfs: String
    /// The image's read-only root filesystem, shared by every VM of that image.
    public var rootDisk: String
    public var rootFilesystemType: String
    public var memoryMiB: Int
    public var cpus: Int
    public var accelerator: Accelerator
    /// Host side of the agent channel (a Unix socket QEMU listens on).
    public var agentSocket: String
    public var qmpSocket: String
    /// Where the guest's serial console goes.
    public var consoleLog: String
    /// Turn on QEMU's own seccomp sandbox (`-sandbox`).
    public var sandbox = true
    /// Where guest RAM comes from.
    public var memory: MemorySource = .anonymous
    /// How the guest keeps time.
    public var clock: GuestClock = .calibrated
    /// A virtio-net device on the TAP device passed as the VMM's fd 4.
    public var networkInterface = false
    /// The guest's CPU shows SVM (or, on a KVM host with nesting, the host's VMX/SVM), so its
    /// kernel's KVM works; otherwise both are hidden and the guest has no /dev/kvm.
    public var nested = false
    /// Under TCG, the guest's CPU shows ERMS and FSRM as QEMU's `max` does, so that its kernel
    /// and libc copy memory a byte per step; only to compare against (`HVC_GUEST_ERMS=on`).
    public var bytewiseCopies = false
    /// A virtio-9p device serving this directory (as the VMM sees it) under `sharesTag`, or nil.
    public var sharedFolders: String?

    public enum MemorySource: String, Equatable, Sendable {
        /// QEMU's own anonymous memory: a cold boot.
        case anonymous
        /// A template being captured: RAM is the file passed as fd 3, shared, and the VM
        /// starts paused so that the capturer watches it from the first instruction.
        case capture
        /// A clone: the template's RAM file mapped private, device state arriving by migration.
        case clone
    }

    public init(
        kernel: String, initramfs: String, rootDisk: String, rootFilesystemType: String = "erofs",
        memoryMiB: Int, cpus: Int, accelerator: Accelerator, agentSocket: String, qmpSocket: String,
        consoleLog: String
    ) {
        self.kernel = kernel
        self.initramfs = initramfs
        self.rootDisk = rootDisk
        self.rootFilesystemType = rootFilesystemType
        self.memoryMiB = memoryMiB
        self.cpus = cpus
        self.accelerator = accelerator
        self.agentSocket = agentSocket
        self.qmpSocket = qmpSocket
        self.consoleLog = consoleLog
    }
}

/// A running micro-VM, whatever runs it.
public protocol VirtualMachine: AnyObject, Sendable {
    var configuration: VMConfiguration { get }
    /// The VMM's process id on the host.
    var pid: Int32 { get }
    /// Opens the host end of the agent channel; waits for the VMM to offer it.
    func connectAgent(timeoutSeconds: Double) throws(VMError) -> FrameChannel
    /// Asks the VMM to stop at once (the guest gets no say).
    func stop() throws(VMError)
    /// Ends the VMM process by signal.
    func kill()
    /// Waits for the VMM to exit, at most `timeoutSeconds`; true when it did.
    func waitForExit(timeoutSeconds: Double) -> Bool
    /// Runs a VM launched paused for capture until its agent's port opens, then writes its
    /// device state to `state` (guest RAM stays in its file) and leaves it stopped.
    func captureState(to state: Int32, bootTimeoutSeconds: Double) throws(VMError)
    /// Loads the device state of a captured VM into this one (launched as a clone); the guest
    /// runs on by itself once the state is in.
    func restoreState(from state: Int32) throws(VMError)
    /// The VMM's root directory was renamed on the host (the VMM itself sees no change).
    func jailMoved(to hostRoot: String)
}

/// The one way a VM is made from its configuration: cold boot, capture and clone all come
/// through here, so that a second backend joins in one place.
public enum VMBuilder {
    /// Starts the VMM for `configuration`, confined by `jail` when given; its own output goes to
    /// `logPath`. `memoryFD` is the guest RAM file of a capture or a clone, `tapFD` the TAP
    /// device of a VM with a network interface.
    public static func launch(_ configuration: VMConfiguration, binary: String, logPath: String, jail: JailPlan?,
                              memoryFD: Int32 = -1, tapFD: Int32 = -1) throws(VMError) -> any VirtualMachine {
        try QEMUMachine.launch(configuration, binary: binary, logPath: logPath, jail: jail, memoryFD: memoryFD, tapFD: tapFD)
    }
}

public enum VMError: Error, Equatable, CustomStringConvertible {
    case launch(String)
    case agentUnavailable(String)
    case qmp(String)

    public var description: String {
        switch self {
        case .launch(let why): "VM would not start: \(why)"
        case .agentUnavailable(let why): "guest agent unreachable: \(why)"
        case .qmp(let why): "QMP: \(why)"
        }
    }
}
