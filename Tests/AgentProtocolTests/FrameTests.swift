import Foundation
import AgentProtocol
import Testing

struct FrameTests {
    static let messages: [Message] = [
        .hello(Hello(entropy: [1, 2, 3], unixTimeNanoseconds: 1_700_000_000_123_456_789, hostname: "box")),
        .hello({
            var hello = Hello(entropy: [9], unixTimeNanoseconds: 2, hostname: "oci", readOnlyRoot: true, rootShare: "root")
            hello.pidsLimit = 50
            hello.writableBytes = 64 << 20
            return hello
        }()),
        .hello(Hello(entropy: [4], unixTimeNanoseconds: 1, hostname: "net",
                     interface: GuestInterface(mac: [2, 0x42, 10, 210, 0, 5], address: 0x0AD2_0005, prefix: 24,
                                               gateway: 0x0AD2_0001, mtu: 1400),
                     nameservers: ["10.210.0.1", "10.255.255.53"])),
        .start(ProcessSpec(arguments: ["sh", "-c", "echo hi"], environment: ["A=b"], workingDirectory: "/tmp",
                           user: "nobody:nogroup", terminal: true, rows: 50, columns: 132)),
        .start({
            var spec = ProcessSpec(arguments: ["true"])
            spec.additionalGroups = [44, 1000]
            spec.resourceLimits = [ResourceLimit(resource: 7, soft: 1000, hard: 2000)]
            spec.capabilities = CapabilitySets(bounding: 0x1f, effective: 1, permitted: 3, inheritable: 0, ambient: 1 << 40)
            spec.noNewPrivileges = true
            return spec
        }()),
        .start({
            var spec = ProcessSpec(arguments: ["httpd", "-f"])
            spec.member = PodMember(name: "web", rootShare: "web+root", readOnlyRoot: true,
                                    mounts: [GuestMount(kind: .share, source: "web+m1", target: "/etc/hosts", readOnly: false),
                                             GuestMount(kind: .tmpfs, source: "size=1m", target: "/tmp", readOnly: false)],
                                    memoryBytes: 64 << 20, pidsLimit: 100, cpuQuotaMicroseconds: 50_000)
            return spec
        }()),
        .start({
            var spec = ProcessSpec(arguments: ["ls"])
            spec.container = "web"
            return spec
        }()),
        .stdin([0, 255, 10]),
        .closeStdin,
        .signal(15),
        .resize(rows: 10, columns: 20),
        .shutdown,
        .ready(Ready(agentStartNanoseconds: 5, readyNanoseconds: 6)),
        .started(pid: 42),
        .startFailed(.notFound, "no such file"),
        .stdout(Array("out".utf8)),
        .stderr([]),
        .exited(.exited(42)),
        .exited(.signaled(9)),
        .failure("boom"),
        .oomKilled,
    ]

    @Test(arguments: messages)
    func roundTrip(_ message: Message) throws {
        var decoder = FrameDecoder()
        decoder.append(Frame(process: 7, message).encoded())
        let frame = try #require(try decoder.next())
        #expect(frame == Frame(process: 7, message))
        #expect(try decoder.next() == nil)
    }

    @Test func framesSplitAcrossReadsAndBatchedTogether() throws {
        let frames = FrameTests.messages.enumerated().map { Frame(process: UInt32($0.offset), $0.element) }
        let stream = frames.flatMap { $0.encoded() }
        var decoder = FrameDecoder()
        var decoded: [Frame] = []
        var offset = 0
        var step = 1
        while offset < stream.count {
            let end = min(stream.count, offset + step)
            decoder.append(stream[offset..<end])
            while let frame = try decoder.next() { decoded.append(frame) }
            offset = end
            step = step % 13 + 1
        }
        #expect(decoded == frames)
    }

    @Test func oversizedLengthIsRejectedBeforeBuffering() {
        var decoder = FrameDecoder()
        decoder.append([0xff, 0xff, 0xff, 0xff, 67, 0, 0, 0, 1])
        #expect(throws: ProtocolError.frameTooLarge(Int(UInt32.max))) { try decoder.next() }
    }

    @Test func decoderStaysFailedAfterAnError() {
        var decoder = FrameDecoder()
        decoder.append([0, 0, 0, 0, 200, 0, 0, 0, 1])
        #expect(throws: ProtocolError.unknownKind(200)) { try decoder.next() }
        decoder.append(Frame(.shutdown).encoded())
        #expect(throws: ProtocolError.unknownKind(200)) { try decoder.next() }
    }

    @Test func fieldLongerThanItsFrameIsTruncated() {
        // A stdout frame whose inner length claims 100 bytes but carries 2.
        var decoder = FrameDecoder()
        decoder.append([0, 0, 0, 6, 67, 0, 0, 0, 1, 0, 0, 0, 100, 1, 2])
        #expect(throws: ProtocolError.truncated) { try decoder.next() }
    }

    @Test func chunkOverTheLimitIsRejected() {
        var decoder = FrameDecoder()
        decoder.append(Frame(.stdout([UInt8](repeating: 1, count: Limits.maxChunk + 1))).encoded())
        #expect(throws: ProtocolError.fieldTooLong(Limits.maxChunk + 1, limit: Limits.maxChunk)) { try decoder.next() }
    }

    @Test func trailingBytesAreRejected() {
        var bytes = Frame(.signal(2)).encoded()
        bytes[3] += 1
        bytes.append(0)
        var decoder = FrameDecoder()
        decoder.append(bytes)
        #expect(throws: ProtocolError.trailingBytes(1)) { try decoder.next() }
    }

    @Test(arguments: [
        [UInt8]([0, 0, 0, 5, 69, 0, 0, 0, 1, 0, 0, 0, 1, 0]),   // exit code 256
        [UInt8]([0, 0, 0, 5, 69, 0, 0, 0, 1, 1, 0, 0, 0, 0]),   // signal 0
        [UInt8]([0, 0, 0, 5, 69, 0, 0, 0, 1, 7, 0, 0, 0, 1]),   // unknown status kind
        [UInt8]([0, 0, 0, 1, 2, 0, 0, 0, 1, 5]),                // start with a truncated list
        [UInt8]([0, 0, 0, 5, 66, 0, 0, 0, 1, 9, 0, 0, 0, 0]),   // unknown start failure
    ])
    func invalidGuestReportsAreRejected(_ bytes: [UInt8]) {
        var decoder = FrameDecoder()
        decoder.append(bytes)
        #expect(throws: ProtocolError.self) { try decoder.next() }
    }

    @Test(arguments: [
        PodMember(name: "../x", rootShare: "x+root"),
        PodMember(name: "x", rootShare: "../root"),
        PodMember(name: "x", rootShare: ""),
        PodMember(name: "x", rootShare: "x+root", mounts: [GuestMount(kind: .share, source: "a/b", target: "/t", readOnly: false)]),
        PodMember(name: "x", rootShare: "x+root", mounts: [GuestMount(kind: .share, source: "m", target: "/t/../../etc", readOnly: false)]),
    ])
    func podMembersNamesAndEntriesAreChecked(_ member: PodMember) {
        var spec = ProcessSpec(arguments: ["true"])
        spec.member = member
        var decoder = FrameDecoder()
        decoder.append(Frame(.start(spec)).encoded())
        #expect(throws: ProtocolError.self) { try decoder.next() }
    }

    @Test func aProcessNamesOneContainerAndStartsNoMemberThere() {
        for name in ["a/b", ".."] {
            var spec = ProcessSpec(arguments: ["true"])
            spec.container = name
            var decoder = FrameDecoder()
            decoder.append(Frame(.start(spec)).encoded())
            #expect(throws: ProtocolError.invalidField("container name")) { try decoder.next() }
        }
        var both = ProcessSpec(arguments: ["true"])
        both.container = "web"
        both.member = PodMember(name: "web", rootShare: "web+root")
        var decoder = FrameDecoder()
        decoder.append(Frame(.start(both)).encoded())
        #expect(throws: ProtocolError.invalidField("pod member")) { try decoder.next() }
    }

    @Test func emptyArgumentListIsRejected() {
        var decoder = FrameDecoder()
        decoder.append(Frame(.start(ProcessSpec(arguments: []))).encoded())
        #expect(throws: ProtocolError.invalidField("empty argument list")) { try decoder.next() }
    }

    @Test func processPrivilegesAreBounded() {
        var groups = ProcessSpec(arguments: ["true"])
        groups.additionalGroups = Array(0...UInt32(Limits.maxGroups))
        var tooMany = FrameDecoder()
        tooMany.append(Frame(.start(groups)).encoded())
        #expect(throws: ProtocolError.invalidField("\(Limits.maxGroups + 1) additional groups")) { try tooMany.next() }
        for limit in [ResourceLimit(resource: 16, soft: 1, hard: 1), ResourceLimit(resource: 7, soft: 2, hard: 1)] {
            var spec = ProcessSpec(arguments: ["true"])
            spec.resourceLimits = [limit]
            var decoder = FrameDecoder()
            decoder.append(Frame(.start(spec)).encoded())
            #expect(throws: ProtocolError.invalidField("resource limit \(limit.resource)")) { try decoder.next() }
        }
    }

    /// Seeded (`HVC_TEST_SEED`, else a fixed one), and the seed printed, so a failure replays.
    @Test func randomBytesNeverCrashTheDecoder() {
        let seed = ProcessInfo.processInfo.environment["HVC_TEST_SEED"].flatMap { UInt64($0) } ?? 0x6876_6331
        print("randomBytesNeverCrashTheDecoder: seed \(seed)")
        var generator = SplitMix64(seed: seed)
        for _ in 0..<3000 {
            var decoder = FrameDecoder()
            let count = Int.random(in: 0...64, using: &generator)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if count > 4 { bytes[0] = 0; bytes[1] = 0 }  // plausible lengths reach the payload decoders
            decoder.append(bytes)
            while (try? decoder.next()) != nil {}
        }
    }

    @Test func exitStatusCodesFollowTheShell() {
        #expect(ExitStatus.exited(3).code == 3)
        #expect(ExitStatus.signaled(9).code == 137)
    }
}

/// The network part of `hello` is bounded like the rest.
struct NetworkMessageTests {
    @Test func nameServersAreBounded() {
        var many = FrameDecoder()
        many.append(Frame(.hello(Hello(entropy: [], unixTimeNanoseconds: 0, hostname: "h",
                                       nameservers: Array(repeating: "10.0.0.1", count: Limits.maxNameservers + 1)))).encoded())
        #expect(throws: ProtocolError.self) { try many.next() }
        var long = FrameDecoder()
        long.append(Frame(.hello(Hello(entropy: [], unixTimeNanoseconds: 0, hostname: "h", nameservers: ["10.0.0.1\nsearch evil"]))).encoded())
        #expect(throws: ProtocolError.fieldTooLong(20, limit: 15)) { try long.next() }
    }

    @Test func aMACOfTheWrongLengthOrABadPrefixIsRefused() {
        let nic = GuestInterface(mac: [2, 0, 0, 0, 0, 1, 9], address: 1, prefix: 24, gateway: 2, mtu: 1500)
        var decoder = FrameDecoder()
        decoder.append(Frame(.hello(Hello(entropy: [], unixTimeNanoseconds: 0, hostname: "h", interface: nic))).encoded())
        #expect(throws: ProtocolError.fieldTooLong(7, limit: 6)) { try decoder.next() }
        let prefix = GuestInterface(mac: [2, 0, 0, 0, 0, 1], address: 1, prefix: 31, gateway: 2, mtu: 1500)
        var second = FrameDecoder()
        second.append(Frame(.hello(Hello(entropy: [], unixTimeNanoseconds: 0, hostname: "h", interface: prefix))).encoded())
        #expect(throws: ProtocolError.invalidField("interface prefix or MTU")) { try second.next() }
    }
}

/// The mounts in `hello` are bounded and checked like the rest: one path component for a
/// share, absolute targets without `..`.
struct MountMessageTests {
    func decode(_ mounts: [GuestMount]) throws -> Hello? {
        var decoder = FrameDecoder()
        decoder.append(Frame(.hello(Hello(entropy: [], unixTimeNanoseconds: 0, hostname: "h", mounts: mounts, readOnlyRoot: true))).encoded())
        guard case .hello(let hello)? = try decoder.next()?.message else { return nil }
        return hello
    }

    @Test func mountsRoundTrip() throws {
        let mounts = [GuestMount(kind: .share, source: "m0", target: "/data", readOnly: true),
                      GuestMount(kind: .share, source: "m1", target: "/var/lib/db", readOnly: false, populate: true),
                      GuestMount(kind: .tmpfs, source: "mode=1777,size=4096", target: "/tmp", readOnly: false)]
        let hello = try decode(mounts)
        #expect(hello?.mounts == mounts)
        #expect(hello?.readOnlyRoot == true)
    }

    @Test(arguments: [
        GuestMount(kind: .share, source: "../m0", target: "/data", readOnly: false),
        GuestMount(kind: .share, source: "..", target: "/data", readOnly: false),
        GuestMount(kind: .share, source: "", target: "/data", readOnly: false),
        GuestMount(kind: .share, source: "m0", target: "data", readOnly: false),
        GuestMount(kind: .tmpfs, source: "", target: "/a/../proc", readOnly: false),
    ])
    func badMountsAreRefused(_ mount: GuestMount) {
        #expect(throws: ProtocolError.self) { try decode([mount]) }
    }

    @Test func mountCountIsBounded() {
        let many = Array(repeating: GuestMount(kind: .tmpfs, source: "", target: "/t", readOnly: false), count: Limits.maxMounts + 1)
        #expect(throws: ProtocolError.fieldTooLong(Limits.maxMounts + 1, limit: Limits.maxMounts)) { try decode(many) }
    }
}

/// SplitMix64: a small seeded generator, so that random test input can be replayed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
