import Foundation

/// A named volume, that containers mount by name and that outlives them: a host directory,
/// `<root>/volumes/<tenant>/<name>/_data`, or (driver `block`) an ext4 image there, `disk.ext4`.
public struct Volume: Codable, Equatable, Sendable {
    public var name: String
    public var tenant: String
    public var created: Date
    /// Made for one container (an image's VOLUME or `-v /path`), removed with it.
    public var anonymous: Bool
    /// Where its files are on the host: the directory, or the block volume's image.
    public var mountpoint: String
    /// nil: `local`.
    public var driver: VolumeDriver?
    /// A block volume's image size in bytes.
    public var sizeBytes: Int?
    /// Key-value metadata (`--label`).
    public var labels: [String: String]?
}

/// Volumes per tenant under `<root>/volumes`. Making, removing and a container's use of a volume
/// hold `.lock`, so that a volume in use is never removed.
public struct VolumeStore: Sendable {
    public let directory: String

    public init(paths: RuntimePaths) { directory = paths.root + "/volumes" }

    private var lockPath: String { directory + "/.lock" }
    private func tenantDirectory(_ tenant: String) -> String { directory + "/" + tenant }
    func path(_ name: String, tenant: String) -> String { tenantDirectory(tenant) + "/" + name }
    private func recordPath(_ name: String, tenant: String) -> String { path(name, tenant: tenant) + "/volume.json" }
    func dataPath(_ name: String, tenant: String) -> String { path(name, tenant: tenant) + "/_data" }
    func imagePath(_ name: String, tenant: String) -> String { path(name, tenant: tenant) + "/" + BlockVolume.imageName }

    /// Every volume of `tenant`, or of all tenants when nil, by name.
    public func list(tenant: String?) -> [Volume] {
        entriesPerTenant(in: directory, tenant: tenant)
            .compactMap { load($0.entry, tenant: $0.tenant) }
            .sorted { ($0.tenant, $0.name) < ($1.tenant, $1.name) }
    }

    func load(_ name: String, tenant: String) -> Volume? {
        FileManager.default.contents(atPath: recordPath(name, tenant: tenant))
            .flatMap { try? JSONDecoder.hvc.decode(Volume.self, from: $0) }
            .flatMap { $0.name == name && $0.tenant == tenant ? $0 : nil }
    }

    public func resolve(_ name: String, tenant: String) throws(HVCError) -> Volume {
        try ContainerMount.checkVolumeName(name)
        guard let volume = load(name, tenant: tenant) else {
            throw HVCError(.notFound, "no volume \"\(name)\": see `hvc volume ls`")
        }
        return volume
    }

    /// Makes a volume; `exclusive`: refuse a name in use (`volume create`), else return the
    /// existing one (a run's `-v NAME:…`, which makes it on first use).
    @discardableResult
    public func create(_ name: String, tenant: String, anonymous: Bool = false, exclusive: Bool = true,
                       labels: [String: String]? = nil, driver: VolumeDriver = .local, sizeBytes: Int? = nil) throws(HVCError) -> Volume {
        try ContainerMount.checkVolumeName(name)
        try makeDirectory(directory, mode: 0o700)
        return try withLock(lockPath) { () throws(HVCError) -> Volume in
            try createHeld(name, tenant: tenant, anonymous: anonymous, exclusive: exclusive, labels: labels, driver: driver, sizeBytes: sizeBytes)
        }
    }

    /// `create`'s work, for a caller that holds the lock (`whileHeld`).
    func createHeld(_ name: String, tenant: String, anonymous: Bool, exclusive: Bool, labels: [String: String]? = nil,
                    driver: VolumeDriver = .local, sizeBytes: Int? = nil) throws(HVCError) -> Volume {
        if let existing = load(name, tenant: tenant) {
            guard !exclusive else { throw HVCError(.conflict, "volume \"\(name)\" exists already: choose another name") }
            return existing
        }
        try makeDirectory(tenantDirectory(tenant), mode: 0o700)
        let base = path(name, tenant: tenant)
        // A half-made volume (no record) is made again from scratch.
        try? FileManager.default.removeItem(atPath: base)
        try makeDirectory(base, mode: 0o700)
        var volume = Volume(name: name, tenant: tenant, created: Date(), anonymous: anonymous, mountpoint: dataPath(name, tenant: tenant),
                            labels: labels)
        do throws(HVCError) {
            switch driver {
            case .local:
                try makeDirectory(dataPath(name, tenant: tenant), mode: 0o755)
            case .block:
                let size = sizeBytes ?? BlockVolume.defaultSize
                try BlockVolume.make(imagePath(name, tenant: tenant), size: size)
                (volume.mountpoint, volume.driver, volume.sizeBytes) = (imagePath(name, tenant: tenant), .block, size)
            }
            try writeAtomically(recordPath(name, tenant: tenant), try JSONEncoder.hvc.encode(volume))
        } catch {
            try? FileManager.default.removeItem(atPath: base)
            throw error
        }
        return volume
    }

    /// Runs `body` (which records a container using volumes) holding the lock that `remove`
    /// holds, so that no volume goes between being found and being used.
    func whileHeld<R>(_ body: () throws(HVCError) -> R) throws(HVCError) -> R {
        try makeDirectory(directory, mode: 0o700)
        return try withLock(lockPath, body)
    }

    /// Removes a volume and its files; `users` names the containers that still mount it.
    public func remove(_ volume: Volume, users: () -> [String]) throws(HVCError) {
        try withLock(lockPath) { () throws(HVCError) in
            let names = users()
            guard names.isEmpty else {
                throw HVCError(.conflict, "volume \"\(volume.name)\" is in use by \(names.joined(separator: ", ")): remove them first (hvc rm)")
            }
            // The record first: a volume without one is gone, whatever of its files is left.
            unlink(recordPath(volume.name, tenant: volume.tenant))
            do {
                try FileManager.default.removeItem(atPath: path(volume.name, tenant: volume.tenant))
            } catch {
                throw HVCError("remove volume \(volume.name): \(error.localizedDescription)", describing: error)
            }
        }
    }
}

extension Runtime {
    public var volumes: VolumeStore { VolumeStore(paths: paths) }
}
