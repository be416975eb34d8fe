import AgentProtocol
import Foundation
@testable import Runtime
import Testing

struct OCIBundleTests {
    static let podmanAddresses = #"""
        [{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"link_type":"loopback","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
         {"ifindex":2,"ifname":"eth0","mtu":1500,"link_type":"ether","address":"8a:d2:7b:7e:15:d9","addr_info":[{"family":"inet","local":"10.88.0.43","prefixlen":16},{"family":"inet6","local":"fe80::1","prefixlen":64}]}]
        """#
    static let podmanRoutes = #"[{"dst":"default","gateway":"10.88.0.1","dev":"eth0","protocol":"static","metric":100,"flags":[]}]"#

    /// `state`'s `created` is RFC 3339 UTC with milliseconds, as runc prints it.
    @Test func stateCreatedIsRFC3339WithMilliseconds() throws {
        let created = Date(timeIntervalSince1970: 1_796_000_000.25)
        let record = OCIRecord(id: "c", bundle: "/b", container: "x", pid: 7, created: created, annotations: [:], stateRoot: "/s",
                               root: "/r", runRoot: "/rr", assets: "/a")
        let state = OCIContainers.ociState(record, status: "created")
        #expect(state.created == "2026-11-30T00:53:20.250Z")
        let parser = ISO8601DateFormatter()
        parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        #expect(parser.date(from: state.created ?? "") == created)
    }

    @Test func theNamespacesInterfaceIsTakenOver() throws {
        let joined = try #require(try JoinedInterface.parse(namespace: "/run/netns/x", addresses: Data(Self.podmanAddresses.utf8),
                                                            routes: Data(Self.podmanRoutes.utf8)))
        #expect(joined.device == "eth0" && joined.mac == "8a:d2:7b:7e:15:d9" && joined.prefix == 16 && joined.mtu == 1500)
        #expect(joined.address.description == "10.88.0.43" && joined.gateway?.description == "10.88.0.1")
        // No route: no gateway, the interface still joins.
        let noRoute = try JoinedInterface.parse(namespace: "/n", addresses: Data(Self.podmanAddresses.utf8), routes: Data())
        #expect(noRoute?.gateway == nil && noRoute?.device == "eth0")
    }

    @Test func loopbackOnlyOrAnInterfaceAlreadyTakenGivesNone() throws {
        let loopback = #"[{"ifname":"lo","mtu":65536,"link_type":"loopback","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]}]"#
        #expect(try JoinedInterface.parse(namespace: "/n", addresses: Data(loopback.utf8), routes: Data("[]".utf8)) == nil)
        let taken = Self.podmanAddresses.replacingOccurrences(of: #"{"ifindex":1,"ifname":"lo""#, with: #"{"ifname":"hvc-tap0","link_type":"ether"},{"ifindex":1,"ifname":"lo""#)
        #expect(try JoinedInterface.parse(namespace: "/n", addresses: Data(taken.utf8), routes: Data(Self.podmanRoutes.utf8)) == nil)
        #expect(throws: HVCError.self) { try JoinedInterface.parse(namespace: "/n", addresses: Data("not json".utf8), routes: Data()) }
        // A point-to-point address (Calico's /32) cannot be routed by the guest: refused, not ignored.
        let pointToPoint = Self.podmanAddresses.replacingOccurrences(of: #""prefixlen":16"#, with: #""prefixlen":32"#)
        #expect(throws: HVCError.self) {
            try JoinedInterface.parse(namespace: "/n", addresses: Data(pointToPoint.utf8), routes: Data(Self.podmanRoutes.utf8))
        }
    }

    static func process(_ json: String) throws -> OCISpec.Process {
        try JSONDecoder().decode(OCISpec.Process.self, from: Data(json.utf8))
    }

    @Test func aProcessKeepsItsLimitsCapabilitiesAndGroups() throws {
        let spec = try Self.process(#"""
            {"args": ["sh"], "user": {"uid": 1000, "gid": 1000, "additionalGids": [44]},
             "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024}, {"type": "RLIMIT_NPROC", "hard": 50, "soft": 50}],
             "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NO_SUCH"], "effective": ["CAP_KILL"],
                              "permitted": ["CAP_CHOWN", "CAP_KILL"], "ambient": ["CAP_CHECKPOINT_RESTORE"]},
             "noNewPrivileges": true}
            """#).spec()
        #expect(spec.user == "1000:1000" && spec.additionalGroups == [44] && spec.noNewPrivileges)
        #expect(spec.resourceLimits == [ResourceLimit(resource: 7, soft: 1024, hard: 2048), ResourceLimit(resource: 6, soft: 50, hard: 50)])
        #expect(spec.capabilities == CapabilitySets(bounding: 0b10_0001, effective: 0b10_0000, permitted: 0b10_0001, inheritable: 0,
                                                    ambient: 1 << 40))
        // Without capabilities the guest's default stands; without the flag, exec may gain privileges.
        let plain = try Self.process(#"{"args": ["sh"]}"#).spec()
        #expect(plain.capabilities == nil && !plain.noNewPrivileges && plain.resourceLimits.isEmpty)
    }

    @Test(arguments: [
        #"{"args": []}"#,
        #"{"args": ["sh"], "rlimits": [{"type": "RLIMIT_NOPE", "hard": 1, "soft": 1}]}"#,
        #"{"args": ["sh"], "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 2}]}"#,
    ])
    func badProcessesAreRefused(_ json: String) throws {
        let process = try Self.process(json)
        #expect(throws: HVCError.self) { try process.spec() }
    }

    static func spec(annotations: String, resources: String = "{}") throws -> OCISpec {
        try JSONDecoder().decode(OCISpec.self, from: Data(#"{"ociVersion": "1.0.2", "annotations": \#(annotations), "linux": {"resources": \#(resources)}}"#.utf8))
    }

    @Test func annotationsSetTheVMsShapeOverTheResources() throws {
        let fromResources = try Self.spec(annotations: "{}", resources: #"{"memory": {"limit": 536870912}, "cpu": {"quota": 150000, "period": 100000}}"#)
        let derived = try fromResources.vmShape()
        #expect(derived.memoryMiB == 512 && derived.cpus == 2)
        let annotated = try Self.spec(annotations: #"{"io.hvc.memory": "1g", "io.hvc.cpus": "3"}"#,
                                      resources: #"{"memory": {"limit": 536870912}}"#)
        let set = try annotated.vmShape()
        #expect(set.memoryMiB == 1024 && set.cpus == 3)
        for bad in [#"{"io.hvc.memory": "1m"}"#, #"{"io.hvc.memory": "lots"}"#, #"{"io.hvc.cpus": "0"}"#, #"{"io.hvc.cpus": "17"}"#] {
            #expect(throws: HVCError.self) { try Self.spec(annotations: bad).vmShape() }
        }
    }

    @Test func podRolesFollowTheCallersAnnotations() throws {
        func role(_ annotations: String, id: String = "c1") throws -> OCISpec.PodRole? {
            try Self.spec(annotations: annotations).podRole(id: id)
        }
        #expect(try role(#"{"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "c1"}"#) == .sandbox)
        #expect(try role(#"{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "sb"}"#) == .member(sandbox: "sb"))
        #expect(try role(#"{"io.kubernetes.cri-o.ContainerType": "sandbox"}"#) == .sandbox)
        #expect(try role(#"{"io.kubernetes.cri-o.ContainerType": "container", "io.kubernetes.cri-o.SandboxID": "infra"}"#) == .member(sandbox: "infra"))
        // podman's infra container and a plain container carry neither; a container naming itself is no member.
        #expect(try role(#"{"io.container.manager": "libpod"}"#) == nil)
        #expect(try role(#"{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "c1"}"#) == nil)
        #expect(try role(#"{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": ""}"#) == nil)
    }

    @Test func aPodsMemoryIsItsContainersPlusTheGuestsOverhead() throws {
        let pod = try Self.spec(annotations: #"{"io.kubernetes.cri.sandbox-memory": "536870912"}"#)
        #expect(try pod.vmShape().memoryMiB == 512 + OCISpec.podOverheadMiB)
        let annotated = try Self.spec(annotations: #"{"io.kubernetes.cri.sandbox-memory": "536870912", "io.hvc.memory": "2g"}"#)
        #expect(try annotated.vmShape().memoryMiB == 2048, "the hvc annotation wins")
        #expect(try Self.spec(annotations: #"{"io.kubernetes.cri.sandbox-memory": "junk"}"#).vmShape().memoryMiB == 256)
    }

    @Test func aLaterMountOnATargetHidesAnEarlierOne() throws {
        let spec = try JSONDecoder().decode(OCISpec.self, from: Data(#"""
            {"ociVersion": "1.0.2", "mounts": [
              {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["size=65536k"]},
              {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts", "options": ["rbind", "ro"]},
              {"destination": "/dev/shm", "type": "bind", "source": "/tmp", "options": ["rbind"]}]}
            """#.utf8))
        let mounts = try spec.containerMounts()
        #expect(mounts.map(\.target).sorted() == ["/dev/shm", "/etc/hosts"])
        #expect(mounts.first { $0.target == "/dev/shm" }?.type == .bind, "the pod's shared /dev/shm, not the default tmpfs")
    }
}
