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
            throw HVCError("load: cannot read \(archive): give a docker-archive or oci-archive tar file")
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
            throw HVCError("load \(archive): \(error)")
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
            if let reference = try? ImageReference(parsing: ImageStore.localName(name)) { references.append(reference) }
        }
        let c = unpacked.config.config
        let config = ImageConfig(entrypoint: c?.Entrypoint, cmd: c?.Cmd, env: c?.Env, workingDir: c?.WorkingDir, user: c?.User)
        return try store(tree: staging + "/rootfs", id: unpacked.configDigest.description, references: references, config: config)
    }

    /// `docker.io/library/busybox:1` → `busybox:1`; other registries keep their host.
    static func localName(_ name: String) -> String {
        var text = name
        for prefix in ["docker.io/library/", "docker.io/", "localhost/"] where text.hasPrefix(prefix) {
            text = String(text.dropFirst(prefix.count))
            break
        }
        return text
    }

    private func confined(_ what: String, _ body: (UnsafeMutablePointer<CChar>, Int) -> Int32) throws(HVCError) {
        var buffer = [CChar](repeating: 0, count: 1024)
        let status = buffer.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
        if status != 0 {
            let message = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw HVCError("\(what): \(message)")
        }
    }
}
