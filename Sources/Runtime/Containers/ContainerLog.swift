import Foundation

/// One line of a container's output, as stored: JSON per line, like Docker's json-file driver.
public struct LogEntry: Codable, Equatable, Sendable {
    public var time: Date
    public var stream: String
    public var log: String
}

/// Appends a container's stdout and stderr to its log, a line per entry, rotating to
/// `container.log.1` when the file passes `maxBytes`.
///
/// Used from one thread (the supervisor's agent reader).
final class ContainerLogWriter: @unchecked Sendable {
    // @unchecked: written by one thread only, the relay's.
    private let path: String
    private let maxBytes: Int
    private var handle: FileHandle?
    private var size: Int
    private var partial: [String: [UInt8]] = [:]
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(logTimestamp(date))
        }
        return encoder
    }()

    /// Longest line kept whole; longer output is split, as Docker splits at 16 KiB.
    static let maxLine = 16 * 1024

    init(path: String, maxBytes: Int) {
        self.path = path
        self.maxBytes = maxBytes
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        handle = FileHandle(forWritingAtPath: path)
        size = Int((try? handle?.seekToEnd()) ?? 0)
    }

    func append(_ bytes: [UInt8], stream: String) {
        var buffer = partial[stream, default: []] + bytes
        while let newline = buffer.firstIndex(of: 0x0a) {
            write(Array(buffer[...newline]), stream: stream)
            buffer.removeSubrange(...newline)
        }
        while buffer.count >= ContainerLogWriter.maxLine {
            write(Array(buffer.prefix(ContainerLogWriter.maxLine)), stream: stream)
            buffer.removeFirst(ContainerLogWriter.maxLine)
        }
        partial[stream] = buffer
    }

    /// Writes out incomplete lines (at exit).
    func flush() {
        for (stream, buffer) in partial where !buffer.isEmpty { write(buffer, stream: stream) }
        partial = [:]
        try? handle?.synchronize()
    }

    private func write(_ bytes: [UInt8], stream: String) {
        let entry = LogEntry(time: Date(), stream: stream, log: String(decoding: bytes, as: UTF8.self))
        guard var line = try? encoder.encode(entry) else { return }
        line.append(0x0a)
        if size + line.count > maxBytes && size > 0 { rotate() }
        handle?.write(line)
        size += line.count
    }

    private func rotate() {
        try? handle?.close()
        let old = path + ".1"
        try? FileManager.default.removeItem(atPath: old)
        try? FileManager.default.moveItem(atPath: path, toPath: old)
        _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        handle = FileHandle(forWritingAtPath: path)
        size = 0
    }
}

/// RFC 3339 with nanoseconds, as Docker prints log timestamps.
public func logTimestamp(_ date: Date) -> String {
    let seconds = floor(date.timeIntervalSince1970)
    let nanos = Int((date.timeIntervalSince1970 - seconds) * 1e9)
    var time = time_t(seconds)
    var parts = tm()
    gmtime_r(&time, &parts)
    return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", parts.tm_year + 1900, parts.tm_mon + 1,
                  parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, nanos)
}

/// Reads a container's log, rotated part first.
public struct ContainerLogReader: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// Entries from `offset` in the current file (and all of the rotated file when `offset` is 0).
    /// Returns the entries and the offset to continue from. A torn last line is left for later.
    public func read(from offset: UInt64 = 0, includeRotated: Bool = true) -> (entries: [LogEntry], next: UInt64) {
        var entries: [LogEntry] = []
        if offset == 0 && includeRotated, let old = FileManager.default.contents(atPath: path + ".1") {
            entries += parse(old).entries
        }
        guard let handle = FileHandle(forReadingAtPath: path) else { return (entries, offset) }
        defer { try? handle.close() }
        let end = (try? handle.seekToEnd()) ?? 0
        if end < offset {
            // Rotated since the last read: start over in the new file.
            return read(from: 0, includeRotated: false)
        }
        try? handle.seek(toOffset: offset)
        let data = (try? handle.readToEnd()) ?? Data()
        let parsed = parse(data)
        return (entries + parsed.entries, offset + UInt64(parsed.consumed))
    }

    private func parse(_ data: Data) -> (entries: [LogEntry], consumed: Int) {
        var entries: [LogEntry] = []
        var consumed = 0
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            return parseLogTimestamp(text) ?? Date(timeIntervalSince1970: 0)
        }
        let bytes = [UInt8](data)
        var start = 0
        while let newline = bytes[start...].firstIndex(of: 0x0a) {
            if let entry = try? decoder.decode(LogEntry.self, from: Data(bytes[start..<newline])) { entries.append(entry) }
            start = newline + 1
            consumed = start
        }
        return (entries, consumed)
    }
}

func parseLogTimestamp(_ text: String) -> Date? {
    let parts = text.split(separator: ".")
    guard parts.count == 2, let whole = ISO8601DateFormatter().date(from: String(parts[0]) + "Z"),
          let fraction = Double("0." + parts[1].dropLast()) else { return nil }
    return whole.addingTimeInterval(fraction)
}
