import OCI
import VMM

/// The API's container-create request: what hvcd decodes and the CLI sends, locally or through
/// hvcd, so that both check a request in one place (`runOptions`).
public struct CreateContainerRequest: Codable, Sendable, Equatable {
    public var image: String
    public var cmd: [String]?
    public var entrypoint: [String]?
    public var name: String?
    public var env: [String]?
    public var workdir: String?
    public var user: String?
    public var hostname: String?
    /// Guest memory, e.g. `256m`.
    public var memory: String?
    public var cpus: Int?
    public var pidsLimit: Int?
    /// Rotate the log past this size, e.g. `10m`.
    public var logMaxSize: String?
    public var accel: String?
    /// Start it at once (`run -d`).
    public var start: Bool?
    /// Clone the image's template (default); false boots cold.
    public var template: Bool?
    /// A terminal for the command (for a client that attaches).
    public var tty: Bool?
    /// Remove the container once it has exited (`--rm`).
    public var autoRemove: Bool?
    /// `no`, `on-failure[:N]`, `always` or `unless-stopped` (`--restart`).
    public var restart: String?
    /// Key-value metadata (`--label`).
    public var labels: [String: String]?
    /// More names for the container on its network (`--network-alias`).
    public var networkAliases: [String]?
    /// Docker's `Healthcheck` object, over the image's (`Test: ["NONE"]` turns it off).
    public var healthcheck: Healthcheck?
    /// The networks to join: at most one, by name; `none` for no interface. Default: the
    /// tenant's `bridge`.
    public var networks: [String]?
    /// Ports to publish, `[HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]` each, as `-p` takes them.
    public var ports: [String]?
    /// Publish every port the image exposes (`-P`).
    public var publishAll: Bool?
    /// Host folders (`bind`), volumes and tmpfs mounts.
    public var mounts: [ContainerMount]?
    /// The image's root read-only, with tmpfs on /tmp, /var/tmp and /run (`--read-only`).
    public var readOnly: Bool?
    /// A /dev/kvm of the VM's own in the container (`--nested`).
    public var nested: Bool?
    /// The writable layer's bound, e.g. `64m` (`--storage-opt size=`).
    public var storageSize: String?

    public init(image: String) { self.image = image }

    /// The run options this request asks for, each value checked.
    public func runOptions() throws(HVCError) -> RunOptions {
        var options = RunOptions(image: image)
        options.command = cmd ?? []
        options.entrypoint = entrypoint
        options.name = name
        options.environment = env ?? []
        options.workingDirectory = workdir
        options.user = user
        options.hostname = hostname
        if let memory { options.memoryMiB = try RunOptions.parseMemory(memory) }
        if let cpus { options.cpus = cpus }
        if let pidsLimit { options.pidsLimit = pidsLimit }
        if let logMaxSize { options.logMaxBytes = try RunOptions.parseSize(logMaxSize, minimum: 4096, what: "log size") }
        if let accel {
            guard let accelerator = Accelerator(rawValue: accel) else {
                throw HVCError(.invalid, "unknown accelerator \"\(accel)\": use kvm or tcg")
            }
            options.accelerator = accelerator
        }
        options.template = template ?? true
        options.terminal = tty ?? false
        options.remove = autoRemove ?? false
        if let restart { options.restartPolicy = try RestartPolicy.parse(restart) }
        options.networkAliases = networkAliases ?? []
        if let healthcheck {
            try healthcheck.validate()
            options.healthcheck = healthcheck
        }
        if let labels = try Labels.checked(labels) { options.labels = labels }
        if let networks {
            guard networks.count <= 1 else {
                throw HVCError(.invalid, "a container joins one network: give one in networks")
            }
            options.network = networks.first
        }
        for port in ports ?? [] { options.ports.append(try PortMapping.parse(port)) }
        options.publishAll = publishAll ?? false
        for mount in mounts ?? [] { options.mounts.append(try mount.checked()) }
        options.readOnlyRoot = readOnly ?? false
        options.nested = nested ?? false
        if let storageSize { options.writableBytes = try RunOptions.parseSize(storageSize, minimum: 1 << 20, what: "storage size") }
        try options.validate()
        return options
    }
}

/// The API's answer to a create.
public struct CreatedContainer: Codable, Sendable {
    public var id: String
    public init(id: String) { self.id = id }
}

/// The API's answer to a wait.
public struct WaitResult: Codable, Sendable {
    public var exitCode: Int32
    public init(exitCode: Int32) { self.exitCode = exitCode }
}

/// The API's pull request and answer.
public struct PullRequest: Codable, Sendable {
    public var reference: String
    public init(reference: String) { self.reference = reference }
}

public struct PullResult: Codable, Sendable {
    public var id: String
    public var downloadedBlobs: String
    public init(id: String, downloadedBlobs: String) {
        self.id = id
        self.downloadedBlobs = downloadedBlobs
    }
}

/// The API's answer to an image delete.
public struct RemovedImages: Codable, Sendable {
    public var removed: [String]
    public init(removed: [String]) { self.removed = removed }
}
