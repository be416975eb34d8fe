import Foundation
import Runtime

/// A response: status, content type, and a body, or a stream that writes the body in chunks
/// (chunked transfer encoding) until it returns.
public struct Response: Sendable {
    public var status: Int
    public var contentType = "application/json"
    public var body: Data
    public var stream: (@Sendable (ResponseStream) -> Void)?

    public init(status: Int, contentType: String = "application/json", body: Data = Data(),
                stream: (@Sendable (ResponseStream) -> Void)? = nil) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.stream = stream
    }
}

/// Where a streamed response writes: each `write` is one chunk, sent before it returns.
public protocol ResponseStream: Sendable {
    /// Sends `data` (nothing for empty data); false once the client has gone.
    func write(_ data: Data) -> Bool
}

/// Carries out API requests with the runtime library, for one caller at a time. Blocking:
/// the server runs it off its event loops.
public struct Handler: Sendable {
    public let runtime: Runtime
    public let tenants: TenantConfig
    public static let version = Runtime.version
    static let createLock = NSLock()

    public init(runtime: Runtime, tenants: TenantConfig) {
        self.runtime = runtime
        self.tenants = tenants
    }

    var manager: ContainerManager { ContainerManager(runtime: runtime) }

    public func handle(_ route: Route, query: [String: String], body: Data, caller: Caller) -> Response {
        do {
            return try perform(route, query: query, body: body, caller: caller)
        } catch let error as APIError {
            return Handler.error(error)
        } catch let error as HVCError {
            return Handler.error(Handler.map(error))
        } catch let error as DecodingError {
            return Handler.error(APIError(status: 400, code: "bad_request", message: "invalid JSON body: \(Handler.describe(error))"))
        } catch {
            return Handler.error(APIError(status: 500, code: "internal", message: "\(error)"))
        }
    }

    static func map(_ error: HVCError) -> APIError {
        switch error.kind {
        case .notFound: APIError(status: 404, code: "not_found", message: error.message)
        case .conflict: APIError(status: 409, code: "conflict", message: error.message)
        case .commandNotFound: APIError(status: 400, code: "command_not_found", message: error.message)
        case .cannotExecute: APIError(status: 400, code: "command_not_executable", message: error.message)
        case .invalid: APIError(status: 400, code: "bad_request", message: error.message)
        case .runtime: APIError(status: 500, code: "runtime", message: error.message)
        }
    }

    static func error(_ error: APIError) -> Response {
        let body = (try? JSONSerialization.data(withJSONObject: ["code": error.code, "message": error.message])) ?? Data()
        return Response(status: error.status, body: body)
    }

    /// A boolean query parameter (`true` or `1`).
    static func flag(_ query: [String: String], _ name: String) -> Bool {
        query[name] == "true" || query[name] == "1"
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _): "missing \"\(key.stringValue)\""
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            "\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
        @unknown default: "\(error)"
        }
    }

    static func json<T: Encodable>(_ value: T, status: Int = 200) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return Response(status: status, body: try encoder.encode(value))
    }

    /// The container `id` names, if the caller may see it; others' are "not found".
    func container(_ id: String, _ caller: Caller) throws -> ContainerRecord {
        let record = try runtime.containers.resolve(id)
        guard caller.owns(record.config.tenant) else { throw HVCError(.notFound, "no such container: \(id)") }
        return record
    }

    struct CreateRequest: Decodable {
        var image: String
        var cmd: [String]?
        var entrypoint: [String]?
        var name: String?
        var env: [String]?
        var workdir: String?
        var user: String?
        var hostname: String?
        var memory: String?
        var cpus: Int?
        var start: Bool?
        var template: Bool?
        /// A terminal for the command (for an attached client).
        var tty: Bool?
    }

    struct PullRequest: Decodable { var reference: String }

    private func perform(_ route: Route, query: [String: String], body: Data, caller: Caller) throws -> Response {
        switch route {
        case .version:
            return try Handler.json(["version": Handler.version, "api": "v1"])
        case .info:
            let choice = try runtime.chooseAccelerator(nil)
            return try Handler.json([
                "accelerator": choice.accelerator.rawValue, "acceleratorReason": choice.reason,
                "tenant": caller.tenant, "admin": caller.isAdmin ? "true" : "false",
            ])
        case .listContainers:
            let visible = try runtime.containers.list().filter { caller.owns($0.config.tenant) }
            return try Handler.json(visible)
        case .createContainer:
            let request = try JSONDecoder().decode(CreateRequest.self, from: body)
            var options = RunOptions(image: request.image)
            options.command = request.cmd ?? []
            options.entrypoint = request.entrypoint
            options.name = request.name
            options.template = request.template ?? true
            options.terminal = request.tty ?? false
            options.environment = request.env ?? []
            options.workingDirectory = request.workdir
            options.user = request.user
            options.hostname = request.hostname
            if let memory = request.memory { options.memoryMiB = try RunOptions.parseMemory(memory) }
            if let cpus = request.cpus {
                guard (1...16).contains(cpus) else { throw APIError(status: 400, code: "bad_request", message: "cpus must be 1 to 16") }
                options.cpus = cpus
            }
            // Quota check and creation as one step, so that concurrent creates cannot overshoot.
            Handler.createLock.lock()
            let created: Result<ContainerRecord, Error> = Result {
                try checkQuota(caller, adding: options.memoryMiB)
                return try manager.create(options, tenant: caller.tenant)
            }
            Handler.createLock.unlock()
            let record = try created.get()
            if request.start == true {
                do {
                    _ = try manager.start(record.id)
                } catch {
                    try? manager.remove(record.id, force: true)
                    throw error
                }
            }
            return try Handler.json(["id": record.id], status: 201)
        case .inspectContainer(let id):
            return try Handler.json(try container(id, caller))
        case .startContainer(let id):
            let record = try manager.start(try container(id, caller).id)
            return try Handler.json(record)
        case .stopContainer(let id):
            let timeout = Int(query["timeout"] ?? "10") ?? 10
            let record = try manager.stop(try container(id, caller).id, timeout: max(0, min(timeout, 3600)))
            return try Handler.json(record)
        case .killContainer(let id):
            let signal = Int32(query["signal"] ?? "9") ?? 9
            guard (1...64).contains(signal) else { throw APIError(status: 400, code: "bad_request", message: "signal must be 1 to 64") }
            try manager.kill(try container(id, caller).id, signal: signal)
            return Response(status: 204, body: Data())
        case .waitContainer(let id):
            let code = try manager.wait(try container(id, caller).id)
            return try Handler.json(["exitCode": code])
        case .deleteContainer(let id):
            try manager.remove(try container(id, caller).id, force: Handler.flag(query, "force"))
            return Response(status: 204, body: Data())
        case .containerLogs(let id):
            let record = try container(id, caller)
            let reader = ContainerLogReader(path: record.logPath)
            var (entries, start) = reader.read()
            if let tail = query["tail"].flatMap({ Int($0) }), tail >= 0 { entries = Array(entries.suffix(tail)) }
            let text = Data(entries.map(\.log).joined().utf8)
            let followFrom = start
            guard Handler.flag(query, "follow") else {
                return Response(status: 200, contentType: "text/plain; charset=utf-8", body: text)
            }
            let store = runtime.containers
            return Response(status: 200, contentType: "text/plain; charset=utf-8") { stream in
                guard stream.write(text) else { return }
                var offset = followFrom
                // New output as it comes, until the container has exited and all of it is sent.
                while true {
                    let status = (try? store.resolve(record.id))?.state.status
                    let exited = status != .running && status != .created
                    let more = reader.read(from: offset, includeRotated: false)
                    offset = more.next
                    guard stream.write(Data(more.entries.map(\.log).joined().utf8)) else { return }
                    if exited && more.entries.isEmpty { return }
                    usleep(100_000)
                }
            }
        case .events:
            // From here on: taken before the response's head goes out.
            let start = runtime.containers.events.end()
            return Response(status: 200, contentType: "application/x-ndjson") { stream in
                EventWatch(runtime: runtime, caller: caller).run(stream, from: start)
            }
        case .listImages:
            return try Handler.json(try runtime.images.list())
        case .pullImage:
            let request = try JSONDecoder().decode(PullRequest.self, from: body)
            guard Handler.flag(query, "progress") else {
                let result = try runtime.images.pull(request.reference)
                return try Handler.json(["id": result.image.id, "downloadedBlobs": "\(result.downloadedBlobs)"])
            }
            // Validate before the 200 goes out; what fails later is reported in the stream.
            _ = try ImageReference(parsing: request.reference)
            let images = runtime.images
            return Response(status: 200, contentType: "application/x-ndjson") { stream in
                @Sendable func line(_ object: [String: String]) -> Data {
                    ((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()) + Data([0x0a])
                }
                do {
                    let result = try images.pull(request.reference) { status in _ = stream.write(line(["status": status])) }
                    _ = stream.write(line(["id": result.image.id, "downloadedBlobs": "\(result.downloadedBlobs)"]))
                } catch {
                    let failure = Handler.map(error as? HVCError ?? HVCError("\(error)"))
                    _ = stream.write(line(["code": failure.code, "message": failure.message]))
                }
            }
        case .loadImage:
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("hvcd-load-\(UUID().uuidString).tar").path
            guard FileManager.default.createFile(atPath: file, contents: body, attributes: [.posixPermissions: 0o600]) else {
                throw APIError(status: 500, code: "internal", message: "cannot stage the archive")
            }
            defer { try? FileManager.default.removeItem(atPath: file) }
            let image = try runtime.images.load(archive: file)
            return try Handler.json(["id": image.id], status: 201)
        case .deleteImage(let reference):
            guard caller.isAdmin else {
                throw APIError(status: 403, code: "forbidden", message: "images are shared by every tenant: only an admin removes them")
            }
            let inUse = Set(try runtime.containers.list().map(\.config.imageID))
            let removed = try runtime.images.remove(reference, force: Handler.flag(query, "force"), inUse: inUse)
            return try Handler.json(["removed": removed])
        }
    }

    /// Refuses a container that would take the caller's tenant over its quotas.
    func checkQuota(_ caller: Caller, adding memoryMiB: Int) throws {
        let mine = try runtime.containers.list().filter { $0.config.tenant == caller.tenant && $0.state.status != .exited }
        if let max = caller.maxContainers, mine.count + 1 > max {
            throw APIError(status: 403, code: "quota", message: "tenant \(caller.tenant) may have \(max) containers and has \(mine.count)")
        }
        if let max = caller.maxMemoryMiB {
            let used = mine.reduce(0) { $0 + $1.config.memoryMiB }
            if used + memoryMiB > max {
                throw APIError(status: 403, code: "quota", message: "tenant \(caller.tenant) may use \(max) MiB of memory; \(used) MiB in use, \(memoryMiB) MiB asked")
            }
        }
    }
}
