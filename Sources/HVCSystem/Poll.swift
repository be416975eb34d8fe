#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Events for `poll(2)`.
public struct PollEvents: OptionSet, Sendable {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }

    public static let readable = PollEvents(rawValue: Int16(POLLIN))
    public static let writable = PollEvents(rawValue: Int16(POLLOUT))
    public static let error = PollEvents(rawValue: Int16(POLLERR))
    public static let hangUp = PollEvents(rawValue: Int16(POLLHUP))
    public static let invalid = PollEvents(rawValue: Int16(POLLNVAL))
}

/// `poll(2)` over `(fd, events)` pairs; returns what happened to each, in order.
/// A negative timeout waits forever. Returns an empty-event list on `EINTR`.
public func poll(_ entries: [(fd: Int32, events: PollEvents)], timeoutMilliseconds: Int32) throws(Errno) -> [PollEvents] {
    var fds = entries.map { pollfd(fd: $0.fd, events: $0.events.rawValue, revents: 0) }
    let count = fds.count
    do {
        try valueOrErrno(retryOnInterrupt: false) { Glibc.poll(&fds, nfds_t(count), timeoutMilliseconds) }
    } catch .interrupted {
        return Array(repeating: [], count: count)
    }
    return fds.map { PollEvents(rawValue: $0.revents) }
}

/// A moment on `CLOCK_MONOTONIC`, to bound a wait made of several polls.
public struct Deadline: Sendable {
    private let nanoseconds: UInt64

    public init(secondsFromNow seconds: Double) {
        nanoseconds = monotonicNanoseconds() + UInt64(max(seconds, 0) * 1e9)
    }

    /// The milliseconds left, rounded up, for `poll`'s timeout; nil once the moment has passed.
    public var millisecondsLeft: Int32? {
        let now = monotonicNanoseconds()
        guard now < nanoseconds else { return nil }
        return Int32(min((nanoseconds - now) / 1_000_000 + 1, UInt64(Int32.max)))
    }
}

/// Nanoseconds on `CLOCK_MONOTONIC` (in a guest: time since its kernel booted).
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Nanoseconds of CPU the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`).
public func threadCPUNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
