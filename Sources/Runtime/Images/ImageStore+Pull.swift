import CLayer
import Foundation
import OCI

extension ImageStore {
    var blobs: String { directory + "/blobs/sha256" }
    var credentialsPath: String { directory + "/../auth.json" }

    /// What a pull did.
    public struct PullResult: Sendable {
        public var image: Image
        public var downloadedBlobs: Int
        public var downloadedBytes: Int64
    }

    /// Pulls `text` from its registry: the linux/amd64 manifest, then every blob not already in
    /// the store (resuming partial downloads), each verified against its digest, then the
    /// layers applied as `load` does. A second pull of the same image downloads nothing.
    public func pull(_ text: String, plainHTTP: Bool = false, via connect: RegistryConnecting,
                     progress: (@Sendable (String) -> Void)? = nil) throws(HVCError) -> PullResult {
        do {
            return try pullChecked(text, plainHTTP: plainHTTP, connect: connect, progress: progress)
        } catch let error as HVCError {
            throw error
        } catch OCIError.invalid(let message) {
            throw HVCError(.invalid, "pull \(text): \(message)")
        } catch {
            throw HVCError("pull \(text)", cause: error)
        }
    }

    private func pullChecked(_ text: String, plainHTTP: Bool, connect: RegistryConnecting,
                             progress: (@Sendable (String) -> Void)?) throws -> PullResult {
        let reference = try RegistryReference(parsing: text)
        let client = connect(reference, credentials(for: reference.registry), plainHTTP)
        var (data, type, _) = try client.manifest(reference.manifestReference)
        if MediaTypes.index.contains(type) {
            let index = try JSONDecoder().decode(ImageIndex.self, from: data)
            let chosen = try MediaTypes.selectPlatform(index)
            (data, type, _) = try client.manifest(chosen.digest.description)
        }
        guard MediaTypes.manifest.contains(type) || type.isEmpty else { throw OCIError.unsupported("manifest type \(type)") }
        let manifest = try JSONDecoder().decode(ImageManifest.self, from: data)
        try makeDirectory(blobs)
        var downloaded = 0
        var bytes: Int64 = 0
        for (index, descriptor) in ([manifest.config] + manifest.layers).enumerated() {
            let path = blobs + "/" + descriptor.digest.hex
            if FileManager.default.fileExists(atPath: path) { continue }
            let label = index == 0 ? "config" : "layer \(index)/\(manifest.layers.count)"
            bytes += try client.download(descriptor, to: path) { done, total in
                progress?("\(label) \(descriptor.digest.hex.prefix(12)): \(done * 100 / max(total, 1))% of \(total) bytes")
            }
            downloaded += 1
        }
        let configPath = blobs + "/" + manifest.config.digest.hex
        guard let configData = FileManager.default.contents(atPath: configPath) else { throw OCIError.missing("config") }
        let configFile = try JSONDecoder().decode(ImageConfigFile.self, from: configData)
        let name = try ImageReference(parsing: reference.localName)
        let id = manifest.config.digest.description
        if let existing = try load(id: id, references: []) {
            try tag(existing.id, as: name)
            return PullResult(image: try resolve(name.description), downloadedBlobs: downloaded, downloadedBytes: bytes)
        }
        let staging = directory + "/.staging-" + UUID().uuidString
        try makeDirectory(staging + "/rootfs")
        defer { try? FileManager.default.removeItem(atPath: staging) }
        var total: UInt64 = 0
        for (index, layer) in manifest.layers.enumerated() {
            var written: UInt64 = 0
            var buffer = [CChar](repeating: 0, count: 1024)
            let status = buffer.withUnsafeMutableBufferPointer {
                hvc_apply_layer(blobs + "/" + layer.digest.hex, staging + "/rootfs", total, ImageStore.maxImageBytes,
                                &written, $0.baseAddress!, $0.count)
            }
            if status != 0 {
                throw HVCError("layer \(index + 1) of \(manifest.layers.count): \(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
            }
            total += written
        }
        let c = configFile.config
        let config = ImageConfig(entrypoint: c?.Entrypoint, cmd: c?.Cmd, env: c?.Env, workingDir: c?.WorkingDir, user: c?.User,
                                 exposedPorts: c?.ExposedPorts.map { $0.keys.sorted() },
                                 volumes: c?.Volumes.map { $0.keys.sorted() }, healthcheck: c?.Healthcheck)
        let image = try store(tree: staging + "/rootfs", id: id, references: [name], config: config,
                              manifest: try storeManifest(data))
        return PullResult(image: image, downloadedBlobs: downloaded, downloadedBytes: bytes)
    }

    /// Stores `user` and `password` for `registry` (file mode 0600).
    public func login(registry: String, user: String, password: String) throws(HVCError) {
        var all = (try? JSONDecoder().decode([String: String].self, from: Data(contentsOf: URL(fileURLWithPath: credentialsPath)))) ?? [:]
        all[registry] = Data("\(user):\(password)".utf8).base64EncodedString()
        try makeDirectory((credentialsPath as NSString).deletingLastPathComponent)
        try writeAtomically(credentialsPath, JSONEncoder.hvc.encode(all))
        chmod(credentialsPath, 0o600)
    }

    func credentials(for registry: String) -> (String, String)? {
        guard let data = FileManager.default.contents(atPath: credentialsPath),
              let all = try? JSONDecoder().decode([String: String].self, from: data),
              let encoded = all[registry], let decoded = Data(base64Encoded: encoded) else { return nil }
        let text = String(decoding: decoded, as: UTF8.self)
        guard let colon = text.firstIndex(of: ":") else { return nil }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }
}
