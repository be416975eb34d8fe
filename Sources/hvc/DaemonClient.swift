import CLinux
import Foundation
import HVCSystem
import Runtime
import VMM

/// A small HTTP/1.1 client of hvcd over its Unix socket, for `hvc --host unix:///path`.
/// The daemon answers every request with a Content-Length body.
struct DaemonClient {
    let socketPath: String

    /// Parses `unix:///run/hvc/hvc.sock`.
    init(host: String) throws(HVCError) {
        guard host.hasPrefix("unix://"), host.count > "unix://".count else {
            throw HVCError("--host \(host): use unix:///path/to/hvc.sock")
        }
        socketPath = String(host.dropFirst("unix://".count))
    }

    static let maxResponse = 64 << 20

    /// Sends a request; returns the status and body, or throws the daemon's error message.
    func call(_ method: String, _ path: String, json: [String: Any]? = nil, expect: Set<Int> = [200, 201, 204]) throws(HVCError) -> Data {
        let fd = hvc_unix_connect(socketPath)
        guard fd >= 0 else { throw HVCError("cannot reach hvcd at \(socketPath): \(Errno.current)") }
        let socket = FileDescriptor(fd)
        var body = Data()
        if let json, let encoded = try? JSONSerialization.data(withJSONObject: json) { body = encoded }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: hvcd\r\nConnection: close\r\n"
        request += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
        do {
            try socket.writeAll(Array(request.utf8) + Array(body))
        } catch {
            throw HVCError("hvcd: \(error)")
        }
        var response: [UInt8] = []
        while response.count < DaemonClient.maxResponse {
            let chunk: [UInt8]
            do { chunk = try socket.read(max: 65536) } catch { throw HVCError("hvcd: \(error)") }
            if chunk.isEmpty { break }
            response += chunk
        }
        guard let split = response.firstRange(of: Array("\r\n\r\n".utf8)),
              let statusLine = String(decoding: response[..<split.lowerBound], as: UTF8.self).split(separator: "\r\n").first,
              let status = statusLine.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { throw HVCError("hvcd sent an unreadable response") }
        let payload = Data(response[split.upperBound...])
        guard expect.contains(status) else {
            let object = try? JSONSerialization.jsonObject(with: payload) as? [String: Any]
            let message = (object?["message"] as? String) ?? "HTTP \(status)"
            let kind: HVCError.Kind = status == 404 ? .notFound : status == 409 ? .conflict : .runtime
            throw HVCError(kind, message)
        }
        return payload
    }

    /// Opens hvcd's stream socket for `container`; after the daemon's `ok` the connection speaks
    /// agent-protocol frames.
    func openStream(container: String, start: Bool = false) throws(HVCError) -> FrameChannel {
        let fd = hvc_unix_connect(socketPath + ".streams")
        guard fd >= 0 else { throw HVCError("cannot reach hvcd's stream socket \(socketPath).streams: \(Errno.current)") }
        let socket = FileDescriptor(fd)
        var request: [String: Any] = ["container": container]
        if start { request["start"] = true }
        let preamble = (try? JSONSerialization.data(withJSONObject: request)) ?? Data()
        let line: [UInt8]
        do {
            try socket.writeAll(Array(preamble) + [0x0a])
            line = try socket.readLine(max: 4096) ?? []
        } catch {
            throw HVCError("hvcd stream: \(error)")
        }
        let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]
        guard object?["ok"] as? Bool == true else {
            let message = (object?["message"] as? String) ?? "hvcd refused the stream"
            throw HVCError(object?["code"] as? String == "not_found" ? .notFound : .runtime, message)
        }
        return FrameChannel(socket: socket)
    }

    func decode<T: Decodable>(_ type: T.Type, _ data: Data) throws(HVCError) -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do { return try decoder.decode(type, from: data) } catch { throw HVCError("hvcd sent unexpected JSON: \(error)") }
    }

    static func escape(_ component: String) -> String {
        component.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?"))) ?? component
    }
}
