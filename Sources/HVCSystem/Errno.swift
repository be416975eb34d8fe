#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call's `errno`.
public struct Errno: Error, Equatable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The calling thread's current `errno`.
    public static var current: Errno { Errno(rawValue: errno) }

    public static let interrupted = Errno(rawValue: EINTR)
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let noEntry = Errno(rawValue: ENOENT)
    public static let exists = Errno(rawValue: EEXIST)
    public static let accessDenied = Errno(rawValue: EACCES)
    public static let noChild = Errno(rawValue: ECHILD)
    public static let connectionRefused = Errno(rawValue: ECONNREFUSED)
    public static let notDirectory = Errno(rawValue: ENOTDIR)
    public static let notEmpty = Errno(rawValue: ENOTEMPTY)
    public static let noDeviceOrAddress = Errno(rawValue: ENXIO)

    public var description: String { String(cString: strerror(rawValue)) }
}

/// Runs a system call that returns -1 and sets `errno` on failure, retrying on `EINTR`.
@discardableResult
public func valueOrErrno<I: FixedWidthInteger>(retryOnInterrupt: Bool = true, _ call: () -> I) throws(Errno) -> I {
    while true {
        let value = call()
        if value != -1 { return value }
        let error = Errno.current
        if retryOnInterrupt && error == .interrupted { continue }
        throw error
    }
}
