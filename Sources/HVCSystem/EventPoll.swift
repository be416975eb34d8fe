import CLinux
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An `epoll(7)` set: waits on many descriptors at once, each registered with a number the
/// caller chooses and gets back when that descriptor is ready. Level-triggered.
public final class EventPoll: Sendable {
    private let descriptor: FileDescriptor

    /// `epoll_create1(EPOLL_CLOEXEC)`.
    public init() throws(Errno) {
        descriptor = FileDescriptor(try valueOrErrno { hvc_epoll_create() })
    }

    /// `epoll_ctl(EPOLL_CTL_ADD)`: reports `fd` as `token` when it is readable (or hung up).
    public func add(_ fd: Int32, token: UInt64) throws(Errno) {
        try valueOrErrno { hvc_epoll_add(descriptor.raw, fd, token) }
    }

    /// `epoll_ctl(EPOLL_CTL_DEL)`; a descriptor already closed has left the set by itself.
    public func remove(_ fd: Int32) {
        _ = hvc_epoll_remove(descriptor.raw, fd)
    }

    /// `epoll_wait(2)`: the tokens of the ready descriptors (none when interrupted or timed out).
    /// A negative timeout waits until one is ready.
    public func wait(timeoutMilliseconds: Int32 = -1) throws(Errno) -> [UInt64] {
        var tokens = [UInt64](repeating: 0, count: 64)
        let fd = descriptor.raw
        let count: Int32
        do {
            count = try valueOrErrno(retryOnInterrupt: false) { hvc_epoll_wait(fd, &tokens, 64, timeoutMilliseconds) }
        } catch {
            return []
        }
        return Array(tokens.prefix(Int(count)))
    }
}

/// An `inotify(7)` instance: changes to watched directories and files, read as events.
public final class Inotify: Sendable {
    public let descriptor: FileDescriptor

    /// One change: the watch it belongs to, what happened, and the entry's name when the
    /// watch is a directory.
    public struct Event: Sendable, Equatable {
        public var watch: Int32
        public var mask: UInt32
        public var name: String

        /// The watch is gone: its directory was removed or the watch taken away.
        public var endsWatch: Bool { mask & UInt32(HVC_IN_IGNORED) != 0 }
    }

    /// `inotify_init1(IN_NONBLOCK | IN_CLOEXEC)`.
    public init() throws(Errno) {
        descriptor = FileDescriptor(try valueOrErrno { hvc_inotify_init() })
    }

    /// `inotify_add_watch(2)`: the watch of `path`. The same inode watched twice gives the same
    /// watch, with the last mask.
    public func watch(_ path: String, mask: UInt32) throws(Errno) -> Int32 {
        try valueOrErrno { hvc_inotify_add_watch(descriptor.raw, path, mask) }
    }

    /// `inotify_rm_watch(2)`.
    public func unwatch(_ watch: Int32) {
        _ = hvc_inotify_rm_watch(descriptor.raw, watch)
    }

    /// Every event queued now (none when there is none: the descriptor does not block).
    public func read() -> [Event] {
        var events: [Event] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let fd = descriptor.raw
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { return events }
            events += Inotify.parse(buffer[0..<count])
        }
    }

    /// The events in `bytes`, as `struct inotify_event` records; a truncated record ends the list.
    public static func parse(_ bytes: ArraySlice<UInt8>) -> [Event] {
        let header = 16
        var events: [Event] = []
        var offset = bytes.startIndex
        while bytes.endIndex - offset >= header {
            func word(_ at: Int) -> UInt32 {
                (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + at + $1]) << (8 * $1) }
            }
            let length = Int(word(12))
            guard bytes.endIndex - offset - header >= length else { break }
            let nameBytes = bytes[(offset + header)..<(offset + header + length)]
            let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            events.append(Event(watch: Int32(bitPattern: word(0)), mask: word(4), name: name))
            offset += header + length
        }
        return events
    }
}

extension ProcessStamp {
    /// A descriptor that becomes readable when this process ends (`pidfd_open(2)`), or nil when
    /// it has ended already (or its pid now names a later process).
    public func exitDescriptor() -> FileDescriptor? {
        let fd = hvc_pidfd_open(pid)
        guard fd >= 0 else { return nil }
        let handle = FileDescriptor(fd)
        // Opened after the check would take a reused pid for the process: check after.
        return isAlive ? handle : nil
    }
}

extension ProcessStamp {
    /// Waits until this process ends, at most `seconds`; true once it has (or had already).
    public func awaitEnd(seconds: Double) -> Bool {
        guard let handle = exitDescriptor() else { return true }
        let deadline = Deadline(secondsFromNow: seconds)
        while true {
            guard let left = deadline.millisecondsLeft else { return !isAlive }
            if let ready = try? poll([(handle.raw, .readable)], timeoutMilliseconds: left), ready.first?.isEmpty == false { return true }
        }
    }
}

/// Waits on a directory's changes instead of polling it: `condition` is checked at first and
/// after each change of an entry in `directory` (created, removed, renamed, written), until it
/// holds, or `seconds` pass, or one of `whileAlive` ends. Returns whether it held.
public func awaitChange(in directory: String, seconds: Double, whileAlive: [ProcessStamp] = [],
                        until condition: () -> Bool) -> Bool {
    if condition() { return true }
    guard let inotify = try? Inotify(),
          (try? inotify.watch(directory, mask: UInt32(HVC_IN_CREATE | HVC_IN_MOVED_TO | HVC_IN_MODIFY | HVC_IN_DELETE | HVC_IN_MOVED_FROM
                                                        | HVC_IN_DELETE_SELF | HVC_IN_ATTRIB))) != nil else {
        return condition()
    }
    // A change between the first check and the watch is seen by checking again.
    if condition() { return true }
    var handles: [FileDescriptor] = []
    for process in whileAlive {
        guard let handle = process.exitDescriptor() else { return condition() }
        handles.append(handle)
    }
    let deadline = Deadline(secondsFromNow: seconds)
    while true {
        guard let left = deadline.millisecondsLeft else { return condition() }
        let entries = [(inotify.descriptor.raw, PollEvents.readable)] + handles.map { ($0.raw, PollEvents.readable) }
        guard let ready = try? poll(entries, timeoutMilliseconds: left) else { return condition() }
        if ready.dropFirst().contains(where: { !$0.isEmpty }) { return condition() }
        if !ready[0].isEmpty {
            let events = inotify.read()
            if condition() { return true }
            if events.contains(where: \.endsWatch) { return false }
        }
    }
}

/// Connects to the Unix socket `path` once `process` has made it and listens on it: waits for
/// the socket to appear in its directory (inotify) while the process lives, at most `seconds`.
/// Returns the connection, or the last error (`noEntry` if the socket never appeared).
public func connectWhenListening(_ path: String, seconds: Double, whileAlive process: ProcessStamp) -> Result<FileDescriptor, Errno> {
    var last = Errno.noEntry
    var connected: FileDescriptor?
    let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    _ = awaitChange(in: directory.isEmpty ? "/" : directory, seconds: seconds, whileAlive: [process]) {
        // The file appears at bind(2); connections are refused until listen(2) a moment later,
        // a window no event marks: it alone is retried.
        for _ in 0..<200 {
            let fd = hvc_unix_connect(path)
            if fd >= 0 {
                connected = FileDescriptor(fd)
                return true
            }
            last = Errno.current
            guard last == .connectionRefused else { return false }
            usleep(500)
        }
        return false
    }
    return connected.map { .success($0) } ?? .failure(last)
}
