import Foundation
import Testing

extension EndToEnd {
    /// Networks: a NIC per VM on a bridge of its network, published ports, names, tenants
    /// apart on the wire, templated and pooled VMs with addresses of their own, nothing left.
    @Suite struct NetworkTests {
        let h: Harness
        static let image = "nettest:1"

        init() throws {
            h = try Harness.make()
            if !h.hvc(["images"]).stdout.contains("nettest") { try NetworkTests.makeImage(h) }
        }

        /// busybox (with its network applets) and the UDP probe, built here, static.
        static func makeImage(_ h: Harness) throws {
            let tree = h.root + "/../nettree-\(UUID().uuidString.prefix(8))"
            defer { try? FileManager.default.removeItem(atPath: tree) }
            var steps: [[String]] = [
                ["/bin/mkdir", "-p", tree + "/bin", tree + "/proc", tree + "/sys", tree + "/dev", tree + "/tmp", tree + "/etc", tree + "/www"],
                ["/bin/cp", "/bin/busybox", tree + "/bin/busybox"],
                ["/usr/bin/gcc", "-static", "-O2", "-o", tree + "/bin/netprobe", Harness.repository + "/Tests/EndToEndTests/Fixtures/netprobe.c"],
            ]
            for applet in ["sh", "cat", "ls", "sleep", "echo", "wget", "httpd", "ping", "arping", "ip", "timeout", "grep", "hostname"] {
                steps.append(["/bin/ln", "-s", "busybox", tree + "/bin/" + applet])
            }
            for step in steps {
                let r = h.execute(step)
                guard r.status == 0 else { throw HarnessError(message: "\(step.joined(separator: " ")): \(r.stderr)") }
            }
            try "nettest-page\n".write(toFile: tree + "/www/index.html", atomically: true, encoding: .utf8)
            let r = h.hvc(["import", "--cmd", "sh", "--env", "PATH=/bin", "--expose", "80/tcp", tree, image])
            guard r.status == 0 else { throw HarnessError(message: "import: \(r.stderr)") }
        }

        static let server = ["httpd", "-f", "-p", "80", "-h", "/www"]

        /// The container's state as `inspect` shows it.
        func state(_ container: String) -> [String: Any] {
            let r = h.hvc(["inspect", container])
            let array = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [[String: Any]]
            return array?.first?["state"] as? [String: Any] ?? [:]
        }

        func address(_ container: String) -> String {
            (state(container)["endpoint"] as? [String: Any])?["address"] as? String ?? "no-address"
        }

        func mac(_ container: String) -> String {
            (state(container)["endpoint"] as? [String: Any])?["mac"] as? String ?? "no-mac"
        }

        /// The host's own address on its default route.
        static func hostAddress() -> String {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["-4", "route", "get", "1.1.1.1"]
            let pipe = Pipe()
            process.standardOutput = pipe
            try? process.run()
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
            guard let index = fields.firstIndex(of: "src"), index + 1 < fields.count else { return "127.0.0.1" }
            return String(fields[index + 1])
        }

        /// busybox httpd on the host's own address serving `page`; returns what stops it.
        func hostServer(page: String, port: Int) throws -> () -> Void {
            let directory = h.root + "/../host-www-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try page.write(toFile: directory + "/index.html", atomically: true, encoding: .utf8)
            let server = Process()
            server.executableURL = URL(fileURLWithPath: "/bin/busybox")
            server.arguments = ["httpd", "-f", "-p", "\(NetworkTests.hostAddress()):\(port)", "-h", directory]
            server.standardOutput = FileHandle.nullDevice
            server.standardError = FileHandle.nullDevice
            try server.run()
            return {
                // busybox httpd ignores SIGTERM.
                kill(server.processIdentifier, SIGKILL)
                try? FileManager.default.removeItem(atPath: directory)
            }
        }

        /// A page fetched by the host's busybox wget, or nil.
        func fetch(_ url: String) -> String? {
            let r = h.execute(["/usr/bin/timeout", "5", "/bin/busybox", "wget", "-q", "-O", "-", url])
            return r.status == 0 ? r.stdout : nil
        }

        /// What the VM's network leaves on the host for `id`: veths on bridges, its lease, its
        /// DNAT rules, its namespace.
        func traces(of id: String) -> [String] {
            var found: [String] = []
            let ipam = h.root + "/networks/.ipam"
            for network in (try? FileManager.default.contentsOfDirectory(atPath: ipam)) ?? [] {
                for lease in (try? FileManager.default.contentsOfDirectory(atPath: ipam + "/" + network)) ?? [] {
                    let text = (try? String(contentsOfFile: ipam + "/" + network + "/" + lease, encoding: .utf8)) ?? ""
                    if text.hasPrefix(id) { found.append("lease \(lease)") }
                }
            }
            let rules = h.execute(["/usr/sbin/iptables-save", "-t", "nat"]).stdout
            if rules.contains(id) { found.append("nat rules") }
            for namespace in (try? FileManager.default.contentsOfDirectory(atPath: h.runRoot + "/netns")) ?? [] where id.hasPrefix(namespace) {
                found.append("netns \(namespace)")
            }
            return found
        }

        /// veths joined to any bridge of this store's networks.
        func bridgePorts() -> [String] {
            let networks = h.root + "/networks"
            var ports: [String] = []
            for tenant in (try? FileManager.default.contentsOfDirectory(atPath: networks)) ?? [] where !tenant.hasPrefix(".") {
                for file in (try? FileManager.default.contentsOfDirectory(atPath: networks + "/" + tenant)) ?? [] {
                    guard let data = FileManager.default.contents(atPath: networks + "/" + tenant + "/" + file),
                          let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                          let bridge = object["bridge"] as? String else { continue }
                    ports += (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net/\(bridge)/brif")) ?? []
                }
            }
            return ports
        }

        @Test func publishedPortsReachTheContainerAndNothingElseDoes() throws {
            let published = Harness.freePort()
            let pub = h.hvc(["run", "-d", "--name", "pub", "-p", "\(published):80", NetworkTests.image] + NetworkTests.server)
            try #require(pub.status == 0, "\(pub.stderr)")
            let hidden = h.hvc(["run", "-d", "--name", "unpublished", NetworkTests.image] + NetworkTests.server)
            try #require(hidden.status == 0, "\(hidden.stderr)")
            defer { _ = h.hvc(["rm", "-f", "pub", "unpublished"]) }

            #expect(Harness.eventually(15) { fetch("http://127.0.0.1:\(published)/") == "nettest-page\n" }, "through 127.0.0.1")
            #expect(fetch("http://\(NetworkTests.hostAddress()):\(published)/") == "nettest-page\n", "through the host's address")
            #expect(h.hvc(["port", "pub"]).stdout == "80/tcp -> 0.0.0.0:\(published)\n")
            #expect(h.hvc(["ps"]).stdout.contains("0.0.0.0:\(published)->80/tcp"))

            // The unpublished server runs (the host reaches it at its own address), but no
            // host port leads to it.
            let hiddenAddress = address("unpublished")
            #expect(Harness.eventually(15) { fetch("http://\(hiddenAddress)/") == "nettest-page\n" })
            let nat = h.execute(["/usr/sbin/iptables-save", "-t", "nat"]).stdout
            #expect(nat.contains(address("pub") + ":80"), "the published port's DNAT rule")
            #expect(!nat.contains(hiddenAddress + ":80"), "a DNAT rule for the unpublished container")

            // A host port already taken, by a container or any program: refused, nothing made.
            let taken = h.hvc(["run", "-d", "--name", "taken", "-p", "\(published):80", NetworkTests.image, "true"])
            #expect(taken.status == 125)
            #expect(taken.stderr.contains("host port 0.0.0.0:\(published)/tcp is already in use"), "\(taken.stderr)")
            #expect(h.leftoverVMDirectories().count == 2)
            _ = h.hvc(["rm", "-f", "taken"])
            // -P: the image's exposed port, on a free host port.
            let all = h.hvc(["run", "-d", "--name", "publish-all", "-P", NetworkTests.image] + NetworkTests.server)
            #expect(all.status == 0, "\(all.stderr)")
            let mapped = h.hvc(["port", "publish-all", "80"]).stdout
            let hostPort = mapped.firstMatch(of: /80\/tcp -> 0\.0\.0\.0:(\d+)/).map { String($0.1) } ?? "none"
            #expect(hostPort != "none" && hostPort != "0", "\(mapped)")
            #expect(Harness.eventually(15) { fetch("http://127.0.0.1:\(hostPort)/") == "nettest-page\n" })
            _ = h.hvc(["rm", "-f", "publish-all"])
            let bad = h.hvc(["run", "--rm", "-p", "70000:80", NetworkTests.image, "true"])
            #expect(bad.status == 125 && bad.stderr.contains("invalid port mapping \"70000:80\""), "\(bad.stderr)")
        }

        @Test func containersReachTheHostAndNoneHasOnlyLoopback() throws {
            let host = NetworkTests.hostAddress()
            let hostPort = Harness.freePort()
            let stop = try hostServer(page: "from-the-host\n", port: hostPort)
            defer { stop() }
            let r = h.hvc(["run", "--rm", NetworkTests.image, "sh", "-c",
                           "ip -4 -o addr show eth0; wget -q -O - http://\(host):\(hostPort)/"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("from-the-host"), "\(r.stdout)")
            let inspect = h.hvc(["network", "inspect", "bridge"]).stdout
            let subnet = try #require(inspect.firstMatch(of: /"subnet" : "(\d+\.\d+\.\d+)\.0\\?\/24"/)?.1)
            #expect(r.stdout.contains("inet \(subnet)."), "address outside \(subnet).0/24: \(r.stdout)")

            let none = h.hvc(["run", "--rm", "--network", "none", NetworkTests.image, "ls", "/sys/class/net"])
            #expect(none.status == 0 && none.stdout == "lo\n", "\(none.stdout) \(none.stderr)")
        }

        @Test func namesResolveWithinANetworkAndNetworksAreApart() throws {
            #expect(h.hvc(["network", "create", "near"]).status == 0)
            #expect(h.hvc(["network", "create", "--subnet", "10.219.7.0/24", "far"]).status == 0)
            defer {
                _ = h.hvc(["rm", "-f", "early", "srv"])
                #expect(h.hvc(["network", "rm", "near", "far"]).status == 0)
            }
            // One started before the server, one after: both find it by name.
            #expect(h.hvc(["run", "-d", "--name", "early", "--network", "near", NetworkTests.image, "sleep", "300"]).status == 0)
            #expect(h.hvc(["run", "-d", "--name", "srv", "--network", "near", NetworkTests.image] + NetworkTests.server).status == 0)
            #expect(Harness.eventually(15) { h.hvc(["exec", "early", "wget", "-q", "-O", "-", "http://srv/"]).stdout == "nettest-page\n" })
            let late = h.hvc(["run", "--rm", "--network", "near", NetworkTests.image, "wget", "-q", "-O", "-", "http://srv/"])
            #expect(late.stdout == "nettest-page\n", "\(late.stderr)")
            // In use: not removed.
            let busy = h.hvc(["network", "rm", "near"])
            #expect(busy.status != 0 && busy.stderr.contains("in use by"), "\(busy.stderr)")

            // From the other network: neither the name nor the address reaches it.
            let other = h.hvc(["run", "--rm", "--network", "far", NetworkTests.image, "sh", "-c",
                               "ip -4 -o addr show eth0; wget -q -O - http://srv/; echo name=$?; timeout 5 wget -q -O - http://\(address("srv"))/; echo address=$?"])
            #expect(other.stdout.contains("inet 10.219.7."), "\(other.stdout)")
            #expect(other.stdout.contains("name=1") && !other.stdout.contains("nettest-page"), "\(other.stdout)")
            #expect(!other.stdout.contains("address=0"), "\(other.stdout)")

            // Bad input: one line, nothing made.
            let overlap = h.hvc(["network", "create", "--subnet", "10.219.7.128/25", "overlapping"])
            #expect(overlap.status == 125 && overlap.stderr.contains("overlaps 10.219.7.0/24"), "\(overlap.stderr)")
            #expect(h.hvc(["network", "create", "--subnet", "10.219.7.1/24", "hostbits"]).stderr.contains("invalid subnet"))
            #expect(h.hvc(["network", "create", "bad/name"]).stderr.contains("invalid network name"))
            #expect(h.hvc(["network", "create", "--subnet", "8.8.8.0/24", "public"]).stderr.contains("is not private"))
            #expect(h.hvc(["network", "create", "near"]).stderr.contains("exists already"))
            #expect(!h.hvc(["network", "ls", "-q"]).stdout.contains("overlapping"))
            let missing = h.hvc(["run", "--rm", "--network", "nowhere", NetworkTests.image, "true"])
            #expect(missing.status == 125 && missing.stderr.contains("no network \"nowhere\""), "\(missing.stderr)")
        }

        @Test func tenantsAreApartOnTheWire() throws {
            let tenants = #"{"tenants": {"net-a": {"uids": [2301], "maxNetworks": 2}, "net-b": {"uids": [2302]}}}"#
            try h.withDaemon(tenants: tenants) { daemon in try tenantsAreApart(daemon) }
        }

        func tenantsAreApart(_ daemon: Harness.Daemon) throws {
            let tenant = daemon.hvc
            let a = 2301, b = 2302
            // Each tenant's listener hears its own network.
            #expect(tenant(a, ["run", "-d", "--name", "a1", NetworkTests.image, "sh", "-c",
                               "httpd -p 80 -h /www; netprobe listen 9999 300"]).status == 0)
            #expect(tenant(a, ["run", "-d", "--name", "a2", NetworkTests.image, "sleep", "300"]).status == 0)
            #expect(tenant(b, ["run", "-d", "--name", "b1", NetworkTests.image, "netprobe", "listen", "9999", "300"]).status == 0)
            #expect(tenant(b, ["run", "-d", "--name", "b2", NetworkTests.image, "sleep", "300"]).status == 0)
            defer { _ = h.hvc(["rm", "-f", "a1", "a2", "b1", "b2"]) }
            let a1 = address("a1")
            #expect(address("b1") != "no-address" && a1 != "no-address")

            // A's own neighbour reaches a1 every way (the checks below can see success).
            let near = tenant(a, ["exec", "a2", "sh", "-c",
                                  "wget -q -O - http://\(a1)/; ping -c 1 -W 2 \(a1) >/dev/null && echo ping-ok; arping -c 1 -w 3 -I eth0 \(a1); netprobe send \(a1) 9999 a2-unicast; netprobe send 255.255.255.255 9999 a2-broadcast"])
            #expect(near.stdout.contains("nettest-page") && near.stdout.contains("ping-ok") && near.stdout.contains("Received 1"), "\(near.stdout) \(near.stderr)")
            // B reaches none of it: TCP, ICMP, ARP, UDP, broadcast.
            let far = IsolationTable.attack(tenant(b, ["exec", "b2", "sh", "-c",
                                 "timeout 5 wget -q -O - http://\(a1)/; echo tcp=$?; ping -c 1 -W 2 \(a1) >/dev/null; echo ping=$?; arping -c 2 -w 3 -I eth0 \(a1); netprobe send \(a1) 9999 b-unicast; netprobe send 255.255.255.255 9999 b-broadcast"]),
                                            disabled: .notRun)
            #expect(!far.stdout.contains("nettest-page") && !far.stdout.contains("tcp=0"), "\(far.stdout)")
            #expect(far.stdout.contains("ping=1"), "\(far.stdout)")
            #expect(far.stdout.contains("Received 0"), "\(far.stdout)")
            // And A's broadcasts do not reach B's listener, while B's own do.
            let crossBroadcast = IsolationTable.attack(tenant(a, ["exec", "a2", "netprobe", "send", "255.255.255.255", "9999", "a2-broadcast-2"]),
                                                       disabled: .notRun)
            _ = tenant(b, ["exec", "b2", "netprobe", "send", "255.255.255.255", "9999", "b2-broadcast"])

            // Datagrams sent before each listener's last control message have arrived by then.
            #expect(Harness.eventually(20) { h.hvc(["logs", "a1"]).stdout.contains("got a2-broadcast-2") })
            #expect(Harness.eventually(20) { h.hvc(["logs", "b1"]).stdout.contains("got b2-broadcast") })
            let heardByA = h.hvc(["logs", "a1"]).stdout
            let heardByB = h.hvc(["logs", "b1"]).stdout
            #expect(heardByA.contains("got a2-unicast") && heardByA.contains("got a2-broadcast"), "\(heardByA)")
            #expect(!heardByA.contains("b-unicast") && !heardByA.contains("b-broadcast") && !heardByA.contains("b2-broadcast"), "\(heardByA)")
            #expect(heardByB.contains("got b2-broadcast"), "\(heardByB)")
            #expect(!heardByB.contains("a2-broadcast"), "\(heardByB)")

            // Networks are per tenant: B neither sees nor joins A's.
            #expect(tenant(a, ["network", "create", "a-private"]).status == 0)
            // Its default network and a-private make its quota of two.
            let third = tenant(a, ["network", "create", "a-third"])
            #expect(third.status == 125 && third.stderr.contains("has its 2 networks"), "\(third.stderr)")
            let outside = tenant(a, ["network", "create", "--subnet", "10.219.9.0/24", "outside"])
            #expect(outside.status == 125 && outside.stderr.contains("outside 10.210.0.0/16"), "\(outside.stderr)")
            let hostAccess = tenant(a, ["network", "create", "--host-access", "true", "to-host"])
            #expect(hostAccess.status == 125 && hostAccess.stderr.contains("may not give a network host access"), "\(hostAccess.stderr)")
            #expect(!tenant(b, ["network", "ls", "-q"]).stdout.contains("a-private"))
            let join = IsolationTable.attack(tenant(b, ["run", "--rm", "--network", "a-private", NetworkTests.image, "true"]), disabled: .notRun)
            #expect(join.status != 0 && join.stderr.contains("no network \"a-private\""), "\(join.stderr)")
            #expect(tenant(b, ["network", "inspect", "a-private"]).status != 0)
            #expect(tenant(b, ["network", "rm", "a-private"]).status != 0)
            // A tenant's networks do not reach the host's own services (no host access by default),
            // which the host's own default network does.
            let hostPort = Harness.freePort()
            let stop = try hostServer(page: "host-service\n", port: hostPort)
            defer { stop() }
            let url = "http://\(NetworkTests.hostAddress()):\(hostPort)/"
            let local = h.hvc(["run", "--rm", NetworkTests.image, "wget", "-q", "-O", "-", url])
            #expect(local.stdout == "host-service\n", "\(local.stderr)")
            let host = IsolationTable.attack(tenant(b, ["exec", "b2", "sh", "-c", "timeout 5 wget -q -O - \(url); echo host=$?"]), disabled: .notRun)
            #expect(!host.stdout.contains("host-service") && !host.stdout.contains("host=0"), "\(host.stdout)")

            let test = "NetworkTests.tenantsAreApartOnTheWire"
            func row(_ attack: String, attempted: String?, held: Bool, observed: String, control: String, shown: Bool) -> IsolationTable.Row {
                .init(area: "network", attack: attack, expected: "nothing arrives", attempted: attempted, observed: observed,
                      outcomeHeld: held, control: control, controlShown: shown, test: test)
            }
            /// The value of the attacker's `NAME=STATUS` line: it shows the command ran, and how it ended.
            func status(_ name: String, in text: String) -> Int? {
                text.split(separator: "\n").first { $0.hasPrefix(name + "=") }.flatMap { Int($0.dropFirst(name.count + 1)) }
            }
            let tcp = status("tcp", in: far.stdout), ping = status("ping", in: far.stdout), hostTry = status("host", in: host.stdout)
            let arpSent = far.stdout.contains("Sent 2 probe")
            let ownNetworks = tenant(a, ["network", "ls", "-q"]).stdout
            IsolationTable.record([
                row("TCP to the other tenant's container (HTTP)", attempted: tcp.map { "its wget ran (exit \($0))" },
                    held: !far.stdout.contains("nettest-page") && tcp != 0,
                    observed: far.stdout.contains("nettest-page") ? "page fetched" : "no connection",
                    control: "from its own tenant's neighbour: \(near.stdout.contains("nettest-page") ? "page fetched" : "no page")",
                    shown: near.stdout.contains("nettest-page")),
                row("ICMP echo to the other tenant's container", attempted: ping.map { "its ping ran (exit \($0))" },
                    held: ping == 1, observed: ping == 1 ? "no reply" : ping == 0 ? "replied" : "ping failed otherwise",
                    control: "from its own tenant's neighbour: \(near.stdout.contains("ping-ok") ? "replied" : "no reply")",
                    shown: near.stdout.contains("ping-ok")),
                row("ARP for the other tenant's container's address", attempted: arpSent ? "its arping sent 2 probes" : nil,
                    held: far.stdout.contains("Received 0"), observed: far.stdout.contains("Received 0") ? "no ARP reply" : "answered",
                    control: "from its own tenant's neighbour: \(near.stdout.contains("Received 1") ? "answered" : "no reply")",
                    shown: near.stdout.contains("Received 1")),
                row("UDP datagram to the other tenant's listener", attempted: far.stdout.contains("sent b-unicast") ? "its probe sent b-unicast" : nil,
                    held: !heardByA.contains("b-unicast"), observed: heardByA.contains("b-unicast") ? "received" : "not received",
                    control: "its own tenant's: \(heardByA.contains("got a2-unicast") ? "received" : "not received")",
                    shown: heardByA.contains("got a2-unicast")),
                row("UDP broadcast on its network",
                    attempted: far.stdout.contains("sent b-broadcast") && crossBroadcast.stdout.contains("sent a2-broadcast-2")
                        ? "its probe sent b-broadcast, and A's a2-broadcast-2" : nil,
                    held: !heardByA.contains("b-broadcast") && !heardByA.contains("b2-broadcast") && !heardByB.contains("a2-broadcast"),
                    observed: heardByB.contains("a2-broadcast") || heardByA.contains("b2-broadcast") ? "heard by the other tenant" : "not heard by the other tenant",
                    control: "heard on its own network: \(heardByA.contains("got a2-broadcast") && heardByB.contains("got b2-broadcast") ? "yes" : "no")",
                    shown: heardByA.contains("got a2-broadcast") && heardByB.contains("got b2-broadcast")),
                row("a service on the host's own address (tenant networks have no host access)",
                    attempted: hostTry.map { "its wget ran (exit \($0))" },
                    held: !host.stdout.contains("host-service") && hostTry != 0,
                    observed: host.stdout.contains("host-service") ? "page fetched" : "no connection",
                    control: "from the host's own default network: \(local.stdout == "host-service\n" ? "page fetched" : "no page")",
                    shown: local.stdout == "host-service\n"),
                row("join the other tenant's network by name", attempted: join.status >= 0 ? "its run asked for a-private (exit \(join.status))" : nil,
                    held: join.status == 125 && join.stderr.contains("no network \"a-private\""),
                    observed: join.status != 0 ? join.stderr.trimmingCharacters(in: .whitespacesAndNewlines) : "joined",
                    control: "its owner lists it: \(ownNetworks.contains("a-private") ? "yes" : "no")",
                    shown: ownNetworks.contains("a-private")),
            ])
            #expect(tenant(a, ["network", "rm", "a-private"]).status == 0)
        }

        @Test func templatedAndPooledVMsGetAddressesOfTheirOwn() throws {
            for name in ["t1", "t2"] {
                #expect(h.hvc(["run", "-d", "--name", name, NetworkTests.image, "sleep", "300"]).status == 0)
            }
            defer { _ = h.hvc(["rm", "-f", "t1", "t2", "p1", "p2"]) }
            #expect(Set([mac("t1"), mac("t2")]).count == 2 && Set([address("t1"), address("t2")]).count == 2)
            for name in ["t1", "t2"] {
                let inside = h.hvc(["exec", name, "sh", "-c", "cat /sys/class/net/eth0/address; ping -c 1 -W 2 \(address(name == "t1" ? "t2" : "t1")) >/dev/null && echo reached"])
                #expect(inside.stdout == mac(name) + "\nreached\n", "\(name): \(inside.stdout) \(inside.stderr)")
            }
            #expect(h.hvc(["pool", "set", NetworkTests.image, "2"]).status == 0)
            defer { _ = h.hvc(["pool", "set", NetworkTests.image, "0"]) }
            for name in ["p1", "p2"] {
                // The pool refills after each take: whichever VM waits then serves the next run.
                #expect(Harness.eventually(60) { h.poolMembers().count == 2 })
                let waiting = h.poolMembers()
                #expect(h.hvc(["run", "-d", "--name", name, NetworkTests.image, "sleep", "300"]).status == 0)
                let supervisor = (state(name)["supervisorPID"] as? Int).map(Int32.init) ?? 0
                #expect(waiting.contains(supervisor), "\(name) was not a pooled VM")
            }
            let macs = Set(["t1", "t2", "p1", "p2"].map(mac)), addresses = Set(["t1", "t2", "p1", "p2"].map(address))
            #expect(macs.count == 4 && addresses.count == 4, "\(macs) \(addresses)")
            #expect(!macs.contains("02:00:00:00:00:01"))
            for name in ["p1", "p2"] {
                let inside = h.hvc(["exec", name, "sh", "-c", "cat /sys/class/net/eth0/address; ping -c 1 -W 2 \(address("t1")) >/dev/null && echo reached"])
                #expect(inside.stdout == mac(name) + "\nreached\n", "\(name): \(inside.stdout) \(inside.stderr)")
            }
        }

        @Test func nothingIsLeftAfterRemovalOrAKilledSupervisorOrQEMU() throws {
            for (name, port) in [("leak-rm", "\(Harness.freePort())"), ("leak-kill", "\(Harness.freePort())")] {
                let r = h.hvc(["run", "-d", "--name", name, "-p", port + ":80", NetworkTests.image, "sleep", "300"])
                try #require(r.status == 0, "\(r.stderr)")
            }
            let rmID = h.hvc(["inspect", "leak-rm"]).stdout.firstMatch(of: /"id" : "([0-9a-f]{64})"/).map { String($0.1) } ?? ""
            let killID = h.hvc(["inspect", "leak-kill"]).stdout.firstMatch(of: /"id" : "([0-9a-f]{64})"/).map { String($0.1) } ?? ""
            // While they run, each has a lease, DNAT rules, a namespace and a veth on the bridge.
            #expect(traces(of: rmID).count == 3, "\(rmID): \(traces(of: rmID))")
            #expect(traces(of: killID).count == 3, "\(killID): \(traces(of: killID))")
            #expect(bridgePorts().count >= 2)
            let portsBefore = bridgePorts().count

            #expect(h.hvc(["rm", "-f", "leak-rm"]).status == 0)
            #expect(traces(of: rmID).isEmpty, "\(traces(of: rmID))")
            // The kernel destroys the namespace, and the veth with it, in the background.
            #expect(Harness.eventually(10) { bridgePorts().count == portsBefore - 1 }, "\(bridgePorts())")

            let supervisor = try #require(state("leak-kill")["supervisorPID"] as? Int)
            kill(Int32(supervisor), SIGKILL)
            // The next hvc command sweeps what the dead supervisor left.
            #expect(Harness.eventually(15) { _ = h.hvc(["ps", "-a"]); return traces(of: killID).isEmpty }, "\(traces(of: killID))")
            #expect(Harness.eventually(10) { bridgePorts().count == portsBefore - 2 }, "\(bridgePorts())")
            #expect(h.hvc(["port", "leak-kill"]).stdout.isEmpty)
            _ = h.hvc(["rm", "-f", "leak-kill"])

            // A QEMU killed: its supervisor sees the VM end and undoes the network.
            let vmm = h.hvc(["run", "-d", "--name", "leak-vmm", "-p", "\(Harness.freePort()):80", NetworkTests.image, "sleep", "300"])
            try #require(vmm.status == 0, "\(vmm.stderr)")
            let vmmID = vmm.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(traces(of: vmmID).count == 3, "\(traces(of: vmmID))")
            let qemu = try #require(state("leak-vmm")["vmmPID"] as? Int)
            kill(Int32(qemu), SIGKILL)
            #expect(Harness.eventually(15) { state("leak-vmm")["status"] as? String == "exited" })
            #expect(Harness.eventually(10) { traces(of: vmmID).isEmpty }, "\(traces(of: vmmID))")
            #expect(Harness.eventually(10) { bridgePorts().count == portsBefore - 2 }, "\(bridgePorts())")
            _ = h.hvc(["rm", "-f", "leak-vmm"])
        }
    }
}
