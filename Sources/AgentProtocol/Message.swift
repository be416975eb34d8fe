/// What the host asks of a process in the guest.
public struct ProcessSpec: Equatable, Sendable {
    /// `argv`; the first element is looked up in the container's `PATH` when it has no slash.
    public var arguments: [String]
    /// `KEY=VALUE` entries, exactly as the process gets them.
    public var environment: [String]
    public var workingDirectory: String
    /// `uid[:gid]` or a user name from the image's `/etc/passwd`; empty means root.
    public var user: String
    /// Give the process a pseudo-terminal instead of pipes.
    public var terminal: Bool
    public var rows: UInt16
    public var columns: UInt16
    /// Groups beyond those of `user` (an OCI process's `additionalGids`).
    public var additionalGroups: [UInt32] = []
    /// `setrlimit`s before the process starts.
    public var resourceLimits: [ResourceLimit] = []
    /// The capability sets the process gets; nil: what its user has (all, for root).
    public var capabilities: CapabilitySets?
    /// `PR_SET_NO_NEW_PRIVS`: exec cannot gain privileges (set-ID files, file capabilities).
    public var noNewPrivileges = false
    /// The pod member the process runs in (its `PodMember.name`); empty: the VM's own container.
    public var container = ""
    /// Set: the process is the first of a new pod member, a container of its own in the VM.
    public var member: PodMember?

    public init(
        arguments: [String], environment: [String] = [], workingDirectory: String = "/",
        user: String = "", terminal: Bool = false, rows: UInt16 = 24, columns: UInt16 = 80
    ) {
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.user = user
        self.terminal = terminal
        self.rows = rows
        self.columns = columns
    }
}

/// One resource limit (`RLIMIT_*` by number).
public struct ResourceLimit: Codable, Equatable, Sendable {
    public var resource: UInt32
    public var soft: UInt64
    public var hard: UInt64

    public init(resource: UInt32, soft: UInt64, hard: UInt64) {
        self.resource = resource
        self.soft = soft
        self.hard = hard
    }
}

/// A process's five capability sets, one bit per capability number.
public struct CapabilitySets: Codable, Equatable, Sendable {
    public var bounding: UInt64
    public var effective: UInt64
    public var permitted: UInt64
    public var inheritable: UInt64
    public var ambient: UInt64

    public init(bounding: UInt64, effective: UInt64, permitted: UInt64, inheritable: UInt64, ambient: UInt64) {
        self.bounding = bounding
        self.effective = effective
        self.permitted = permitted
        self.inheritable = inheritable
        self.ambient = ambient
    }
}

/// The guest's network interface (`eth0`), as its network leased it. Addresses are IPv4 in
/// host byte order.
public struct GuestInterface: Equatable, Sendable {
    public var mac: [UInt8]
    public var address: UInt32
    public var prefix: UInt8
    public var gateway: UInt32
    public var mtu: UInt16

    public init(mac: [UInt8], address: UInt32, prefix: UInt8, gateway: UInt32, mtu: UInt16) {
        self.mac = mac
        self.address = address
        self.prefix = prefix
        self.gateway = gateway
        self.mtu = mtu
    }
}

/// A mount the agent makes in the container before its first process: one of the VM's shared
/// folders (`share` names its entry in the shared directory) or a tmpfs (`options` its data).
public struct GuestMount: Codable, Equatable, Sendable {
    /// block: a share entry that is an ext4 image, mounted through a loop device.
    public enum Kind: UInt8, Codable, Sendable { case share = 0, tmpfs = 1, block = 2 }
    /// The 9P mount tag under which the VMM serves the VM's shared folders.
    public static let sharesTag = "hvc.shares"
    /// The entry a pooled VM's host shares for its warm-up: a container root to rehearse on.
    public static let rehearsalRoot = "warm-up-root"
    /// The program in the rehearsal root that its container runs: it exits at once.
    public static let rehearsalCommand = "/warm-up"
    public var kind: Kind
    /// share, block: the entry's name (one path component); tmpfs: its mount options.
    public var source: String
    /// Absolute path in the container.
    public var target: String
    public var readOnly: Bool
    /// share, block: an empty volume, first filled with what the image has at `target` (Docker's copy).
    public var populate: Bool

    public init(kind: Kind, source: String, target: String, readOnly: Bool, populate: Bool = false) {
        self.kind = kind
        self.source = source
        self.target = target
        self.readOnly = readOnly
        self.populate = populate
    }

    /// A share entry's name: one path component.
    static func isEntry(_ name: String) -> Bool {
        !name.isEmpty && !name.contains("/") && name != "." && name != ".."
    }

    static func encode(_ mounts: [GuestMount], into w: inout ByteWriter) {
        w.write(UInt32(mounts.count))
        for mount in mounts {
            w.write(mount.kind.rawValue)
            w.write(mount.source)
            w.write(mount.target)
            w.write(mount.readOnly)
            w.write(mount.populate)
        }
    }

    /// A list of mounts, each target absolute without `.` or `..`, each share source an entry.
    static func decodeList(_ r: inout ByteReader) throws(ProtocolError) -> [GuestMount] {
        let count = try r.readUInt32()
        guard count <= Limits.maxMounts else { throw .fieldTooLong(Int(count), limit: Limits.maxMounts) }
        var mounts: [GuestMount] = []
        for _ in 0..<count {
            guard let kind = Kind(rawValue: try r.readUInt8()) else { throw .invalidField("mount kind") }
            let mount = GuestMount(kind: kind, source: try r.readString(max: Limits.maxMountPath),
                                   target: try r.readString(max: Limits.maxMountPath), readOnly: try r.readBool(),
                                   populate: try r.readBool())
            guard mount.target.hasPrefix("/"), !mount.target.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }),
                  kind == .tmpfs || isEntry(mount.source)
            else { throw .invalidField("mount \(mount.target)") }
            mounts.append(mount)
        }
        return mounts
    }
}

/// A container of a pod beside the VM's own: its own root (a share entry), mount and pid
/// namespaces and cgroup; the VM's network, hostname and IPC.
public struct PodMember: Codable, Equatable, Sendable {
    /// What later processes name it by (`ProcessSpec.container`), and its cgroup's name.
    public var name: String
    /// The share entry that is its root directory.
    public var rootShare: String
    public var readOnlyRoot: Bool
    public var mounts: [GuestMount]
    /// Its cgroup's `memory.max`; 0: no limit of its own.
    public var memoryBytes: UInt64
    /// Its cgroup's `pids.max`; 0: no limit of its own.
    public var pidsLimit: UInt32
    /// Its cgroup's CPU quota in microseconds per 100 ms; 0: no limit of its own.
    public var cpuQuotaMicroseconds: UInt32

    public init(name: String, rootShare: String, readOnlyRoot: Bool = false, mounts: [GuestMount] = [], memoryBytes: UInt64 = 0,
                pidsLimit: UInt32 = 0, cpuQuotaMicroseconds: UInt32 = 0) {
        self.name = name
        self.rootShare = rootShare
        self.readOnlyRoot = readOnlyRoot
        self.mounts = mounts
        self.memoryBytes = memoryBytes
        self.pidsLimit = pidsLimit
        self.cpuQuotaMicroseconds = cpuQuotaMicroseconds
    }

    /// A member's name: one path component of letters, digits and `_.-`, as runc's ids are.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name != "." && name != ".."
            && name.utf8.allSatisfy { $0 == 0x2D || $0 == 0x2E || $0 == 0x5F || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
    }
}

/// Session parameters the host sends once, answering the guest's `ready`.
public struct Hello: Equatable, Sendable {
    public var version: UInt16
    /// Fresh host randomness; the guest credits it to its RNG before running anything.
    public var entropy: [UInt8]
    /// Host wall-clock time, nanoseconds since the epoch; the guest sets its clock from it.
    public var unixTimeNanoseconds: UInt64
    public var hostname: String
    /// nil: the VM has no network (only loopback).
    public var interface: GuestInterface?
    /// Dotted IPv4 addresses for `/etc/resolv.conf`.
    public var nameservers: [String]
    /// The container's mounts, in the order they are made.
    public var mounts: [GuestMount]
    /// The container's root filesystem read-only (after its mounts are made).
    public var readOnlyRoot: Bool
    /// The share entry that is the container's root (an OCI bundle's root directory) instead of
    /// the image; its files are the caller's, so the agent writes none of its own there.
    public var rootShare: String?
    /// Most processes in the container at once (its cgroup's `pids.max`); 0: no limit.
    public var pidsLimit: UInt32 = 0
    /// The container gets `/dev/kvm` (its VM's CPU lets the guest kernel's KVM work).
    public var nested = false
    /// Most bytes the container's writable layer (a tmpfs in guest memory) holds; 0: the tmpfs
    /// default, half the guest's memory.
    public var writableBytes: UInt64 = 0

    public init(version: UInt16 = Limits.version, entropy: [UInt8], unixTimeNanoseconds: UInt64, hostname: String,
                interface: GuestInterface? = nil, nameservers: [String] = [], mounts: [GuestMount] = [], readOnlyRoot: Bool = false,
                rootShare: String? = nil) {
        self.version = version
        self.entropy = entropy
        self.unixTimeNanoseconds = unixTimeNanoseconds
        self.hostname = hostname
        self.interface = interface
        self.nameservers = nameservers
        self.mounts = mounts
        self.readOnlyRoot = readOnlyRoot
        self.rootShare = rootShare
    }
}

/// The guest's first message: its version and when it got there (guest monotonic clock).
public struct Ready: Equatable, Sendable {
    public var version: UInt16
    /// Guest uptime when the agent's `main` began.
    public var agentStartNanoseconds: UInt64
    /// Guest uptime when the agent had the root filesystem mounted and the channel open.
    public var readyNanoseconds: UInt64

    public init(version: UInt16 = Limits.version, agentStartNanoseconds: UInt64, readyNanoseconds: UInt64) {
        self.version = version
        self.agentStartNanoseconds = agentStartNanoseconds
        self.readyNanoseconds = readyNanoseconds
    }
}

/// Why a process could not be started; maps to Docker's 126 and 127.
public enum StartFailure: UInt8, Equatable, Sendable {
    case notFound = 1
    case notExecutable = 2
    case other = 3
}

/// How a process ended.
public enum ExitStatus: Equatable, Sendable {
    case exited(Int32)
    case signaled(Int32)

    /// What `waitpid` reported for a process that ended.
    public init(waitStatus status: Int32) {
        let termination = status & 0x7f
        self = termination == 0 ? .exited((status >> 8) & 0xff) : .signaled(termination)
    }

    /// The shell convention: the exit code, or 128 + the signal number.
    public var code: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }
}

/// One message on the channel. Messages about a process carry its id in the frame header.
public enum Message: Equatable, Sendable {
    // host → guest
    case hello(Hello)
    case start(ProcessSpec)
    case stdin([UInt8])
    case closeStdin
    case signal(Int32)
    case resize(rows: UInt16, columns: UInt16)
    case shutdown
    /// Before `hello`, for a VM that waits in a pool: exercise the paths a first command takes
    /// (an exec, a reseed) so that its VMM has translated them; answered by `warmedUp`.
    case warmUp
    /// Client → supervisor only (never to a guest), process id 0: take process 1's stdio. Before
    /// the command starts (`hvc-shim --attach`), with its stdin when `stdin`; after, its output.
    case attach(stdin: Bool)
    // guest → host
    case ready(Ready)
    case started(pid: Int32)
    case startFailed(StartFailure, String)
    case stdout([UInt8])
    case stderr([UInt8])
    case exited(ExitStatus)
    /// The kernel's OOM killer ended a process of the container (sent before process 1's `exited`).
    case oomKilled
    case warmedUp
    /// A fatal error in the agent; the session ends after it.
    case failure(String)

    var kind: UInt8 {
        switch self {
        case .hello: 1
        case .start: 2
        case .stdin: 3
        case .closeStdin: 4
        case .signal: 5
        case .resize: 6
        case .shutdown: 7
        case .warmUp: 8
        case .attach: 9
        case .ready: 64
        case .started: 65
        case .startFailed: 66
        case .stdout: 67
        case .stderr: 68
        case .exited: 69
        case .failure: 70
        case .oomKilled: 71
        case .warmedUp: 72
        }
    }

    func encodePayload(into w: inout ByteWriter) {
        switch self {
        case .hello(let h):
            w.write(h.version)
            w.write(bytes: h.entropy)
            w.write(h.unixTimeNanoseconds)
            w.write(h.hostname)
            if let i = h.interface {
                w.write(true)
                w.write(bytes: i.mac)
                w.write(i.address)
                w.write(i.prefix)
                w.write(i.gateway)
                w.write(i.mtu)
            } else {
                w.write(false)
            }
            w.write(h.nameservers)
            GuestMount.encode(h.mounts, into: &w)
            w.write(h.readOnlyRoot)
            w.write(h.rootShare ?? "")
            w.write(h.pidsLimit)
            w.write(h.nested)
            w.write(h.writableBytes)
        case .start(let p):
            w.write(p.arguments)
            w.write(p.environment)
            w.write(p.workingDirectory)
            w.write(p.user)
            w.write(p.terminal)
            w.write(p.rows)
            w.write(p.columns)
            w.write(UInt16(p.additionalGroups.count))
            for group in p.additionalGroups { w.write(group) }
            w.write(UInt8(p.resourceLimits.count))
            for limit in p.resourceLimits {
                w.write(limit.resource)
                w.write(limit.soft)
                w.write(limit.hard)
            }
            w.write(p.capabilities != nil)
            if let sets = p.capabilities {
                for set in [sets.bounding, sets.effective, sets.permitted, sets.inheritable, sets.ambient] { w.write(set) }
            }
            w.write(p.noNewPrivileges)
            w.write(p.container)
            w.write(p.member != nil)
            if let member = p.member {
                w.write(member.name)
                w.write(member.rootShare)
                w.write(member.readOnlyRoot)
                GuestMount.encode(member.mounts, into: &w)
                w.write(member.memoryBytes)
                w.write(member.pidsLimit)
                w.write(member.cpuQuotaMicroseconds)
            }
        case .stdin(let data), .stdout(let data), .stderr(let data):
            w.write(bytes: data)
        case .closeStdin, .shutdown, .oomKilled, .warmUp, .warmedUp:
            break
        case .signal(let signal):
            w.write(signal)
        case .attach(let stdin):
            w.write(UInt8(stdin ? 1 : 0))
        case .resize(let rows, let columns):
            w.write(rows)
            w.write(columns)
        case .ready(let r):
            w.write(r.version)
            w.write(r.agentStartNanoseconds)
            w.write(r.readyNanoseconds)
        case .started(let pid):
            w.write(pid)
        case .startFailed(let reason, let text):
            w.write(reason.rawValue)
            w.write(text)
        case .exited(let status):
            switch status {
            case .exited(let code): w.write(UInt8(0)); w.write(code)
            case .signaled(let signal): w.write(UInt8(1)); w.write(signal)
            }
        case .failure(let text):
            w.write(text)
        }
    }

    static func decode(kind: UInt8, payload: ArraySlice<UInt8>) throws(ProtocolError) -> Message {
        var r = ByteReader(payload)
        let message: Message
        switch kind {
        case 1:
            var hello = Hello(
                version: try r.readUInt16(), entropy: try r.readBytes(max: Limits.maxEntropy),
                unixTimeNanoseconds: try r.readUInt64(), hostname: try r.readString(max: 64))
            if try r.readBool() {
                let mac = try r.readBytes(max: 6)
                guard mac.count == 6 else { throw .invalidField("MAC address") }
                let interface = GuestInterface(mac: mac, address: try r.readUInt32(), prefix: try r.readUInt8(),
                                               gateway: try r.readUInt32(), mtu: try r.readUInt16())
                guard (8...30).contains(interface.prefix), (576...9000).contains(interface.mtu) else {
                    throw .invalidField("interface prefix or MTU")
                }
                hello.interface = interface
            }
            hello.nameservers = try r.readStrings(maxCount: Limits.maxNameservers).map { s throws(ProtocolError) in
                guard s.utf8.count <= 15 else { throw .fieldTooLong(s.utf8.count, limit: 15) }
                return s
            }
            hello.mounts = try GuestMount.decodeList(&r)
            hello.readOnlyRoot = try r.readBool()
            let rootShare = try r.readString(max: 64)
            guard rootShare.isEmpty || GuestMount.isEntry(rootShare) else { throw .invalidField("root share") }
            hello.rootShare = rootShare.isEmpty ? nil : rootShare
            hello.pidsLimit = try r.readUInt32()
            hello.nested = try r.readBool()
            hello.writableBytes = try r.readUInt64()
            message = .hello(hello)
        case 2:
            let arguments = try r.readStrings()
            guard !arguments.isEmpty else { throw .invalidField("empty argument list") }
            var spec = ProcessSpec(
                arguments: arguments, environment: try r.readStrings(),
                workingDirectory: try r.readString(), user: try r.readString(max: 256),
                terminal: try r.readBool(), rows: try r.readUInt16(), columns: try r.readUInt16())
            let groups = Int(try r.readUInt16())
            guard groups <= Limits.maxGroups else { throw .invalidField("\(groups) additional groups") }
            for _ in 0..<groups { spec.additionalGroups.append(try r.readUInt32()) }
            let limits = Int(try r.readUInt8())
            guard limits <= Limits.maxResourceLimits else { throw .invalidField("\(limits) resource limits") }
            for _ in 0..<limits {
                let limit = ResourceLimit(resource: try r.readUInt32(), soft: try r.readUInt64(), hard: try r.readUInt64())
                guard limit.resource < UInt32(Limits.maxResourceLimits), limit.soft <= limit.hard else {
                    throw .invalidField("resource limit \(limit.resource)")
                }
                spec.resourceLimits.append(limit)
            }
            if try r.readBool() {
                spec.capabilities = CapabilitySets(bounding: try r.readUInt64(), effective: try r.readUInt64(),
                                                   permitted: try r.readUInt64(), inheritable: try r.readUInt64(),
                                                   ambient: try r.readUInt64())
            }
            spec.noNewPrivileges = try r.readBool()
            spec.container = try r.readString(max: 64)
            guard spec.container.isEmpty || PodMember.isValidName(spec.container) else { throw .invalidField("container name") }
            if try r.readBool() {
                let member = PodMember(
                    name: try r.readString(max: 64), rootShare: try r.readString(max: 256), readOnlyRoot: try r.readBool(),
                    mounts: try GuestMount.decodeList(&r), memoryBytes: try r.readUInt64(), pidsLimit: try r.readUInt32(),
                    cpuQuotaMicroseconds: try r.readUInt32())
                guard PodMember.isValidName(member.name), spec.container.isEmpty, GuestMount.isEntry(member.rootShare) else {
                    throw .invalidField("pod member")
                }
                spec.member = member
            }
            message = .start(spec)
        case 3: message = .stdin(try r.readBytes(max: Limits.maxChunk))
        case 4: message = .closeStdin
        case 5: message = .signal(try r.readInt32())
        case 6: message = .resize(rows: try r.readUInt16(), columns: try r.readUInt16())
        case 7: message = .shutdown
        case 8: message = .warmUp
        case 9:
            let stdin = try r.readUInt8()
            guard stdin <= 1 else { throw .invalidField("attach stdin flag \(stdin)") }
            message = .attach(stdin: stdin == 1)
        case 64:
            message = .ready(Ready(
                version: try r.readUInt16(), agentStartNanoseconds: try r.readUInt64(),
                readyNanoseconds: try r.readUInt64()))
        case 65: message = .started(pid: try r.readInt32())
        case 66:
            guard let reason = StartFailure(rawValue: try r.readUInt8()) else {
                throw .invalidField("start failure reason")
            }
            message = .startFailed(reason, try r.readString(max: 4096))
        case 67: message = .stdout(try r.readBytes(max: Limits.maxChunk))
        case 68: message = .stderr(try r.readBytes(max: Limits.maxChunk))
        case 69:
            let how = try r.readUInt8()
            let value = try r.readInt32()
            switch how {
            case 0 where (0...255).contains(value): message = .exited(.exited(value))
            case 1 where (1...64).contains(value): message = .exited(.signaled(value))
            default: throw .invalidField("exit status")
            }
        case 70: message = .failure(try r.readString(max: 4096))
        case 71: message = .oomKilled
        case 72: message = .warmedUp
        default: throw .unknownKind(kind)
        }
        try r.finish()
        return message
    }
}
