import Foundation
import HVCSystem

/// An error as runc reports it: a line on stderr and, with `--log`, a line in the log
/// (containerd reads the last `error` line of a JSON log).
struct ErrorLog {
    /// The `--log` file.
    var path: String?
    /// `--log-format json`; else logfmt text.
    var json: Bool

    /// The log's line for `message` at `time`.
    func line(_ message: String, time: String) -> String {
        if json, let data = try? JSONSerialization.data(withJSONObject: ["level": "error", "msg": message, "time": time]) {
            return String(decoding: data, as: UTF8.self)
        }
        return "time=\"\(time)\" level=error msg=\"\(message)\""
    }

    /// Reports `message` and ends the process with `code`.
    func fail(_ message: String, code: Int32 = 1) -> Never {
        writeToStandardError("hvc-oci: \(message)\n")
        if let path, let handle = FileHandle(forWritingAtPath: path) ?? {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        }() {
            handle.seekToEndOfFile()
            handle.write(Data((line(message, time: ISO8601DateFormatter().string(from: Date())) + "\n").utf8))
        }
        exit(code)
    }
}
