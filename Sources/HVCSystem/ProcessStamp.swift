#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A process as its pid and its start time (clock ticks after boot, `/proc/PID/stat` field 22).
/// Pids come back soon (`pid_max` is 32768 on many hosts), so a record of a process by its pid
/// alone takes a later process for its writer once the writer is dead; the start time tells
/// them apart. Written as `PID START`, with a START of 0 where it could not be read.
public struct ProcessStamp: Hashable, Sendable, CustomStringConvertible {
    public let pid: Int32
    /// nil where unknown: such a record is believed while its pid runs.
    public let start: UInt64?

    public init(pid: Int32, start: UInt64?) {
        self.pid = pid
        self.start = start
    }

    /// The calling process.
    public static var current: ProcessStamp {
        let pid = getpid()
        return ProcessStamp(pid: pid, start: ProcessStamp.status(of: pid)?.start)
    }

    /// The process `pid` as it runs now (its start time read), nil when it does not run.
    public static func running(_ pid: Int32) -> ProcessStamp? {
        guard let status = status(of: pid), status.state != "Z", status.state != "X" else { return nil }
        return ProcessStamp(pid: pid, start: status.start)
    }

    /// `PID START` (the two leading fields of `text`, separated by blanks or by `separator`); a
    /// lone `PID` too.
    public init?(parsing text: some StringProtocol, separator: Character = " ") {
        let fields = text.split(maxSplits: 2, whereSeparator: { $0 == separator || $0 == " " || $0 == "\n" || $0 == "\t" })
        guard let first = fields.first, let pid = Int32(first), pid > 0 else { return nil }
        let start = fields.count > 1 ? UInt64(fields[1]) : nil
        self.init(pid: pid, start: start == 0 ? nil : start)
    }

    public var description: String { "\(pid) \(start ?? 0)" }

    /// `PID-START`, for a file's name.
    public var nameComponent: String { "\(pid)-\(start ?? 0)" }

    /// Whether this process runs: its pid lives, is not a zombie, and started when recorded.
    public var isAlive: Bool {
        guard let running = ProcessStamp.running(pid) else { return false }
        return start.map { $0 == running.start } ?? true
    }

    /// A pid's state letter and start time, nil when no such process exists.
    static func status(of pid: Int32) -> (state: Character, start: UInt64)? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = read(fd, &buffer, buffer.count)
        guard count > 0 else { return nil }
        // The command name, in parentheses, may hold blanks and parentheses: fields follow the last ")".
        let bytes = buffer[0..<count]
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        // fields[0] is field 3 (the state); the start time is field 22.
        guard fields.count > 19, let state = fields[0].first,
              let start = UInt64(String(decoding: fields[19], as: UTF8.self)) else { return nil }
        return (Character(UnicodeScalar(state)), start)
    }
}
