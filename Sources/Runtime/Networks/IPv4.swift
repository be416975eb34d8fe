/// An IPv4 address, host byte order inside.
public struct IPv4Address: Hashable, Comparable, TextCodable, Sendable {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    /// Dotted quad only: four decimal parts 0–255, no leading zeros beyond a single 0.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  part == "0" || !part.hasPrefix("0"), let byte = UInt32(part), byte <= 255 else { return nil }
            value = value << 8 | byte
        }
        self.value = value
    }

    public var description: String {
        "\(value >> 24).\(value >> 16 & 0xff).\(value >> 8 & 0xff).\(value & 0xff)"
    }

    /// Network byte order, as the socket API takes it.
    public var networkOrder: UInt32 { value.bigEndian }

    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.value < b.value }

}

/// An IPv4 subnet, `address/prefix`, with the address the network's own (no host bits).
public struct IPv4Subnet: Hashable, TextCodable, Sendable {
    public var network: IPv4Address
    public var prefix: Int

    public init?(network: IPv4Address, prefix: Int) {
        guard (0...32).contains(prefix), network.value & ~IPv4Subnet.mask(prefix) == 0 else { return nil }
        self.network = network
        self.prefix = prefix
    }

    /// `a.b.c.d/n`; host bits must be zero, as Docker requires of `--subnet`.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv4Address(parts[0]), parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
              let prefix = Int(parts[1]) else { return nil }
        self.init(network: address, prefix: prefix)
    }

    static func mask(_ prefix: Int) -> UInt32 { prefix == 0 ? 0 : UInt32.max << (32 - prefix) }

    public var mask: UInt32 { IPv4Subnet.mask(prefix) }
    public var netmask: IPv4Address { IPv4Address(mask) }
    public var broadcast: IPv4Address { IPv4Address(network.value | ~mask) }
    /// The first host address: the bridge's, the containers' gateway.
    public var gateway: IPv4Address { IPv4Address(network.value + 1) }
    public var description: String { "\(network)/\(prefix)" }

    public func contains(_ address: IPv4Address) -> Bool { address.value & mask == network.value }

    public func overlaps(_ other: IPv4Subnet) -> Bool {
        let shorter = min(prefix, other.prefix)
        let mask = IPv4Subnet.mask(shorter)
        return network.value & mask == other.network.value & mask
    }

}

/// A value stored in JSON as its text form (`10.0.0.1`, `10.0.0.0/24`), checked when read.
public protocol TextCodable: Codable, CustomStringConvertible {
    init?(_ text: some StringProtocol)
}

extension TextCodable {
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = Self(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a \(Self.self): \(text)"))
        }
        self = value
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
