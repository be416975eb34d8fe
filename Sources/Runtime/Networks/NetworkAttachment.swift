import CLinux
import Foundation
import HVCSystem

/// A container on a network: the CNI plugins' veth (`eth0`) and address in the VM's network
/// namespace, joined both ways to the VM's TAP device by tc redirects (the design Kata calls
/// "tcfilter"), so that the guest's NIC is on the network's bridge with the address CNI leased.
/// Recorded in the VM's directory, so that a sweep can undo it when its supervisor is gone.
struct NetworkAttachment: Codable, Sendable {
    var containerID: String
    var network: Network
    /// The VM's network namespace (a bind mount).
    var netns: String
    var ipamDirectory: String
    var endpoint: NetworkEndpoint
    /// The CNI result, which DEL must be given back.
    var result: Data
    /// The container's file among the network's members, once it is one.
    var memberFile: String?

    static let tap = "tap0"

    static func attach(_ network: Network, containerID: String, netns: String, ipamDirectory: String,
                       ports: [PortMapping]) throws(HVCError) -> NetworkAttachment {
        let outcome = try CNI.add(network, containerID: containerID, netns: netns, ipamDirectory: ipamDirectory, ports: ports)
        if let host = outcome.hostInterface { HostNetwork.disableIPv6(host) }
        let attachment = NetworkAttachment(
            containerID: containerID, network: network, netns: netns, ipamDirectory: ipamDirectory,
            endpoint: NetworkEndpoint(network: network.name, networkID: network.id, address: outcome.address,
                                      prefix: outcome.prefix, gateway: network.gateway, mac: outcome.mac, ports: ports),
            result: outcome.result)
        do {
            try redirect(netns: netns, interface: CNI.interfaceName, tap: tap)
        } catch {
            attachment.detach()
            throw error
        }
        return attachment
    }

    /// Everything arriving on the veth `interface` goes out of the TAP to the guest, and the
    /// reverse. (`u32` matching everything: hosts without `cls_matchall` have it.)
    static func redirect(netns: String, interface eth: String, tap: String) throws(HVCError) {
        let batch = """
            qdisc add dev \(eth) ingress
            filter add dev \(eth) parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev \(tap)
            qdisc add dev \(tap) ingress
            filter add dev \(tap) parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev \(eth)

            """
        let run = ToolRun.run("/usr/bin/nsenter", ["--net=" + netns, "/usr/sbin/tc", "-batch", "-"], input: Data(batch.utf8))
        guard run.succeeded else { throw HVCError("joining the VM's TAP device to its network: tc: \(run.complaint)") }
    }

    /// Releases the address and the port rules; the veth too, unless `namespaceGoes` (the caller
    /// removes the VM's namespace next, which takes the veth with it). Returns what could not be
    /// undone.
    @discardableResult
    func detach(namespaceGoes: Bool = false) -> [String] {
        if let memberFile { unlink(memberFile) }
        return CNI.delete(network, containerID: containerID, netns: FileManager.default.fileExists(atPath: netns) ? netns : "",
                   ipamDirectory: ipamDirectory, ports: endpoint.ports, result: result, namespaceGoes: namespaceGoes)
    }
}

/// What an attachment is about to make, recorded before CNI's ADD: a supervisor killed during
/// the ADD (its port rules in, the attachment not yet recorded) leaves this, from which a sweep
/// undoes what the plugins made (their DEL finds it by container id, without ADD's result).
struct NetworkAttachmentPlan: Codable, Sendable {
    var containerID: String
    var network: Network
    var netns: String
    var ipamDirectory: String
    var ports: [PortMapping]

    func undo() {
        CNI.delete(network, containerID: containerID, netns: FileManager.default.fileExists(atPath: netns) ? netns : "",
                   ipamDirectory: ipamDirectory, ports: ports, result: nil, namespaceGoes: true)
    }
}

/// Host ports held for a container's published ports: bound (not listening) by its supervisor
/// for as long as the container runs, so that no other program, and no other container, can
/// take them, while the DNAT rules carry the traffic to the guest. A port of 0 is given a free
/// one here.
final class PortReservation: Sendable {
    let ports: [PortMapping]
    private let sockets: [FileDescriptor]

    private init(ports: [PortMapping], sockets: [FileDescriptor]) {
        self.ports = ports
        self.sockets = sockets
    }

    static func reserve(_ requested: [PortMapping]) throws(HVCError) -> PortReservation {
        var sockets: [FileDescriptor] = []
        var ports: [PortMapping] = []
        for mapping in requested {
            let type = mapping.protocol == .tcp ? SOCK_STREAM : SOCK_DGRAM
            switch boundIPv4Socket(type: type, address: mapping.hostIP, port: mapping.hostPort) {
            case .success(let socket):
                var chosen = mapping
                if chosen.hostPort == 0 { chosen.hostPort = localPort(socket) }
                sockets.append(socket)
                ports.append(chosen)
            case .failure(let why):
                sockets.forEach { $0.close() }
                let host = "\(mapping.hostIP?.description ?? "0.0.0.0"):\(mapping.hostPort)/\(mapping.protocol.rawValue)"
                if why.rawValue == EADDRINUSE {
                    throw HVCError(.conflict, "host port \(host) is already in use: publish another with -p")
                }
                throw HVCError(.invalid, "cannot publish host port \(host): \(why)")
            }
        }
        return PortReservation(ports: ports, sockets: sockets)
    }

    /// The port a socket was bound to (the kernel's choice for port 0).
    private static func localPort(_ socket: FileDescriptor) -> UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket.raw, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    func release() { sockets.forEach { $0.close() } }
}

/// An IPv4 socket of `type` (close-on-exec) bound to `address` (every address when nil) and
/// `port` (0: any free one); the errno of what failed.
func boundIPv4Socket(type: __socket_type, nonBlocking: Bool = false, address: IPv4Address?, port: UInt16) -> Result<FileDescriptor, Errno> {
    let flags = Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
    let fd = socket(AF_INET, flags, 0)
    guard fd >= 0 else { return .failure(Errno.current) }
    let socket = FileDescriptor(fd)
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_port = port.bigEndian
    sin.sin_addr.s_addr = address?.networkOrder ?? 0
    let bound = withUnsafePointer(to: &sin) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else {
        let why = Errno.current
        socket.close()
        return .failure(why)
    }
    return .success(socket)
}
