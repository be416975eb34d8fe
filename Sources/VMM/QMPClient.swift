import CLinux
import Foundation
import HVCSystem

/// A QEMU Machine Protocol client: JSON objects, one per line, over a Unix socket.
///
/// Asynchronous events may arrive between a command and its answer; they are collected in
/// `events` and skipped when looking for the answer.
public final class QMPClient {
    private let socket: FileDescriptor
    private var buffer: [UInt8] = []
    public private(set) var events: [[String: Any]] = []
    private static let maxLine = 1 << 20

    /// Connects, reads the greeting, and leaves capabilities negotiation mode.
    public convenience init(path: String) throws(VMError) {
        let fd = hvc_unix_connect(path)
        guard fd >= 0 else { throw .qmp("connect \(path): \(Errno.current)") }
        try self.init(connected: FileDescriptor(fd))
    }

    /// Takes a connected socket, reads the greeting, and leaves capabilities negotiation mode.
    public init(connected socket: FileDescriptor) throws(VMError) {
        self.socket = socket
        let greeting = try readObject()
        guard greeting["QMP"] != nil else { throw .qmp("no greeting") }
        _ = try execute("qmp_capabilities")
    }

    /// Bounds how long any one read waits (0: no bound).
    public func setTimeout(seconds: Double) {
        socket.setReceiveTimeout(seconds: seconds)
    }

    /// Runs `command` and returns its `return` value; with `passing`, that descriptor travels
    /// with the command (SCM_RIGHTS), as `getfd` wants.
    @discardableResult
    public func execute(_ command: String, arguments: [String: Any]? = nil, passing fd: Int32? = nil) throws(VMError) -> Any {
        var request: [String: Any] = ["execute": command]
        if let arguments { request["arguments"] = arguments }
        let data: Data
        do {
            data = try JSONSerialization.data(withJSONObject: request)
        } catch {
            throw .qmp("encode \(command): \(error)")
        }
        let line = Array(data) + [0x0a]
        if let fd {
            let sent = line.withUnsafeBytes { hvc_send_with_fd(socket.raw, $0.baseAddress, $0.count, fd) }
            guard sent == 0 else { throw .qmp("send \(command): \(Errno.current)") }
        } else {
            do {
                try socket.writeAll(line)
            } catch {
                throw .qmp("send \(command): \(error)")
            }
        }
        while true {
            let object = try readObject()
            if let value = object["return"] { return value }
            if let error = object["error"] as? [String: Any] {
                throw .qmp("\(command): \(error["desc"] as? String ?? "error")")
            }
            if object["event"] != nil { events.append(object) }
        }
    }

    /// Waits for an event named `name` for which `matches` holds, among those already seen and
    /// those still to come.
    public func waitForEvent(_ name: String, matches: ([String: Any]) -> Bool = { _ in true }) throws(VMError) -> [String: Any] {
        func wanted(_ object: [String: Any]) -> Bool {
            object["event"] as? String == name && matches(object["data"] as? [String: Any] ?? [:])
        }
        if let index = events.firstIndex(where: wanted) { return events.remove(at: index) }
        while true {
            let object = try readObject()
            if wanted(object) { return object }
            if object["event"] != nil { events.append(object) }
        }
    }

    /// Parses one reply line; exposed for tests.
    public static func parse(line: [UInt8]) throws(VMError) -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
            throw .qmp("unparseable reply")
        }
        return object
    }

    private func readObject() throws(VMError) -> [String: Any] {
        while true {
            if let newline = buffer.firstIndex(of: 0x0a) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                if line.allSatisfy({ $0 == 0x0d || $0 == 0x20 }) { continue }
                return try QMPClient.parse(line: line)
            }
            guard buffer.count < QMPClient.maxLine else { throw .qmp("reply line too long") }
            let bytes: [UInt8]
            do {
                bytes = try socket.read(max: 65536)
            } catch {
                throw .qmp("read: \(error)")
            }
            if bytes.isEmpty { throw .qmp("connection closed") }
            buffer += bytes
        }
    }
}
