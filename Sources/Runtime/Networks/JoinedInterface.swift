import Foundation
import HVCSystem

/// An interface of a caller's network namespace that a VM's NIC takes over: an OCI bundle's
/// namespace, where the caller (podman's netavark, containerd's CNI plugins) made a veth with
/// an address, a route and published ports. The VM's TAP device is made in that namespace and
/// joined both ways to the interface by tc redirects, and the guest's NIC takes the interface's
/// MAC, address, route and MTU, so the caller's networking works as it would for runc.
public struct JoinedInterface: Codable, Equatable, Sendable {
    /// The namespace (a path: `/run/netns/...`, `/proc/<pid>/ns/net`).
    public var namespace: String
    public var device: String
    public var mac: String
    public var address: IPv4Address
    public var prefix: Int
    public var gateway: IPv4Address?
    public var mtu: Int

    /// The VM's TAP device in the caller's namespace. One per namespace: a second VM there
    /// (another container of a pod) finds it and goes without a NIC.
    static let tap = "hvc-tap0"

    /// The first interface of `namespace` with an IPv4 address, other than loopback; nil when
    /// there is none (a namespace with loopback only) or a VM holds it already.
    static func discover(namespace: String) throws(HVCError) -> JoinedInterface? {
        let addresses = try ip(namespace, ["addr", "show"])
        let routes = try ip(namespace, ["-4", "route", "show", "default"])
        return try parse(namespace: namespace, addresses: addresses, routes: routes)
    }

    /// The choice `discover` makes, from `ip -j addr show` and `ip -j -4 route show default`.
    public static func parse(namespace: String, addresses: Data, routes: Data) throws(HVCError) -> JoinedInterface? {
        struct Link: Decodable {
            struct Address: Decodable {
                var family: String?
                var local: String?
                var prefixlen: Int?
            }
            var ifname: String
            var mtu: Int?
            var address: String?
            var link_type: String?
            var addr_info: [Address]?
        }
        struct Route: Decodable {
            var dst: String?
            var gateway: String?
            var dev: String?
        }
        let links: [Link], defaults: [Route]
        do {
            links = try JSONDecoder().decode([Link].self, from: addresses)
            defaults = routes.isEmpty ? [] : try JSONDecoder().decode([Route].self, from: routes)
        } catch {
            throw HVCError("network namespace \(namespace): cannot read its interfaces", cause: error)
        }
        if links.contains(where: { $0.ifname == tap }) { return nil }
        for link in links where link.link_type == "ether" {
            guard let info = link.addr_info?.first(where: { $0.family == "inet" && $0.local != nil }),
                  let address = info.local.flatMap({ IPv4Address($0) }), let prefix = info.prefixlen,
                  let mac = link.address, MACAddress(mac) != nil else { continue }
            // The guest's NIC takes subnets of /8 to /30 with a gateway inside (as bridge CNI
            // plugins lease them); a point-to-point /31 or /32 address it cannot route.
            guard (8...30).contains(prefix) else {
                throw HVCError(.invalid, "network namespace \(namespace): \(link.ifname)'s address \(address)/\(prefix) cannot be given to a VM: use a network with prefixes /8 to /30")
            }
            let gateway = defaults.first { $0.dev == link.ifname }?.gateway.flatMap { IPv4Address($0) }
            return JoinedInterface(namespace: namespace, device: link.ifname, mac: mac, address: address, prefix: prefix,
                                   gateway: gateway, mtu: max(576, min(9000, link.mtu ?? 1500)))
        }
        return nil
    }

    private static func ip(_ namespace: String, _ arguments: [String]) throws(HVCError) -> Data {
        let run = ToolRun.run("/usr/bin/nsenter", ["--net=" + namespace, "/usr/sbin/ip", "-j"] + arguments)
        guard run.succeeded else { throw HVCError("network namespace \(namespace): ip: \(run.complaint)") }
        return run.output
    }

    /// Everything arriving on the interface goes out of the VM's TAP device, and the reverse.
    /// A redirect left by a VM whose supervisor was killed (the namespace outlives it when the
    /// caller restarts the container) is taken away first.
    func join() throws(HVCError) {
        leave()
        try NetworkAttachment.redirect(netns: namespace, interface: device, tap: JoinedInterface.tap)
    }

    /// Takes the interface's redirect away (the TAP device goes with the VMM); the namespace
    /// may be gone already.
    func leave() {
        guard FileManager.default.fileExists(atPath: namespace) else { return }
        _ = ToolRun.run("/usr/bin/nsenter", ["--net=" + namespace, "/usr/sbin/tc", "qdisc", "del", "dev", device, "ingress"])
    }

    /// What the guest's NIC is given.
    var guestInterface: (mac: [UInt8], address: UInt32, prefix: UInt8, gateway: UInt32, mtu: UInt16) {
        (MACAddress(mac)?.bytes ?? [], address.value, UInt8(prefix), gateway?.value ?? 0, UInt16(mtu))
    }
}
