import Foundation
import HVCSystem
import Runtime
import VMM

/// `docker cp`: `HEAD`, `GET` and `PUT /containers/{id}/archive?path=`, through the container's
/// own tar (`ContainerFiles`).
extension DockerHandler {
    func archive(_ route: DockerRoute, _ record: ContainerRecord, query: [String: String], body: Data) throws -> Response {
        guard let path = query["path"], !path.isEmpty else { throw HVCError(.invalid, "path is missing: name a path in the container") }
        guard record.state.status == .running else {
            throw HVCError(.conflict, "container \(record.name) is not running: hvc copies files of running containers (their files live in their VM)")
        }
        let manager = self.manager
        let connect: ContainerFiles.Connect = { () throws(HVCError) in try manager.controlChannel(record) }
        switch route {
        case .putArchive:
            guard try ContainerFiles.stat(over: connect, record, path: path).isDirectory else {
                throw HVCError(.invalid, "\(path.prefix(256)) is not a directory in container \(record.name): extract into a directory")
            }
            let chunks = Chunks(body)
            try ContainerFiles.write(over: connect, record, directory: path) { chunks.next() }
            return Response(status: 200)
        default:
            let stat = try ContainerFiles.stat(over: connect, record, path: path)
            var response = Response(status: 200)
            if case .getArchive = route {
                response = Response(status: 200, contentType: "application/x-tar") { stream in
                    let connect: ContainerFiles.Connect = { () throws(HVCError) in try manager.controlChannel(record) }
                    try? ContainerFiles.read(over: connect, record, path: path) { bytes in stream.write(Data(bytes)) }
                }
            }
            response.headers["X-Docker-Container-Path-Stat"] = DockerHandler.pathStat(stat)
            return response
        }
    }

    /// Docker's stat header: base64 of `{"name", "size", "mode", "mtime", "linkTarget"}`, the
    /// mode as Go's `os.FileMode` (type bits high, permissions low).
    static func pathStat(_ stat: ContainerFiles.Stat) -> String {
        var mode = stat.mode & 0o777
        switch stat.mode & 0o170000 {
        case 0o040000: mode |= 1 << 31
        case 0o120000: mode |= 1 << 27
        case 0o010000: mode |= 1 << 25
        case 0o140000: mode |= 1 << 24
        case 0o060000: mode |= 1 << 26
        case 0o020000: mode |= 1 << 26 | 1 << 21
        default: break
        }
        if stat.mode & 0o4000 != 0 { mode |= 1 << 23 }
        if stat.mode & 0o2000 != 0 { mode |= 1 << 22 }
        if stat.mode & 0o1000 != 0 { mode |= 1 << 20 }
        let object: [String: Any] = ["name": stat.name, "size": stat.size, "mode": mode, "mtime": DockerViews.time(stat.modified),
                                     "linkTarget": stat.linkTarget]
        return ((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()).base64EncodedString()
    }
}

/// A body handed out in pieces of at most 1 MiB, once.
final class Chunks: @unchecked Sendable {
    // @unchecked: read by one thread (the stdin relay of one copy).
    private let data: Data
    private var offset = 0

    init(_ data: Data) { self.data = data }

    func next() -> [UInt8]? {
        guard offset < data.count else { return nil }
        let end = min(offset + (1 << 20), data.count)
        defer { offset = end }
        return Array(data[data.startIndex + offset ..< data.startIndex + end])
    }
}
