import AgentProtocol
import Foundation
import HVCSystem
import OCI
import VMM

/// What a container is: fixed when it is created.
public struct ContainerConfig: Codable, Equatable, Sendable {
    public var id: String
    public var name: String
    public var image: String
    public var imageID: String
    public var process: ProcessConfig
    public var hostname: String
    public var memoryMiB: Int
    public var cpus: Int
    /// Most processes (threads) the VMM's cgroup allows.
    public var pidsLimit: Int
    public var accelerator: Accelerator
    public var tenant: String
    public var created: Date
    public var autoRemove: Bool
    public var logMaxBytes: Int
    /// Whether the VM starts as a clone of a template (nil: yes); false forces a cold boot.
    public var template: Bool?
    /// The network of the container's interface, by name among its tenant's; nil: none.
    public var network: String?
    /// Ports to publish (`-p`); a host port of 0 is chosen when the container starts.
    public var ports: [PortMapping]?
    /// Host folders, volumes and tmpfs mounts, in the order they are made.
    public var mounts: [ContainerMount]?
    /// The image's root read-only (`--read-only`).
    public var readOnlyRoot: Bool?
    /// A host directory that is the container's root instead of the image's (an OCI bundle's),
    /// shared into the VM; its writes land there.
    public var rootDirectory: String?
    /// An interface of a caller's network namespace that the VM's NIC takes over (an OCI
    /// bundle's), instead of a network of hvc's.
    public var joinedInterface: JoinedInterface?
    /// Most processes in the container, inside the guest (an OCI bundle's `pids.limit`); nil:
    /// none beyond the VM's size. (`pidsLimit` bounds the VMM's threads on the host.)
    public var guestPidsLimit: Int?
    /// The container has a /dev/kvm of its VM's own (`--nested`).
    public var nested: Bool?
    /// The writable layer's bound in bytes (`--storage-opt size=`); nil: half the VM's memory.
    public var writableBytes: Int?
    /// What happens when the command ends; nil: `no`.
    public var restartPolicy: RestartPolicy?
    /// Key-value metadata (`--label`), for filters and orchestrators.
    public var labels: [String: String]?
    /// More names its network's name server answers with its address (`--network-alias`).
    public var networkAliases: [String]?
    /// The health check its supervisor runs (the image's, under the container's flags); nil: none.
    public var healthcheck: Healthcheck?

    public var startsFromTemplate: Bool { template ?? true }
    /// Host folders or volumes go into its VM (tmpfs mounts are the guest's own).
    public var sharesFolders: Bool { rootDirectory != nil || (mounts ?? []).contains { $0.type != .tmpfs } }

    /// `ProcessSpec` in a form that can be stored.
    public struct ProcessConfig: Codable, Equatable, Sendable {
        public var arguments: [String]
        public var environment: [String]
        public var workingDirectory: String
        public var user: String
        public var terminal: Bool
        /// What an OCI bundle's process adds (see `ProcessSpec`); nil when not set.
        public var additionalGroups: [UInt32]?
        public var resourceLimits: [ResourceLimit]?
        public var capabilities: CapabilitySets?
        public var noNewPrivileges: Bool?

        public init(_ spec: ProcessSpec) {
            arguments = spec.arguments
            environment = spec.environment
            workingDirectory = spec.workingDirectory
            user = spec.user
            terminal = spec.terminal
            additionalGroups = spec.additionalGroups.isEmpty ? nil : spec.additionalGroups
            resourceLimits = spec.resourceLimits.isEmpty ? nil : spec.resourceLimits
            capabilities = spec.capabilities
            noNewPrivileges = spec.noNewPrivileges ? true : nil
        }

        public func spec(rows: UInt16 = 24, columns: UInt16 = 80) -> ProcessSpec {
            var spec = ProcessSpec(arguments: arguments, environment: environment, workingDirectory: workingDirectory,
                                   user: user, terminal: terminal, rows: rows, columns: columns)
            spec.additionalGroups = additionalGroups ?? []
            spec.resourceLimits = resourceLimits ?? []
            spec.capabilities = capabilities
            spec.noNewPrivileges = noNewPrivileges ?? false
            return spec
        }
    }
}

/// Where a container is in its life.
public enum ContainerStatus: String, Codable, Sendable {
    case created, running, exited
}

/// What a container is doing: changes over its life, written by its supervisor.
public struct ContainerState: Codable, Equatable, Sendable {
    public var status: ContainerStatus = .created
    public var supervisorPID: Int32?
    /// The supervisor's start time (see `ProcessStamp`), so that a later process with its pid
    /// is not taken for it.
    public var supervisorStart: UInt64?
    public var vmmPID: Int32?
    public var started: Date?
    public var finished: Date?
    public var exitCode: Int32?
    public var oomKilled = false
    /// The key of the template the VM was cloned from; nil for a cold boot.
    public var template: String?
    /// Why the container ended other than by its command exiting, or why it did not start.
    public var error: String?
    /// The container's interface on its network while it runs.
    public var endpoint: NetworkEndpoint?
    /// Restarts its restart policy made since it was last started by a user.
    public var restartCount: Int?
    /// Its supervisor waits to restart it (the policy's pause, then a new VM's boot).
    public var restarting: Bool?
    /// A user stopped or killed it: its restart policy does not bring it back.
    public var stoppedByUser: Bool?
    /// How its health check has gone, while it has one.
    public var health: HealthState?

    public init() {}

    /// The supervisor named by `supervisorPID` and `supervisorStart`.
    var supervisor: ProcessStamp? { supervisorPID.map { ProcessStamp(pid: $0, start: supervisorStart) } }
}

/// A container as `ps` and `inspect` show it.
public struct ContainerRecord: Codable, Equatable, Sendable {
    public var config: ContainerConfig
    public var state: ContainerState
    public var logPath: String

    public var id: String { config.id }
    public var name: String { config.name }
}
