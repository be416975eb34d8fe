import AgentProtocol
import CLinux
import Glibc
import HVCSystem

/// The guest's side of the container's network: loopback, `eth0` as the host leased it, the
/// default route, and the container's `/etc/resolv.conf` and `/etc/hosts`.
enum GuestNetwork {
    static let interface = "eth0"

    /// Sets up what `hello` describes; returns a complaint for the host's log, or nil.
    static func configure(_ hello: Hello, hostname: String) -> String? {
        _ = hvc_interface_up("lo")
        var complaint: String?
        if let nic = hello.interface {
            let netmask: UInt32 = nic.prefix == 0 ? 0 : UInt32.max << (32 - UInt32(nic.prefix))
            let configured = nic.mac.withUnsafeBufferPointer { mac in
                hvc_interface_configure(interface, mac.baseAddress, nic.address.bigEndian, netmask.bigEndian, Int32(nic.mtu))
            }
            if configured != 0 {
                complaint = "network: configuring \(interface): \(Errno.current)"
            } else if hvc_route_add_default(nic.gateway.bigEndian) != 0 {
                complaint = "network: default route: \(Errno.current)"
            }
        }
        if !hello.nameservers.isEmpty {
            try? writeContainerFile("/etc/resolv.conf", hello.nameservers.map { "nameserver \($0)\n" }.joined())
        }
        writeHosts(hostname: hostname, address: hello.interface.map { dotted($0.address) }, peers: hello.hosts)
        return complaint
    }

    /// `/etc/hosts`: loopback names, this container's hostname at its address, then the
    /// network's containers by name.
    static func writeHosts(hostname: String, address: String?, peers: [String]) {
        var text = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        text += "\(address ?? "127.0.1.1")\t\(hostname)\n"
        for line in peers { text += line + "\n" }
        try? writeContainerFile("/etc/hosts", text)
    }

    static func dotted(_ address: UInt32) -> String {
        "\(address >> 24).\(address >> 16 & 0xff).\(address >> 8 & 0xff).\(address & 0xff)"
    }
}
