/// Appends big-endian integers and length-prefixed fields to a byte buffer.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func write(_ value: UInt8) { bytes.append(value) }

    public mutating func write(_ value: Bool) { bytes.append(value ? 1 : 0) }

    public mutating func write(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    public mutating func write(_ value: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
        }
    }

    public mutating func write(_ value: Int32) { write(UInt32(bitPattern: value)) }

    public mutating func write(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }

    /// A `u32` length followed by the bytes.
    public mutating func write<C: Collection<UInt8>>(bytes field: C) {
        write(UInt32(field.count))
        bytes.append(contentsOf: field)
    }

    public mutating func write(_ string: String) { write(bytes: Array(string.utf8)) }

    /// A `u32` count followed by each string.
    public mutating func write(_ strings: [String]) {
        write(UInt32(strings.count))
        for string in strings { write(string) }
    }
}

/// Reads what `ByteWriter` wrote, checking every length against the bytes that remain.
///
/// The input comes from the other side of a VM boundary, so every read is bounds-checked and a
/// short or inconsistent buffer throws instead of trapping.
public struct ByteReader: Sendable {
    private let bytes: [UInt8]
    private var offset: Int

    public init<C: Collection<UInt8>>(_ bytes: C) {
        self.bytes = Array(bytes)
        self.offset = 0
    }

    public var remaining: Int { bytes.count - offset }

    private mutating func take(_ count: Int) throws(ProtocolError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else { throw .truncated }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    public mutating func readUInt8() throws(ProtocolError) -> UInt8 { try take(1).first ?? 0 }

    public mutating func readBool() throws(ProtocolError) -> Bool {
        switch try readUInt8() {
        case 0: return false
        case 1: return true
        default: throw .invalidField("bool")
        }
    }

    public mutating func readUInt16() throws(ProtocolError) -> UInt16 {
        try take(2).reduce(0) { $0 << 8 | UInt16($1) }
    }

    public mutating func readUInt32() throws(ProtocolError) -> UInt32 {
        try take(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    public mutating func readInt32() throws(ProtocolError) -> Int32 { Int32(bitPattern: try readUInt32()) }

    public mutating func readUInt64() throws(ProtocolError) -> UInt64 {
        try take(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    public mutating func readBytes(max: Int) throws(ProtocolError) -> [UInt8] {
        let count = Int(try readUInt32())
        guard count <= max else { throw .fieldTooLong(count, limit: max) }
        return Array(try take(count))
    }

    public mutating func readString(max: Int = Limits.maxString) throws(ProtocolError) -> String {
        let raw = try readBytes(max: max)
        guard !raw.contains(0) else { throw .invalidField("string with NUL") }
        return String(decoding: raw, as: UTF8.self)
    }

    public mutating func readStrings(maxCount: Int = Limits.maxListCount) throws(ProtocolError) -> [String] {
        let count = Int(try readUInt32())
        guard count <= maxCount else { throw .fieldTooLong(count, limit: maxCount) }
        var strings: [String] = []
        strings.reserveCapacity(count)
        for _ in 0..<count { strings.append(try readString()) }
        return strings
    }

    /// Fails when a message left bytes unread: a sender that disagrees on the layout.
    public func finish() throws(ProtocolError) {
        guard remaining == 0 else { throw .trailingBytes(remaining) }
    }
}
