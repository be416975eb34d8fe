import Foundation
import Runtime

/// `GET /events`: the caller's containers' `create`, `start`, `die` and `destroy` in Docker's
/// shape, from the store's journal: those since `since` first (what the journal still holds),
/// then each as it happens; with `until`, only the past up to it, and the stream ends.
/// `filters`: `type` (container), `container` (name or id), `event`, `image`.
extension DockerHandler {
    func events(query: [String: String], caller: Caller) throws -> Response {
        let filters = try DockerHandler.resourceFilters(query["filters"], keys: ["type", "container", "event", "image"])
        func time(_ key: String) throws -> Date? {
            guard let text = query[key], !text.isEmpty else { return nil }
            guard let seconds = Double(text) else { throw HVCError(.invalid, "\(key) \"\(text.prefix(32))\" is not a time in seconds since 1970") }
            return Date(timeIntervalSince1970: seconds)
        }
        let since = try time("since"), until = try time("until")
        let journal = runtime.containers.events
        let render: @Sendable (ContainerEvent) -> Data? = { event in
            guard DockerHandler.passes(event, filters), let line = try? JSONSerialization.data(withJSONObject: DockerViews.event(event)) else { return nil }
            return line + Data([0x0a])
        }
        let parse = ISO8601DateFormatter()
        func past(until end: Date?) -> Data {
            guard let since else { return Data() }
            var data = Data()
            for event in journal.read(from: 0).events where caller.owns(event.tenant) {
                guard let at = parse.date(from: event.time), at >= since, end.map({ at <= $0 }) ?? true else { continue }
                if let line = render(event) { data += line }
            }
            return data
        }
        if let until { return Response(status: 200, contentType: "application/json", body: past(until: until)) }
        let offset = journal.end()
        let first = past(until: nil)
        let watch = EventWatch(journal: journal, caller: caller, offset: offset, watch: try ContainerWatch.of(runtime.containers), render: render)
        return Response.feed(contentType: "application/json") { feed in watch.start(feed, first: first) }
    }

    static func passes(_ event: ContainerEvent, _ filters: [String: [String]]) -> Bool {
        filters.allSatisfy { key, values in
            values.contains { value in
                switch key {
                case "type": value == "container"
                case "container": event.id.hasPrefix(value) || event.name == value
                case "event": event.action == value
                default: event.image == value || event.image == value + ":latest"
                }
            }
        }
    }
}

extension DockerViews {
    /// An event as `docker events` reads it.
    static func event(_ event: ContainerEvent) -> [String: Any] {
        let at = ISO8601DateFormatter().date(from: event.time) ?? Date()
        var attributes = ["image": event.image, "name": event.name]
        if let code = event.exitCode { attributes["exitCode"] = "\(code)" }
        return [
            "status": event.action, "id": event.id, "from": event.image, "Type": "container", "Action": event.action,
            "Actor": ["ID": event.id, "Attributes": attributes] as [String: Any], "scope": "local",
            "time": Int(at.timeIntervalSince1970), "timeNano": Int64(at.timeIntervalSince1970 * 1e9),
        ]
    }
}
