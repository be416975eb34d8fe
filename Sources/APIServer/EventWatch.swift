import Foundation
import Runtime

/// `GET /v1/events`: the caller's containers' lifecycle events as JSON lines, from the moment of
/// the request on, followed from the store's event journal until the client goes.
struct EventWatch {
    let runtime: Runtime
    let caller: Caller
    static let interval: useconds_t = 100_000

    /// Streams the events after `start` (where the journal ended when the request came).
    func run(_ stream: ResponseStream, from start: UInt64) {
        let journal = runtime.containers.events
        var offset = start
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        while true {
            let more = journal.read(from: offset)
            offset = more.next
            var data = Data()
            for event in more.events where caller.owns(event.tenant) {
                guard let line = try? encoder.encode(event) else { continue }
                data += line + Data([0x0a])
            }
            // An empty write still tells whether the client is there.
            guard stream.write(data) else { return }
            usleep(EventWatch.interval)
        }
    }
}
