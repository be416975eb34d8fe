/// A message addressed to a process (or to the session, process 0).
///
/// Wire format, all integers big-endian:
///
///     u32 payload length | u8 kind | u32 process id | payload
public struct Frame: Equatable, Sendable {
    public static let headerSize = 9

    public var process: UInt32
    public var message: Message

    public init(process: UInt32 = 0, _ message: Message) {
        self.process = process
        self.message = message
    }

    public func encoded() -> [UInt8] {
        var payload = ByteWriter()
        message.encodePayload(into: &payload)
        var w = ByteWriter()
        w.write(UInt32(payload.bytes.count))
        w.write(message.kind)
        w.write(process)
        return w.bytes + payload.bytes
    }
}

/// Cuts a byte stream into frames. Feed it whatever arrives; it keeps partial frames.
///
/// A length over `Limits.maxPayload` or an undecodable payload throws, and the decoder stays
/// failed: the channel is out of sync and the session must end.
public struct FrameDecoder: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0
    private var failure: ProtocolError?

    public init() {}

    public mutating func append<C: Collection<UInt8>>(_ bytes: C) {
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, or nil until more bytes arrive.
    public mutating func next() throws(ProtocolError) -> Frame? {
        if let failure { throw failure }
        do {
            return try decodeNext()
        } catch {
            failure = error
            throw error
        }
    }

    private mutating func decodeNext() throws(ProtocolError) -> Frame? {
        let available = buffer.count - start
        guard available >= Frame.headerSize else { return nil }
        var header = ByteReader(buffer[start..<start + Frame.headerSize])
        let length = Int(try header.readUInt32())
        let kind = try header.readUInt8()
        let process = try header.readUInt32()
        guard length <= Limits.maxPayload else { throw .frameTooLarge(length) }
        guard available >= Frame.headerSize + length else { return nil }
        let payloadStart = start + Frame.headerSize
        let message = try Message.decode(kind: kind, payload: buffer[payloadStart..<payloadStart + length])
        start = payloadStart + length
        if start > 64 * 1024 || start == buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
        return Frame(process: process, message)
    }
}
