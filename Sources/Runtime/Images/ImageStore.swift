import Foundation
import HVCSystem
import OCI

/// The parts of an OCI image configuration that decide how a container starts.
public struct ImageConfig: Codable, Equatable, Sendable {
    public var entrypoint: [String]?
    public var cmd: [String]?
    public var env: [String]?
    public var workingDir: String?
    public var user: String?
    /// `80/tcp`, `53/udp`: what `run -P` publishes.
    public var exposedPorts: [String]?
    /// Paths that get an anonymous volume in every container (the image's `VOLUME`s).
    public var volumes: [String]?
    /// The image's `HEALTHCHECK`.
    public var healthcheck: Healthcheck?

    enum CodingKeys: String, CodingKey {
        case entrypoint = "Entrypoint", cmd = "Cmd", env = "Env", workingDir = "WorkingDir", user = "User"
        case exposedPorts = "ExposedPorts", volumes = "Volumes", healthcheck = "Healthcheck"
    }

    public init(entrypoint: [String]? = nil, cmd: [String]? = nil, env: [String]? = nil,
                workingDir: String? = nil, user: String? = nil, exposedPorts: [String]? = nil, volumes: [String]? = nil,
                healthcheck: Healthcheck? = nil) {
        self.healthcheck = healthcheck
        self.entrypoint = entrypoint
        self.cmd = cmd
        self.env = env
        self.workingDir = workingDir
        self.user = user
        self.exposedPorts = exposedPorts
        self.volumes = volumes
    }
}

/// An image in the store.
public struct Image: Codable, Equatable, Sendable {
    /// `sha256:` digest of the root filesystem image.
    public var id: String
    public var references: [String]
    public var config: ImageConfig
    public var created: Date
    public var size: Int64
    /// The read-only filesystem image every VM of this image attaches.
    public var rootfsPath: String
    public var rootfsType: String
}

/// Images under `<root>/images`: one directory per image id holding its read-only root
/// filesystem and configuration, and an index of references.
///
/// Writers take an exclusive lock on the index; every file is written to a temporary name,
/// synced and renamed, so a crash leaves the old state or the new one.
public struct ImageStore: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    struct Index: Codable { var references: [String: String] = [:] }

    struct Metadata: Codable {
        var config: ImageConfig
        var created: Date
        var rootfsType: String
        /// The digest of the image's OCI manifest in `blobs/`, for `save`; nil for imported trees.
        var manifest: String?
    }

    var indexPath: String { directory + "/index.json" }

    func imageDirectory(_ id: String) -> String {
        directory + "/" + id.replacingOccurrences(of: "sha256:", with: "sha256-")
    }

    public func list() throws(HVCError) -> [Image] {
        let index = try readIndex()
        var byID: [String: [String]] = [:]
        for (reference, id) in index.references { byID[id, default: []].append(reference) }
        var images: [Image] = []
        for id in byID.keys.sorted() {
            if let image = try load(id: id, references: byID[id, default: []].sorted()) { images.append(image) }
        }
        return images
    }

    /// The image named `text`: a name as stored, a short name that one stored name has under a
    /// registry host (`app:1` finds `localhost/app:1`), an id, or a unique id prefix.
    public func resolve(_ text: String) throws(HVCError) -> Image {
        let index = try readIndex()
        var id: String?
        let looksLikeID = text.hasPrefix("sha256:") || (text.count >= 4 && text.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        let parsed: ImageReference?
        do {
            parsed = try ImageReference(name: text)
        } catch {
            guard looksLikeID else { throw error }
            parsed = nil
        }
        if let reference = parsed {
            id = index.references[reference.description]
            if id == nil, reference.isShort {
                let suffix = "/" + reference.description
                let hosted = index.references.filter { $0.key.hasSuffix(suffix) }
                if hosted.count > 1 {
                    throw HVCError(.conflict, "image name \"\(text)\" is ambiguous: give one of \(hosted.keys.sorted().joined(separator: ", "))")
                }
                id = hosted.first?.value
            }
        }
        if id == nil {
            let wanted = text.hasPrefix("sha256:") ? text : "sha256:" + text
            let matches = Set(index.references.values).filter { $0.hasPrefix(wanted) }
            if text.count >= 4, matches.count == 1 { id = matches.first }
        }
        guard let id else {
            throw HVCError(.notFound, "unknown image \"\(text)\": see `hvc images`, or make it with `hvc import`")
        }
        let references = index.references.filter { $0.value == id }.map(\.key).sorted()
        guard let image = try load(id: id, references: references) else {
            throw HVCError(.notFound, "image \"\(text)\" is indexed but its files are missing: import it again")
        }
        return image
    }

    func load(id: String, references: [String]) throws(HVCError) -> Image? {
        let dir = imageDirectory(id)
        guard let data = FileManager.default.contents(atPath: dir + "/image.json"),
              let metadata = try? JSONDecoder.hvc.decode(Metadata.self, from: data)
        else { return nil }
        let rootfs = dir + "/rootfs." + metadata.rootfsType
        let size = (try? FileManager.default.attributesOfItem(atPath: rootfs)[.size] as? Int64) ?? 0
        return Image(id: id, references: references, config: metadata.config, created: metadata.created,
                     size: size, rootfsPath: rootfs, rootfsType: metadata.rootfsType)
    }

    /// Builds a read-only erofs image of `tree` and stores it under `reference`.
    public func importDirectory(_ tree: String, as reference: ImageReference, config: ImageConfig) throws(HVCError) -> Image {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: tree, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw HVCError(.invalid, "import: \(tree) is not a directory: give the root of a filesystem tree")
        }
        return try store(tree: tree, id: nil, references: [reference], config: config)
    }

    /// Makes the erofs image of `tree` and records it under `id` (default: the image's digest).
    func store(tree: String, id: String?, references: [ImageReference], config: ImageConfig,
               manifest: String? = nil) throws(HVCError) -> Image {
        try makeDirectory(directory)
        let staging = directory + "/.staging-" + UUID().uuidString
        try makeDirectory(staging)
        defer { try? FileManager.default.removeItem(atPath: staging) }
        let erofs = staging + "/rootfs.erofs"
        let result = ToolRun.run("/usr/bin/mkfs.erofs", ["-T0", "-x-1", erofs, tree])
        guard result.succeeded else { throw HVCError("mkfs.erofs failed: \(result.complaint)") }
        let id = if let id { id } else { try digestOfFile(erofs) }
        let metadata = Metadata(config: config, created: Date(), rootfsType: "erofs", manifest: manifest)
        try writeAtomically(staging + "/image.json", JSONEncoder.hvc.encode(metadata))
        try withIndexLock { () throws(HVCError) in
            let final = imageDirectory(id)
            if !FileManager.default.fileExists(atPath: final) {
                guard rename(staging, final) == 0 else { throw HVCError("rename into store: \(Errno.current)") }
            } else {
                try writeAtomically(final + "/image.json", JSONEncoder.hvc.encode(metadata))
            }
            var index = try readIndex()
            for reference in references { index.references[reference.description] = id }
            try writeAtomically(indexPath, JSONEncoder.hvc.encode(index))
        }
        guard let image = try load(id: id, references: references.map(\.description)) else {
            throw HVCError("image \(id) vanished from the store")
        }
        return image
    }

    /// Adds `reference` as another name of the image `source`.
    public func tag(_ source: String, as reference: ImageReference) throws(HVCError) {
        let image = try resolve(source)
        try withIndexLock { () throws(HVCError) in
            var index = try readIndex()
            index.references[reference.description] = image.id
            try writeAtomically(indexPath, JSONEncoder.hvc.encode(index))
        }
    }

    /// Removes a name, and the image when no name is left and no container uses it (unless
    /// `force`). `inUse` names the image ids containers refer to.
    public func remove(_ text: String, force: Bool, inUse: Set<String>) throws(HVCError) -> [String] {
        let image = try resolve(text)
        return try withIndexLock { () throws(HVCError) in
            var index = try readIndex()
            var removed: [String] = []
            let named = (try? ImageReference(name: text)).map(\.description)
            if let named, index.references[named] == image.id, image.references.count > 1 {
                index.references[named] = nil
                try writeAtomically(indexPath, JSONEncoder.hvc.encode(index))
                return ["untagged " + named]
            }
            if inUse.contains(image.id) && !force {
                throw HVCError(.conflict, "image \(text) is used by a container: remove the container first, or use rmi -f")
            }
            for (reference, id) in index.references where id == image.id {
                index.references[reference] = nil
                removed.append("untagged " + reference)
            }
            try writeAtomically(indexPath, JSONEncoder.hvc.encode(index))
            try? FileManager.default.removeItem(atPath: imageDirectory(image.id))
            removed.append("deleted " + image.id)
            return removed
        }
    }

    /// Removes images with no name that no container uses.
    public func prune(inUse: Set<String>) throws(HVCError) -> [String] {
        let named = Set(try readIndex().references.values)
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var removed: [String] = []
        for entry in entries where entry.hasPrefix("sha256-") || entry.hasPrefix(".staging-") {
            let id = entry.replacingOccurrences(of: "sha256-", with: "sha256:")
            guard !named.contains(id), !inUse.contains(id) else { continue }
            try? FileManager.default.removeItem(atPath: directory + "/" + entry)
            if entry.hasPrefix("sha256-") { removed.append("deleted " + id) }
        }
        return removed
    }

    func readIndex() throws(HVCError) -> Index {
        guard let data = FileManager.default.contents(atPath: indexPath) else { return Index() }
        do {
            return try JSONDecoder.hvc.decode(Index.self, from: data)
        } catch {
            throw HVCError("image index \(indexPath) is corrupt", cause: error)
        }
    }

    func withIndexLock<R>(_ body: () throws(HVCError) -> R) throws(HVCError) -> R {
        try withLock(directory + "/.lock", body)
    }
}

/// Writes `data` to `path` through a synced temporary file and a rename.
func writeAtomically(_ path: String, _ data: @autoclosure () throws -> Data) throws(HVCError) {
    let bytes: Data
    do { bytes = try data() } catch { throw HVCError("encode \(path)", cause: error) }
    let temporary = path + ".tmp-\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw HVCError("write \(temporary): \(Errno.current)") }
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    let synced = fsync(fd)
    close(fd)
    guard written == bytes.count, synced == 0, rename(temporary, path) == 0 else {
        unlink(temporary)
        throw HVCError("write \(path): \(Errno.current)")
    }
}

func makeDirectory(_ path: String, mode: Int = 0o755) throws(HVCError) {
    do {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: mode])
    } catch {
        throw HVCError("create \(path): \(error.localizedDescription)", describing: error)
    }
}

func digestOfFile(_ path: String) throws(HVCError) -> String {
    do {
        return try OCI.Digest.of(file: path).digest.description
    } catch {
        throw HVCError("digest of \(path)", cause: error)
    }
}

extension JSONEncoder {
    static var hvc: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }
}

extension JSONDecoder {
    static var hvc: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
