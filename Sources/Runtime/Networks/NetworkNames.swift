import AgentProtocol
import CLinux
import Foundation
import HVCSystem
import VMM

/// How containers on one network find each other by name: every container's `/etc/hosts`
/// lists the network's running containers (name and short id). A container gets the list in
/// its `hello`; when one starts or ends, its supervisor sends the new list to every other
/// container on the network, through their supervisors. Each list is read afresh from the
/// store, so two containers starting at once still end up listing each other.
enum NetworkNames {
    /// The `/etc/hosts` lines for the containers of `tenant` on `network` that have an address.
    static func entries(_ runtime: Runtime, tenant: String, network: String) -> [String] {
        members(runtime, tenant: tenant, network: network).compactMap { record in
            guard let endpoint = record.state.endpoint else { return nil }
            return "\(endpoint.address)\t\(record.name) \(ContainerID.shortForm(record.id))"
        }
    }

    static func members(_ runtime: Runtime, tenant: String, network: String) -> [ContainerRecord] {
        ((try? runtime.containers.list()) ?? []).filter {
            $0.config.tenant == tenant && $0.config.network == network && $0.state.status != .exited && $0.state.endpoint != nil
        }
    }

    /// Sends the current list to each running container on the network but `except`.
    static func announce(_ runtime: Runtime, tenant: String, network: String, except: String) {
        let peers = members(runtime, tenant: tenant, network: network).filter { $0.id != except }
        guard !peers.isEmpty else { return }
        let frame = Frame(.hosts(entries(runtime, tenant: tenant, network: network)))
        for peer in peers {
            let fd = hvc_unix_connect(VMDirectory.path(in: runtime.paths.vms, id: peer.id) + "/control.sock")
            guard fd >= 0 else { continue }
            let channel = FrameChannel(socket: FileDescriptor(fd))
            try? channel.send(frame)
            channel.shutdown()
        }
    }
}

/// The name servers a container on a network uses: the host's, as Docker does, without the
/// loopback ones a container cannot reach (systemd-resolved's upstream list instead of its
/// stub), else Google's public servers.
enum HostResolvers {
    static func nameservers() -> [String] {
        for file in ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            let servers = text.split(separator: "\n").compactMap { line -> String? in
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard fields.count >= 2, fields[0] == "nameserver", let address = IPv4Address(fields[1]),
                      address.value >> 24 != 127 else { return nil }
                return address.description
            }
            if !servers.isEmpty { return Array(servers.prefix(Limits.maxNameservers)) }
        }
        return ["8.8.8.8", "8.8.4.4"]
    }
}
