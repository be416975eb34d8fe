import CLinux
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Runtime
import Synchronization

/// An HTTP/1.1 + JSON API (hvc's own, or Docker's) on a Unix socket. Each connection's peer credentials (SO_PEERCRED)
/// decide its tenant. Requests are bounded in size, connections in number and idle time; the
/// work itself runs on a thread pool, off the event loop.
public final class Server: Sendable {
    public struct Limits: Sendable {
        public var maxJSONBody = 1 << 20
        public var maxArchiveBody = 2 << 30
        public var maxConnections = 4096
        public var idleTimeout = TimeAmount.seconds(60)

        public init() {}
    }

    let service: any HTTPService
    let limits: Limits
    let group: MultiThreadedEventLoopGroup
    let pool: NIOThreadPool
    let connections = Mutex(0)

    public init(service: any HTTPService, limits: Limits = Limits()) {
        self.service = service
        self.limits = limits
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        pool = NIOThreadPool(numberOfThreads: 16)
        pool.start()
    }

    /// Serves on `socketPath` (replacing a stale socket file) until `shutdown` is called.
    public func run(socketPath: String) throws {
        Server.raiseDescriptorLimit()
        try? FileManager.default.createDirectory(atPath: (socketPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .childChannelInitializer { [self] channel in
                let accepted = connections.withLock { count -> Bool in
                    guard count < limits.maxConnections else { return false }
                    count += 1
                    return true
                }
                guard accepted else { return channel.close() }
                channel.closeFuture.whenComplete { [self] _ in connections.withLock { $0 -= 1 } }
                let idle = limits.idleTimeout
                return channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMap { [self] in
                    channel.eventLoop.makeCompletedFuture {
                        let handlers = channel.pipeline.syncOperations
                        try handlers.addHandler(IdleStateHandler(readTimeout: idle), name: RequestHandler.idleHandlerName)
                        try handlers.addHandler(RequestHandler(server: self))
                    }
                }
            }
        let channel = try bootstrap.bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true).wait()
        // Every local user may connect; what they may do is decided by who they are.
        chmod(socketPath, 0o666)
        try channel.closeFuture.wait()
    }

    /// Each connection holds a descriptor, and a waiting one holds it for as long as it waits:
    /// the soft limit (often 1024) is raised to the hard one.
    static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    public func shutdown() {
        try? group.syncShutdownGracefully()
        try? pool.syncShutdownGracefully()
    }
}

/// The credentials of a Unix socket peer, laid out as `struct ucred`.
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = .max
    var gid: UInt32 = .max
}

/// Collects one request at a time (head, bounded body), then answers it.
final class RequestHandler: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: all state is touched on the channel's event loop only.
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let server: Server
    private var head: HTTPRequestHead?
    /// The request's path, without its query.
    private var path = ""
    private var body = ByteBuffer()
    private var bodyKind: RequestBody?
    private var rejected: HVCError?
    private var caller: Caller?
    /// A request is being answered (a wait, a stream): the idle timeout does not apply.
    private var busy = false
    /// The request is a HEAD: the response's head goes out, its body does not.
    private var withoutBody = false
    /// The request asks to take the connection over (`Upgrade: tcp`, as Docker's clients send).
    private var upgrade = false

    static let idleHandlerName = "idle"

    init(server: Server) { self.server = server }

    func channelActive(context: ChannelHandlerContext) {
        let provider = context.channel as? SocketOptionProvider
        let future: EventLoopFuture<PeerCredentials>? = provider?.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        let loop = context.eventLoop
        future?.hop(to: loop).whenSuccess { [self] credentials in
            caller = server.service.tenants.caller(uid: credentials.uid, gid: credentials.gid)
        }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent && !busy { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body.clear()
            rejected = nil
            path = String(requestHead.uri.split(separator: "?", maxSplits: 1).first ?? "")
            bodyKind = server.service.body(method: requestHead.method.rawValue, path: path)
            if bodyKind == nil {
                rejected = HVCError(.notFound, "no route \(requestHead.method.rawValue) \(path)")
            }
        case .body(var chunk):
            guard rejected == nil else { return }
            let limit = bodyKind == .archive ? server.limits.maxArchiveBody : server.limits.maxJSONBody
            if body.readableBytes + chunk.readableBytes > limit {
                rejected = HVCError(.tooLarge, "request body over \(limit) bytes")
                body.clear()
            } else {
                body.writeBuffer(&chunk)
            }
        case .end:
            guard let head else { return }
            respond(context: context, head: head)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let keepAlive = head.isKeepAlive
        withoutBody = head.method == .HEAD
        upgrade = head.headers["Upgrade"].contains { $0.lowercased() == "tcp" }
        if let rejected {
            write(context: context, server.service.errorResponse(rejected), keepAlive: keepAlive)
            return
        }
        guard let caller else {
            write(context: context, server.service.errorResponse(HVCError(.forbidden, "caller unknown")), keepAlive: keepAlive)
            return
        }
        let query = RequestHandler.query(head.uri)
        let data = Data(body.readableBytesView)
        let service = server.service
        let (method, path) = (head.method.rawValue, path)
        let loop = context.eventLoop
        let promise = loop.makePromise(of: Response.self)
        server.pool.submit { state in
            guard state == .active else {
                promise.fail(ChannelError.ioOnClosedChannel)
                return
            }
            promise.succeed(service.respond(method: method, path: path, query: query, body: data, caller: caller))
        }
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        busy = true
        promise.futureResult.whenSuccess { response in
            let (handlerSelf, context) = bound.value
            handlerSelf.deliver(response, context: context, keepAlive: keepAlive)
        }
    }

    /// Sends `response` by the kind of its body (on the event loop).
    private func deliver(_ response: Response, context: ChannelHandlerContext, keepAlive: Bool) {
        let channel = context.channel
        let loop = context.eventLoop
        if let pending = response.pending {
            // The answer comes from another thread, once; the client may go before it.
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            let answered = Mutex(false)
            let giveUp = pending { answer in
                guard answered.withLock({ was in defer { was = true }; return !was }) else { return }
                loop.execute {
                    let (handlerSelf, context) = bound.value
                    guard channel.isActive else { return }
                    handlerSelf.deliver(answer, context: context, keepAlive: keepAlive)
                }
            }
            channel.closeFuture.whenComplete { _ in
                if answered.withLock({ was in defer { was = true }; return !was }) { giveUp() }
            }
            return
        }
        if let service = response.hijack {
            // Docker's clients ask to upgrade and wait for 101; older ones take a 200 and the stream.
            let status = upgrade ? "101 UPGRADED" : "200 OK"
            var head = "HTTP/1.1 \(status)\r\nContent-Type: \(response.contentType)\r\n"
            head += upgrade ? "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" : "\r\n"
            // The idle timeout and HTTP's pipelining (which holds reads until a response ends) go.
            let handlers = context.pipeline.syncOperations
            handlers.removeHandler(name: RequestHandler.idleHandlerName, promise: nil)
            if let pipelining = try? handlers.handler(type: HTTPServerPipelineHandler.self) {
                handlers.removeHandler(pipelining, promise: nil)
            }
            Hijack.start(channel, head: head, service: service)
            return
        }
        guard response.stream != nil || response.feed != nil else {
            write(context: context, response, keepAlive: keepAlive)
            return
        }
        // Chunked: the head now, then each chunk as it is written; the connection ends with the body.
        var headers = RequestHandler.headers(of: response)
        headers.add(name: "Transfer-Encoding", value: "chunked")
        headers.add(name: "Connection", value: "close")
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
        if let feed = response.feed {
            let stop = feed(ChannelFeed(channel: channel))
            channel.closeFuture.whenComplete { _ in stop() }
        } else if let stream = response.stream {
            server.pool.submit { _ in
                stream(ChannelStream(channel: channel))
                channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }

    private func write(context: ChannelHandlerContext, _ response: Response, keepAlive: Bool) {
        busy = false
        var headers = RequestHandler.headers(of: response)
        headers.add(name: "Content-Length", value: "\(response.body.count)")
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !withoutBody { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil) }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.whenComplete { _ in context.close(promise: nil) } }
    }

    /// The headers `response` names itself: its content type, then its own.
    static func headers(of response: Response) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        for (name, value) in response.headers.sorted(by: { $0.key < $1.key }) { headers.add(name: name, value: value) }
        return headers
    }

    /// A streamed body's writer: each chunk is flushed before `write` returns.
    struct ChannelStream: ResponseStream {
        let channel: Channel

        func write(_ data: Data) -> Bool {
            guard !data.isEmpty else { return channel.isActive }
            do {
                try channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: data)))).wait()
                return true
            } catch {
                return false
            }
        }
    }

    /// A feed's writer: each chunk is queued on the channel and written by its event loop.
    struct ChannelFeed: ResponseFeed {
        let channel: Channel
        /// How long a client that is behind gets before the next try.
        static let retryDelay = TimeAmount.milliseconds(50)

        func write(_ data: Data) -> Bool {
            guard channel.isActive else { return false }
            if !data.isEmpty {
                channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: data))), promise: nil)
            }
            return true
        }

        var isWritable: Bool { channel.isWritable }

        func retryLater(_ body: @escaping @Sendable () -> Void) {
            channel.eventLoop.scheduleTask(in: ChannelFeed.retryDelay) { body() }
        }

        func finish() {
            channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// The query's parameters, form-decoded (`+` is a space, as Python's and Go's clients send it).
    static func query(_ uri: String) -> [String: String] {
        guard let mark = uri.firstIndex(of: "?") else { return [:] }
        var result: [String: String] = [:]
        for pair in uri[uri.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { part in
                let text = part.replacingOccurrences(of: "+", with: " ")
                return text.removingPercentEncoding ?? text
            }
            if parts.count == 2 { result[parts[0]] = parts[1] } else if parts.count == 1 { result[parts[0]] = "" }
        }
        return result
    }
}
