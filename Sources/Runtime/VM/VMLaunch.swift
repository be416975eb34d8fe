import Foundation
import VMM

/// A VM started for a container, or for a pool to hand to one: its VMM, its confinement, and
/// the template it was cloned from (nil for a cold boot).
final class LaunchedVM: @unchecked Sendable {
    // @unchecked: set up once by `VMLaunch.launch`, then owned by one supervisor.
    let vm: any VirtualMachine
    let confinement: VMConfinement
    let template: Template?
    /// The agent channel, once connected.
    var channel: FrameChannel?

    init(vm: any VirtualMachine, confinement: VMConfinement, template: Template?) {
        self.vm = vm
        self.confinement = confinement
        self.template = template
    }
}

/// Starts a container's VM: cloned from the image's template (made if need be), or booted cold.
enum VMLaunch {
    /// What a container's supervisor asks for; the image is resolved from its id at launch.
    struct Request {
        var owner: String
        var tenant: String
        var imageReference: String
        var imageID: String
        var memoryMiB: Int
        var cpus: Int
        var pidsLimit: Int
        var accelerator: Accelerator
        var networkInterface: Bool
        var fromTemplate: Bool
        /// Host folders will be shared into the VM (its container's, or a pool's future one's).
        var servesFolders: Bool
        /// See `VMConfinement.Request.joinedInterface`.
        var joinedInterface: JoinedInterface? = nil
        /// See `VMShape.nested`.
        var nested = false
    }

    /// Launches the VMM jailed in `directory` and, for a clone, restores its device state.
    /// `launched` sees the VM as soon as it exists, so that the caller can tear it down on failure.
    static func launch(_ request: Request, directory: VMDirectory, runtime: Runtime, timing: RunTiming?,
                       launched: (LaunchedVM) throws(HVCError) -> Void) throws(HVCError) {
        try runtime.checkAssets()
        let shape = VMShape(image: try runtime.images.resolve(request.imageID), memoryMiB: request.memoryMiB,
                            cpus: request.cpus, accelerator: request.accelerator, networkInterface: request.networkInterface,
                            nested: request.nested)
        var clone: CloneSource?
        if request.fromTemplate {
            let templates = runtime.templates
            let inputs = try templates.inputs(runtime: runtime, shape: shape)
            clone = try templates.cloneSource(runtime: runtime, shape: shape, reference: request.imageReference, inputs: inputs)
            timing?.mark("template")
        }
        let configuration = shape.configuration(clone == nil ? .anonymous : .clone, runtime: runtime)
        let confinement = try VMConfinement.make(
            .init(owner: request.owner, tenant: request.tenant, shape: shape, pidsLimit: request.pidsLimit,
                  bootsKernel: clone == nil, servesFolders: request.servesFolders,
                  joinedInterface: request.joinedInterface),
            directory: directory, runtime: runtime)
        timing?.mark("launch")
        let vm: any VirtualMachine
        do {
            vm = try VMBuilder.launch(configuration, binary: runtime.qemuBinary, logPath: directory.vmmLog,
                                      jail: confinement.plan, memoryFD: clone?.memory.raw ?? -1, tapFD: confinement.tap?.raw ?? -1)
        } catch {
            confinement.release()
            throw HVCError("\(error)")
        }
        try launched(LaunchedVM(vm: vm, confinement: confinement, template: clone?.template))
        try directory.recordVMM(pid: vm.pid)
        if let clone {
            do {
                try vm.restoreState(from: clone.state.raw)
            } catch {
                throw HVCError("restoring the VM from template \(clone.template.key.prefix(12)): \(error)\(directory.diagnostics())")
            }
            timing?.mark("restored")
        }
    }

    /// Connects to the agent of a launched VM.
    static func connect(_ launched: LaunchedVM, directory: VMDirectory) throws(HVCError) -> FrameChannel {
        do {
            let channel = try launched.vm.connectAgent(timeoutSeconds: 60)
            launched.channel = channel
            return channel
        } catch {
            throw HVCError("\(error)\(directory.diagnostics())")
        }
    }
}
