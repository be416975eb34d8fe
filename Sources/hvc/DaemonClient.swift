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
            throw HVCError(.invalid, "--host \(host): use unix:///path/to/hvc.sock")
        }
        socketPath = String(host.dropFirst("unix://".count))
    }

    static let maxResponse = 64 << 20

    /// Sends a request with `body` as JSON; returns the response's body, or throws hvcd's error.
    func call(_ method: String, _ path: String, body: some Encodable) throws(HVCError) -> Data {
        let encoded: Data
        do { encoded = try JSONEncoder().encode(body) } catch { throw HVCError("encode request", cause: error) }
        return try call(method, path, data: encoded)
    }

    /// Sends a request with a raw body; returns the response's body, or throws hvcd's error.
    func call(_ method: String, _ path: String, data body: Data = Data()) throws(HVCError) -> Data {
        let fd = hvc_unix_connect(socketPath)
        guard fd >= 0 else { throw HVCError("cannot reach hvcd at \(socketPath): \(Errno.current)") }
        let socket = FileDescriptor(fd)
        var request = "\(method) \(path) HTTP/1.1\r\nHost: hvcd\r\nConnection: close\r\n"
        request += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
        do {
            try socket.writeAll(Array(request.utf8) + Array(body))
        } catch {
            throw HVCError("hvcd", cause: error)
        }
        var response: [UInt8] = []
        while response.count < DaemonClient.maxResponse {
            let chunk: [UInt8]
            do { chunk = try socket.read(max: 65536) } catch { throw HVCError("hvcd", cause: error) }
            if chunk.isEmpty { break }
            response += chunk
        }
        guard let split = response.firstRange(of: Array("\r\n\r\n".utf8)),
              let statusLine = String(decoding: response[..<split.lowerBound], as: UTF8.self).split(separator: "\r\n").first,
              let status = statusLine.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { throw HVCError("hvcd sent an unreadable response") }
        let payload = Data(response[split.upperBound...])
        guard (200..<300).contains(status) else { throw DaemonClient.error(payload, status: status) }
        return payload
    }

    /// Opens hvcd's stream socket for `container`; after the daemon's `ok` the connection speaks
    /// agent-protocol frames.
    func openStream(container: String, start: Bool = false) throws(HVCError) -> FrameChannel {
        let fd = hvc_unix_connect(socketPath + ".streams")
        guard fd >= 0 else { throw HVCError("cannot reach hvcd's stream socket \(socketPath).streams: \(Errno.current)") }
        let socket = FileDescriptor(fd)
        let preamble = (try? JSONEncoder().encode(StreamPreamble(container: container, start: start ? true : nil))) ?? Data()
        let line: [UInt8]
        do {
            try socket.writeAll(Array(preamble) + [0x0a])
            line = try socket.readLine(max: 4096) ?? []
        } catch {
            throw HVCError("hvcd stream", cause: error)
        }
        let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]
        guard object?["ok"] as? Bool == true else { throw DaemonClient.error(Data(line), status: nil) }
        return FrameChannel(socket: socket)
    }

    struct ErrorBody: Decodable {
        var code: String
        var message: String
    }

    /// The error hvcd sent as `{code, message}`: its kind read back from the one error table.
    static func error(_ payload: Data, status: Int?) -> HVCError {
        guard let body = try? JSONDecoder().decode(ErrorBody.self, from: payload) else {
            return HVCError("hvcd answered \(status.map { "HTTP \($0)" } ?? "the stream") without an error body")
        }
        return HVCError(HVCError.Kind(apiCode: body.code) ?? .runtime, body.message)
    }

    struct StreamPreamble: Encodable {
        var container: String
        var start: Bool?
    }

    func decode<T: Decodable>(_ type: T.Type, _ data: Data) throws(HVCError) -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do { return try decoder.decode(type, from: data) } catch { throw HVCError("hvcd sent unexpected JSON", cause: error) }
    }

    static func escape(_ component: String) -> String {
        component.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?"))) ?? component
    }
}
