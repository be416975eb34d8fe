import Foundation

/// Runs the CNI plugins Debian ships (`containernetworking-plugins`) the way the CNI spec says a
/// runtime does: each plugin an executable, its command and the container in the environment,
/// the network's configuration (and the previous plugin's result) on stdin, the result on
/// stdout. A network is `bridge` with `host-local` addresses, then `portmap` when ports are
/// published.
public enum CNI {
    static let interfaceName = "eth0"
    static let version = "1.0.0"

    /// Where the plugins are: `HVC_CNI_PATH`, else Debian's directory, else the upstream one.
    static var pluginDirectory: String {
        if let path = ProcessInfo.processInfo.environment["HVC_CNI_PATH"], !path.isEmpty { return path }
        return ["/usr/lib/cni", "/opt/cni/bin"].first { FileManager.default.isExecutableFile(atPath: $0 + "/bridge") } ?? "/usr/lib/cni"
    }

    /// What the plugins made: the container's address on the network and its interface's MAC.
    public struct Outcome: Sendable {
        public var address: IPv4Address
        public var prefix: Int
        public var mac: String
        /// The veth's end on the host (on the bridge), if the result names it.
        public var hostInterface: String?
        /// The last plugin's result, as DEL wants it back.
        public var result: Data
    }

    public static func configurations(_ network: Network, ipamDirectory: String, ports: [PortMapping]) -> [[String: Any]] {
        var list: [[String: Any]] = [[
            "cniVersion": version, "name": network.cniName, "type": "bridge", "bridge": network.bridge,
            "isGateway": true, "ipMasq": false, "hairpinMode": true, "mtu": network.mtu,
            "ipam": [
                "type": "host-local", "dataDir": ipamDirectory,
                "ranges": [[["subnet": network.subnet.description, "gateway": network.gateway.description]]],
            ] as [String: Any],
        ]]
        if !ports.isEmpty {
            let mappings: [[String: Any]] = ports.map { port in
                var mapping: [String: Any] = ["hostPort": Int(port.hostPort), "containerPort": Int(port.containerPort),
                                              "protocol": port.protocol.rawValue]
                if let ip = port.hostIP { mapping["hostIP"] = ip.description }
                return mapping
            }
            list.append([
                "cniVersion": version, "name": network.cniName, "type": "portmap", "snat": true,
                "capabilities": ["portMappings": true], "runtimeConfig": ["portMappings": mappings],
            ])
        }
        return list
    }

    static func add(_ network: Network, containerID: String, netns: String, ipamDirectory: String,
                    ports: [PortMapping]) throws(HVCError) -> Outcome {
        let plugins = configurations(network, ipamDirectory: ipamDirectory, ports: ports)
        var previous: Any?
        for (index, var config) in plugins.enumerated() {
            if let previous { config["prevResult"] = previous }
            let run = invoke("ADD", config, containerID: containerID, netns: netns)
            guard run.succeeded, let result = try? JSONSerialization.jsonObject(with: run.output) else {
                let made = Array(plugins.prefix(index + 1))
                delete(made, containerID: containerID, netns: netns, result: previous)
                throw HVCError("network \(network.name): CNI \(config["type"] ?? "plugin"): \(failure(run))")
            }
            previous = result
        }
        guard let previous, let outcome = parse(previous) else {
            delete(plugins, containerID: containerID, netns: netns, result: previous)
            throw HVCError("network \(network.name): the CNI bridge plugin gave no IPv4 address")
        }
        return outcome
    }

    /// Undoes an ADD, plugins in reverse order. Each plugin cleans up what it can find; one that
    /// fails does not keep the others from running. With `namespaceGoes`, the VM's namespace is
    /// destroyed right after, and the veth with it (the kernel does that in the background): the
    /// bridge plugin's part is then only its address lease, which its IPAM plugin, `host-local`,
    /// releases directly, so no one waits for the veth's synchronous delete.
    @discardableResult
    static func delete(_ network: Network, containerID: String, netns: String, ipamDirectory: String,
                       ports: [PortMapping], result: Data?, namespaceGoes: Bool = false) -> [String] {
        var plugins = configurations(network, ipamDirectory: ipamDirectory, ports: ports)
        if namespaceGoes { plugins[0]["type"] = "host-local" }
        return delete(plugins, containerID: containerID, netns: netns,
                      result: result.flatMap { try? JSONSerialization.jsonObject(with: $0) })
    }

    @discardableResult
    private static func delete(_ plugins: [[String: Any]], containerID: String, netns: String, result: Any?) -> [String] {
        var failures: [String] = []
        for var config in plugins.reversed() {
            if let result { config["prevResult"] = result }
            let run = invoke("DEL", config, containerID: containerID, netns: netns)
            if !run.succeeded { failures.append("\(config["type"] ?? "plugin"): \(failure(run))") }
        }
        return failures
    }

    private static func invoke(_ command: String, _ config: [String: Any], containerID: String, netns: String) -> ToolRun {
        let directory = pluginDirectory
        let type = config["type"] as? String ?? ""
        guard FileManager.default.isExecutableFile(atPath: directory + "/" + type) else {
            return ToolRun(status: 127, output: Data(), errorOutput: "\(directory)/\(type) is missing: apt-get install containernetworking-plugins")
        }
        let input = (try? JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])) ?? Data()
        let environment = [
            "CNI_COMMAND": command, "CNI_CONTAINERID": containerID, "CNI_NETNS": netns, "CNI_IFNAME": interfaceName,
            "CNI_PATH": directory, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        ]
        return ToolRun.run(directory + "/" + type, [], environment: environment, input: input)
    }

    /// The plugin's error (`msg` and `details` of its JSON error), else its output.
    private static func failure(_ run: ToolRun) -> String {
        if let error = try? JSONSerialization.jsonObject(with: run.output) as? [String: Any], let message = error["msg"] as? String {
            let details = (error["details"] as? String).map { ": " + $0 } ?? ""
            return message + details
        }
        return run.complaint
    }

    /// The container's address and MAC from a CNI result.
    public static func parse(_ result: Any) -> Outcome? {
        guard let object = result as? [String: Any], let ips = object["ips"] as? [[String: Any]],
              let interfaces = object["interfaces"] as? [[String: Any]] else { return nil }
        for ip in ips {
            guard let text = ip["address"] as? String else { continue }
            let parts = text.split(separator: "/")
            guard parts.count == 2, let address = IPv4Address(parts[0]), let prefix = Int(parts[1]), (8...30).contains(prefix) else { continue }
            var mac: String?
            if let index = ip["interface"] as? Int, interfaces.indices.contains(index) {
                mac = interfaces[index]["mac"] as? String
            }
            mac = mac ?? interfaces.first { $0["sandbox"] != nil }?["mac"] as? String
            guard let mac, MACAddress(mac) != nil,
                  let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { continue }
            let host = interfaces.first { $0["sandbox"] == nil && ($0["name"] as? String)?.hasPrefix("veth") == true }?["name"] as? String
            return Outcome(address: address, prefix: prefix, mac: mac.lowercased(), hostInterface: host, result: data)
        }
        return nil
    }
}

/// A MAC address as six bytes; parsed from `aa:bb:cc:dd:ee:ff`.
struct MACAddress: Equatable {
    var bytes: [UInt8]

    init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count == 2, let byte = UInt8(part, radix: 16) else { return nil }
            bytes.append(byte)
        }
        // A unicast address: the group bit clear.
        guard bytes[0] & 1 == 0 else { return nil }
        self.bytes = bytes
    }
}

/// What networks need of the host, with the Debian package that has it.
public enum NetworkTools {
    public static var required: [(path: String, package: String)] {
        [(CNI.pluginDirectory + "/bridge", "containernetworking-plugins"), (CNI.pluginDirectory + "/host-local", "containernetworking-plugins"),
         (CNI.pluginDirectory + "/portmap", "containernetworking-plugins"), (Firewall.nft, "nftables"),
         ("/usr/sbin/tc", "iproute2"), ("/usr/sbin/ip", "iproute2"), ("/usr/bin/nsenter", "util-linux"), ("/usr/sbin/iptables", "iptables")]
    }
}
