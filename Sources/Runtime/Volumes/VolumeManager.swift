import Foundation

/// The API's volume-create request.
public struct CreateVolumeRequest: Codable, Sendable, Equatable {
    public var name: String
    /// Key-value metadata (`--label`).
    public var labels: [String: String]?
    /// nil: `local`.
    public var driver: VolumeDriver?
    /// The driver's options (Docker's DriverOpts): `size` for `block`.
    public var options: [String: String]?
    public init(name: String) { self.name = name }
}

/// A volume as `volume inspect` shows it: the volume and the containers that mount it.
public struct VolumeDetails: Codable, Sendable {
    public var volume: Volume
    public var containers: [String]
}

/// The API's answer to a volume prune.
public struct PrunedVolumes: Codable, Sendable {
    public var removed: [String]
    public init(removed: [String]) { self.removed = removed }
}

/// Volume operations for one tenant, shared by the CLI and hvcd.
public struct VolumeManager: Sendable {
    public let runtime: Runtime
    public let tenant: String

    public init(runtime: Runtime, tenant: String) {
        self.runtime = runtime
        self.tenant = tenant
    }

    public func create(_ request: CreateVolumeRequest) throws(HVCError) -> Volume {
        let driver = request.driver ?? .local
        let size = try BlockVolume.size(driver: driver, options: request.options)
        return try runtime.volumes.create(request.name, tenant: tenant, labels: try Labels.checked(request.labels), driver: driver, sizeBytes: size)
    }

    public func list() -> [Volume] { runtime.volumes.list(tenant: tenant) }

    public func inspect(_ name: String) throws(HVCError) -> VolumeDetails {
        let volume = try runtime.volumes.resolve(name, tenant: tenant)
        return VolumeDetails(volume: volume, containers: VolumeManager.users(of: volume, runtime: runtime))
    }

    /// Removes a volume no container (running or not) mounts, as Docker refuses one in use.
    public func remove(_ name: String) throws(HVCError) {
        let volume = try runtime.volumes.resolve(name, tenant: tenant)
        try runtime.volumes.remove(volume) { VolumeManager.users(of: volume, runtime: runtime) }
    }

    /// Removes every volume of the tenant that no container mounts.
    public func prune() -> [String] {
        list().compactMap { volume in
            (try? runtime.volumes.remove(volume) { VolumeManager.users(of: volume, runtime: runtime) }) == nil ? nil : volume.name
        }
    }

    /// The names of the containers (of any status) that mount `volume`.
    static func users(of volume: Volume, runtime: Runtime) -> [String] {
        ((try? runtime.containers.list()) ?? []).filter { record in
            record.config.tenant == volume.tenant
                && (record.config.mounts ?? []).contains { $0.type == .volume && $0.source == volume.name }
        }.map(\.name)
    }

    /// Removes the anonymous volumes of a container being removed.
    static func removeAnonymous(of config: ContainerConfig, runtime: Runtime) {
        for mount in config.mounts ?? [] where mount.type == .volume && mount.anonymous == true {
            guard let volume = runtime.volumes.load(mount.source, tenant: config.tenant) else { continue }
            try? runtime.volumes.remove(volume) {
                VolumeManager.users(of: volume, runtime: runtime).filter { $0 != config.name }
            }
        }
    }
}

/// Who may mount which host folders: any (the host's own users), or only those beneath a
/// tenant's bind roots (hvcd's tenants file).
public struct MountPolicy: Sendable {
    /// nil: any host path.
    public var bindRoots: [String]?
    public static let unrestricted = MountPolicy(bindRoots: nil)

    public init(bindRoots: [String]?) { self.bindRoots = bindRoots }

    /// The bind root `path` is beneath (both with symlinks resolved), or 403.
    func root(for path: String, tenant: String) throws(HVCError) -> String? {
        guard let bindRoots else { return nil }
        let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        for root in bindRoots {
            let realRoot = URL(fileURLWithPath: root).resolvingSymlinksInPath().path
            if real == realRoot || real.hasPrefix(realRoot.hasSuffix("/") ? realRoot : realRoot + "/") { return realRoot }
        }
        let allowed = bindRoots.isEmpty ? "none" : bindRoots.joined(separator: ", ")
        throw HVCError(.forbidden, "tenant \(tenant) may not mount host path \(path): its bind roots are \(allowed) (bindRoots in the tenants file)")
    }
}

extension VolumeStore {
    /// A new container's mounts, resolved: host folders checked (existing, allowed), named
    /// volumes made on first use, anonymous ones made, the image's VOLUMEs given anonymous
    /// volumes where no mount covers them, and with a read-only root the tmpfs mounts where
    /// programs expect to write (`/tmp`, `/var/tmp`, `/run`, as Podman gives). Runs `record`
    /// (which saves the container) while no volume can be removed.
    func resolveMounts<R>(_ requested: [ContainerMount], imageVolumes: [String], readOnlyRoot: Bool, tenant: String,
                          policy: MountPolicy, record: ([ContainerMount]) throws(HVCError) -> R) throws(HVCError) -> R {
        var mounts = requested
        let targets = Set(requested.map(\.target))
        for path in imageVolumes {
            guard let target = try? ContainerMount.checkTarget(path), !targets.contains(target) else { continue }
            var mount = ContainerMount(type: .volume, source: "", target: target)
            mount.anonymous = true
            mounts.append(mount)
        }
        if readOnlyRoot {
            for target in ["/tmp", "/var/tmp", "/run"] where !mounts.contains(where: { $0.target == target }) {
                mounts.append(ContainerMount(type: .tmpfs, source: "", target: target))
            }
        }
        mounts = try ContainerMount.ordered(mounts)
        for index in mounts.indices where mounts[index].type == .bind {
            let source = mounts[index].source
            var info = stat()
            guard stat(source, &info) == 0 else {
                throw HVCError(.invalid, "bind source \(source) does not exist: create it on the host first, or fix the path")
            }
            mounts[index].within = try policy.root(for: source, tenant: tenant)
        }
        return try whileHeld { () throws(HVCError) -> R in
            var made: [String] = []
            var blocks = Set<String>()
            do throws(HVCError) {
                for index in mounts.indices where mounts[index].type == .volume {
                    if mounts[index].source.isEmpty {
                        mounts[index].source = randomHex(32)
                        made.append(mounts[index].source)
                    } else if load(mounts[index].source, tenant: tenant) == nil {
                        made.append(mounts[index].source)
                    }
                    let volume = try createHeld(mounts[index].source, tenant: tenant, anonymous: mounts[index].anonymous == true, exclusive: false)
                    // Two loop devices on one image would be two file systems writing the same blocks.
                    guard volume.driver != .block || blocks.insert(volume.name).inserted else {
                        throw HVCError(.invalid, "block volume \"\(volume.name)\" is mounted twice: a block volume mounts once per container")
                    }
                }
                return try record(mounts)
            } catch {
                for name in made { try? FileManager.default.removeItem(atPath: path(name, tenant: tenant)) }
                throw error
            }
        }
    }
}
