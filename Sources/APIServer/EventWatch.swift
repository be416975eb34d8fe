import Foundation
import Runtime
import Synchronization

/// Moves what a source holds past an offset into a response feed, one pass at a time: a pass
/// reads from the offset, writes, and moves the offset on. While the client is behind (its
/// feed not writable) a pass reads nothing and asks for another a little later.
final class FeedPump: Sendable {
    struct Progress {
        var offset: UInt64
        var done = false
    }

    /// What a pass read: the bytes to send, the offset after them, and whether the body ends with them.
    struct Read {
        var data: Data
        var next: UInt64
        var ends = false
    }

    private let feed: ResponseFeed
    private let progress: Mutex<Progress>

    init(feed: ResponseFeed, offset: UInt64) {
        self.feed = feed
        progress = Mutex(Progress(offset: offset))
    }

    /// One pass; `again` is how to ask for another later. Returns false once the feed is done.
    func pass(again: @escaping @Sendable () -> Void, _ read: (UInt64) -> Read) -> Bool {
        progress.withLock { progress in
            guard !progress.done else { return false }
            guard feed.isWritable else {
                feed.retryLater(again)
                return true
            }
            let more = read(progress.offset)
            progress.offset = more.next
            guard feed.write(more.data) else {
                progress.done = true
                return false
            }
            if more.ends {
                progress.done = true
                feed.finish()
            }
            return !progress.done
        }
    }
}

/// `GET /v1/events`: the caller's containers' lifecycle events as JSON lines, from the moment of
/// the request on, read from the store's event journal each time it grows, until the client goes.
struct EventWatch: Sendable {
    let journal: ContainerEventJournal
    let caller: Caller
    /// Where the journal ended when the request came.
    let offset: UInt64
    let watch: ContainerWatch
    /// An event as the client reads it (one JSON line), or nil to leave it out.
    var render: @Sendable (ContainerEvent) -> Data? = EventWatch.jsonLine

    static let jsonLine: @Sendable (ContainerEvent) -> Data? = { event in
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(event)).map { $0 + Data([0x0a]) }
    }

    /// Follows the journal into `feed` (after `first`); returns how to stop.
    func start(_ feed: ResponseFeed, first: Data = Data()) -> @Sendable () -> Void {
        guard feed.write(first) else { return {} }
        let pump = FeedPump(feed: feed, offset: offset)
        let (journal, caller, watch, render) = (journal, caller, watch, render)
        let token = watch.observeJournal {
            pump.pass(again: { watch.recheckJournal() }) { offset in
                let more = journal.read(from: offset)
                var data = Data()
                for event in more.events where caller.owns(event.tenant) {
                    if let line = render(event) { data += line }
                }
                return FeedPump.Read(data: data, next: more.next)
            }
        }
        return { watch.cancel(token) }
    }
}

/// `GET /v1/containers/{id}/logs?follow=true`: the log's new entries each time it is written,
/// until the container has exited and all of its output is sent, or the client goes.
struct LogFollow: Sendable {
    let id: String
    let reader: ContainerLogReader
    /// Where the log ended when what was sent first was read.
    let offset: UInt64
    let watch: ContainerWatch
    /// The bytes of log entries, as the client reads them.
    var render: @Sendable ([LogEntry]) -> Data = { Data($0.map(\.log).joined().utf8) }

    /// Sends `first`, then follows the log into `feed`; returns how to stop.
    func start(_ feed: ResponseFeed, first: Data) -> @Sendable () -> Void {
        guard feed.write(first) else { return {} }
        let pump = FeedPump(feed: feed, offset: offset)
        let (id, reader, watch, render) = (id, reader, watch, render)
        let token = watch.observe(id) { record in
            // The state was read before the log: all output of an exited container is in it.
            let exited = record.map { $0.state.status != .running && $0.state.status != .created } ?? true
            return pump.pass(again: { watch.recheck(id) }) { offset in
                let more = reader.read(from: offset, includeRotated: false)
                return FeedPump.Read(data: render(more.entries), next: more.next, ends: exited)
            }
        }
        return { watch.cancel(token) }
    }
}
