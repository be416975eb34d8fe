import CLinux
import Foundation
import HVCSystem
import Synchronization

/// Changes in a container store as they happen, without polling: a container's state file
/// rewritten, its log written, its directory removed, its supervisor's end (a pidfd: a killed
/// supervisor writes nothing), a process's end, and the event journal growing.
///
/// One inotify instance, one epoll set and one thread per store serve every observer, however
/// many: each observer is a closure called on that thread, which must not block. A change is
/// reported at least once; several changes may be reported as one.
public final class ContainerWatch: Sendable {
    /// An observer's registration, to cancel it.
    public struct Token: Hashable, Sendable {
        let value: UInt64
    }

    let store: ContainerStore
    private let inotify: Inotify
    private let poll: EventPoll
    /// Written to wake the thread when there is work that no descriptor reports.
    private let wake: (read: FileDescriptor, write: FileDescriptor)
    private let state = Mutex(State())

    /// epoll tokens: the inotify instance, the wake pipe; processes' descriptors have their registration's.
    private static let inotifyToken: UInt64 = 0
    private static let wakeToken: UInt64 = 1

    private struct ContainerEntry {
        var watch: Int32?
        var observers: [Token: @Sendable (ContainerRecord?) -> Bool] = [:]
        /// The supervisor whose end is watched, and its registration.
        var supervisor: ProcessStamp?
        var supervisorToken: Token?
    }

    private struct ProcessEntry {
        let descriptor: FileDescriptor
        let ended: @Sendable () -> Void
    }

    private struct State {
        var nextToken: UInt64 = 2
        var containers: [String: ContainerEntry] = [:]
        var byWatch: [Int32: String] = [:]
        /// Containers to look at on the thread's next turn.
        var dirty: Set<String> = []
        var journalWatch: Int32?
        var journalObservers: [Token: @Sendable () -> Bool] = [:]
        var journalDirty = false
        var processes: [UInt64: ProcessEntry] = [:]
        var threadStarted = false

        mutating func makeToken() -> Token {
            defer { nextToken += 1 }
            return Token(value: nextToken)
        }

        /// Marks what `events` concern.
        mutating func note(_ events: [Inotify.Event], journalName: String) {
            for event in events {
                if event.watch == -1 {
                    // The queue overflowed: anything may have changed.
                    dirty.formUnion(containers.keys)
                    journalDirty = true
                    continue
                }
                if event.watch == journalWatch {
                    if event.name.hasPrefix(journalName) { journalDirty = true }
                    continue
                }
                guard let id = byWatch[event.watch] else { continue }
                if event.endsWatch {
                    byWatch[event.watch] = nil
                    containers[id]?.watch = -1
                }
                if event.name.isEmpty || ["state.json", "container.log"].contains(event.name) { dirty.insert(id) }
            }
        }

        /// Forgets a container nobody observes; returns what to take away: its directory's watch
        /// and the registration of its supervisor's end.
        mutating func dropIfUnobserved(_ id: String) -> Dropped? {
            guard let entry = containers[id], entry.observers.isEmpty else { return nil }
            containers[id] = nil
            dirty.remove(id)
            var dropped = Dropped(supervisor: entry.supervisorToken)
            if let watch = entry.watch, watch >= 0 {
                byWatch[watch] = nil
                dropped.watch = watch
            }
            return dropped
        }
    }

    private struct Dropped {
        var watch: Int32?
        var supervisor: Token?
    }

    private static let registry = Mutex<[String: ContainerWatch]>([:])

    /// The watch of `store` in this process, made on first use.
    public static func of(_ store: ContainerStore) throws(HVCError) -> ContainerWatch {
        let found: Result<ContainerWatch, HVCError> = registry.withLock { watches in
            if let watch = watches[store.directory] { return .success(watch) }
            do {
                let watch = try ContainerWatch(store: store)
                watches[store.directory] = watch
                return .success(watch)
            } catch {
                return .failure(HVCError("cannot watch \(store.directory)", cause: error))
            }
        }
        return try found.get()
    }

    private init(store: ContainerStore) throws(Errno) {
        self.store = store
        inotify = try Inotify()
        poll = try EventPoll()
        wake = try FileDescriptor.pipe()
        _ = fcntl(wake.read.raw, F_SETFL, O_NONBLOCK)
        _ = fcntl(wake.write.raw, F_SETFL, O_NONBLOCK)
        try poll.add(inotify.descriptor.raw, token: ContainerWatch.inotifyToken)
        try poll.add(wake.read.raw, token: ContainerWatch.wakeToken)
    }

    // MARK: Observing

    /// Calls `changed` with the container's record on the watch's thread: once soon after this
    /// call, then after each change of its state, log or supervisor, and a last time with nil
    /// once it is gone. Stops when `changed` returns false or the registration is cancelled.
    @discardableResult
    public func observe(_ id: String, _ changed: @escaping @Sendable (ContainerRecord?) -> Bool) -> Token {
        let token = state.withLock { state in
            let token = state.makeToken()
            state.containers[id, default: ContainerEntry()].observers[token] = changed
            state.dirty.insert(id)
            return token
        }
        startThread()
        signal()
        return token
    }

    /// Calls `grew` on the watch's thread after the event journal may have grown (once soon
    /// after this call, too), until it returns false or the registration is cancelled.
    @discardableResult
    public func observeJournal(_ grew: @escaping @Sendable () -> Bool) -> Token {
        let token = state.withLock { state in
            let token = state.makeToken()
            state.journalObservers[token] = grew
            state.journalDirty = true
            return token
        }
        startThread()
        signal()
        return token
    }

    /// Tells the container's observers again, as if it had changed.
    public func recheck(_ id: String) {
        state.withLock { state in
            if state.containers[id] != nil { state.dirty.insert(id) }
        }
        signal()
    }

    /// Tells the journal's observers again, as if it had grown.
    public func recheckJournal() {
        state.withLock { $0.journalDirty = true }
        signal()
    }

    /// Calls `ended` once on the watch's thread when `process` ends (soon, if it has already).
    @discardableResult
    public func observeEnd(of process: ProcessStamp, _ ended: @escaping @Sendable () -> Void) -> Token {
        startThread()
        guard let descriptor = process.exitDescriptor() else {
            let token = state.withLock { $0.makeToken() }
            ended()
            return token
        }
        let token = state.withLock { state in
            let token = state.makeToken()
            state.processes[token.value] = ProcessEntry(descriptor: descriptor, ended: ended)
            return token
        }
        do {
            try poll.add(descriptor.raw, token: token.value)
        } catch {
            state.withLock { _ = $0.processes.removeValue(forKey: token.value) }
            ended()
        }
        return token
    }

    /// Ends a registration; its closure is not called after this returns, unless it is being
    /// called right now.
    public func cancel(_ token: Token) {
        let (dropped, process) = state.withLock { state -> (Dropped?, ProcessEntry?) in
            if state.journalObservers.removeValue(forKey: token) != nil { return (nil, nil) }
            if let process = state.processes.removeValue(forKey: token.value) { return (nil, process) }
            for (id, var entry) in state.containers where entry.observers[token] != nil {
                entry.observers[token] = nil
                state.containers[id] = entry
                return (state.dropIfUnobserved(id), nil)
            }
            return (nil, nil)
        }
        if let dropped { takeAway(dropped) }
        if let process { poll.remove(process.descriptor.raw) }
    }

    private func takeAway(_ dropped: Dropped) {
        if let watch = dropped.watch { inotify.unwatch(watch) }
        if let supervisor = dropped.supervisor { cancel(supervisor) }
    }

    // MARK: Waiting (for callers that block)

    /// Blocks until `done` holds for the container's record (nil: it is gone), or `seconds`
    /// pass, or `process` (when given) ends; returns the last record seen.
    public func wait(for id: String, seconds: Double, orEndOf process: ProcessStamp? = nil,
                     until done: @escaping @Sendable (ContainerRecord?) -> Bool) -> ContainerRecord? {
        let finished = DispatchSemaphore(value: 0)
        let last = Mutex<ContainerRecord?>(nil)
        let token = observe(id) { record in
            last.withLock { $0 = record }
            guard done(record) else { return true }
            finished.signal()
            return false
        }
        let processToken = process.map { observeEnd(of: $0) { finished.signal() } }
        _ = finished.wait(timeout: .now() + seconds)
        cancel(token)
        if let processToken { cancel(processToken) }
        return last.withLock { $0 }
    }

    /// Blocks until `process` ends or `seconds` pass; returns whether it ended.
    public func waitForEnd(of process: ProcessStamp, seconds: Double) -> Bool {
        let finished = DispatchSemaphore(value: 0)
        let token = observeEnd(of: process) { finished.signal() }
        let ended = finished.wait(timeout: .now() + seconds) == .success
        cancel(token)
        return ended
    }

    // MARK: The thread

    private func signal() {
        var byte: UInt8 = 1
        _ = Glibc.write(wake.write.raw, &byte, 1)
    }

    private func startThread() {
        let start = state.withLock { state in
            defer { state.threadStarted = true }
            return !state.threadStarted
        }
        guard start else { return }
        let thread = Thread { [self] in
            while true { turn() }
        }
        thread.name = "hvc-container-watch"
        thread.start()
    }

    /// One wait for events, then the observers they concern.
    private func turn() {
        let ready = (try? poll.wait()) ?? []
        var ended: [@Sendable () -> Void] = []
        for token in ready {
            switch token {
            case ContainerWatch.inotifyToken:
                let events = inotify.read()
                state.withLock { state in state.note(events, journalName: ContainerWatch.journalName) }
            case ContainerWatch.wakeToken:
                var buffer = [UInt8](repeating: 0, count: 256)
                while Glibc.read(wake.read.raw, &buffer, buffer.count) > 0 {}
            default:
                if let process = state.withLock({ $0.processes.removeValue(forKey: token) }) {
                    poll.remove(process.descriptor.raw)
                    ended.append(process.ended)
                }
            }
        }
        for callback in ended { callback() }
        ensureJournalWatch()
        deliverJournal()
        let dirty = state.withLock { state in
            defer { state.dirty = [] }
            return state.dirty
        }
        for id in dirty { deliver(id) }
    }

    private static let journalName = ".events.jsonl"
    private static let containerMask = UInt32(HVC_IN_MODIFY | HVC_IN_MOVED_TO | HVC_IN_CREATE | HVC_IN_MOVE_SELF | HVC_IN_DELETE_SELF)

    /// Reads the container once and tells each of its observers; forgets it when none is left.
    private func deliver(_ id: String) {
        guard ensureContainerWatch(id) else { return }
        let record = try? store.load(id)
        let observers = state.withLock { $0.containers[id]?.observers ?? [:] }
        var finished: [Token] = []
        for (token, observer) in observers where !observer(record) { finished.append(token) }
        if record != nil { watchSupervisor(id, record) }
        let dropped = state.withLock { state -> Dropped? in
            guard var entry = state.containers[id] else { return nil }
            for token in finished { entry.observers[token] = nil }
            if record == nil { entry.observers = [:] }
            state.containers[id] = entry
            return state.dropIfUnobserved(id)
        }
        if let dropped { takeAway(dropped) }
    }

    /// Watches the container's directory from its first look on; false when nobody observes
    /// it any more. A directory that cannot be watched (gone) still has its observers told.
    private func ensureContainerWatch(_ id: String) -> Bool {
        let known = state.withLock { state -> Bool? in
            guard let entry = state.containers[id] else { return nil }
            return entry.watch != nil
        }
        guard let known else { return false }
        if known { return true }
        let watch = try? inotify.watch(store.path(id), mask: ContainerWatch.containerMask)
        let observed = state.withLock { state -> Bool in
            guard state.containers[id] != nil else { return false }
            state.containers[id]?.watch = watch ?? -1
            if let watch { state.byWatch[watch] = id }
            return true
        }
        if !observed, let watch { inotify.unwatch(watch) }
        return observed
    }

    /// Follows the end of the container's current supervisor: a killed one rewrites nothing,
    /// and its container is settled (exited) when next read.
    private func watchSupervisor(_ id: String, _ record: ContainerRecord?) {
        guard let record, record.state.status != .exited, let supervisor = record.state.supervisor else { return }
        let known = state.withLock { $0.containers[id]?.supervisor }
        guard known != supervisor else { return }
        state.withLock { $0.containers[id]?.supervisor = supervisor }
        let token = observeEnd(of: supervisor) { [self] in
            state.withLock { _ = $0.dirty.insert(id) }
            signal()
        }
        let stale = state.withLock { state -> Bool in
            guard state.containers[id] != nil else { return true }
            state.containers[id]?.supervisorToken = token
            return false
        }
        if stale { cancel(token) }
    }

    private func ensureJournalWatch() {
        let wanted = state.withLock { !$0.journalObservers.isEmpty && $0.journalWatch == nil }
        guard wanted else { return }
        try? makeDirectory(store.directory, mode: 0o711)
        let watch = try? inotify.watch(store.directory, mask: UInt32(HVC_IN_MODIFY | HVC_IN_MOVED_TO | HVC_IN_CREATE))
        state.withLock { $0.journalWatch = watch }
    }

    private func deliverJournal() {
        let observers = state.withLock { state -> [Token: @Sendable () -> Bool] in
            guard state.journalDirty else { return [:] }
            state.journalDirty = false
            return state.journalObservers
        }
        var finished: [Token] = []
        for (token, observer) in observers where !observer() { finished.append(token) }
        state.withLock { state in for token in finished { state.journalObservers[token] = nil } }
    }
}
