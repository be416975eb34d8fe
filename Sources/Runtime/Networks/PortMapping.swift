/// A published port: `-p [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]`, as Docker takes it. A host
/// port of 0 means "any free port", chosen when the container starts.
public struct PortMapping: Hashable, Codable, Sendable, CustomStringConvertible {
    public enum TransportProtocol: String, Codable, Sendable, CaseIterable {
        case tcp, udp
    }

    /// The host address to listen on; nil for every address.
    public var hostIP: IPv4Address?
    public var hostPort: UInt16
    public var containerPort: UInt16
    public var `protocol`: TransportProtocol

    public init(hostIP: IPv4Address? = nil, hostPort: UInt16, containerPort: UInt16, protocol: TransportProtocol = .tcp) {
        self.hostIP = hostIP
        self.hostPort = hostPort
        self.containerPort = containerPort
        self.protocol = `protocol`
    }

    /// Parses one `-p` value; the error says what was wrong.
    public static func parse(_ text: String) throws(HVCError) -> PortMapping {
        func invalid(_ why: String) -> HVCError {
            HVCError(.invalid, "invalid port mapping \"\(text)\": \(why) (use [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp])")
        }
        var spec = Substring(text)
        var proto = TransportProtocol.tcp
        if let slash = spec.lastIndex(of: "/") {
            guard let parsed = TransportProtocol(rawValue: String(spec[spec.index(after: slash)...])) else {
                throw invalid("protocol must be tcp or udp")
            }
            proto = parsed
            spec = spec[..<slash]
        }
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
        func port(_ part: Substring, what: String, allowZero: Bool) throws(HVCError) -> UInt16 {
            guard !part.isEmpty, part.count <= 5, part.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(part),
                  value <= 65535, allowZero || value > 0 else {
                throw invalid("\(what) must be a number from 1 to 65535")
            }
            return UInt16(value)
        }
        switch parts.count {
        case 1:
            return PortMapping(hostPort: 0, containerPort: try port(parts[0], what: "container port", allowZero: false), protocol: proto)
        case 2:
            return PortMapping(hostPort: try port(parts[0], what: "host port", allowZero: false),
                               containerPort: try port(parts[1], what: "container port", allowZero: false), protocol: proto)
        case 3:
            guard let ip = IPv4Address(parts[0]) else { throw invalid("\"\(parts[0])\" is not an IPv4 address") }
            let hostPort = parts[1].isEmpty ? 0 : try port(parts[1], what: "host port", allowZero: false)
            return PortMapping(hostIP: ip, hostPort: hostPort,
                               containerPort: try port(parts[2], what: "container port", allowZero: false), protocol: proto)
        default:
            throw invalid("too many parts")
        }
    }

    /// Docker's form, as `hvc port` prints it: `80/tcp -> 0.0.0.0:8080`.
    public var description: String {
        "\(containerPort)/\(`protocol`.rawValue) -> \(hostIP?.description ?? "0.0.0.0"):\(hostPort)"
    }
}
