import AgentProtocol
import CLinux
import Glibc
import HVCSystem

/// The guest's side of the container's network: loopback and `eth0` up from boot, then `eth0`
/// as the host leased it, the default route, and the container's `/etc/resolv.conf` and `/etc/hosts`.
enum GuestNetwork {
    static let interface = "eth0"

    nonisolated(unsafe) private static var ipv6OffSinceBoot = false

    /// Before any container: loopback up, and `eth0` (when the VM has one) up without an address
    /// or IPv6. A template's clones inherit both and take only their own MAC, address and route:
    /// each path a clone runs is translated afresh under TCG.
    static func prepareAtBoot() {
        _ = hvc_interface_up("lo")
        guard access("/sys/class/net/\(interface)", F_OK) == 0 else { return }
        disableIPv6()
        ipv6OffSinceBoot = true
        _ = hvc_interface_up(interface)
    }

    /// The network is IPv4: no IPv6 on eth0 (its router solicitations, duplicate address probes
    /// and multicast reports would be flooded to every VM on the bridge, waking each). Loopback
    /// keeps ::1.
    private static func disableIPv6() {
        for path in ["/proc/sys/net/ipv6/conf/\(interface)/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"] {
            try? writeFile(path, "1\n")
        }
    }

    /// Sets up what `hello` describes; returns a complaint for the host's log, or nil.
    static func configure(_ hello: Hello, hostname: String, writesFiles: Bool) -> String? {
        var complaint: String?
        if let nic = hello.interface {
            if !ipv6OffSinceBoot { disableIPv6() }
            let netmask: UInt32 = nic.prefix == 0 ? 0 : UInt32.max << (32 - UInt32(nic.prefix))
            let configured = nic.mac.withUnsafeBufferPointer { mac in
                hvc_interface_configure(interface, mac.baseAddress, nic.address.bigEndian, netmask.bigEndian, Int32(nic.mtu))
            }
            if configured != 0 {
                complaint = "network: configuring \(interface): \(Errno.current)"
            } else if nic.gateway != 0, hvc_route_add_default(nic.gateway.bigEndian) != 0 {
                complaint = "network: default route: \(Errno.current)"
            }
        }
        guard writesFiles else { return complaint }
        if !hello.nameservers.isEmpty {
            try? writeContainerFile("/etc/resolv.conf", hello.nameservers.map { "nameserver \($0)\n" }.joined())
        }
        writeHosts(hostname: hostname, address: hello.interface.map { dotted($0.address) })
        return complaint
    }

    /// `/etc/hosts`: loopback names and this container's hostname at its address (the
    /// network's other containers are its name server's).
    static func writeHosts(hostname: String, address: String?) {
        var text = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        text += "\(address ?? "127.0.1.1")\t\(hostname)\n"
        try? writeContainerFile("/etc/hosts", text)
    }

    static func dotted(_ address: UInt32) -> String {
        "\(address >> 24).\(address >> 16 & 0xff).\(address >> 8 & 0xff).\(address & 0xff)"
    }
}
