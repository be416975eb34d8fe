import CLinux
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An owned file descriptor, closed once: by `close()` or when the last reference goes away,
/// whichever comes first, from any thread (the number is swapped out atomically, so that no
/// two closes can close it twice, or close a number the kernel has since given to another file).
/// Reads and writes from different threads are fine, as they are for the kernel object.
public final class FileDescriptor: Sendable {
    private let number: Atomic<Int32>

    /// The descriptor's number; -1 once closed.
    public var raw: Int32 { number.load(ordering: .acquiring) }

    /// Takes ownership of `raw`.
    public init(_ raw: Int32) { number = Atomic(raw) }

    deinit { close() }

    /// `open(2)` with `O_CLOEXEC`.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(Errno) -> FileDescriptor {
        FileDescriptor(try valueOrErrno { Glibc.open(path, flags | O_CLOEXEC, mode) })
    }

    /// `pipe2(2)` with `O_CLOEXEC`; returns (read end, write end).
    public static func pipe() throws(Errno) -> (read: FileDescriptor, write: FileDescriptor) {
        var fds: [Int32] = [-1, -1]
        try valueOrErrno { hvc_pipe(&fds) }
        return (FileDescriptor(fds[0]), FileDescriptor(fds[1]))
    }

    public func close() {
        let old = number.exchange(-1, ordering: .acquiringAndReleasing)
        if old >= 0 { _ = Glibc.close(old) }
    }

    /// `accept4(2)` with `SOCK_CLOEXEC` on a listening socket: the next connection. A connection
    /// aborted before it was taken is skipped, as is an interrupted wait.
    public func accept() throws(Errno) -> FileDescriptor {
        let fd = raw
        while true {
            do {
                return FileDescriptor(try valueOrErrno { hvc_accept(fd) })
            } catch {
                if error != Errno(rawValue: ECONNABORTED) { throw error }
            }
        }
    }

    /// One `read(2)`; an empty result means end of file.
    public func read(max: Int) throws(Errno) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        let fd = raw
        let count = try valueOrErrno { buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, max) } }
        buffer.removeSubrange(count...)
        return buffer
    }

    /// Writes all of `bytes`, looping over short writes.
    public func writeAll<C: Collection<UInt8>>(_ bytes: C) throws(Errno) {
        let array = Array(bytes)
        var offset = 0
        let fd = raw
        while offset < array.count {
            let written = try valueOrErrno {
                array.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, array.count - offset) }
            }
            offset += written
        }
    }

    /// One `write(2)`; returns how much was taken (for non-blocking fds).
    public func write<C: Collection<UInt8>>(some bytes: C) throws(Errno) -> Int {
        let array = Array(bytes)
        let fd = raw
        return try valueOrErrno { array.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, array.count) } }
    }

    /// Bounds how long each read of this socket may block (SO_RCVTIMEO; 0: no bound).
    public func setReceiveTimeout(seconds: Double) {
        var value = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1e6))
        _ = setsockopt(raw, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    /// One line, without its newline, read a byte at a time so that nothing after it is
    /// consumed (what follows may be another protocol). Nil at end of file before a newline;
    /// E2BIG past `max` bytes.
    public func readLine(max: Int) throws(Errno) -> [UInt8]? {
        var line: [UInt8] = []
        while true {
            guard let byte = try read(max: 1).first else { return nil }
            if byte == 0x0a { return line }
            guard line.count < max else { throw Errno(rawValue: E2BIG) }
            line.append(byte)
        }
    }

    public func setNonBlocking(_ on: Bool = true) throws(Errno) {
        let fd = raw
        let flags = try valueOrErrno { fcntl(fd, F_GETFL) }
        try valueOrErrno { fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) }
    }
}

/// Writes `text` to standard error, best effort: a caller may hand over a closed or read-only
/// stderr (containerd's shim gives `/dev/null` opened for reading), where Foundation's
/// `FileHandle.write` would trap.
public func writeToStandardError(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else { return }
        bytes = bytes.dropFirst(written)
    }
}
