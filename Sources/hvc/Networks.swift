import ArgumentParser
import Foundation
import Runtime

struct NetworkGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network",
        abstract: "Manage networks: bridges on the host that containers join (default: `bridge`).",
        subcommands: [NetworkCreate.self, NetworkList.self, NetworkInspect.self, NetworkRemove.self, NetworkPrune.self])
}

/// The network verbs, on the local state or through hvcd.
protocol NetworkService {
    func create(_ request: CreateNetworkRequest) throws(HVCError) -> Network
    func list() throws(HVCError) -> [Network]
    func inspect(_ name: String) throws(HVCError) -> NetworkDetails
    func remove(_ name: String) throws(HVCError)
    func prune() throws(HVCError) -> [String]
}

struct LocalNetworks: NetworkService {
    let manager: NetworkManager

    func create(_ request: CreateNetworkRequest) throws(HVCError) -> Network { try manager.create(request) }
    func list() throws(HVCError) -> [Network] { manager.list() }
    func inspect(_ name: String) throws(HVCError) -> NetworkDetails { try manager.inspect(name) }
    func remove(_ name: String) throws(HVCError) { try manager.remove(name) }
    func prune() throws(HVCError) -> [String] { manager.prune() }
}

struct DaemonNetworks: NetworkService {
    let client: DaemonClient

    func create(_ request: CreateNetworkRequest) throws(HVCError) -> Network {
        try client.decode(Network.self, try client.call("POST", "/v1/networks", body: request))
    }

    func list() throws(HVCError) -> [Network] { try client.decode([Network].self, try client.call("GET", "/v1/networks")) }

    func inspect(_ name: String) throws(HVCError) -> NetworkDetails {
        try client.decode(NetworkDetails.self, try client.call("GET", "/v1/networks/" + DaemonClient.escape(name)))
    }

    func remove(_ name: String) throws(HVCError) { _ = try client.call("DELETE", "/v1/networks/" + DaemonClient.escape(name)) }

    func prune() throws(HVCError) -> [String] {
        try client.decode(PrunedNetworks.self, try client.call("POST", "/v1/networks/prune")).removed
    }
}

extension GlobalOptions {
    func networks() throws(HVCError) -> any NetworkService {
        if let daemon = try daemon() { return DaemonNetworks(client: daemon) }
        return LocalNetworks(manager: NetworkManager(runtime: runtime(), tenant: ContainerManager.callerTenant()))
    }
}

struct NetworkCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a network.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "IPv4 subnet, e.g. 10.211.0.0/24 (default: a free /24 of 10.210.0.0/16).")
    var subnet: String?
    @Flag(help: "No traffic in or out of the network but among its containers.")
    var `internal` = false
    @Option(help: "Whether containers may connect to the host's own addresses: true or false (default: true locally, the tenant's setting through hvcd).")
    var hostAccess: Bool?
    @Option(help: "Set a label: KEY=VALUE (or KEY, empty).")
    var label: [String] = []
    @Argument(help: "Network name.")
    var name: String

    func run() throws {
        try HVC.guarded {
            var request = CreateNetworkRequest(name: name)
            request.subnet = subnet
            request.internal = `internal` ? true : nil
            request.hostAccess = hostAccess
            request.labels = try Labels.parse(label)
            print(try global.networks().create(request).id)
            return 0
        }
    }
}

struct NetworkList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List networks.", aliases: ["list"])

    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Only print network names.")
    var quiet = false
    @Option(help: "Output format: table or json.")
    var format = OutputFormat.table

    func run() throws {
        try HVC.guarded {
            let networks = try global.networks().list()
            if quiet {
                for network in networks { print(network.name) }
            } else if format == .json {
                print(try jsonText(networks))
            } else {
                var rows = [["NETWORK ID", "NAME", "SUBNET", "BRIDGE", "INTERNAL", "HOST ACCESS", "TENANT"]]
                for n in networks {
                    rows.append([String(n.id.prefix(12)), n.name, n.subnet.description, n.bridge, n.isInternal ? "yes" : "no",
                                 n.hostAccess ? "yes" : "no", n.tenant])
                }
                printTable(rows)
            }
            return 0
        }
    }
}

struct NetworkInspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show networks and their containers as JSON.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Network names.")
    var names: [String]

    func run() throws {
        try HVC.guarded {
            let service = try global.networks()
            var details: [NetworkDetails] = []
            for name in names { details.append(try service.inspect(name)) }
            print(try jsonText(details))
            return 0
        }
    }
}

struct NetworkRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove networks no container uses.", aliases: ["remove"])

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Network names.")
    var names: [String]

    func run() throws {
        try HVC.guarded {
            let service = try global.networks()
            return eachReported(names) { (name: String) throws(HVCError) in
                try service.remove(name)
                return name
            }
        }
    }
}

struct NetworkPrune: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove every network no container uses (not `bridge`).")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try HVC.guarded {
            for name in try global.networks().prune() { print(name) }
            return 0
        }
    }
}

struct Port: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "port", abstract: "List a container's published ports.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Container name or id.")
    var container: String
    @Argument(help: "Only this container port, e.g. 80 or 80/tcp.")
    var port: String?

    func run() throws {
        try HVC.guarded {
            let record = try global.containers().inspect(container)
            var ports = record.state.endpoint?.ports ?? []
            if let port {
                let wanted = try PortMapping.parse(port)
                ports = ports.filter { $0.containerPort == wanted.containerPort && (port.contains("/") ? $0.protocol == wanted.protocol : true) }
                guard !ports.isEmpty else {
                    throw HVCError(.notFound, "container \(record.name) publishes no port \(port): see `hvc port \(record.name)`")
                }
            }
            for mapping in ports { print(mapping.description) }
            return 0
        }
    }
}
