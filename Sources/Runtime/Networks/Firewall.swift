import Foundation

/// hvc's own nftables table (one per state directory, `inet hvc_<digest>`), written whole from
/// the list of networks whenever one is made or removed (one atomic `nft -f`):
/// - nothing is forwarded from one hvc network into another (tenants and networks apart);
/// - an internal network forwards nothing out and nothing in;
/// - a network without host access reaches no address of the host (replies and its name
///   server excepted);
/// - outbound traffic of a non-internal network leaves NATed to the host's address.
/// Published ports are the CNI `portmap` plugin's rules, per container.
public enum Firewall {
    public static let nft = "/usr/sbin/nft"

    public static func ruleset(_ networks: [Network], table: String) -> String {
        var forward: [String] = [], input: [String] = [], postrouting: [String] = []
        for n in networks {
            let b = "\"\(n.bridge)\""
            forward.append("iifname \(b) oifname != \(b) oifname \"hvc*\" drop")
            if n.isInternal {
                forward.append("iifname \(b) oifname != \(b) drop")
                forward.append("oifname \(b) iifname != \(b) drop")
            } else {
                postrouting.append("ip saddr \(n.subnet) oifname != \(b) masquerade")
            }
            if !n.hostAccess || n.isInternal {
                input.append("iifname \(b) ct state established,related accept")
                input.append("iifname \(b) ip daddr \(n.gateway) udp dport 53 accept")
                input.append("iifname \(b) drop")
            }
        }
        func chain(_ name: String, _ hook: String, _ rules: [String]) -> String {
            "  chain \(name) {\n    \(hook)\n" + rules.map { "    \($0)\n" }.joined() + "  }\n"
        }
        let reset = "table \(table)\ndelete table \(table)\n"
        guard !networks.isEmpty else { return reset }
        return reset + "table \(table) {\n"
            + chain("forward", "type filter hook forward priority filter - 5; policy accept;", forward)
            + chain("input", "type filter hook input priority filter - 5; policy accept;", input)
            + chain("postrouting", "type nat hook postrouting priority srcnat + 5; policy accept;", postrouting)
            + "}\n"
    }

    static func apply(_ networks: [Network], table: String) throws(HVCError) {
        guard FileManager.default.isExecutableFile(atPath: nft) else {
            throw HVCError("\(nft) is missing: apt-get install nftables")
        }
        let run = ToolRun.run(nft, ["-f", "-"], input: Data(ruleset(networks, table: table).utf8))
        guard run.succeeded else { throw HVCError("nft: \(run.complaint)") }
    }
}
