import CLinux
import Foundation
import HVCSystem
import OCI
import VMM

/// Makes a template: boots a VM of the image, jailed as any other, with its RAM in a fresh
/// memfd; waits until the guest agent has opened its port (it then blocks writing `ready`
/// until a host connects, so every clone says `ready` to its own host); saves the device
/// state; and writes state and memory into the store.
enum TemplateCapture {
    static func capture(runtime: Runtime, shape: VMShape, reference: String, inputs: TemplateInputs) throws(HVCError) -> Template {
        let store = runtime.templates
        let key = inputs.key
        let staging = store.stagingPath(key)
        try? FileManager.default.removeItem(atPath: staging)
        try makeDirectory(staging, mode: 0o700)
        var complete = false
        defer { if !complete { try? FileManager.default.removeItem(atPath: staging) } }

        let memfd = hvc_memfd("hvc-capture-" + key.prefix(16))
        guard memfd >= 0 else { throw HVCError("template memory: \(Errno.current)") }
        let memory = FileDescriptor(memfd)
        guard ftruncate(memfd, off_t(inputs.memoryMiB << 20)) == 0 else { throw HVCError("template memory: \(Errno.current)") }
        let state: FileDescriptor
        do {
            state = try FileDescriptor.open(staging + "/state", O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        } catch {
            throw HVCError("template state", cause: error)
        }

        try boot(runtime: runtime, shape: shape, key: key, memory: memory, state: state)
        state.close()

        let memoryFile: FileDescriptor
        do {
            memoryFile = try FileDescriptor.open(staging + "/memory", O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        } catch {
            throw HVCError("template memory", cause: error)
        }
        let copied = try MemoryImage.copy(from: memfd, to: memoryFile.raw, size: inputs.memoryMiB << 20)
        guard fsync(memoryFile.raw) == 0 else { throw HVCError("template memory: \(Errno.current)") }
        let stateDigest: String
        do {
            stateDigest = try Digest.of(file: staging + "/state").digest.description
        } catch {
            throw HVCError("template state", cause: error)
        }
        let template = Template(
            key: key, inputs: inputs, image: reference, created: Date(), stateDigest: stateDigest,
            memoryDigest: copied.digest, memoryDataBytes: copied.dataBytes)
        try writeAtomically(staging + "/template.json", try JSONEncoder.hvc.encode(template))
        chmod(staging + "/template.json", 0o600)
        try? FileManager.default.removeItem(atPath: store.path(key))
        guard rename(staging, store.path(key)) == 0 else { throw HVCError("template \(store.path(key)): \(Errno.current)") }
        complete = true
        return template
    }

    /// Runs the capture VM to the point of saving, then ends it.
    private static func boot(runtime: Runtime, shape: VMShape, key: String, memory: FileDescriptor,
                             state: FileDescriptor) throws(HVCError) {
        let owner = "template-" + key
        let directory = try VMDirectory.create(in: runtime.paths.vms, id: owner)
        defer { directory.remove() }
        let request = VMRequest(owner: owner, tenant: "hvc-templates", imageReference: "", shape: shape, pidsLimit: 256,
                                servesFolders: false)
        let (vm, confinement): (any VirtualMachine, VMConfinement)
        do {
            (vm, confinement) = try VMLaunch.start(request, memory: .capture, memoryFD: memory.raw, bootsKernel: true,
                                                   directory: directory, runtime: runtime)
        } catch {
            throw HVCError("template VM", cause: error)
        }
        defer { confinement.release() }
        defer {
            vm.kill()
            _ = vm.waitForExit(timeoutSeconds: 5)
        }
        do {
            // A loaded two-core host under TCG can take several seconds to boot.
            try vm.captureState(to: state.raw, bootTimeoutSeconds: 120)
        } catch {
            throw HVCError("template VM", cause: error, detail: directory.diagnostics())
        }
    }
}
