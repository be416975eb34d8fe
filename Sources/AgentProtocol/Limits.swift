/// Bounds on everything that crosses the host↔guest channel.
public enum Limits {
    /// Protocol version; both sides must agree exactly.
    public static let version: UInt16 = 6
    /// Largest frame payload either side accepts.
    public static let maxPayload = 256 * 1024
    /// Largest stdio chunk a sender puts in one frame.
    public static let maxChunk = 32 * 1024
    /// Largest single string (an argument, an environment entry, a path).
    public static let maxString = 64 * 1024
    /// Most entries in a list (arguments, environment, mounts).
    public static let maxListCount = 4096
    /// Most entropy bytes the host sends to seed the guest RNG.
    public static let maxEntropy = 512
    /// Most name servers for `/etc/resolv.conf`.
    public static let maxNameservers = 8
    /// Most mounts a container has.
    public static let maxMounts = 64
    /// Most additional groups of a process (Linux's NGROUPS_MAX is far larger; no container needs it).
    public static let maxGroups = 64
    /// Most resource limits of a process: one per `RLIMIT_*` (RLIM_NLIMITS).
    public static let maxResourceLimits = 16
    /// Longest mount target or option string.
    public static let maxMountPath = 4096
}

/// Why a frame or message was rejected. Any of these ends the session with that VM.
public enum ProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated
    case frameTooLarge(Int)
    case fieldTooLong(Int, limit: Int)
    case unknownKind(UInt8)
    case invalidField(String)
    case trailingBytes(Int)
    case versionMismatch(host: UInt16, guest: UInt16)

    public var description: String {
        switch self {
        case .truncated: "truncated message"
        case .frameTooLarge(let n): "frame of \(n) bytes exceeds \(Limits.maxPayload)"
        case .fieldTooLong(let n, let limit): "field of \(n) exceeds limit \(limit)"
        case .unknownKind(let k): "unknown message kind \(k)"
        case .invalidField(let what): "invalid \(what)"
        case .trailingBytes(let n): "\(n) unexpected trailing bytes"
        case .versionMismatch(let host, let guest): "protocol version mismatch: host \(host), guest \(guest)"
        }
    }
}
