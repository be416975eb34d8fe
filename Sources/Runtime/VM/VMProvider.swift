import Foundation
import HVCSystem
import VMM

/// A VM started for a container, or for a pool to hand to one: its VMM, its confinement (none
/// for a stand-in VM that confines nothing), and the template it was cloned from.
final class LaunchedVM: @unchecked Sendable {
    // @unchecked: set up once by its provider, then owned by one supervisor.
    let vm: any VirtualMachine
    let confinement: VMConfinement?
    let template: Template?
    /// A clone's device state, loaded by `restore`.
    let deviceState: FileDescriptor?
    /// The agent channel, once connected.
    var channel: FrameChannel?

    init(vm: any VirtualMachine, confinement: VMConfinement?, template: Template? = nil, deviceState: FileDescriptor? = nil) {
        self.vm = vm
        self.confinement = confinement
        self.template = template
        self.deviceState = deviceState
    }
}

/// The agent channel of a provided VM, and how far the guest's greeting has come.
struct AgentLink {
    enum Greeting {
        /// A cold boot: `ready` comes first, then the session is sent.
        case awaited
        /// A clone runs already: the session goes out at once and waits behind its `ready`
        /// (the clock it carries is still current when read).
        case pipelined
        /// A pooled VM: its `ready` was taken before the claim.
        case taken
    }

    let channel: FrameChannel
    let greeting: Greeting
}

/// Where a container's VM comes from: booted cold, cloned from a template, or a pooled VM. The
/// supervisor calls these in order; anything it adopts it tears down, whichever step fails.
protocol VMProvider: Sendable {
    /// The directory the VM runs in, under the container's id in `parent`.
    func directory(for id: String, in parent: String) throws(HVCError) -> VMDirectory
    /// Starts the VMM, handing it to `adopt` the moment it exists.
    func launch(in directory: VMDirectory, timing: RunTiming?, adopt: (LaunchedVM) throws(HVCError) -> Void) throws(HVCError) -> LaunchedVM
    /// Brings the guest to life where its VMM alone does not (a clone's device state).
    func restore(_ launched: LaunchedVM, in directory: VMDirectory, timing: RunTiming?) throws(HVCError)
    /// Opens the agent channel.
    func connect(_ launched: LaunchedVM, in directory: VMDirectory) throws(HVCError) -> AgentLink
}

extension VMProvider {
    /// A fresh directory named after the container.
    func directory(for id: String, in parent: String) throws(HVCError) -> VMDirectory {
        try VMDirectory.create(in: parent, id: id)
    }

    /// Nothing to restore: the VMM boots or runs by itself.
    func restore(_ launched: LaunchedVM, in directory: VMDirectory, timing: RunTiming?) throws(HVCError) {}
}

/// What a VM is launched for: its owner and tenant, its shape (the image resolved once), and
/// its confinement's needs.
struct VMRequest: Sendable {
    var owner: String
    var tenant: String
    var imageReference: String
    var shape: VMShape
    var pidsLimit: Int
    /// Host folders will be shared into the VM (its container's, or a pool's future one's).
    var servesFolders: Bool
    /// See `VMConfinement.Request.joinedInterface`.
    var joinedInterface: JoinedInterface? = nil

    /// A container's VM: its image (by id), size, accelerator and needs.
    init(_ config: ContainerConfig, runtime: Runtime) throws(HVCError) {
        let image = try runtime.images.resolve(config.imageID)
        owner = config.id
        tenant = config.tenant
        imageReference = config.image
        shape = VMShape(image: image, memoryMiB: config.memoryMiB, cpus: config.cpus, accelerator: config.accelerator,
                        networkInterface: config.network != nil || config.joinedInterface != nil, nested: config.nested ?? false)
        pidsLimit = config.pidsLimit
        servesFolders = config.sharesFolders
        joinedInterface = config.joinedInterface
    }

    init(owner: String, tenant: String, imageReference: String, shape: VMShape, pidsLimit: Int, servesFolders: Bool) {
        self.owner = owner
        self.tenant = tenant
        self.imageReference = imageReference
        self.shape = shape
        self.pidsLimit = pidsLimit
        self.servesFolders = servesFolders
    }
}

/// The one launch every VM goes through (cold, clone, capture): confinement, then the VMM in
/// its jail, recorded in its directory. Returns the VM and its confinement; on failure nothing
/// is left.
enum VMLaunch {
    static func start(_ request: VMRequest, memory: VMConfiguration.MemorySource, memoryFD: Int32, bootsKernel: Bool,
                      directory: VMDirectory, runtime: Runtime, timing: RunTiming? = nil) throws(HVCError) -> (any VirtualMachine, VMConfinement) {
        let configuration = request.shape.configuration(memory, runtime: runtime)
        let confinement = try VMConfinement.make(
            .init(owner: request.owner, tenant: request.tenant, shape: request.shape, pidsLimit: request.pidsLimit,
                  bootsKernel: bootsKernel, servesFolders: request.servesFolders, joinedInterface: request.joinedInterface),
            directory: directory, runtime: runtime)
        timing?.mark("launch")
        let vm: any VirtualMachine
        do {
            vm = try VMBuilder.launch(configuration, binary: runtime.qemuBinary, logPath: directory.vmmLog,
                                      jail: confinement.plan, memoryFD: memoryFD, tapFD: confinement.tap?.raw ?? -1)
        } catch {
            confinement.release()
            throw HVCError(cause: error)
        }
        do {
            try directory.recordVMM(pid: vm.pid)
        } catch {
            vm.kill()
            _ = vm.waitForExit(timeoutSeconds: 5)
            confinement.release()
            throw error
        }
        return (vm, confinement)
    }

    /// Connects to the agent of a launched VM.
    static func connect(_ launched: LaunchedVM, directory: VMDirectory) throws(HVCError) -> FrameChannel {
        do {
            let channel = try launched.vm.connectAgent(timeoutSeconds: 60)
            launched.channel = channel
            return channel
        } catch {
            throw HVCError(cause: error, detail: directory.diagnostics())
        }
    }
}

/// A VM booted from the kernel: slow, and needs nothing made before.
struct ColdBoot: VMProvider {
    let request: VMRequest
    let runtime: Runtime

    func launch(in directory: VMDirectory, timing: RunTiming?, adopt: (LaunchedVM) throws(HVCError) -> Void) throws(HVCError) -> LaunchedVM {
        try runtime.checkAssets()
        let (vm, confinement) = try VMLaunch.start(request, memory: .anonymous, memoryFD: -1, bootsKernel: true,
                                                   directory: directory, runtime: runtime, timing: timing)
        let launched = LaunchedVM(vm: vm, confinement: confinement)
        try adopt(launched)
        return launched
    }

    func connect(_ launched: LaunchedVM, in directory: VMDirectory) throws(HVCError) -> AgentLink {
        AgentLink(channel: try VMLaunch.connect(launched, directory: directory), greeting: .awaited)
    }
}

/// A clone of the image's template (captured first if there is none): its memory mapped
/// copy-on-write, its device state loaded; it runs on from where the template stopped.
struct TemplateClone: VMProvider {
    let request: VMRequest
    let runtime: Runtime
    /// Makes the template when it is missing (a pool's VM clones only one that exists).
    var capturesTemplate = true

    func launch(in directory: VMDirectory, timing: RunTiming?, adopt: (LaunchedVM) throws(HVCError) -> Void) throws(HVCError) -> LaunchedVM {
        try runtime.checkAssets()
        let templates = runtime.templates
        let inputs = try templates.inputs(runtime: runtime, shape: request.shape)
        let clone = try templates.cloneSource(runtime: runtime, shape: request.shape, reference: request.imageReference, inputs: inputs,
                                             captures: capturesTemplate)
        timing?.mark("template")
        let (vm, confinement) = try VMLaunch.start(request, memory: .clone, memoryFD: clone.memory.raw, bootsKernel: false,
                                                   directory: directory, runtime: runtime, timing: timing)
        let launched = LaunchedVM(vm: vm, confinement: confinement, template: clone.template, deviceState: clone.state)
        try adopt(launched)
        return launched
    }

    func restore(_ launched: LaunchedVM, in directory: VMDirectory, timing: RunTiming?) throws(HVCError) {
        guard let state = launched.deviceState, let template = launched.template else { return }
        do {
            try launched.vm.restoreState(from: state.raw)
        } catch {
            throw HVCError("restoring the VM from template \(template.key.prefix(12))", cause: error, detail: directory.diagnostics())
        }
        timing?.mark("restored")
    }

    func connect(_ launched: LaunchedVM, in directory: VMDirectory) throws(HVCError) -> AgentLink {
        AgentLink(channel: try VMLaunch.connect(launched, directory: directory), greeting: .pipelined)
    }
}

/// A pooled VM handed to a container: up, connected, its `ready` taken. Its directory moves
/// to the container's id.
struct PooledVM: VMProvider {
    let launched: LaunchedVM
    let directory: VMDirectory

    func directory(for id: String, in parent: String) throws(HVCError) -> VMDirectory {
        try directory.move(in: parent, id: id)
    }

    func launch(in directory: VMDirectory, timing: RunTiming?, adopt: (LaunchedVM) throws(HVCError) -> Void) throws(HVCError) -> LaunchedVM {
        launched.vm.jailMoved(to: directory.jailRoot)
        try adopt(launched)
        return launched
    }

    func connect(_ launched: LaunchedVM, in directory: VMDirectory) throws(HVCError) -> AgentLink {
        guard let channel = launched.channel else { throw HVCError("pooled VM has no agent channel") }
        return AgentLink(channel: channel, greeting: .taken)
    }
}
