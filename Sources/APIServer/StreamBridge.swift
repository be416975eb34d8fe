import CLinux
import Foundation
import HVCSystem
import Runtime

/// hvcd's stream socket (`<socket>.streams`): process streams that HTTP/JSON does not carry.
///
/// Framing: the client sends one JSON line, `{"container": "<id or name>"}\n` (at most 4 KiB,
/// within 10 s), with `"start": true` to start a created container whose command then waits for
/// the client's `attach`; hvcd checks that the caller's tenant owns the container (running, or
/// created for `start`) and answers one line, `{"ok": true}\n` or `{"code": ..., "message": ...}\n`.
/// After `ok` the connection carries agent-protocol frames (`Specs/agent-protocol.md`, "Control
/// socket"): `start` for an exec or `attach` for the command's stdio, input, signals and resizes
/// one way, output and exits the other.
public final class StreamBridge: Sendable {
    let handler: Handler
    static let maxPreamble = 4096

    public init(handler: Handler) { self.handler = handler }

    /// Accepts connections on `socketPath` until the process ends; each on a thread of its own.
    public func run(socketPath: String) throws(Errno) {
        unlink(socketPath)
        let listener = FileDescriptor(try valueOrErrno { hvc_unix_listen(socketPath, 64) })
        chmod(socketPath, 0o666)
        Thread.detachNewThread { [self] in
            while let client = try? listener.accept() {
                Thread.detachNewThread { self.serve(client) }
            }
        }
    }

    private func serve(_ client: FileDescriptor) {
        var uid: uid_t = .max, gid: gid_t = .max, pid: pid_t = 0
        guard hvc_peer_credentials(client.raw, &uid, &gid, &pid) == 0 else { return }
        let caller = handler.tenants.caller(uid: uid, gid: gid)
        client.setReceiveTimeout(seconds: 10)
        let control: FileDescriptor
        do {
            let request = try readPreamble(client)
            var record = try handler.container(request.container, caller)
            if request.start {
                // Attached run: the supervisor holds the command until this client attaches.
                record = try ContainerManager(runtime: handler.runtime).startForAttach(record.id)
            } else {
                guard record.state.status == .running else {
                    throw HVCError(.conflict, "container \(record.name) is not running")
                }
            }
            let path = ContainerManager(runtime: handler.runtime).controlSocketPath(record)
            let fd = hvc_unix_connect(path)
            guard fd >= 0 else { throw HVCError(.runtime, "container supervisor unreachable") }
            control = FileDescriptor(fd)
        } catch {
            let line = Handler.errorBody(error as? HVCError ?? HVCError(cause: error))
            try? client.writeAll(Array(line) + [0x0a])
            return
        }
        client.setReceiveTimeout(seconds: 0)
        guard (try? client.writeAll(Array("{\"ok\": true}\n".utf8))) != nil else { return }
        // Bytes both ways until either side ends; the supervisor parses every frame.
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            StreamBridge.copy(from: client, to: control)
            done.signal()
        }
        StreamBridge.copy(from: control, to: client)
        done.wait()
    }

    struct Preamble {
        var container: String
        /// Start the created container, holding its command until this client attaches.
        var start: Bool
    }

    /// The container named in the preamble line, and whether to start it.
    private func readPreamble(_ client: FileDescriptor) throws -> Preamble {
        let line: [UInt8]
        do {
            guard let read = try client.readLine(max: StreamBridge.maxPreamble) else {
                throw HVCError(.invalid, "no preamble")
            }
            line = read
        } catch let error as Errno where error.rawValue == E2BIG {
            throw HVCError(.tooLarge, "preamble over \(StreamBridge.maxPreamble) bytes")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
              let container = object["container"] as? String, !container.isEmpty else {
            throw HVCError(.invalid, "preamble must be {\"container\": \"ID\"}")
        }
        return Preamble(container: container, start: object["start"] as? Bool == true)
    }

    private static func copy(from source: FileDescriptor, to target: FileDescriptor) {
        while let bytes = try? source.read(max: 65536), !bytes.isEmpty {
            if (try? target.writeAll(bytes)) == nil { break }
        }
        _ = shutdown(source.raw, Int32(SHUT_RDWR))
        _ = shutdown(target.raw, Int32(SHUT_RDWR))
    }
}
