import ArgumentParser
import Foundation
import Runtime

struct VolumeGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volume",
        abstract: "Manage volumes: host directories that containers mount by name (-v NAME:/path).",
        subcommands: [VolumeCreate.self, VolumeList.self, VolumeInspect.self, VolumeRemove.self, VolumePrune.self])
}

/// The volume verbs, on the local state or through hvcd.
protocol VolumeService {
    func create(_ request: CreateVolumeRequest) throws(HVCError) -> Volume
    func list() throws(HVCError) -> [Volume]
    func inspect(_ name: String) throws(HVCError) -> VolumeDetails
    func remove(_ name: String) throws(HVCError)
    func prune() throws(HVCError) -> [String]
}

struct LocalVolumes: VolumeService {
    let manager: VolumeManager

    func create(_ request: CreateVolumeRequest) throws(HVCError) -> Volume { try manager.create(request) }
    func list() throws(HVCError) -> [Volume] { manager.list() }
    func inspect(_ name: String) throws(HVCError) -> VolumeDetails { try manager.inspect(name) }
    func remove(_ name: String) throws(HVCError) { try manager.remove(name) }
    func prune() throws(HVCError) -> [String] { manager.prune() }
}

struct DaemonVolumes: VolumeService {
    let client: DaemonClient

    func create(_ request: CreateVolumeRequest) throws(HVCError) -> Volume {
        try client.decode(Volume.self, try client.call("POST", "/v1/volumes", body: request))
    }

    func list() throws(HVCError) -> [Volume] { try client.decode([Volume].self, try client.call("GET", "/v1/volumes")) }

    func inspect(_ name: String) throws(HVCError) -> VolumeDetails {
        try client.decode(VolumeDetails.self, try client.call("GET", "/v1/volumes/" + DaemonClient.escape(name)))
    }

    func remove(_ name: String) throws(HVCError) { _ = try client.call("DELETE", "/v1/volumes/" + DaemonClient.escape(name)) }

    func prune() throws(HVCError) -> [String] {
        try client.decode(PrunedVolumes.self, try client.call("POST", "/v1/volumes/prune")).removed
    }
}

extension VolumeDriver: ExpressibleByArgument {}

extension GlobalOptions {
    func volumes() throws(HVCError) -> any VolumeService {
        if let daemon = try daemon() { return DaemonVolumes(client: daemon) }
        return LocalVolumes(manager: VolumeManager(runtime: runtime(), tenant: ContainerManager.callerTenant()))
    }
}

struct VolumeCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a volume.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Set a label: KEY=VALUE (or KEY, empty).")
    var label: [String] = []
    @Option(name: [.customShort("d"), .long], help: "local (a host directory, shared live) or block (an ext4 image, one container's at a time, fast small files).")
    var driver: VolumeDriver = .local
    @Option(name: [.customShort("o"), .long], help: "A driver option: KEY=VALUE (block: size, default 10g).")
    var opt: [String] = []
    @Argument(help: "Volume name.")
    var name: String

    func run() throws {
        try HVC.guarded {
            var request = CreateVolumeRequest(name: name)
            request.labels = try Labels.parse(label)
            request.driver = driver
            var options: [String: String] = [:]
            for text in opt {
                let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty else {
                    throw HVCError(.invalid, "invalid --opt \"\(text.prefix(64))\": use KEY=VALUE, e.g. size=10g")
                }
                options[parts[0]] = parts[1]
            }
            request.options = options.isEmpty ? nil : options
            print(try global.volumes().create(request).name)
            return 0
        }
    }
}

struct VolumeList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List volumes.", aliases: ["list"])

    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Only print volume names.")
    var quiet = false
    @Option(help: "Output format: table or json.")
    var format = OutputFormat.table

    func run() throws {
        try HVC.guarded {
            let volumes = try global.volumes().list()
            if quiet {
                for volume in volumes { print(volume.name) }
            } else if format == .json {
                print(try jsonText(volumes))
            } else {
                var rows = [["DRIVER", "VOLUME NAME", "ANONYMOUS", "TENANT", "MOUNTPOINT"]]
                for v in volumes { rows.append([(v.driver ?? .local).rawValue, v.name, v.anonymous ? "yes" : "no", v.tenant, v.mountpoint]) }
                printTable(rows)
            }
            return 0
        }
    }
}

struct VolumeInspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show volumes and the containers that mount them, as JSON.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Volume names.")
    var names: [String]

    func run() throws {
        try HVC.guarded {
            let service = try global.volumes()
            var details: [VolumeDetails] = []
            for name in names { details.append(try service.inspect(name)) }
            print(try jsonText(details))
            return 0
        }
    }
}

struct VolumeRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove volumes no container mounts.", aliases: ["remove"])

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Volume names.")
    var names: [String]

    func run() throws {
        try HVC.guarded {
            let service = try global.volumes()
            return eachReported(names) { (name: String) throws(HVCError) in
                try service.remove(name)
                return name
            }
        }
    }
}

struct VolumePrune: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove every volume no container mounts.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try HVC.guarded {
            for name in try global.volumes().prune() { print(name) }
            return 0
        }
    }
}
