import AgentProtocol
import CLinux
import Foundation
import HVCSystem
import Synchronization

/// Agent-protocol frames over a stream socket: the host end of the agent channel (the Unix
/// socket QEMU bridges to the guest's virtio-serial port), or a client of a container's
/// supervisor, which speaks the same protocol.
///
/// One thread receives; any thread may send. Everything received may be hostile (a guest):
/// the decoder bounds it, and a malformed stream ends the session with an error.
public final class FrameChannel: Sendable {
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
            case .closed: "the channel was closed"
            case .io(let errno): "channel: \(errno)"
            case .malformed(let error): "malformed frame: \(error)"
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

    /// Bounds how long `receive` may block (for handshakes with a guest that may never answer).
    public func setReceiveTimeout(seconds: Int) {
        socket.setReceiveTimeout(seconds: Double(seconds))
    }

    /// A connected pair, for a client in the same process as its supervisor.
    /// Reads (and drops) frames until the peer closes, at most `timeoutSeconds` per read.
    public func waitForClose(timeoutSeconds: Int) {
        setReceiveTimeout(seconds: timeoutSeconds)
        while (try? receive()) != nil {}
    }

    public static func pair() throws(Errno) -> (FrameChannel, FrameChannel) {
        var fds: [Int32] = [-1, -1]
        try valueOrErrno { hvc_socketpair(&fds) }
        return (FrameChannel(socket: FileDescriptor(fds[0])), FrameChannel(socket: FileDescriptor(fds[1])))
    }

    /// Connects to a Unix socket that speaks frames (a container's control socket).
    public static func connect(path: String) throws(Errno) -> FrameChannel {
        FrameChannel(socket: FileDescriptor(try valueOrErrno { hvc_unix_connect(path) }))
    }
}
