import Foundation
import Runtime
import Testing

struct IPv4Tests {
    @Test(arguments: ["10.0.0.1", "0.0.0.0", "255.255.255.255", "192.168.1.10"])
    func dottedQuadsParse(_ text: String) {
        #expect(IPv4Address(text)?.description == text)
    }

    @Test(arguments: ["10.0.0", "10.0.0.256", "010.0.0.1", "1.2.3.4.5", "a.b.c.d", "", "1..2.3", " 1.2.3.4", "1.2.3.-4"])
    func othersDoNot(_ text: String) {
        #expect(IPv4Address(text) == nil)
    }

    @Test func subnetsNeedNoHostBitsAndKnowTheirGateway() throws {
        let subnet = try #require(IPv4Subnet("10.210.3.0/24"))
        #expect(subnet.gateway.description == "10.210.3.1")
        #expect(subnet.broadcast.description == "10.210.3.255")
        #expect(subnet.netmask.description == "255.255.255.0")
        #expect(subnet.contains(IPv4Address("10.210.3.77")!) && !subnet.contains(IPv4Address("10.210.4.1")!))
        #expect(IPv4Subnet("10.210.3.1/24") == nil)
        #expect(IPv4Subnet("10.210.3.0/33") == nil)
        #expect(IPv4Subnet("10.210.3.0") == nil)
    }

    @Test func overlapIsSymmetricAndExact() throws {
        let a = try #require(IPv4Subnet("10.0.0.0/16")), b = try #require(IPv4Subnet("10.0.5.0/24"))
        let c = try #require(IPv4Subnet("10.1.0.0/24"))
        #expect(a.overlaps(b) && b.overlaps(a))
        #expect(!a.overlaps(c) && !c.overlaps(a) && !b.overlaps(c))
    }

    @Test func aFreeSubnetAvoidsTakenOnes() throws {
        let taken = [IPv4Subnet("10.210.0.0/24")!, IPv4Subnet("10.210.1.0/25")!, IPv4Subnet("10.210.3.0/24")!]
        #expect(NetworkStore.freeSubnet(avoiding: taken)?.description == "10.210.2.0/24")
        #expect(NetworkStore.freeSubnet(avoiding: [IPv4Subnet("10.0.0.0/8")!]) == nil)
    }
}

struct PortMappingTests {
    @Test func dockerFormsParse() throws {
        #expect(try PortMapping.parse("8080:80") == PortMapping(hostPort: 8080, containerPort: 80))
        #expect(try PortMapping.parse("53:53/udp") == PortMapping(hostPort: 53, containerPort: 53, protocol: .udp))
        #expect(try PortMapping.parse("127.0.0.1:8080:80") == PortMapping(hostIP: IPv4Address("127.0.0.1"), hostPort: 8080, containerPort: 80))
        #expect(try PortMapping.parse("127.0.0.1::80") == PortMapping(hostIP: IPv4Address("127.0.0.1"), hostPort: 0, containerPort: 80))
        #expect(try PortMapping.parse("80") == PortMapping(hostPort: 0, containerPort: 80))
        #expect(try PortMapping.parse("8080:80").description == "80/tcp -> 0.0.0.0:8080")
    }

    @Test(arguments: ["70000:80", "0:80", "8080:0", "8080:80/sctp", "a:80", "1.2.3:8080:80", "1:2:3:4", "", "8080:", "-1:80", "+80:80"])
    func badOnesAreRefusedWithTheFormat(_ text: String) {
        #expect {
            try PortMapping.parse(text)
        } throws: { error in
            let e = error as? HVCError
            return e?.kind == .invalid && e?.message.contains("[HOSTIP:]HOSTPORT:CONTAINERPORT") == true
        }
    }

    @Test func aHostPortPublishedTwiceIsRefused() throws {
        var options = RunOptions(image: "x")
        options.ports = [try PortMapping.parse("8080:80"), try PortMapping.parse("8080:81")]
        #expect(throws: HVCError.self) { try options.validate() }
        options.ports = [try PortMapping.parse("127.0.0.1:8080:80"), try PortMapping.parse("8080:81")]
        #expect(throws: HVCError.self) { try options.validate() }
        options.ports = [try PortMapping.parse("8080:80"), try PortMapping.parse("8080:80/udp"), try PortMapping.parse("80")]
        try options.validate()
        options.network = "none"
        #expect(throws: HVCError.self) { try options.validate() }
    }
}

struct NetworkNameTests {
    @Test(arguments: ["bridge", "net-1", "a.b_c", "X9"])
    func goodNames(_ name: String) throws { try Network.validateName(name) }

    @Test(arguments: ["", "-lead", "a/b", "..", "none", "host", "sp ace", String(repeating: "n", count: 65)])
    func badNames(_ name: String) {
        #expect(throws: HVCError.self) { try Network.validateName(name) }
    }
}

struct FirewallTests {
    static func network(_ name: String, _ subnet: String, internal: Bool = false, hostAccess: Bool = true) -> Network {
        Network(id: name + "0123456789abcdef", name: name, tenant: "t", subnet: IPv4Subnet(subnet)!, bridge: "hvc" + name,
                isInternal: `internal`, hostAccess: hostAccess, mtu: 1500, created: Date(timeIntervalSince1970: 0))
    }

    @Test func everyNetworkIsKeptFromTheOthersAndNATedUnlessInternal() {
        let rules = Firewall.ruleset([FirewallTests.network("a", "10.210.0.0/24"),
                                      FirewallTests.network("b", "10.210.1.0/24", internal: true),
                                      FirewallTests.network("c", "10.210.2.0/24", hostAccess: false)], table: "inet hvc_test")
        #expect(rules.hasPrefix("table inet hvc_test\ndelete table inet hvc_test\n"))
        for bridge in ["hvca", "hvcb", "hvcc"] {
            #expect(rules.contains("iifname \"\(bridge)\" oifname != \"\(bridge)\" oifname \"hvc*\" drop"))
        }
        #expect(rules.contains("ip saddr 10.210.0.0/24 oifname != \"hvca\" masquerade"))
        #expect(!rules.contains("ip saddr 10.210.1.0/24"), "an internal network is not NATed")
        #expect(rules.contains("oifname \"hvcb\" iifname != \"hvcb\" drop"))
        #expect(rules.contains("iifname \"hvcc\" drop") && rules.contains("iifname \"hvcb\" drop"))
        #expect(rules.contains("iifname \"hvcc\" ip daddr 10.210.2.1 udp dport 53 accept"), "its name server stays reachable")
        #expect(!rules.contains("iifname \"hvca\" drop"), "a network with host access reaches the host")
    }

    @Test func noNetworksLeaveNoTable() {
        #expect(Firewall.ruleset([], table: "inet hvc_x") == "table inet hvc_x\ndelete table inet hvc_x\n")
    }
}

struct CNIResultTests {
    static let result = #"{"cniVersion":"1.0.0","interfaces":[{"name":"hvc1","mac":"f6:91:d8:79:0a:c5"},{"name":"veth1","mac":"52:4f:71:39:88:30"},{"name":"eth0","mac":"A6:69:15:21:95:02","sandbox":"/run/ns"}],"ips":[{"interface":2,"address":"10.88.77.2/24","gateway":"10.88.77.1"}],"dns":{}}"#

    @Test func theContainersAddressAndMACAreRead() throws {
        let object = try JSONSerialization.jsonObject(with: Data(CNIResultTests.result.utf8))
        let outcome = try #require(CNI.parse(object))
        #expect(outcome.address.description == "10.88.77.2" && outcome.prefix == 24 && outcome.mac == "a6:69:15:21:95:02")
    }

    @Test(arguments: [
        #"{"ips":[],"interfaces":[]}"#,
        #"{"ips":[{"interface":0,"address":"10.0.0.2/32"}],"interfaces":[{"mac":"02:00:00:00:00:02"}]}"#,
        #"{"ips":[{"interface":0,"address":"10.0.0.2/24"}],"interfaces":[{"mac":"01:00:00:00:00:02"}]}"#,
        #"{"ips":[{"interface":5,"address":"fd00::2/64"}],"interfaces":[]}"#,
    ])
    func unusableResultsAreRefused(_ text: String) throws {
        #expect(CNI.parse(try JSONSerialization.jsonObject(with: Data(text.utf8))) == nil)
    }

    @Test func portsAddThePortmapPlugin() {
        let network = FirewallTests.network("a", "10.210.0.0/24")
        #expect(CNI.configurations(network, ipamDirectory: "/x", ports: []).map { $0["type"] as? String } == ["bridge"])
        let configs = CNI.configurations(network, ipamDirectory: "/x", ports: [PortMapping(hostIP: IPv4Address("127.0.0.1"), hostPort: 8080, containerPort: 80)])
        #expect(configs.map { $0["type"] as? String } == ["bridge", "portmap"])
        let mappings = (configs[1]["runtimeConfig"] as? [String: Any])?["portMappings"] as? [[String: Any]]
        #expect(mappings?.first?["hostIP"] as? String == "127.0.0.1" && mappings?.first?["hostPort"] as? Int == 8080)
        #expect(configs[0]["ipMasq"] as? Bool == false, "NAT is the network's nft rule, not per container")
    }
}

struct NameServerTests {
    /// A standard query for `name` of `type`, id 0x1234, recursion desired.
    static func query(_ name: String, type: UInt16 = 1, extra: [UInt8] = []) -> [UInt8] {
        var bytes: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in name.split(separator: ".") { bytes.append(UInt8(label.utf8.count)); bytes += Array(label.utf8) }
        return bytes + [0, UInt8(type >> 8), UInt8(type & 0xff), 0, 1] + extra
    }

    static let members: @Sendable (String) -> IPv4Address? = { $0 == "web" || $0 == "0123456789ab" ? IPv4Address("10.210.0.7") : nil }

    @Test func aMemberIsAnsweredWithItsAddress() throws {
        let reply = try #require(NameServer.answer(NameServerTests.query("WEB"), lookup: NameServerTests.members))
        #expect(reply[0] == 0x12 && reply[1] == 0x34)
        #expect(reply[2] & 0x80 != 0 && reply[3] & 0x0f == 0, "a response, no error")
        #expect(reply[6] == 0 && reply[7] == 1, "one answer")
        #expect(Array(reply.suffix(4)) == [10, 210, 0, 7])
    }

    @Test func otherNamesAreRefusedSoTheNextServerIsAsked() throws {
        for name in ["example.com", "db", "web.example"] {
            let reply = try #require(NameServer.answer(NameServerTests.query(name), lookup: NameServerTests.members))
            #expect(reply[3] & 0x0f == 5 && reply[7] == 0, "\(name)")
        }
    }

    @Test func aMembersOtherTypesHaveNoData() throws {
        let reply = try #require(NameServer.answer(NameServerTests.query("web", type: 28), lookup: NameServerTests.members))
        #expect(reply[3] & 0x0f == 0 && reply[7] == 0)
    }

    @Test func malformedQueriesGetNoAnswer() {
        let good = NameServerTests.query("web")
        var response = good; response[2] |= 0x80
        var two = good; two[5] = 2
        var long = good; long[12] = 64
        let cases: [[UInt8]] = [[], Array(good.prefix(11)), Array(good.dropLast(2)), response, two, long,
                                [UInt8](repeating: 0, count: 600), NameServerTests.query(String(repeating: "a.", count: 130))]
        for query in cases { #expect(NameServer.answer(query, lookup: NameServerTests.members) == nil) }
    }

    @Test func anEDNSRecordIsLeftOut() throws {
        var query = NameServerTests.query("web", extra: [0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0])
        query[11] = 1
        let reply = try #require(NameServer.answer(query, lookup: NameServerTests.members))
        #expect(reply[10] == 0 && reply[11] == 0 && Array(reply.suffix(4)) == [10, 210, 0, 7])
    }
}

struct LeaseTests {
    /// host-local's lease files are `<root>/networks/.ipam/<network>/<address>`, holding
    /// `CONTAINERID\r\nIFNAME`.
    @Test func leasesOfGoneContainersAreReleasedAndLiveOnesKept() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("hvc-leases-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = NetworkStore(paths: RuntimePaths(root: root, runRoot: root + "/run", assets: root + "/assets"))
        let network = FirewallTests.network("a", "10.210.0.0/24")
        let directory = root + "/networks/.ipam/hvc-" + network.id.prefix(12)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let live = String(repeating: "a", count: 64), gone = String(repeating: "b", count: 64)
        try "\(live)\r\neth0".write(toFile: directory + "/10.210.0.2", atomically: true, encoding: .utf8)
        try "\(gone)\r\neth0".write(toFile: directory + "/10.210.0.3", atomically: true, encoding: .utf8)
        try "10.210.0.3".write(toFile: directory + "/last_reserved_ip.0", atomically: true, encoding: .utf8)
        var asked: [String] = []
        store.releaseStaleLeases(network) { id in
            asked.append(id)
            return id == live
        }
        #expect(Set(asked) == [live, gone], "each lease's owner is its container id alone")
        #expect(FileManager.default.fileExists(atPath: directory + "/10.210.0.2"))
        #expect(!FileManager.default.fileExists(atPath: directory + "/10.210.0.3"))
        #expect(FileManager.default.fileExists(atPath: directory + "/last_reserved_ip.0"))
    }
}
