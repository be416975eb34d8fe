import Foundation
import Runtime

/// What a `Server` answers on its socket: hvc's own API (`Handler`) or the Docker Engine API
/// (`DockerHandler`), each over the same runtime and tenants.
public protocol HTTPService: Sendable {
    var tenants: TenantConfig { get }

    /// The kind of body a request to `method` `path` may carry; nil when no such route exists.
    func body(method: String, path: String) -> RequestBody?

    /// Carries out one request (blocking; the server runs it off its event loops).
    func respond(method: String, path: String, query: [String: String], body: Data, caller: Caller) -> Response

    /// The response for an error found before the request reached `respond`.
    func errorResponse(_ error: HVCError) -> Response
}

/// How large a request's body may be.
public enum RequestBody: Sendable {
    /// JSON, bounded by `Server.Limits.maxJSONBody`.
    case json
    /// An archive, bounded by `Server.Limits.maxArchiveBody`.
    case archive
}

extension Handler: HTTPService {
    public func body(method: String, path: String) -> RequestBody? {
        Route(method: method, path: path).map { $0.takesLargeBody ? .archive : .json }
    }

    public func respond(method: String, path: String, query: [String: String], body: Data, caller: Caller) -> Response {
        guard let route = Route(method: method, path: path) else {
            return Handler.error(HVCError(.notFound, "no route \(method) \(path)"))
        }
        return handle(route, query: query, body: body, caller: caller)
    }

    public func errorResponse(_ error: HVCError) -> Response { Handler.error(error) }
}
