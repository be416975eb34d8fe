import Foundation
import OCI
import Runtime

/// Docker's image routes beyond list, inspect and pull: tag, remove, load and save. Images are
/// shared by every tenant: only an admin names or removes them (a tenant's tag could take
/// another tenant's name), as on hvc's own API.
extension DockerHandler {
    func image(_ route: DockerRoute, query: [String: String], body: Data, caller: Caller) throws -> Response {
        let images = runtime.images
        switch route {
        case .tagImage(let name):
            try requireAdmin(caller, "names")
            guard let repository = query["repo"], !repository.isEmpty else { throw HVCError(.invalid, "repo is missing: give the new name") }
            let tag = query["tag"].flatMap { $0.isEmpty ? nil : $0 } ?? "latest"
            try images.tag(name, as: try ImageReference(name: repository + ":" + tag))
            return Response(status: 201)
        case .deleteImage(let name):
            try requireAdmin(caller, "removes")
            let inUse = Set(try runtime.containers.list().map(\.config.imageID))
            let removed = try images.remove(name, force: Handler.flag(query, "force"), inUse: inUse)
            return try DockerHandler.json(removed.map { line -> [String: String] in
                line.hasPrefix("untagged ") ? ["Untagged": String(line.dropFirst(9))] : ["Deleted": DockerViews.imageID(String(line.dropFirst(8)))]
            })
        case .loadImage:
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("hvcd-load-\(UUID().uuidString).tar").path
            guard FileManager.default.createFile(atPath: file, contents: body, attributes: [.posixPermissions: 0o600]) else {
                throw HVCError(.runtime, "cannot stage the archive")
            }
            defer { try? FileManager.default.removeItem(atPath: file) }
            let image = try images.load(archive: file)
            let names = image.references.isEmpty ? [DockerViews.imageID(image.id)] : image.references
            let lines = names.map { Handler.jsonLine(["stream": "Loaded image: \($0)\n"]) }.reduce(Data(), +)
            return Response(status: 200, contentType: "application/json", body: lines)
        case .saveImage(let given):
            let name = given.isEmpty ? query["names"] ?? "" : given
            _ = try images.resolve(name)
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("hvcd-save-\(UUID().uuidString).tar").path
            try images.save(name, to: file)
            return Response(status: 200, contentType: "application/x-tar") { stream in
                defer { try? FileManager.default.removeItem(atPath: file) }
                guard let handle = FileHandle(forReadingAtPath: file) else { return }
                defer { try? handle.close() }
                while let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                    guard stream.write(chunk) else { return }
                }
            }
        default:
            throw HVCError(.notFound, "no such route")
        }
    }

    private func requireAdmin(_ caller: Caller, _ what: String) throws {
        guard caller.isAdmin else { throw HVCError(.forbidden, "images are shared by every tenant: only an admin \(what) them") }
    }
}
