import AgentProtocol
import Foundation

/// The part of an OCI runtime bundle's `config.json` (runtime-spec 1.0) that hvc honours.
public struct OCISpec: Decodable, Sendable {
    public struct User: Decodable, Sendable {
        public var uid: UInt32
        public var gid: UInt32
        public var additionalGids: [UInt32]?
    }

    public struct Root: Decodable, Sendable {
        public var path: String
        public var readonly: Bool?
    }

    public struct Mount: Decodable, Sendable {
        public var destination: String
        public var type: String?
        public var source: String?
        public var options: [String]?
    }

    public struct Namespace: Decodable, Sendable {
        public var type: String
        public var path: String?
    }

    public struct Resources: Decodable, Sendable {
        public struct Memory: Decodable, Sendable { public var limit: Int64? }
        public struct CPU: Decodable, Sendable {
            public var quota: Int64?
            public var period: UInt64?
        }
        public struct Pids: Decodable, Sendable { public var limit: Int64? }
        public var memory: Memory?
        public var cpu: CPU?
        public var pids: Pids?
    }

    public struct Linux: Decodable, Sendable {
        public var namespaces: [Namespace]?
        public var resources: Resources?
        public var cgroupsPath: String?
    }

    public var ociVersion: String
    public var process: Process?
    public var root: Root?
    public var hostname: String?
    public var mounts: [Mount]?
    public var annotations: [String: String]?
    public var linux: Linux?

    /// Reads `<bundle>/config.json`.
    public static func load(bundle: String) throws(HVCError) -> OCISpec {
        try decode(OCISpec.self, path: bundle + "/config.json", missing: "give the bundle directory that holds config.json",
                   what: "an OCI runtime config")
    }

    /// A JSON file the caller gave (at most 4 MiB), decoded; one line saying what is wrong otherwise.
    static func decode<T: Decodable>(_ type: T.Type, path: String, missing: String, what: String) throws(HVCError) -> T {
        guard let data = FileManager.default.contents(atPath: path) else { throw HVCError(.invalid, "no \(path): \(missing)") }
        guard data.count <= 4 << 20 else { throw HVCError(.invalid, "\(path) is over 4 MiB") }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw HVCError(.invalid, "\(path) is not \(what)", cause: error)
        }
    }

    /// Mount types the guest makes for every container itself (its /proc, /sys, /dev, terminals,
    /// cgroups): a bundle's are satisfied by those.
    static let guestMade: Set<String> = ["proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2"]
    static let guestMadeTargets: Set<String> = ["/proc", "/sys", "/dev", "/dev/pts", "/dev/mqueue", "/sys/fs/cgroup"]

    /// The container's mounts: the bundle's bind mounts and tmpfs mounts; what the guest makes
    /// anyway is left out.
    func containerMounts() throws(HVCError) -> [ContainerMount] {
        var mounts: [ContainerMount] = []
        for mount in self.mounts ?? [] {
            let options = Set(mount.options ?? [])
            let bindOption = options.contains("bind") || options.contains("rbind")
            let type = switch mount.type {
            case nil: bindOption ? "bind" : ""
            case "none" where bindOption: "bind"
            case let type?: type
            }
            if OCISpec.guestMade.contains(type) || OCISpec.guestMadeTargets.contains(mount.destination) { continue }
            let target = try ContainerMount.checkTarget(mount.destination)
            switch type {
            case "bind":
                guard let source = mount.source, source.hasPrefix("/") else {
                    throw HVCError(.invalid, "bind mount on \(mount.destination) has no absolute source")
                }
                mounts.append(ContainerMount(type: .bind, source: source, target: target, readOnly: options.contains("ro")))
            case "tmpfs":
                var tmpfs = ContainerMount(type: .tmpfs, source: "", target: target, readOnly: options.contains("ro"))
                for option in options {
                    if option.hasPrefix("size="), let size = try? RunOptions.parseSize(String(option.dropFirst(5)), minimum: 4096, what: "tmpfs size") {
                        tmpfs.tmpfsSize = size
                    }
                    if option.hasPrefix("mode="), let mode = UInt32(option.dropFirst(5), radix: 8) { tmpfs.tmpfsMode = mode }
                }
                mounts.append(tmpfs)
            default:
                throw HVCError(.invalid, "mount type \"\(type)\" on \(mount.destination) is not supported: use bind or tmpfs")
            }
        }
        // A later mount on a target hides an earlier one, as runc makes them in order (containerd's
        // sandbox spec has its default /dev/shm tmpfs, then the pod's shared one).
        let last = Dictionary(mounts.enumerated().map { ($0.element.target, $0.offset) }, uniquingKeysWith: { max($0, $1) })
        return try ContainerMount.ordered(mounts.enumerated().filter { last[$0.element.target] == $0.offset }.map(\.element))
    }

    /// The process to start, as the agent takes it.
    func processSpec() throws(HVCError) -> ProcessSpec {
        guard let process else { throw HVCError(.invalid, "config.json has no process: give the command to run") }
        return try process.spec()
    }

    /// Guest memory: the bundle's memory limit (at least 64 MiB), else 256 MiB.
    var memoryMiB: Int {
        guard let limit = memoryLimitBytes else { return 256 }
        return max(64, min(65536, Int((limit + (1 << 20) - 1) >> 20)))
    }

    /// vCPUs: the CPU quota over its period, rounded up, 1 to 16.
    var cpus: Int {
        guard let quota = linux?.resources?.cpu?.quota, quota > 0, let period = linux?.resources?.cpu?.period, period > 0 else { return 1 }
        return max(1, min(16, Int((UInt64(quota) + period - 1) / period)))
    }

    /// Annotations that set the VM's shape over what the resources give: memory (`512m`, `2g`)
    /// and vCPUs.
    public static let memoryAnnotation = "io.hvc.memory"
    public static let cpusAnnotation = "io.hvc.cpus"

    /// What a pod's VM holds beyond its containers' limits: the guest kernel, the agent and the
    /// pause process.
    public static let podOverheadMiB = 64

    /// The VM's memory and vCPUs: the annotations where given, else from the resources (for a
    /// pod's sandbox, the pod's memory from the CRI plus `podOverheadMiB`).
    public func vmShape() throws(HVCError) -> (memoryMiB: Int, cpus: Int) {
        var shape = (memoryMiB: memoryMiB, cpus: cpus)
        if let text = annotations?[OCISpec.podMemoryAnnotation], let bytes = Int64(text), bytes > 0 {
            shape.memoryMiB = max(shape.memoryMiB, min(65536, Int((bytes + (1 << 20) - 1) >> 20) + OCISpec.podOverheadMiB))
        }
        if let text = annotations?[OCISpec.memoryAnnotation] {
            let bytes = try RunOptions.parseSize(text, minimum: 64 << 20, what: "annotation \(OCISpec.memoryAnnotation)")
            guard bytes <= 64 << 30 else { throw HVCError(.invalid, "annotation \(OCISpec.memoryAnnotation)=\(text) is over 64 GiB") }
            shape.memoryMiB = bytes >> 20
        }
        if let text = annotations?[OCISpec.cpusAnnotation] {
            guard let cpus = Int(text), (1...16).contains(cpus) else {
                throw HVCError(.invalid, "annotation \(OCISpec.cpusAnnotation)=\(text): give 1 to 16 vCPUs")
            }
            shape.cpus = cpus
        }
        return shape
    }

    /// The annotation that gives the container a /dev/kvm of its VM's own (`hvc run --nested`).
    public static let nestedAnnotation = "io.hvc.nested"

    /// What a container is to a pod, as the callers mark it: containerd's CRI
    /// (`io.kubernetes.cri.container-type`, `sandbox-id`), CRI-O's and podman's
    /// (`io.kubernetes.cri-o.ContainerType`, `SandboxID`; podman's infra container carries
    /// neither and is a plain container until a member names it).
    enum PodRole: Equatable {
        /// The pod's first container (its pause process): its VM is the pod's.
        case sandbox
        /// A container that runs in the VM of the sandbox with this OCI id.
        case member(sandbox: String)
    }

    func podRole(id: String) -> PodRole? {
        let annotations = annotations ?? [:]
        let type = annotations["io.kubernetes.cri.container-type"] ?? annotations["io.kubernetes.cri-o.ContainerType"]
        if type == "sandbox" { return .sandbox }
        guard type == "container",
              let sandbox = annotations["io.kubernetes.cri.sandbox-id"] ?? annotations["io.kubernetes.cri-o.SandboxID"],
              !sandbox.isEmpty, sandbox != id else { return nil }
        return .member(sandbox: sandbox)
    }

    /// The pod's memory as containerd's CRI gives it on the sandbox (the sum of its containers'
    /// limits, when the pod declares them).
    static let podMemoryAnnotation = "io.kubernetes.cri.sandbox-memory"

    /// A member's memory limit in bytes (its cgroup's in the guest), if it has one.
    var memoryLimitBytes: UInt64? {
        guard let limit = linux?.resources?.memory?.limit, limit > 0 else { return nil }
        return UInt64(limit)
    }

    /// The network namespace the caller made for the container, if it named one; "" when the
    /// bundle asks for a new, empty one (podman's `--network none`).
    var networkNamespace: String? {
        guard let namespace = linux?.namespaces?.first(where: { $0.type == "network" }) else { return nil }
        return namespace.path ?? ""
    }
}
