import AgentProtocol
import Foundation
import HVCSystem
import Synchronization

/// The host end of the agent channel: frames over the Unix socket QEMU bridges to the
/// guest's virtio-serial port.
///
/// One thread receives; any thread may send. Everything received is from the guest and
/// untrusted: the decoder bounds it, and a malformed stream ends the session with an error.
public final class AgentChannel: Sendable {
    private let socket: FileDescriptor
    private let sendLock = Mutex(())
    private let decoder = Mutex(FrameDecoder())

    public init(socket: FileDescriptor) { self.socket = socket }

    public func send(_ frame: Frame) throws(Errno) {
        let bytes = frame.encoded()
        try sendLock.withLock { _ throws(Errno) in try socket.writeAll(bytes) }
    }

    public enum ReceiveError: Error, CustomStringConvertible {
        case closed
        case io(Errno)
        case malformed(ProtocolError)

        public var description: String {
            switch self {
            case .closed: "the guest closed the agent channel"
            case .io(let errno): "agent channel: \(errno)"
            case .malformed(let error): "guest sent a malformed frame: \(error)"
            }
        }
    }

    /// The next frame; blocks until one arrives.
    public func receive() throws(ReceiveError) -> Frame {
        while true {
            do {
                if let frame = try decoder.withLock({ d throws(ProtocolError) in try d.next() }) { return frame }
            } catch {
                throw .malformed(error)
            }
            let bytes: [UInt8]
            do {
                bytes = try socket.read(max: 65536)
            } catch {
                throw .io(error)
            }
            if bytes.isEmpty { throw .closed }
            decoder.withLock { $0.append(bytes) }
        }
    }

    /// Stops a blocked `receive` and any further sends.
    public func shutdown() {
        _ = Glibc.shutdown(socket.raw, Int32(SHUT_RDWR))
    }
}
