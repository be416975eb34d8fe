import Foundation
import Runtime

/// `GET /v1/events`: container lifecycle events as JSON lines, for the caller's containers,
/// from the moment of the request: `create`, `start`, `die` (with the exit code) and `destroy`.
/// The store is the source of truth (containers change under their own supervisors, with or
/// without hvcd), so the watch compares snapshots of it.
struct EventWatch {
    let runtime: Runtime
    let caller: Caller
    static let interval: useconds_t = 200_000

    struct Event: Encodable {
        var time: String
        var type = "container"
        var action: String
        var id: String
        var name: String
        var image: String
        var tenant: String
        var exitCode: Int32?
    }

    func run(_ stream: ResponseStream) {
        var known = snapshot()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        while true {
            usleep(EventWatch.interval)
            let now = snapshot()
            var events: [Event] = []
            for (id, record) in now {
                let before = known[id]?.state.status
                if before == nil { events.append(event("create", record)) }
                if record.state.status != .created && (before == nil || before == .created) { events.append(event("start", record)) }
                if record.state.status == .exited && before != .exited { events.append(event("die", record)) }
            }
            for (id, record) in known where now[id] == nil { events.append(event("destroy", record)) }
            known = now
            var data = Data()
            for event in events.sorted(by: { $0.time < $1.time }) {
                guard let line = try? encoder.encode(event) else { continue }
                data += line + Data([0x0a])
            }
            // An empty write still tells whether the client is there.
            guard stream.write(data) else { return }
        }
    }

    private func snapshot() -> [String: ContainerRecord] {
        let records = (try? runtime.containers.list()) ?? []
        return Dictionary(records.filter { caller.owns($0.config.tenant) }.map { ($0.id, $0) }) { first, _ in first }
    }

    private func event(_ action: String, _ record: ContainerRecord) -> Event {
        let time: Date = switch action {
        case "start": record.state.started ?? Date()
        case "die": record.state.finished ?? Date()
        case "create": record.config.created
        default: Date()
        }
        return Event(time: ISO8601DateFormatter().string(from: time), action: action, id: record.id, name: record.name,
                     image: record.config.image, tenant: record.config.tenant,
                     exitCode: action == "die" ? record.state.exitCode : nil)
    }
}
