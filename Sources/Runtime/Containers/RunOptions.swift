import AgentProtocol
import Foundation
import OCI
import VMM

/// What `hvc run` was asked for.
public struct RunOptions: Sendable {
    public var image: String
    public var command: [String] = []
    public var entrypoint: [String]?
    public var environment: [String] = []
    public var workingDirectory: String?
    public var user: String?
    public var name: String?
    public var hostname: String?
    public var memoryMiB: Int = 256
    public var cpus: Int = 1
    public var pidsLimit: Int = 256
    /// Rotate the container's log past this size.
    public var logMaxBytes = RunOptions.defaultLogMaxBytes
    public var accelerator: Accelerator?
    public var interactive = false
    public var terminal = false
    public var remove = false
    /// Start the VM as a clone of the image's template (made on first use); false: cold boot.
    public var template = true
    /// The network to join by name; nil: the tenant's default network; `none`: no interface.
    public var network: String?
    public var ports: [PortMapping] = []
    /// Publish every port the image exposes, each on a free host port (`-P`).
    public var publishAll = false
    /// `-v`, `--mount`, `--tmpfs`, each checked as parsed.
    public var mounts: [ContainerMount] = []
    public var readOnlyRoot = false
    /// A /dev/kvm of the VM's own in the container.
    public var nested = false
    /// The writable layer's bound; nil: half the VM's memory (the layer lives in guest memory).
    public var writableBytes: Int?
    public var restartPolicy = RestartPolicy(name: .no)
    /// Health check fields over the image's (`--health-*`); a test of `["NONE"]` turns it off.
    public var healthcheck: Healthcheck?
    public var labels: [String: String] = [:]
    /// More names for the container on its network (`--network-alias`).
    public var networkAliases: [String] = []

    public init(image: String) { self.image = image }

    public static let defaultLogMaxBytes = 10 * 1024 * 1024
    public static let cpuRange = 1...16
    /// QEMU itself needs a few dozen threads under the VMM's pids limit.
    public static let pidsLimitRange = 32...65536

    /// Checks the values that parsing alone does not bound.
    public func validate(host: HostCapacity = .current) throws(HVCError) {
        try RunOptions.checkCPUs(cpus)
        try RunOptions.checkFits(cpus: cpus, memoryMiB: memoryMiB, host: host)
        if let network, network != Network.noneName { try Network.validateName(network) }
        if remove && restartPolicy.name != .no {
            throw HVCError(.invalid, "--restart \(restartPolicy.text) and --rm cannot be combined: a removed container cannot restart")
        }
        for alias in networkAliases where !ContainerID.isValidName(alias) || alias.count > 63 {
            throw HVCError(.invalid, "network alias \"\(alias.prefix(64))\" is not a name: use letters, digits, _ . - (at most 63)")
        }
        if network == Network.noneName, !networkAliases.isEmpty {
            throw HVCError(.invalid, "--network none has no name server to give aliases to: drop --network-alias or choose a network")
        }
        if network == Network.noneName, !ports.isEmpty || publishAll {
            throw HVCError(.invalid, "--network none has no ports to publish: drop -p/-P or choose a network")
        }
        var seen = Set<String>()
        for port in ports where port.hostPort != 0 {
            // 0.0.0.0 covers every address, so it clashes with any address on the same port.
            let key = "\(port.hostPort)/\(port.protocol.rawValue)"
            let address = port.hostIP?.description ?? "*"
            guard !seen.contains(key + "@" + address), !seen.contains(key + "@*"),
                  address != "*" || !seen.contains(where: { $0.hasPrefix(key + "@") }) else {
                throw HVCError(.invalid, "host port \(port.hostPort)/\(port.protocol.rawValue) is published twice: give each -p its own host port")
            }
            seen.insert(key + "@" + address)
        }
        _ = try ContainerMount.ordered(mounts)
        if let writableBytes, writableBytes > memoryMiB << 20 {
            throw HVCError(.invalid, "storage size \(writableBytes >> 20) MiB is more than the VM's memory (\(memoryMiB) MiB), where the writable layer lives: give a smaller size= or more --memory")
        }
        guard RunOptions.pidsLimitRange.contains(pidsLimit) else {
            throw HVCError(.invalid, "pids limit \(pidsLimit) is out of range: give between \(RunOptions.pidsLimitRange.lowerBound) and \(RunOptions.pidsLimitRange.upperBound) (QEMU itself needs a few dozen threads)")
        }
    }

    /// The process to start, from these options over the image's configuration, as Docker
    /// combines them: `--entrypoint` replaces the image's and drops its `Cmd`.
    public func processSpec(config: ImageConfig, hostname: String, rows: UInt16 = 24, columns: UInt16 = 80) throws(HVCError) -> ProcessSpec {
        let entry = entrypoint ?? config.entrypoint ?? []
        let arguments = entry + (command.isEmpty && entrypoint == nil ? (config.cmd ?? []) : command)
        guard !arguments.isEmpty else {
            throw HVCError(.invalid, "no command given and image \"\(image)\" has none: add one after the image name")
        }
        var env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=\(hostname)"]
        if terminal { env.append("TERM=xterm") }
        RunOptions.merge(&env, config.env ?? [])
        RunOptions.merge(&env, environment)
        let workingDirectory = self.workingDirectory ?? config.workingDir.flatMap { $0.isEmpty ? nil : $0 } ?? "/"
        guard workingDirectory.hasPrefix("/") else {
            throw HVCError(.invalid, "working directory \"\(workingDirectory)\" is not absolute: give a path starting with /")
        }
        return ProcessSpec(
            arguments: arguments, environment: env, workingDirectory: workingDirectory,
            user: user ?? config.user ?? "", terminal: terminal, rows: rows, columns: columns)
    }

    /// Refuses a CPU count outside what a VM may have.
    public static func checkCPUs(_ cpus: Int) throws(HVCError) {
        guard cpuRange.contains(cpus) else {
            throw HVCError(.invalid, "cpus \(cpus) is out of range: give between \(cpuRange.lowerBound) and \(cpuRange.upperBound)")
        }
    }

    /// Refuses a VM larger than the host: more vCPUs than it has CPUs, or more memory than its RAM.
    public static func checkFits(cpus: Int, memoryMiB: Int, host: HostCapacity) throws(HVCError) {
        guard cpus <= host.cpus else {
            throw HVCError(.invalid, "cpus \(cpus) is more than this host's \(host.cpus) CPUs: give 1 to \(host.cpus)")
        }
        guard memoryMiB <= host.memoryMiB else {
            throw HVCError(.invalid, "memory \(memoryMiB)m is more than this host's \(host.memoryMiB)m of RAM: give less")
        }
    }

    /// Adds `KEY=VALUE` entries, replacing earlier ones with the same key.
    static func merge(_ env: inout [String], _ entries: [String]) {
        for entry in entries {
            let key = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
            env.removeAll { $0.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0] == key }
            env.append(entry)
        }
    }

    /// Parses a Docker-style size (`512m`, `1g`, `4096k`, or bytes) into bytes.
    public static func parseSize(_ text: String, minimum: Int, what: String) throws(HVCError) -> Int {
        let lower = text.lowercased()
        let units: [(String, Double)] = [("gb", 1_073_741_824), ("g", 1_073_741_824), ("mb", 1_048_576), ("m", 1_048_576), ("kb", 1024), ("k", 1024), ("b", 1)]
        var number = lower
        var scale = 1.0
        for (suffix, factor) in units where lower.hasSuffix(suffix) {
            number = String(lower.dropLast(suffix.count))
            scale = factor
            break
        }
        guard let value = Double(number), value > 0, value.isFinite, value * scale < Double(Int.max) else {
            throw HVCError(.invalid, "invalid \(what) \"\(text)\": use a number with b, k, m or g, e.g. 10m")
        }
        let bytes = Int(value * scale)
        guard bytes >= minimum else { throw HVCError(.invalid, "\(what) \(text) is too small: give at least \(minimum) bytes") }
        return bytes
    }

    /// Parses Docker-style sizes: `512m`, `1g`, `262144k`, or bytes; returns MiB.
    public static func parseMemory(_ text: String) throws(HVCError) -> Int {
        let bytes = try parseSize(text, minimum: 1, what: "memory size")
        let mib = (bytes + 1_048_575) / 1_048_576
        guard (64...65536).contains(mib) else {
            throw HVCError(.invalid, "memory \(text) is out of range: give between 64m and 64g")
        }
        return mib
    }
}

/// What this host has for VMs: its online CPUs and its RAM.
public struct HostCapacity: Equatable, Sendable {
    public var cpus: Int
    public var memoryMiB: Int

    public init(cpus: Int, memoryMiB: Int) {
        self.cpus = cpus
        self.memoryMiB = memoryMiB
    }

    /// Read from sysconf and `/proc/meminfo` (MemTotal); generous where they cannot be read.
    public static var current: HostCapacity {
        let cpus = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let total = meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
            .flatMap { $0.split(separator: " ").dropFirst().first.flatMap { Int($0) } }
        return HostCapacity(cpus: cpus > 0 ? cpus : Int.max, memoryMiB: total.map { $0 / 1024 } ?? Int.max)
    }
}
