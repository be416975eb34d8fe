import Foundation
import HVCSystem
import OCI
import Registry
import Runtime

/// A response: status, content type, and a body, which is one of: data; a stream that writes
/// it in chunks (chunked transfer encoding) on a thread of its own until it returns; a feed,
/// written in chunks as things happen, holding no thread; or a whole response that comes later.
public struct Response: Sendable {
    public var status: Int
    public var contentType = "application/json"
    public var body: Data
    /// Headers beside Content-Type, Content-Length and Connection.
    public var headers: [String: String] = [:]
    public var stream: (@Sendable (ResponseStream) -> Void)?
    /// Registers the feed's writer (with a `ContainerWatch`) and returns how to stop it, called
    /// when the client goes.
    public var feed: (@Sendable (ResponseFeed) -> (@Sendable () -> Void))?
    /// Registers what will answer (calling its argument once) and returns how to give up,
    /// called when the client goes first.
    public var pending: (@Sendable (@escaping @Sendable (Response) -> Void) -> (@Sendable () -> Void))?
    /// Takes the connection over once the head is out (`Hijack`): given a blocking descriptor
    /// whose reads are the client's bytes and whose writes go to the client.
    public var hijack: (@Sendable (FileDescriptor) -> Void)?

    public init(status: Int, contentType: String = "application/json", body: Data = Data(),
                stream: (@Sendable (ResponseStream) -> Void)? = nil) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.stream = stream
    }

    /// A chunked body written by `feed` as things happen.
    public static func feed(status: Int = 200, contentType: String,
                            _ feed: @escaping @Sendable (ResponseFeed) -> (@Sendable () -> Void)) -> Response {
        var response = Response(status: status, contentType: contentType)
        response.feed = feed
        return response
    }

    /// A connection taken over by `service` after a head of `contentType`.
    public static func hijacked(contentType: String, _ service: @escaping @Sendable (FileDescriptor) -> Void) -> Response {
        var response = Response(status: 101, contentType: contentType)
        response.hijack = service
        return response
    }

    /// A response that `pending` gives later.
    public static func later(_ pending: @escaping @Sendable (@escaping @Sendable (Response) -> Void) -> (@Sendable () -> Void)) -> Response {
        var response = Response(status: 200)
        response.pending = pending
        return response
    }
}

/// Where a streamed response writes: each `write` is one chunk, sent before it returns.
public protocol ResponseStream: Sendable {
    /// Sends `data` (nothing for empty data); false once the client has gone.
    func write(_ data: Data) -> Bool
}

/// Where a feed writes: `write` queues a chunk and never blocks.
public protocol ResponseFeed: Sendable {
    /// Queues `data` (nothing for empty data); false once the client has gone.
    func write(_ data: Data) -> Bool
    /// Whether the client takes what was written: false while much is still queued for it.
    var isWritable: Bool { get }
    /// Calls `body` once, a little later, off the caller's thread (to try again when not writable).
    func retryLater(_ body: @escaping @Sendable () -> Void)
    /// Ends the body and the connection.
    func finish()
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
        } catch let error as HVCError {
            return Handler.error(error)
        } catch let error as DecodingError {
            return Handler.error(HVCError(.invalid, "invalid JSON body: \(Handler.describe(error))"))
        } catch {
            return Handler.error(HVCError(cause: error))
        }
    }

    /// The response for `error`: its kind's status, and `{code, message}`.
    static func error(_ error: HVCError) -> Response {
        Response(status: error.kind.httpStatus, body: errorBody(error))
    }

    /// `{"code": ..., "message": ...}`, as every error is sent (responses, streams, preambles).
    static func errorBody(_ error: HVCError) -> Data {
        (try? JSONSerialization.data(withJSONObject: ["code": error.kind.apiCode, "message": error.message], options: [.sortedKeys])) ?? Data()
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

    private func perform(_ route: Route, query: [String: String], body: Data, caller: Caller) throws -> Response {
        switch route {
        case .version:
            return try Handler.json(["version": Handler.version, "api": "v1"])
        case .info:
            let choice = try runtime.chooseAccelerator(nil)
            return try Handler.json([
                "accelerator": choice.accelerator.rawValue, "acceleratorReason": choice.reason,
                "nesting": runtime.nesting(choice.accelerator).description,
                "tenant": caller.tenant, "admin": caller.isAdmin ? "true" : "false",
            ])
        case .listContainers:
            let visible = try runtime.containers.list().filter { caller.owns($0.config.tenant) }
            return try Handler.json(visible)
        case .createContainer:
            let request = try JSONDecoder().decode(CreateContainerRequest.self, from: body)
            let record = try create(try request.runOptions(), for: caller)
            if request.start == true { _ = try manager.start(record.id) }
            return try Handler.json(CreatedContainer(id: record.id), status: 201)
        case .inspectContainer(let id):
            return try Handler.json(try container(id, caller))
        case .startContainer(let id):
            let record = try manager.start(try container(id, caller).id)
            return try Handler.json(record)
        case .containerStats(let id):
            return try Handler.json(try ContainerStats.sample(try container(id, caller), runtime: runtime))
        case .stopContainer(let id), .restartContainer(let id):
            guard let timeout = Int(query["timeout"] ?? "10") else {
                throw HVCError(.invalid, "stop timeout \"\(query["timeout"] ?? "")\" is not a number of seconds")
            }
            let record = try container(id, caller)
            if case .restartContainer = route { return try Handler.json(try manager.restart(record.id, timeout: min(timeout, 3600))) }
            return try Handler.json(try manager.stop(record.id, timeout: min(timeout, 3600)))
        case .killContainer(let id):
            let signal = try SignalName.parse(query["signal"] ?? "KILL")
            try manager.kill(try container(id, caller).id, signal: signal)
            return Response(status: 204, body: Data())
        case .waitContainer(let id):
            let record = try container(id, caller)
            let watch = try ContainerWatch.of(runtime.containers)
            return Response.later { answer in
                let token = watch.observe(record.id) { current in
                    guard let current else {
                        answer(Handler.error(HVCError(.notFound, "container \(record.name) was removed while waited for")))
                        return false
                    }
                    guard current.state.status == .exited else { return true }
                    answer((try? Handler.json(WaitResult(exitCode: current.state.exitCode ?? 0))) ?? Response(status: 500))
                    return false
                }
                return { watch.cancel(token) }
            }
        case .deleteContainer(let id):
            try manager.remove(try container(id, caller).id, force: Handler.flag(query, "force"), volumes: Handler.flag(query, "v"))
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
            let follow = LogFollow(id: record.id, reader: reader, offset: followFrom, watch: try ContainerWatch.of(runtime.containers))
            return Response.feed(contentType: "text/plain; charset=utf-8") { feed in
                follow.start(feed, first: text)
            }
        case .events:
            // From here on: taken before the response's head goes out.
            let start = runtime.containers.events.end()
            let watch = EventWatch(journal: runtime.containers.events, caller: caller, offset: start,
                                   watch: try ContainerWatch.of(runtime.containers))
            return Response.feed(contentType: "application/x-ndjson") { feed in
                watch.start(feed)
            }
        case .listImages:
            return try Handler.json(try runtime.images.list())
        case .pullImage:
            let request = try JSONDecoder().decode(PullRequest.self, from: body)
            guard Handler.flag(query, "progress") else {
                let result = try runtime.images.pull(request.reference, via: RegistryClient.connect)
                return try Handler.json(PullResult(id: result.image.id, downloadedBlobs: "\(result.downloadedBlobs)"))
            }
            // Validate before the 200 goes out; what fails later is reported in the stream.
            _ = try ImageReference(name: request.reference)
            let images = runtime.images
            return Response(status: 200, contentType: "application/x-ndjson") { stream in
                do {
                    let result = try images.pull(request.reference, via: RegistryClient.connect) { status in _ = stream.write(Handler.jsonLine(["status": status])) }
                    _ = stream.write(Handler.jsonLine(["id": result.image.id, "downloadedBlobs": "\(result.downloadedBlobs)"]))
                } catch {
                    _ = stream.write(Handler.errorBody(error as? HVCError ?? HVCError(cause: error)) + Data([0x0a]))
                }
            }
        case .loadImage:
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("hvcd-load-\(UUID().uuidString).tar").path
            guard FileManager.default.createFile(atPath: file, contents: body, attributes: [.posixPermissions: 0o600]) else {
                throw HVCError(.runtime, "cannot stage the archive")
            }
            defer { try? FileManager.default.removeItem(atPath: file) }
            let image = try runtime.images.load(archive: file)
            return try Handler.json(["id": image.id], status: 201)
        case .listNetworks:
            let networks = caller.isAdmin ? runtime.networks.list(tenant: nil) : networks(caller).list()
            return try Handler.json(networks)
        case .createNetwork:
            let request = try JSONDecoder().decode(CreateNetworkRequest.self, from: body)
            let network = try networks(caller).create(request, mayAccessHost: caller.hostAccess, anySubnet: caller.isAdmin,
                                                      maxNetworks: caller.maxNetworks)
            return try Handler.json(network, status: 201)
        case .inspectNetwork(let name):
            return try Handler.json(try networks(caller).inspect(name))
        case .deleteNetwork(let name):
            try networks(caller).remove(name)
            return Response(status: 204, body: Data())
        case .pruneNetworks:
            return try Handler.json(PrunedNetworks(removed: networks(caller).prune()))
        case .listVolumes:
            let volumes = caller.isAdmin ? runtime.volumes.list(tenant: nil) : volumes(caller).list()
            return try Handler.json(volumes)
        case .createVolume:
            let request = try JSONDecoder().decode(CreateVolumeRequest.self, from: body)
            return try Handler.json(try volumes(caller).create(request), status: 201)
        case .inspectVolume(let name):
            return try Handler.json(try volumes(caller).inspect(name))
        case .deleteVolume(let name):
            try volumes(caller).remove(name)
            return Response(status: 204, body: Data())
        case .pruneVolumes:
            return try Handler.json(PrunedVolumes(removed: volumes(caller).prune()))
        case .deleteImage(let reference):
            guard caller.isAdmin else {
                throw HVCError(.forbidden, "images are shared by every tenant: only an admin removes them")
            }
            let inUse = Set(try runtime.containers.list().map(\.config.imageID))
            let removed = try runtime.images.remove(reference, force: Handler.flag(query, "force"), inUse: inUse)
            return try Handler.json(RemovedImages(removed: removed))
        }
    }

    /// The caller's own networks: names are per tenant, and another tenant's are not found.
    func networks(_ caller: Caller) -> NetworkManager { NetworkManager(runtime: runtime, tenant: caller.tenant) }

    /// The caller's own volumes, likewise.
    func volumes(_ caller: Caller) -> VolumeManager { VolumeManager(runtime: runtime, tenant: caller.tenant) }

    /// Creates the container `options` describe for `caller`: the quota check and the creation
    /// as one step, so that concurrent creates cannot overshoot.
    func create(_ options: RunOptions, for caller: Caller) throws -> ContainerRecord {
        Handler.createLock.lock()
        defer { Handler.createLock.unlock() }
        try checkQuota(caller, adding: options.memoryMiB)
        return try manager.create(options, tenant: caller.tenant, hostAccess: caller.hostAccess,
                                  policy: MountPolicy(bindRoots: caller.bindRoots), mayNest: caller.mayNest)
    }

    /// `object` as one line of JSON, as streamed progress and results are sent.
    static func jsonLine(_ object: Any) -> Data {
        ((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()) + Data([0x0a])
    }

    /// Refuses a container that would take the caller's tenant over its quotas.
    func checkQuota(_ caller: Caller, adding memoryMiB: Int) throws {
        let mine = try runtime.containers.list().filter { $0.config.tenant == caller.tenant && $0.state.status != .exited }
        if let max = caller.maxContainers, mine.count + 1 > max {
            throw HVCError(.quota, "tenant \(caller.tenant) may have \(max) containers and has \(mine.count)")
        }
        if let max = caller.maxMemoryMiB {
            let used = mine.reduce(0) { $0 + $1.config.memoryMiB }
            if used + memoryMiB > max {
                throw HVCError(.quota, "tenant \(caller.tenant) may use \(max) MiB of memory; \(used) MiB in use, \(memoryMiB) MiB asked")
            }
        }
    }
}
