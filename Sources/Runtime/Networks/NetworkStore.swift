import Foundation
import HVCSystem
import OCI

/// Networks under `<root>/networks/<tenant>/<name>.json`, with the CNI address leases in
/// `<root>/networks/.ipam`. Creation and removal hold `.lock`, so that two subnets never overlap
/// and a network in use is never removed.
public struct NetworkStore: Sendable {
    public let directory: String
    /// Subnets for networks made without `--subnet`: /24s of this range.
    public static let pool = IPv4Subnet("10.210.0.0/16")!
    /// Where a network's subnet may be: private and shared address space only, so that no
    /// network takes over a public, loopback or link-local range the host routes elsewhere.
    static let allowedRanges = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"].compactMap { IPv4Subnet($0) }

    /// The run root, where each network's members are listed.
    let runRoot: String

    public init(paths: RuntimePaths) {
        directory = paths.root + "/networks"
        runRoot = paths.runRoot
    }

    /// This store's nftables table: each state directory keeps its own rules (named by the
    /// directory's path with `..` resolved, however the root was given).
    var firewallTable: String {
        "inet hvc_" + Digest.of(data: Data(URL(fileURLWithPath: directory).standardizedFileURL.path.utf8)).hex.prefix(8)
    }

    var ipamDirectory: String { directory + "/.ipam" }
    private var lockPath: String { directory + "/.lock" }
    private func tenantDirectory(_ tenant: String) -> String { directory + "/" + tenant }
    private func path(_ name: String, tenant: String) -> String { tenantDirectory(tenant) + "/" + name + ".json" }

    /// Every network of `tenant`, or of all tenants when nil, by name.
    public func list(tenant: String?) -> [Network] {
        entriesPerTenant(in: directory, tenant: tenant)
            .filter { $0.entry.hasSuffix(".json") }
            .compactMap { load(String($0.entry.dropLast(5)), tenant: $0.tenant) }
            .sorted { ($0.tenant, $0.name) < ($1.tenant, $1.name) }
    }

    func load(_ name: String, tenant: String) -> Network? {
        FileManager.default.contents(atPath: path(name, tenant: tenant))
            .flatMap { try? JSONDecoder.hvc.decode(Network.self, from: $0) }
            .flatMap { $0.name == name && $0.tenant == tenant ? $0 : nil }
    }

    /// The network `name` of `tenant` (by name, or by a prefix of its id).
    public func resolve(_ name: String, tenant: String) throws(HVCError) -> Network {
        if let network = load(name, tenant: tenant) { return network }
        let byID = list(tenant: tenant).filter { !name.isEmpty && $0.id.hasPrefix(name) }
        if byID.count == 1 { return byID[0] }
        throw HVCError(.notFound, "no network \"\(name)\": see `hvc network ls`")
    }

    /// Makes a network; with no subnet, the first free /24 of 10.210.0.0/16.
    public func create(name: String, tenant: String, subnet: IPv4Subnet?, isInternal: Bool, hostAccess: Bool,
                       maxNetworks: Int? = nil, labels: [String: String]? = nil) throws(HVCError) -> Network {
        try Network.validateName(name)
        if let subnet {
            guard subnet.prefix >= 8, subnet.prefix <= 29 else {
                throw HVCError(.invalid, "subnet \(subnet) must have a prefix from /8 to /29")
            }
            guard NetworkStore.allowedRanges.contains(where: { $0.contains(subnet.network) && subnet.prefix >= $0.prefix }) else {
                throw HVCError(.invalid, "subnet \(subnet) is not private: choose one in 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10")
            }
        }
        try makeDirectory(directory, mode: 0o700)
        let network = try withLock(lockPath) { () throws(HVCError) -> Network in
            guard load(name, tenant: tenant) == nil else {
                throw HVCError(.conflict, "network \"\(name)\" exists already: choose another name or remove it")
            }
            if let maxNetworks, list(tenant: tenant).count >= maxNetworks {
                throw HVCError(.quota, "tenant \(tenant) has its \(maxNetworks) networks: remove one first")
            }
            let taken = list(tenant: nil).map(\.subnet) + HostRoutes.subnets()
            let chosen: IPv4Subnet
            if let subnet {
                if let clash = taken.first(where: { $0.overlaps(subnet) }) {
                    throw HVCError(.conflict, "subnet \(subnet) overlaps \(clash), in use on this host: choose another")
                }
                chosen = subnet
            } else {
                guard let free = NetworkStore.freeSubnet(avoiding: taken) else {
                    throw HVCError(.quota, "no free /24 left in \(NetworkStore.pool): remove unused networks (`hvc network prune`)")
                }
                chosen = free
            }
            let id = randomHex(32)
            var network = Network(id: id, name: name, tenant: tenant, subnet: chosen, bridge: "hvc" + id.prefix(8),
                                  isInternal: isInternal, hostAccess: hostAccess, mtu: HostNetwork.mtu, created: Date())
            network.labels = labels
            try makeDirectory(tenantDirectory(tenant), mode: 0o700)
            try writeAtomically(path(name, tenant: tenant), try JSONEncoder.hvc.encode(network))
            // The bridge now, so that its route tells any other hvc state on this host that
            // the subnet is taken.
            do throws(HVCError) {
                try NetworkStore.makeBridge(network)
                try Firewall.apply(list(tenant: nil), table: firewallTable)
            } catch {
                try? FileManager.default.removeItem(atPath: path(name, tenant: tenant))
                NetworkStore.deleteBridge(network)
                throw error
            }
            return network
        }
        return network
    }

    /// Removes address leases whose container is gone or has exited: what a host restart
    /// leaves behind (the run directories that would have undone them are gone with it).
    public func releaseStaleLeases(_ network: Network, isLive: (String) -> Bool) {
        let directory = ipamDirectory + "/" + network.cniName
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where IPv4Address(name) != nil {
            let path = directory + "/" + name
            // `ID\r\nIFNAME`: "\r\n" is one Character in Swift, so split by scalars.
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            let owner = String(String.UnicodeScalarView(text.unicodeScalars.prefix { $0 != "\r" && $0 != "\n" }))
            if !owner.isEmpty, !isLive(owner) { unlink(path) }
        }
    }

    public static func freeSubnet(avoiding taken: [IPv4Subnet]) -> IPv4Subnet? {
        var candidate = pool.network.value
        while pool.contains(IPv4Address(candidate)) {
            if let subnet = IPv4Subnet(network: IPv4Address(candidate), prefix: 24), !taken.contains(where: { $0.overlaps(subnet) }) {
                return subnet
            }
            candidate += 256
        }
        return nil
    }

    /// The tenant's default network, made on first use: host access for the host's own
    /// (local) user, as Docker's `bridge` gives; for an API tenant as its tenants entry says.
    public func defaultNetwork(tenant: String, hostAccess: Bool) throws(HVCError) -> Network {
        if let network = load(Network.defaultName, tenant: tenant) { return network }
        do {
            return try create(name: Network.defaultName, tenant: tenant, subnet: nil, isInternal: false, hostAccess: hostAccess)
        } catch where error.kind == .conflict {
            return try resolve(Network.defaultName, tenant: tenant)
        }
    }

    /// Removes a network no container uses: its bridge, leases and rules go with it.
    /// `inUse` names the containers still on it.
    public func remove(_ network: Network, inUse: () -> [String]) throws(HVCError) {
        try withLock(lockPath) { () throws(HVCError) in
            let users = inUse()
            guard users.isEmpty else {
                throw HVCError(.conflict, "network \"\(network.name)\" is in use by \(users.joined(separator: ", ")): remove them first")
            }
            try? FileManager.default.removeItem(atPath: path(network.name, tenant: network.tenant))
        }
        NetworkStore.deleteBridge(network)
        try? FileManager.default.removeItem(atPath: ipamDirectory + "/" + network.cniName)
        try? FileManager.default.removeItem(atPath: runRoot + "/networks/" + network.id)
        try Firewall.apply(list(tenant: nil), table: firewallTable)
    }

    static func deleteBridge(_ network: Network) {
        _ = ToolRun.run("/usr/sbin/ip", ["link", "del", network.bridge])
    }

    /// The network's bridge with its gateway address, up (the CNI bridge plugin finds it so),
    /// its IPv6 off before it comes up.
    static func makeBridge(_ network: Network) throws(HVCError) {
        let b = network.bridge
        let steps = [["link", "add", "name", b, "mtu", "\(network.mtu)", "type", "bridge"],
                     ["addr", "add", "\(network.gateway)/\(network.subnet.prefix)", "dev", b], ["link", "set", b, "up"]]
        for (index, step) in steps.enumerated() {
            let run = ToolRun.run("/usr/sbin/ip", step)
            guard run.succeeded else { throw HVCError("bridge \(b) of network \(network.name): ip: \(run.complaint)") }
            if index == 0 { HostNetwork.disableIPv6(b) }
        }
    }
}

/// The IPv4 subnets the host routes already (its own links), which a network must not overlap.
enum HostRoutes {
    static func subnets() -> [IPv4Subnet] {
        guard let text = try? String(contentsOfFile: "/proc/net/route", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 8, let destination = UInt32(fields[1], radix: 16), let mask = UInt32(fields[7], radix: 16),
                  mask != 0 else { return nil }
            let prefix = mask.nonzeroBitCount
            return IPv4Subnet(network: IPv4Address(UInt32(bigEndian: destination)), prefix: prefix)
        }
    }
}

func randomHex(_ bytes: Int) -> String {
    (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
}

extension Runtime {
    public var networks: NetworkStore { NetworkStore(paths: paths) }
}
