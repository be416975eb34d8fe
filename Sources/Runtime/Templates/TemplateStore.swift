import Foundation
import HVCSystem
import OCI
import VMM

/// Everything that shapes a booted guest: a template made from these inputs serves only VMs
/// with the same ones. Its key is the digest of all of them.
public struct TemplateInputs: Codable, Equatable, Sendable {
    public var hvcVersion: String
    /// The QEMU binary, by path, size and modification time.
    public var qemu: String
    public var kernelDigest: String
    public var agentDigest: String
    public var imageID: String
    public var rootfsType: String
    public var memoryMiB: Int
    public var cpus: Int
    public var accelerator: Accelerator
    /// Whether the VM has a network interface (nil in templates made before there were any).
    public var networkInterface: Bool?
    /// Whether the VM's CPU lets its guest run KVM (`--nested`); nil: no.
    public var nested: Bool?
    /// The digest of the capture command line: machine type and device layout.
    public var machineDigest: String

    public var key: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = (try? encoder.encode(self)) ?? Data()
        return Digest.of(data: data).hex
    }
}

/// A captured VM: the guest's memory and device state just after its agent came up.
public struct Template: Codable, Equatable, Sendable {
    public var key: String
    public var inputs: TemplateInputs
    /// The image reference it was made for (for display).
    public var image: String
    public var created: Date
    public var stateDigest: String
    public var memoryDigest: String
    /// Bytes of guest memory that are not zero: what the template's memory costs, shared.
    public var memoryDataBytes: Int
}

/// Templates under `<root>/templates/<key>/`: `template.json`, the device state (`state`) and
/// the guest memory image (`memory`, sparse), all root-only. A template directory appears by
/// rename once complete; its memory is served to clones by a keeper process (`TemplateKeeper`).
public struct TemplateStore: Sendable {
    public let directory: String
    /// Keeper records and the asset digest cache (volatile).
    public let runDirectory: String

    public init(paths: RuntimePaths) {
        directory = paths.root + "/templates"
        runDirectory = paths.runRoot + "/templates"
    }

    func path(_ key: String) -> String { directory + "/" + key }
    func recordPath(_ key: String) -> String { path(key) + "/template.json" }
    func statePath(_ key: String) -> String { path(key) + "/state" }
    func memoryPath(_ key: String) -> String { path(key) + "/memory" }
    func keeperPath(_ key: String) -> String { runDirectory + "/" + key + ".keeper" }
    func lockPath(_ key: String) -> String { directory + "/." + key + ".lock" }

    /// The inputs of a VM of `image` with this shape, read from the assets and QEMU on disk.
    public func inputs(runtime: Runtime, shape: VMShape) throws(HVCError) -> TemplateInputs {
        var qemu = stat()
        guard stat(runtime.qemuBinary, &qemu) == 0 else { throw HVCError("\(runtime.qemuBinary): \(Errno.current)") }
        let commandLine = QEMUCommandLine(shape.configuration(.capture, runtime: runtime)).arguments.joined(separator: "\u{0}")
        return TemplateInputs(
            hvcVersion: Runtime.version,
            qemu: "\(runtime.qemuBinary):\(qemu.st_size):\(qemu.st_mtim.tv_sec).\(qemu.st_mtim.tv_nsec)",
            kernelDigest: try cachedDigest(runtime.paths.kernel),
            agentDigest: try cachedDigest(runtime.paths.initramfs),
            imageID: shape.image.id, rootfsType: shape.image.rootfsType,
            memoryMiB: shape.memoryMiB, cpus: shape.cpus, accelerator: shape.accelerator,
            networkInterface: shape.networkInterface, nested: shape.nested ? true : nil,
            machineDigest: Digest.of(data: Data(commandLine.utf8)).description)
    }

    /// A file's digest, remembered under the run directory by device, inode, size and both
    /// times, so that a run does not re-read the kernel; any change to the file changes ctime.
    func cachedDigest(_ file: String) throws(HVCError) -> String {
        var info = stat()
        guard stat(file, &info) == 0 else { throw HVCError("\(file): \(Errno.current)") }
        let identity = "\(info.st_dev):\(info.st_ino):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec):\(info.st_ctim.tv_sec).\(info.st_ctim.tv_nsec)"
        let cache = runDirectory + "/digests/" + Digest.of(data: Data(file.utf8)).hex
        if let text = try? String(contentsOfFile: cache, encoding: .utf8) {
            let parts = text.split(separator: " ")
            if parts.count == 2, parts[0] == identity { return String(parts[1]) }
        }
        let digest: String
        do {
            digest = try Digest.of(file: file).digest.description
        } catch {
            throw HVCError("\(file)", cause: error)
        }
        try? makeDirectory(runDirectory + "/digests", mode: 0o700)
        try? writeAtomically(cache, Data("\(identity) \(digest)".utf8))
        return digest
    }

    static let stagingPrefix = ".staging-"

    /// Where this process's capture of `key` writes the template before renaming it into place:
    /// `<prefix><key's first 16>-<pid>-<start>` (see `ProcessStamp`).
    func stagingPath(_ key: String) -> String {
        directory + "/" + TemplateStore.stagingPrefix + key.prefix(16) + "-" + ProcessStamp.current.nameComponent
    }

    /// The capture that a staging directory's name names.
    static func stagingCapturer(_ name: String) -> ProcessStamp? {
        guard name.hasPrefix(stagingPrefix) else { return nil }
        return ProcessStamp(parsing: name.dropFirst(stagingPrefix.count).drop { $0 != "-" }.dropFirst(), separator: "-")
    }

    /// Every complete template. What captures whose process died left half-written goes on the way.
    public func list() -> [Template] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names {
            guard let capturer = TemplateStore.stagingCapturer(name), !capturer.isAlive else { continue }
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
        return names.filter { !$0.hasPrefix(".") }.compactMap { load($0) }.sorted { $0.created < $1.created }
    }

    /// A template key: a SHA-256 in hex (one path component, nothing else).
    static func isKey(_ text: String) -> Bool { text.isLowercaseHex(length: 64) }

    func load(_ key: String) -> Template? {
        guard let data = FileManager.default.contents(atPath: recordPath(key)),
              let template = try? JSONDecoder.hvc.decode(Template.self, from: data), template.key == key,
              template.inputs.key == key else { return nil }
        return template
    }

    /// The templates whose key starts with `prefix`; an empty result is an error.
    public func resolve(_ prefix: String) throws(HVCError) -> Template {
        let matches = list().filter { $0.key.hasPrefix(prefix) }
        guard !prefix.isEmpty, let first = matches.first else {
            throw HVCError(.notFound, "no template \"\(prefix)\": see `hvc template ls`")
        }
        guard matches.count == 1 else { throw HVCError(.conflict, "template prefix \"\(prefix)\" is ambiguous: give more of the key") }
        return first
    }

    /// Removes a template: its keeper stops, and clones already running keep their memory.
    public func remove(_ key: String) {
        TemplateKeeper.stop(store: self, key: key)
        // The record of a keeper that was killed, which `stop` does not find running.
        unlink(keeperPath(key))
        try? FileManager.default.removeItem(atPath: path(key))
        unlink(lockPath(key))
    }

    /// Whether the keeper of `key` runs (its memory is loaded and sealed).
    public func isLoaded(_ key: String) -> Bool { TemplateKeeper.running(store: self, key: key) != nil }
}

extension Runtime {
    public var templates: TemplateStore { TemplateStore(paths: paths) }
}

extension TemplateStore {
    /// Whether a run of the template's image and shape would use it now: its image is still
    /// stored and no other input (kernel, agent, QEMU, hvc) has changed.
    public func isCurrent(_ template: Template, runtime: Runtime) -> Bool {
        guard let image = try? runtime.images.resolve(template.inputs.imageID),
              let now = try? inputs(runtime: runtime, shape: VMShape(image: image, memoryMiB: template.inputs.memoryMiB,
                                                                     cpus: template.inputs.cpus,
                                                                     accelerator: template.inputs.accelerator,
                                                                     networkInterface: template.inputs.networkInterface ?? false,
                                                                     nested: template.inputs.nested ?? false)) else { return false }
        return now.key == template.key
    }
}

extension String {
    /// Exactly `length` lowercase hex digits: how hvc's digests and names of them are spelled.
    func isLowercaseHex(length: Int) -> Bool {
        utf8.count == length && utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}
