import Foundation
import HVCSystem
import OCI

/// What a clone's VMM starts from: the template's sealed memory and its verified device state.
struct CloneSource {
    let template: Template
    let memory: FileDescriptor
    let state: FileDescriptor
}

extension TemplateStore {
    /// The template for these inputs, made now if it is missing, corrupt or incomplete.
    public func ensure(runtime: Runtime, shape: VMShape, reference: String, inputs: TemplateInputs) throws(HVCError) -> Template {
        try cloneSource(runtime: runtime, shape: shape, reference: reference, inputs: inputs).template
    }

    /// Descriptors for one clone of the template for `inputs`: its memory loaded (starting its
    /// keeper if none runs) and its state file checked against the recorded digest. A
    /// template that fails either check is removed and made again, never used. Without
    /// `captures`, a missing or failing template is an error, never made: a pool's VM must not
    /// bring back a template that `hvc template rm` removed while it started.
    func cloneSource(runtime: Runtime, shape: VMShape, reference: String, inputs: TemplateInputs,
                     captures: Bool = true) throws(HVCError) -> CloneSource {
        let key = inputs.key
        try makeDirectory(directory, mode: 0o700)
        try makeDirectory(runDirectory, mode: 0o700)
        return try withLock(lockPath(key)) { () throws(HVCError) -> CloneSource in
            var problem = ""
            for _ in 0..<2 {
                if let template = load(key) {
                    if let source = try open(template, runtime: runtime, problem: &problem) { return source }
                    remove(key)
                }
                guard captures else {
                    throw HVCError(.notFound, "template \(key.prefix(12)) is gone" + (problem.isEmpty ? "" : " (\(problem))"))
                }
                _ = try TemplateCapture.capture(runtime: runtime, shape: shape, reference: reference, inputs: inputs)
                // A template of the same image and shape under another key has a stale input.
                for other in list() where other.key != key && other.inputs.imageID == inputs.imageID
                    && other.inputs.memoryMiB == inputs.memoryMiB && other.inputs.cpus == inputs.cpus
                    && other.inputs.accelerator == inputs.accelerator
                    && (other.inputs.networkInterface ?? false) == (inputs.networkInterface ?? false)
                    && (other.inputs.nested ?? false) == (inputs.nested ?? false) {
                    remove(other.key)
                }
            }
            throw HVCError("template \(key.prefix(12)) cannot be used: \(problem): run with --no-template")
        }
    }

    /// The clone source of a stored template, or nil (with the reason) when it is corrupt.
    private func open(_ template: Template, runtime: Runtime, problem: inout String) throws(HVCError) -> CloneSource? {
        let key = template.key
        guard let state = verifiedState(template) else {
            problem = "its device state does not match its digest"
            return nil
        }
        let size = template.inputs.memoryMiB << 20
        if let memory = TemplateKeeper.openMemory(store: self, key: key, size: size) {
            return CloneSource(template: template, memory: memory, state: state)
        }
        TemplateKeeper.stop(store: self, key: key)
        do {
            try TemplateKeeper.startKept(store: self, key: key, runtime: runtime)
        } catch {
            switch error {
            case .corrupt(let why):
                problem = why
                return nil
            case .failed(let why):
                throw HVCError("template \(key.prefix(12)): \(why)")
            }
        }
        guard let memory = TemplateKeeper.openMemory(store: self, key: key, size: size) else {
            throw HVCError("template \(key.prefix(12)): its keeper started but does not hold its memory")
        }
        return CloneSource(template: template, memory: memory, state: state)
    }

    /// The state file, open at its start, when its bytes match the template's digest.
    private func verifiedState(_ template: Template) -> FileDescriptor? {
        guard let state = try? FileDescriptor.open(statePath(template.key), O_RDONLY) else { return nil }
        var bytes: [UInt8] = []
        // Device state is tens of kilobytes; anything past a few megabytes is not ours.
        while bytes.count <= 4 << 20, let chunk = try? state.read(max: 1 << 16), !chunk.isEmpty { bytes += chunk }
        guard bytes.count <= 4 << 20, Digest.of(data: Data(bytes)).description == template.stateDigest,
              lseek(state.raw, 0, SEEK_SET) == 0 else { return nil }
        return state
    }
}
