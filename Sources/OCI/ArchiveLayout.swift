import Foundation

/// An image read from an unpacked archive, its blobs verified against their digests.
public struct UnpackedImage: Sendable {
    public var config: ImageConfigFile
    public var configDigest: Digest
    /// The config blob's file.
    public var configPath: String
    /// Layer files in order, bottom first.
    public var layers: [String]
    /// Names the archive gives the image (`name:tag`).
    public var references: [String]
}

/// Reads `docker save` archives and OCI image layouts (`skopeo copy ... oci-archive:`),
/// already extracted to a directory. Every path named inside the archive is checked to stay in
/// it, and every blob is checked against its digest before it is used.
public enum ArchiveLayout {
    static let maxJSON = 4 << 20

    public static func read(_ directory: String) throws(OCIError) -> UnpackedImage {
        if FileManager.default.fileExists(atPath: directory + "/oci-layout") {
            return try readOCI(directory)
        }
        if FileManager.default.fileExists(atPath: directory + "/manifest.json") {
            return try readDocker(directory)
        }
        throw .unsupported("not an image archive: neither oci-layout nor manifest.json inside")
    }

    static func readOCI(_ directory: String) throws(OCIError) -> UnpackedImage {
        let index: ImageIndex = try decode(directory + "/index.json", "index.json")
        guard let first = index.manifests.first else { throw .invalid("index.json lists no image") }
        var descriptor = index.manifests.count == 1 ? first : try MediaTypes.selectPlatform(index)
        // A nested index (a multi-platform image) names the per-platform manifests.
        if let type = descriptor.mediaType, MediaTypes.index.contains(type) {
            let nested: ImageIndex = try decode(try blob(directory, descriptor), "nested index")
            descriptor = try MediaTypes.selectPlatform(nested)
        }
        let manifest: ImageManifest = try decode(try blob(directory, descriptor), "manifest")
        let configPath = try blob(directory, manifest.config)
        let config: ImageConfigFile = try decode(configPath, "image config")
        let layers = try manifest.layers.map { (layer) throws(OCIError) -> String in try blob(directory, layer) }
        var references: [String] = []
        if let name = descriptor.annotations?["io.containerd.image.name"] ?? first.annotations?["io.containerd.image.name"] {
            references.append(name)
        } else if let name = first.annotations?["org.opencontainers.image.ref.name"], name.contains(":") {
            // Only a full NAME:TAG names the image; a bare tag says nothing of its name.
            references.append(name)
        }
        return UnpackedImage(config: config, configDigest: manifest.config.digest, configPath: configPath, layers: layers, references: references)
    }

    static func readDocker(_ directory: String) throws(OCIError) -> UnpackedImage {
        let entries: [DockerArchiveEntry] = try decode(directory + "/manifest.json", "manifest.json")
        guard entries.count == 1, let entry = entries.first else {
            throw .unsupported("manifest.json holds \(entries.count) images: load archives of one image")
        }
        let configPath = try inside(directory, entry.Config)
        let (configDigest, _) = try Digest.of(file: configPath)
        // The config's name is its digest in both the classic (<hex>.json) and the newer
        // (blobs/sha256/<hex>) layouts.
        let named = (entry.Config as NSString).lastPathComponent.replacingOccurrences(of: ".json", with: "")
        guard named == configDigest.hex else {
            throw .digestMismatch(what: "image config \(entry.Config)", expected: "sha256:" + named, actual: configDigest.description)
        }
        let config: ImageConfigFile = try decode(configPath, "image config")
        guard config.rootfs.diff_ids.count == entry.Layers.count else {
            throw .invalid("manifest.json lists \(entry.Layers.count) layers, the config \(config.rootfs.diff_ids.count)")
        }
        var layers: [String] = []
        for (path, diffID) in zip(entry.Layers, config.rootfs.diff_ids) {
            let file = try inside(directory, path)
            let (digest, _) = try Digest.of(file: file)
            guard digest == diffID else {
                throw .digestMismatch(what: "layer \(path)", expected: diffID.description, actual: digest.description)
            }
            layers.append(file)
        }
        return UnpackedImage(config: config, configDigest: configDigest, configPath: configPath, layers: layers, references: entry.RepoTags ?? [])
    }

    /// The blob a descriptor names, verified against its digest and size.
    static func blob(_ directory: String, _ descriptor: Descriptor) throws(OCIError) -> String {
        let path = directory + "/blobs/sha256/" + descriptor.digest.hex
        guard FileManager.default.fileExists(atPath: path) else { throw .missing("blob \(descriptor.digest)") }
        let (digest, size) = try Digest.of(file: path)
        guard digest == descriptor.digest else {
            throw .digestMismatch(what: "blob", expected: descriptor.digest.description, actual: digest.description)
        }
        guard size == descriptor.size else {
            throw .invalid("blob \(descriptor.digest) is \(size) bytes, its descriptor says \(descriptor.size)")
        }
        return path
    }

    /// `relative` resolved in `directory`, refusing absolute paths, `..` and symlinks.
    static func inside(_ directory: String, _ relative: String) throws(OCIError) -> String {
        let components = relative.split(separator: "/")
        guard !relative.hasPrefix("/"), !components.isEmpty, !components.contains("..") else {
            throw .invalid("archive path \"\(relative.prefix(200))\" leaves the archive")
        }
        var path = directory
        for component in components where component != "." {
            path += "/" + component
            var info = stat()
            guard lstat(path, &info) == 0 else { throw .missing(relative) }
            if (info.st_mode & S_IFMT) == S_IFLNK { throw .invalid("archive path \"\(relative)\" goes through a symlink") }
        }
        return path
    }

    static func decode<T: Decodable>(_ path: String, _ what: String) throws(OCIError) -> T {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let size = attributes[.size] as? Int else { throw .missing(what) }
        guard size <= maxJSON else { throw .invalid("\(what) is \(size) bytes: too large") }
        guard let data = FileManager.default.contents(atPath: path) else { throw .missing(what) }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw .invalid("\(what) is not valid: \(error)")
        }
    }
}
