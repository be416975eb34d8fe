import Foundation

/// A network of one tenant: a Linux bridge on the host with an IPv4 subnet. Containers on it
/// reach each other (by name, too) and, unless it is internal, the outside world through the
/// host's NAT; the host's own services only when `hostAccess` says so.
public struct Network: Codable, Equatable, Sendable {
    public var id: String
    public var name: String
    public var tenant: String
    public var subnet: IPv4Subnet
    /// The host's bridge device, `hvc` and 8 hex digits of the id.
    public var bridge: String
    /// No traffic leaves the network, none enters it but from its own containers.
    public var isInternal: Bool
    /// Whether its containers may open connections to the host's own addresses.
    public var hostAccess: Bool
    /// The MTU of its bridge, veths and guests: the host uplink's when the network was made.
    public var mtu: Int
    public var created: Date
    /// Key-value metadata (`--label`).
    public var labels: [String: String]?

    public init(id: String, name: String, tenant: String, subnet: IPv4Subnet, bridge: String, isInternal: Bool,
                hostAccess: Bool, mtu: Int, created: Date) {
        self.id = id
        self.name = name
        self.tenant = tenant
        self.subnet = subnet
        self.bridge = bridge
        self.isInternal = isInternal
        self.hostAccess = hostAccess
        self.mtu = mtu
        self.created = created
    }

    public var gateway: IPv4Address { subnet.gateway }
    /// The network's name among the CNI plugins (it names its address leases).
    var cniName: String { "hvc-" + id.prefix(12) }

    /// The name `run` uses when given no `--network`, one network of that name per tenant.
    public static let defaultName = "bridge"
    /// `--network none`: a VM without a network interface.
    public static let noneName = "none"

    /// Docker's rule for network names, plus a length bound.
    public static func validateName(_ name: String) throws(HVCError) {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "_.-"))
        guard !name.isEmpty, name.count <= 64, name.unicodeScalars.allSatisfy({ $0.isASCII && allowed.contains($0) }),
              let first = name.unicodeScalars.first, CharacterSet.alphanumerics.contains(first) else {
            throw HVCError(.invalid, "invalid network name \"\(name)\": use letters, digits, _ . - (starting with a letter or digit, at most 64)")
        }
        guard name != noneName, name != "host" else {
            throw HVCError(.invalid, "network name \"\(name)\" is reserved: choose another")
        }
    }
}

/// What a container's network interface is, once attached: recorded in its state.
public struct NetworkEndpoint: Codable, Equatable, Sendable {
    public var network: String
    public var networkID: String
    public var address: IPv4Address
    public var prefix: Int
    public var gateway: IPv4Address
    public var mac: String
    /// The published ports, host ports as chosen.
    public var ports: [PortMapping]
}

/// Facts of the host's own network.
enum HostNetwork {
    /// Turns IPv6 off on a host interface of a network (its bridge, a veth's host end): the
    /// networks are IPv4, and an interface's IPv6 chatter (duplicate address probes, router
    /// solicitations, multicast reports) would be flooded to every VM on the bridge, waking each.
    static func disableIPv6(_ interface: String) {
        guard !interface.contains("/"), !interface.hasPrefix(".") else { return }
        let fd = open("/proc/sys/net/ipv6/conf/\(interface)/disable_ipv6", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = write(fd, "1", 1)
        close(fd)
    }

    /// The MTU of the interface of the host's default route (1500 when there is none): the
    /// bridge, veth, TAP and guest use it, so that nothing is sent larger than the uplink takes.
    static var mtu: Int {
        guard let text = try? String(contentsOfFile: "/proc/net/route", encoding: .utf8) else { return 1500 }
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 8, fields[1] == "00000000", fields[7] == "00000000" else { continue }
            if let value = try? String(contentsOfFile: "/sys/class/net/\(fields[0])/mtu", encoding: .utf8),
               let mtu = Int(value.trimmingCharacters(in: .whitespacesAndNewlines)), (576...9000).contains(mtu) {
                return mtu
            }
        }
        return 1500
    }
}
