import Foundation
import OCI
import Registry
import Runtime
import Synchronization

/// The Docker Engine API over hvc's own store, networks, volumes and tenants: what the docker
/// CLI asks, carried out as hvc's own API carries it out (`Handler`), with Docker's shapes,
/// statuses and error bodies (`{"message": ...}`). Routes hvc does not carry out are answered
/// with an error that names them.
public struct DockerHandler: HTTPService {
    let handler: Handler
    let sessions = DockerSessions()

    public init(handler: Handler) { self.handler = handler }

    public var tenants: TenantConfig { handler.tenants }
    var runtime: Runtime { handler.runtime }
    var manager: ContainerManager { handler.manager }

    public func body(method: String, path: String) -> RequestBody? {
        // Unknown routes are answered by `respond`, with Docker's error naming them.
        switch DockerRoute(method: method, path: path) {
        case .putArchive?, .loadImage?: return .archive
        default: break
        }
        return .json
    }

    public func respond(method: String, path: String, query: [String: String], body: Data, caller: Caller) -> Response {
        guard let route = DockerRoute(method: method, path: path) else {
            return DockerHandler.error(HVCError(.notFound, "\(method) \(path) is not supported by hvc's Docker API"))
        }
        do {
            return try perform(route, query: query, body: body, caller: caller)
        } catch let error as HVCError {
            return DockerHandler.error(error)
        } catch {
            return DockerHandler.error(HVCError(cause: error))
        }
    }

    public func errorResponse(_ error: HVCError) -> Response { DockerHandler.error(error) }

    /// Docker's error body, with hvc's status for the kind of error.
    static func error(_ error: HVCError) -> Response {
        Response(status: error.kind.httpStatus, body: errorBody(error.message))
    }

    static func errorBody(_ message: String) -> Data {
        (try? JSONSerialization.data(withJSONObject: ["message": message])) ?? Data()
    }

    static func json(_ object: Any, status: Int = 200) throws -> Response {
        Response(status: status, body: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }

    static let noContent = Response(status: 204)
    static let notModified = Response(status: 304)

    private func perform(_ route: DockerRoute, query: [String: String], body: Data, caller: Caller) throws -> Response {
        switch route {
        case .ping:
            var response = Response(status: 200, contentType: "text/plain; charset=utf-8", body: Data("OK".utf8))
            response.headers = ["API-Version": DockerRoute.apiVersion, "OSType": "linux", "Docker-Experimental": "false",
                                "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"]
            return response
        case .version:
            var system = utsname()
            uname(&system)
            let kernel = withUnsafeBytes(of: system.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let details: [String: Any] = ["ApiVersion": DockerRoute.apiVersion, "MinAPIVersion": DockerRoute.minimumAPIVersion,
                                          "Os": "linux", "Arch": "amd64", "KernelVersion": kernel]
            return try DockerHandler.json([
                "Platform": ["Name": "hvc"], "Version": Handler.version, "ApiVersion": DockerRoute.apiVersion,
                "MinAPIVersion": DockerRoute.minimumAPIVersion, "Os": "linux", "Arch": "amd64", "KernelVersion": kernel,
                "GitCommit": "", "GoVersion": "", "BuildTime": "",
                "Components": [["Name": "Engine", "Version": Handler.version, "Details": details] as [String: Any]],
            ] as [String: Any])
        case .info:
            let mine = try runtime.containers.list().filter { caller.owns($0.config.tenant) }
            let choice = try runtime.chooseAccelerator(nil)
            return try DockerHandler.json([
                "ID": "hvc", "Name": ProcessInfo.processInfo.hostName, "ServerVersion": Handler.version,
                "Containers": mine.count, "ContainersRunning": mine.filter { $0.state.status == .running }.count,
                "ContainersPaused": 0, "ContainersStopped": mine.filter { $0.state.status == .exited }.count,
                "Images": try runtime.images.list().count, "Driver": "hvc", "OSType": "linux", "Architecture": "x86_64",
                "OperatingSystem": "hvc: a micro-VM per container (\(choice.accelerator.rawValue))",
                "NCPU": ProcessInfo.processInfo.activeProcessorCount, "MemTotal": ProcessInfo.processInfo.physicalMemory,
                "DefaultRuntime": "hvc", "Runtimes": ["hvc": ["path": "hvc"]], "LoggingDriver": "json-file",
                "CgroupDriver": "cgroupfs", "Isolation": "", "SecurityOptions": [String](),
                "Plugins": ["Volume": ["local"], "Network": ["bridge"], "Log": ["json-file"]],
                "Swarm": ["LocalNodeState": "inactive"], "Labels": ["hvc.tenant=\(caller.tenant)"],
            ] as [String: Any])
        case .listContainers:
            let all = Handler.flag(query, "all")
            let filters = try DockerHandler.filters(query["filters"])
            let visible = try runtime.containers.list()
                .filter { caller.owns($0.config.tenant) && (all || $0.state.status == .running) && filters.matches($0) }
                .sorted { $0.config.created > $1.config.created }
            return try DockerHandler.json(visible.map(DockerViews.summary))
        case .createContainer:
            let request = try DockerCreate.request(body, name: query["name"])
            let record = try handler.create(try request.runOptions(), for: caller)
            return try DockerHandler.json(["Id": record.id, "Warnings": [String]()] as [String: Any], status: 201)
        case .inspectContainer(let id):
            return try DockerHandler.json(DockerViews.inspect(try handler.container(id, caller)))
        case .startContainer(let id):
            let record = try handler.container(id, caller)
            guard record.state.status != .running else { return DockerHandler.notModified }
            if let attach = sessions.takePendingStart(record.id) {
                // An attached client waits: the command is held until it attaches.
                do {
                    _ = try manager.startForAttach(record.id)
                    attach.resolve(.success(()))
                } catch {
                    attach.resolve(.failure(error))
                    throw error
                }
            } else {
                _ = try manager.start(record.id)
            }
            return DockerHandler.noContent
        case .stopContainer(let id), .restartContainer(let id):
            let record = try handler.container(id, caller)
            let restart = route == .restartContainer(id)
            guard restart || record.state.status == .running || record.state.restarting == true else { return DockerHandler.notModified }
            let seconds = query["t"] ?? query["timeout"] ?? "10"
            guard let timeout = Int(seconds), timeout >= -1 else {
                throw HVCError(.invalid, "stop timeout \"\(seconds.prefix(32))\" is not a number of seconds")
            }
            let bounded = timeout < 0 ? 3600 : min(timeout, 3600)
            _ = restart ? try manager.restart(record.id, timeout: bounded) : try manager.stop(record.id, timeout: bounded)
            return DockerHandler.noContent
        case .killContainer(let id):
            let record = try handler.container(id, caller)
            guard record.state.status == .running else {
                throw HVCError(.conflict, "Container \(record.id) is not running")
            }
            try manager.kill(record.id, signal: try SignalName.parse(query["signal"] ?? "KILL"))
            return DockerHandler.noContent
        case .waitContainer(let id):
            let condition = query["condition"].flatMap { $0.isEmpty ? nil : $0 } ?? "not-running"
            return try wait(try handler.container(id, caller), condition: condition)
        case .deleteContainer(let id):
            let record = try handler.container(id, caller)
            try manager.remove(record.id, force: Handler.flag(query, "force"), volumes: Handler.flag(query, "v"))
            return DockerHandler.noContent
        case .containerLogs(let id):
            return try logs(try handler.container(id, caller), query: query)
        case .attachContainer(let id):
            return try attach(try handler.container(id, caller), query: query)
        case .events:
            return try events(query: query, caller: caller)
        case .containerStats(let id):
            return try stats(try handler.container(id, caller), query: query)
        case .topContainer(let id):
            let record = try handler.container(id, caller)
            guard record.state.status == .running else {
                throw HVCError(.conflict, "container \(record.name) is not running: only a running container has processes to list")
            }
            let top = try ContainerTop.list(over: try manager.controlChannel(record), record, psArguments: query["ps_args"] ?? "-ef")
            return try DockerHandler.json(["Titles": top.titles, "Processes": top.processes])
        case .statArchive(let id), .getArchive(let id), .putArchive(let id):
            return try archive(route, try handler.container(id, caller), query: query, body: body)
        case .resizeContainer(let id):
            let record = try handler.container(id, caller)
            let size = try DockerHandler.size(query)
            sessions.resize(record.id, rows: size.rows, columns: size.columns)
            return Response(status: 200)
        case .createExec(let id):
            return try createExec(try handler.container(id, caller), body: body)
        case .startExec(let id):
            return try startExec(try exec(id, caller), body: body, caller: caller)
        case .resizeExec(let id):
            let exec = try exec(id, caller)
            let size = try DockerHandler.size(query)
            sessions.resize("exec " + exec.id, rows: size.rows, columns: size.columns)
            return Response(status: 201)
        case .inspectExec(let id):
            return try DockerHandler.json(try exec(id, caller).inspect)
        case .listNetworks, .inspectNetwork, .createNetwork, .deleteNetwork, .pruneNetworks, .changeNetworkMembers,
             .listVolumes, .inspectVolume, .createVolume, .deleteVolume, .pruneVolumes:
            return try resource(route, query: query, body: body, caller: caller)
        case .listImages:
            return try DockerHandler.json(try runtime.images.list().map(DockerViews.image))
        case .inspectImage(let name):
            return try DockerHandler.json(DockerViews.inspectImage(try runtime.images.resolve(name)))
        case .pullImage:
            return try pull(query)
        case .tagImage, .deleteImage, .loadImage, .saveImage:
            return try image(route, query: query, body: body, caller: caller)
        }
    }

    /// The `filters` parameter: `{"label": {"a=b": true}}` or `{"label": ["a=b"]}`, by filter.
    static func filters(_ text: String?) throws -> ContainerFilter {
        var filter = ContainerFilter()
        guard let text, !text.isEmpty else { return filter }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw HVCError(.invalid, "filters is not a JSON object of filters")
        }
        for (key, value) in object.sorted(by: { $0.key < $1.key }) {
            for item in (value as? [String: Any]).map({ Array($0.keys) }) ?? (value as? [String]) ?? [] { try filter.add(key, item) }
        }
        return filter
    }

    /// `POST /containers/{id}/wait`: `{"StatusCode": N}` once the condition holds: `not-running`
    /// (at once for a container that is not running), `next-exit`, `removed`. The head goes out
    /// at once, as Docker's does: the docker CLI waits for it before it starts the container.
    func wait(_ record: ContainerRecord, condition: String) throws -> Response {
        guard ["not-running", "next-exit", "removed"].contains(condition) else {
            throw HVCError(.invalid, "wait condition \"\(condition.prefix(32))\" is not one of not-running, next-exit, removed")
        }
        let body: @Sendable (Int32?, String?) -> Data = { code, error in
            Handler.jsonLine(["StatusCode": Int(code ?? 0), "Error": error.map { ["Message": $0] } ?? NSNull()] as [String: Any])
        }
        if condition == "not-running", record.state.status != .running {
            return Response(status: 200, body: body(record.state.exitCode, nil))
        }
        let watch = try ContainerWatch.of(runtime.containers)
        let startedBefore = record.state.status == .running
        let journal = runtime.containers.events
        let journalStart = journal.end()
        return Response.feed(contentType: "application/json") { feed in
            // The last exit code seen (a removed container's), and whether it has run since.
            let seen = Mutex((code: record.state.exitCode, running: startedBefore))
            let token = watch.observe(record.id) { current in
                guard let current else {
                    // Its exit and removal may come as one change: the journal has its code.
                    let died = journal.read(from: journalStart).events.last { $0.id == record.id && $0.action == "die" }
                    let code = died?.exitCode ?? seen.withLock { $0.code }
                    _ = feed.write(body(code, condition == "removed" ? nil : "container \(record.name) was removed while waited for"))
                    feed.finish()
                    return false
                }
                let sawRunning = seen.withLock { seen in
                    seen.code = current.state.exitCode
                    if current.state.status == .running { seen.running = true }
                    return seen.running
                }
                switch condition {
                case "removed": return true
                case "next-exit" where !sawRunning: return true
                default:
                    guard current.state.status == .exited else { return true }
                    _ = feed.write(body(current.state.exitCode, nil))
                    feed.finish()
                    return false
                }
            }
            return { watch.cancel(token) }
        }
    }

    /// `GET /containers/{id}/logs`: the log, each entry in Docker's multiplexed frame (a
    /// container without a terminal) or raw (with one); `stdout`, `stderr`, `tail`,
    /// `timestamps`, `follow`.
    func logs(_ record: ContainerRecord, query: [String: String]) throws -> Response {
        let streams = Set(["stdout", "stderr"].filter { Handler.flag(query, $0) })
        let stamped = Handler.flag(query, "timestamps")
        let framed = !record.config.process.terminal
        let render: @Sendable ([LogEntry]) -> Data = { entries in
            var data = Data()
            for entry in entries where streams.contains(entry.stream) {
                let text = Data(((stamped ? DockerViews.time(entry.time) + " " : "") + entry.log).utf8)
                if framed {
                    let size = UInt32(text.count)
                    data += Data([entry.stream == "stderr" ? 2 : 1, 0, 0, 0,
                                  UInt8(size >> 24), UInt8(size >> 16 & 0xff), UInt8(size >> 8 & 0xff), UInt8(size & 0xff)])
                }
                data += text
            }
            return data
        }
        let reader = ContainerLogReader(path: record.logPath)
        var (entries, next) = reader.read()
        if let tail = query["tail"], tail != "all" {
            guard let count = Int(tail), count >= 0 else { throw HVCError(.invalid, "tail \"\(tail.prefix(32))\" is not a number or all") }
            entries = Array(entries.suffix(count))
        }
        let contentType = framed ? "application/vnd.docker.multiplexed-stream" : "application/vnd.docker.raw-stream"
        let first = render(entries)
        guard Handler.flag(query, "follow") else { return Response(status: 200, contentType: contentType, body: first) }
        let follow = LogFollow(id: record.id, reader: reader, offset: next, watch: try ContainerWatch.of(runtime.containers),
                               render: render)
        return Response.feed(contentType: contentType) { feed in follow.start(feed, first: first) }
    }

    /// `POST /images/create?fromImage=NAME&tag=TAG`: a pull, its progress as Docker's JSON
    /// messages (an error too, once the 200 is out).
    func pull(_ query: [String: String]) throws -> Response {
        guard let from = query["fromImage"], !from.isEmpty else {
            throw HVCError(.invalid, "fromImage is missing: only pulls are supported (fromSrc imports are not)")
        }
        let tag = query["tag"].flatMap { $0.isEmpty ? nil : $0 }
        let reference = tag.map { $0.hasPrefix("sha256:") ? from + "@" + $0 : from + ":" + $0 } ?? from
        _ = try ImageReference(name: reference)
        let images = runtime.images
        return Response(status: 200, contentType: "application/json") { stream in
            let line = Handler.jsonLine
            _ = stream.write(line(["status": "Pulling from \(from)", "id": tag ?? "latest"]))
            do {
                let result = try images.pull(reference, via: RegistryClient.connect) { status in _ = stream.write(line(["status": status])) }
                _ = stream.write(line(["status": "Digest: \(DockerViews.imageID(result.image.id))"]))
                _ = stream.write(line(["status": "Status: Downloaded newer image for \(reference)"]))
            } catch {
                let message = (error as? HVCError)?.message ?? "\(error)"
                _ = stream.write(line(["error": message, "errorDetail": ["message": message]] as [String: Any]))
            }
        }
    }
}
