import Foundation

/// The API's network-create request, shared by hvcd and the CLI.
public struct CreateNetworkRequest: Codable, Sendable, Equatable {
    public var name: String
    /// `a.b.c.d/n`; default: a free /24 of 10.210.0.0/16.
    public var subnet: String?
    /// No traffic in or out but among its own containers.
    public var `internal`: Bool?
    /// Its containers may connect to the host's own addresses.
    public var hostAccess: Bool?
    /// Key-value metadata (`--label`).
    public var labels: [String: String]?

    public init(name: String) { self.name = name }
}

/// A network as `network inspect` shows it: the network and its containers' addresses.
public struct NetworkDetails: Codable, Sendable {
    public struct Member: Codable, Sendable {
        public var id: String
        public var name: String
        public var address: String?
        public var mac: String?
    }

    public var network: Network
    public var containers: [Member]
}

/// The API's answer to a network prune.
public struct PrunedNetworks: Codable, Sendable {
    public var removed: [String]
    public init(removed: [String]) { self.removed = removed }
}

/// Network operations for one tenant, shared by the CLI and hvcd.
public struct NetworkManager: Sendable {
    public let runtime: Runtime
    public let tenant: String

    public init(runtime: Runtime, tenant: String) {
        self.runtime = runtime
        self.tenant = tenant
    }

    /// `mayAccessHost`: whether this caller may make a network with host access;
    /// `anySubnet`: whether it may choose a subnet outside hvc's own range (admins).
    public func create(_ request: CreateNetworkRequest, mayAccessHost: Bool = true, anySubnet: Bool = true,
                       maxNetworks: Int? = nil) throws(HVCError) -> Network {
        var subnet: IPv4Subnet?
        if let text = request.subnet {
            guard let parsed = IPv4Subnet(text) else {
                throw HVCError(.invalid, "invalid subnet \"\(text)\": give an IPv4 network as a.b.c.d/n with no host bits, e.g. 10.211.0.0/24")
            }
            // A tenant's subnet stays in hvc's range, so that it cannot route the host's own
            // traffic for some other network into its bridge.
            guard anySubnet || (NetworkStore.pool.contains(parsed.network) && parsed.prefix >= NetworkStore.pool.prefix) else {
                throw HVCError(.forbidden, "subnet \(parsed) is outside \(NetworkStore.pool): a tenant's networks stay in it")
            }
            subnet = parsed
        }
        let hostAccess = request.hostAccess ?? mayAccessHost
        if hostAccess && !mayAccessHost {
            throw HVCError(.forbidden, "tenant \(tenant) may not give a network host access: ask an admin to set hostAccess in the tenants file")
        }
        return try runtime.networks.create(name: request.name, tenant: tenant, subnet: subnet, isInternal: request.internal ?? false,
                                           hostAccess: hostAccess && !(request.internal ?? false), maxNetworks: maxNetworks,
                                           labels: try Labels.checked(request.labels))
    }

    public func list() -> [Network] { runtime.networks.list(tenant: tenant) }

    public func inspect(_ name: String) throws(HVCError) -> NetworkDetails {
        let network = try runtime.networks.resolve(name, tenant: tenant)
        let members = users(of: network).map { record in
            NetworkDetails.Member(id: record.id, name: record.name, address: record.state.endpoint.map { "\($0.address)/\($0.prefix)" },
                                  mac: record.state.endpoint?.mac)
        }
        return NetworkDetails(network: network, containers: members)
    }

    public func remove(_ name: String) throws(HVCError) {
        let network = try runtime.networks.resolve(name, tenant: tenant)
        try runtime.networks.remove(network) { users(of: network).map(\.name) }
    }

    /// Removes the tenant's networks no container uses, but its default one.
    public func prune() -> [String] {
        list().filter { $0.name != Network.defaultName }.compactMap { network in
            (try? runtime.networks.remove(network) { users(of: network).map(\.name) }) == nil ? nil : network.name
        }
    }

    /// The containers on a network that have not exited.
    func users(of network: Network) -> [ContainerRecord] {
        ((try? runtime.containers.list()) ?? []).filter {
            $0.config.tenant == network.tenant && $0.config.network == network.name && $0.state.status != .exited
        }
    }
}
