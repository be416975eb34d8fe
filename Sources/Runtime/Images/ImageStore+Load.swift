import CLayer
import Foundation
import OCI

extension ImageStore {
    /// Most bytes an image may unpack to (the archive, and then all its layers), unless
    /// `HVC_MAX_IMAGE_BYTES` says otherwise: a bound against decompression bombs.
    public static var maxImageBytes: UInt64 {
        if let text = ProcessInfo.processInfo.environment["HVC_MAX_IMAGE_BYTES"], let value = UInt64(text), value > 0 {
            return value
        }
        return 8 << 30
    }

    /// Loads a `docker save` archive or an OCI archive: verifies every blob, applies the layers
    /// with their whiteouts, and stores the result as one read-only filesystem image.
    /// Nothing is left behind when any step fails.
    public func load(archive: String, tags: [ImageReference] = []) throws(HVCError) -> Image {
        guard FileManager.default.isReadableFile(atPath: archive) else {
            throw HVCError(.invalid, "load: cannot read \(archive): give a docker-archive or oci-archive tar file")
        }
        try makeDirectory(directory)
        let staging = directory + "/.staging-" + UUID().uuidString
        try makeDirectory(staging + "/archive", mode: 0o700)
        try makeDirectory(staging + "/rootfs", mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: staging) }

        let limit = ImageStore.maxImageBytes
        try confined("load \(archive)") { error, size in
            hvc_extract_archive(archive, staging + "/archive", limit, error, size)
        }
        let unpacked: UnpackedImage
        do {
            unpacked = try ArchiveLayout.read(staging + "/archive")
        } catch {
            throw HVCError(.invalid, "load \(archive)", cause: error)
        }
        var total: UInt64 = 0
        for (index, layer) in unpacked.layers.enumerated() {
            var written: UInt64 = 0
            try confined("layer \(index + 1) of \(unpacked.layers.count)") { error, size in
                hvc_apply_layer(layer, staging + "/rootfs", total, limit, &written, error, size)
            }
            total += written
        }
        var references = tags
        for name in unpacked.references {
            if let reference = try? ImageReference(parsing: name) { references.append(reference) }
        }
        let c = unpacked.config.config
        let config = ImageConfig(entrypoint: c?.Entrypoint, cmd: c?.Cmd, env: c?.Env, workingDir: c?.WorkingDir, user: c?.User,
                                 exposedPorts: c?.ExposedPorts.map { $0.keys.sorted() },
                                 volumes: c?.Volumes.map { $0.keys.sorted() }, healthcheck: c?.Healthcheck)
        let manifest = try keepBlobs(unpacked)
        return try store(tree: staging + "/rootfs", id: unpacked.configDigest.description, references: references,
                         config: config, manifest: manifest)
    }

    /// Moves a loaded image's config and layers into `blobs/` and writes an OCI manifest for
    /// them, so that `save` can write the image back out. Returns the manifest's digest.
    private func keepBlobs(_ unpacked: UnpackedImage) throws(HVCError) -> String {
        do {
            try makeDirectory(blobs)
            func keep(_ path: String) throws -> (digest: OCI.Digest, size: Int64) {
                let (digest, size) = try OCI.Digest.of(file: path)
                let target = blobs + "/" + digest.hex
                if !FileManager.default.fileExists(atPath: target) { try FileManager.default.moveItem(atPath: path, toPath: target) }
                return (digest, size)
            }
            let config = try keep(unpacked.configPath)
            var layers: [[String: Any]] = []
            for layer in unpacked.layers {
                let type = ImageStore.layerMediaType(layer)
                let (digest, size) = try keep(layer)
                layers.append(["mediaType": type, "digest": digest.description, "size": size])
            }
            let manifest: [String: Any] = [
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": ["mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest.description, "size": config.size],
                "layers": layers,
            ]
            return try storeManifest(try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys]))
        } catch let error as HVCError {
            throw error
        } catch {
            throw HVCError("keep image blobs", cause: error)
        }
    }

    /// Writes manifest bytes into `blobs/`; returns their digest.
    func storeManifest(_ data: Data) throws(HVCError) -> String {
        let digest = OCI.Digest.of(data: data)
        let path = blobs + "/" + digest.hex
        if !FileManager.default.fileExists(atPath: path) { try writeAtomically(path, data) }
        return digest.description
    }

    /// An OCI layer media type from the file's first bytes: gzip, zstd or a plain tar.
    static func layerMediaType(_ path: String) -> String {
        let head = FileHandle(forReadingAtPath: path).flatMap { try? $0.read(upToCount: 4) } ?? Data()
        if head.starts(with: [0x1f, 0x8b]) { return "application/vnd.oci.image.layer.v1.tar+gzip" }
        if head.starts(with: [0x28, 0xb5, 0x2f, 0xfd]) { return "application/vnd.oci.image.layer.v1.tar+zstd" }
        return "application/vnd.oci.image.layer.v1.tar"
    }

    /// Writes `image` as an OCI archive (oci-layout, index.json, blobs), named `reference`.
    public func save(_ text: String, to output: String) throws(HVCError) {
        let image = try resolve(text)
        guard let data = FileManager.default.contents(atPath: imageDirectory(image.id) + "/image.json"),
              let metadata = try? JSONDecoder.hvc.decode(Metadata.self, from: data), let manifestDigest = metadata.manifest,
              let digest = try? OCI.Digest(parsing: manifestDigest),
              let manifestData = FileManager.default.contents(atPath: blobs + "/" + digest.hex),
              let manifest = try? JSONDecoder().decode(ImageManifest.self, from: manifestData)
        else {
            throw HVCError(.conflict, "image \(text) has no layers to save (it was imported from a directory): use the tree it came from")
        }
        let staging = directory + "/.staging-" + UUID().uuidString
        try makeDirectory(staging + "/blobs/sha256")
        defer { try? FileManager.default.removeItem(atPath: staging) }
        for descriptor in [manifest.config] + manifest.layers {
            let source = blobs + "/" + descriptor.digest.hex
            guard link(source, staging + "/blobs/sha256/" + descriptor.digest.hex) == 0 else {
                throw HVCError("save: blob \(descriptor.digest) is missing from the store: pull or load the image again")
            }
        }
        _ = link(blobs + "/" + digest.hex, staging + "/blobs/sha256/" + digest.hex)
        var entry: [String: Any] = [
            "mediaType": manifest.mediaType ?? "application/vnd.oci.image.manifest.v1+json",
            "digest": digest.description, "size": manifestData.count,
        ]
        // The name asked for, when it is one of the image's; else its first.
        let asked = (try? ImageReference(name: text)).map(\.description).flatMap { image.references.contains($0) ? $0 : nil }
        if let name = asked ?? image.references.first { entry["annotations"] = ["org.opencontainers.image.ref.name": name] }
        let index: [String: Any] = ["schemaVersion": 2, "manifests": [entry]]
        try writeAtomically(staging + "/oci-layout", Data(#"{"imageLayoutVersion": "1.0.0"}"#.utf8))
        try writeAtomically(staging + "/index.json", (try? JSONSerialization.data(withJSONObject: index, options: [.sortedKeys])) ?? Data())
        let temporary = output + ".tmp-\(getpid())"
        let result = ToolRun.run("/bin/tar", ["-cf", temporary, "-C", staging, "oci-layout", "index.json", "blobs"])
        guard result.succeeded, rename(temporary, output) == 0 else {
            unlink(temporary)
            throw HVCError("save \(output): \(result.succeeded ? "cannot write" : result.complaint)")
        }
    }

    private func confined(_ what: String, _ body: (UnsafeMutablePointer<CChar>, Int) -> Int32) throws(HVCError) {
        var buffer = [CChar](repeating: 0, count: 1024)
        let status = buffer.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
        if status != 0 {
            let message = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            // What libarchive refuses is the archive's fault: bad, hostile or over the size limit.
            throw HVCError(.invalid, "\(what): \(message)")
        }
    }
}
