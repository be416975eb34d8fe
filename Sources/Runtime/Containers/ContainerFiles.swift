import CLayer
import Foundation
import HVCSystem
import VMM

/// Files into and out of a running container (`hvc cp`, Docker's archive routes): tar streams
/// that the container's own `tar` makes and takes, in the guest. An image without `tar` and
/// `stat` (busybox's serve) cannot be copied to or from.
public enum ContainerFiles {
    /// A new connection that speaks the control protocol to the container's supervisor (one per process run).
    public typealias Connect = () throws(HVCError) -> FrameChannel
    /// What `stat` says of a path in the container.
    public struct Stat: Equatable, Sendable {
        public var name: String
        public var size: Int64
        /// `st_mode`: type and permission bits.
        public var mode: UInt32
        public var modified: Date
        public var linkTarget: String

        public var isDirectory: Bool { mode & 0o170000 == 0o040000 }
        public var isSymlink: Bool { mode & 0o170000 == 0o120000 }
    }

    /// A path in the container: absolute (a relative one from the container's root), no NUL,
    /// trailing slashes dropped.
    public static func containerPath(_ text: String) throws(HVCError) -> String {
        guard !text.isEmpty, text.utf8.count <= 4096, !text.contains("\0") else {
            throw HVCError(.invalid, "path \"\(text.prefix(64))\" in the container is empty or not a path")
        }
        var path = text.hasPrefix("/") ? text : "/" + text
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        return path
    }

    /// `path`'s directory and last component (`/` and `.` for the root).
    static func split(_ path: String) -> (directory: String, name: String) {
        guard path != "/" else { return ("/", ".") }
        let name = (path as NSString).lastPathComponent
        let directory = (path as NSString).deletingLastPathComponent
        return (directory.isEmpty ? "/" : directory, name)
    }

    /// What `path` is in the container; `.notFound` when it is not there.
    public static func stat(over connect: Connect, _ record: ContainerRecord, path text: String) throws(HVCError) -> Stat {
        let path = try containerPath(text)
        var output: [UInt8] = []
        let ending = ContainerProcess.run(over: try connect(), record, arguments: ["stat", "-c", "%s %f %Y", path], seconds: 30) { stream, bytes in
            if stream == 1, output.count < 256 { output += bytes }
            return true
        }
        switch ending {
        case .exited(0): break
        case .exited: throw HVCError(.notFound, "no such file or directory in container \(record.name): \(path)")
        case .notStarted(let why): throw HVCError(.runtime, "container \(record.name) cannot stat files (\(why)): its image needs stat and tar")
        case .timedOut: throw HVCError(.runtime, "stat \(path) in container \(record.name) did not answer")
        case .lost(let why): throw HVCError(.conflict, "container \(record.name): \(why)")
        }
        let fields = String(decoding: output, as: UTF8.self).split(whereSeparator: \.isWhitespace)
        guard fields.count == 3, let size = Int64(fields[0]), let mode = UInt32(fields[1], radix: 16), let seconds = Double(fields[2]) else {
            throw HVCError(.runtime, "stat \(path) in container \(record.name) answered what is not a stat")
        }
        var stat = Stat(name: split(path).name, size: size, mode: mode, modified: Date(timeIntervalSince1970: seconds), linkTarget: "")
        if stat.isSymlink {
            var target: [UInt8] = []
            _ = ContainerProcess.run(over: try connect(), record, arguments: ["readlink", path], seconds: 30) { stream, bytes in
                if stream == 1, target.count < 4096 { target += bytes }
                return true
            }
            stat.linkTarget = String(decoding: target, as: UTF8.self).trimmingCharacters(in: .newlines).sanitizedGuestText
        }
        return stat
    }

    /// Writes a tar of `path` (named by its last component) to `output`, which returns false to stop.
    public static func read(over connect: Connect, _ record: ContainerRecord, path text: String,
                            output: ([UInt8]) -> Bool) throws(HVCError) {
        let path = try containerPath(text)
        let (directory, name) = split(path)
        var errors: [UInt8] = []
        let ending = ContainerProcess.run(over: try connect(), record, arguments: ["tar", "-cf", "-", "-C", directory, name]) { stream, bytes in
            if stream == 2 {
                if errors.count < ContainerProcess.keptErrorBytes { errors += bytes }
                return true
            }
            return output(bytes)
        }
        try check(ending, "tar of \(path)", record, errors)
    }

    /// Extracts the tar that `input` gives (nil or empty at its end) into the directory `path`.
    public static func write(over connect: Connect, _ record: ContainerRecord, directory text: String,
                             input: @escaping @Sendable () -> [UInt8]?) throws(HVCError) {
        let path = try containerPath(text)
        var errors: [UInt8] = []
        let ending = ContainerProcess.run(over: try connect(), record, arguments: ["tar", "-xf", "-", "-C", path], input: input) { _, bytes in
            if errors.count < ContainerProcess.keptErrorBytes { errors += bytes }
            return true
        }
        // What the container's tar refuses is the archive's fault.
        if case .exited(let code) = ending, code != 0 {
            throw HVCError(.invalid, "extracting into \(path) in container \(record.name) failed (\(code))" + ContainerProcess.reason(errors))
        }
        try check(ending, "extracting into \(path)", record, errors)
    }

    /// Renames `from` to `to` in the container.
    public static func move(over connect: Connect, _ record: ContainerRecord, from: String, to: String) throws(HVCError) {
        var errors: [UInt8] = []
        let ending = ContainerProcess.run(over: try connect(), record, arguments: ["mv", try containerPath(from), try containerPath(to)], seconds: 60) { _, bytes in
            if errors.count < ContainerProcess.keptErrorBytes { errors += bytes }
            return true
        }
        try check(ending, "mv \(from) \(to)", record, errors)
    }

    private static func check(_ ending: ContainerProcess.Ending, _ what: String, _ record: ContainerRecord, _ errors: [UInt8]) throws(HVCError) {
        switch ending {
        case .exited(0): return
        case .exited(let code): throw HVCError(.runtime, "\(what) in container \(record.name) failed (\(code))" + ContainerProcess.reason(errors))
        case .notStarted(let why): throw HVCError(.runtime, "container \(record.name) cannot copy files (\(why)): its image needs tar")
        case .timedOut: throw HVCError(.runtime, "\(what) in container \(record.name) did not finish")
        case .lost(let why): throw HVCError(.conflict, "container \(record.name): \(why)")
        }
    }
}

extension ContainerFiles {
    /// Most bytes a copy out of a container writes on the host.
    public static let maxCopyBytes: UInt64 = 64 << 30

    /// Copies `path` out of the container to `destination` on the host (into it when it is a
    /// directory, else as it), through a chrooted extraction that keeps files, directories and
    /// links inside it, never set-ID bits or devices. Returns the path written.
    public static func copyOut(over connect: Connect, _ record: ContainerRecord, path: String, to destination: String) throws(HVCError) -> String {
        let source = try stat(over: connect, record, path: path)
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: destination, isDirectory: &isDirectory)
        let target = exists && isDirectory.boolValue ? (destination as NSString).appendingPathComponent(source.name) : destination
        let parent = (target as NSString).deletingLastPathComponent
        guard FileManager.default.fileExists(atPath: parent.isEmpty ? "." : parent, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw HVCError(.invalid, "\(parent) is not a directory on the host: give an existing directory or a path in one")
        }
        var template = Array(((parent.isEmpty ? "." : parent) + "/.hvc-cp-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw HVCError(.runtime, "a staging directory in \(parent): \(Errno.current)") }
        let staging = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: staging) }
        let archive = staging + "/archive.tar", tree = staging + "/tree"
        guard mkdir(tree, 0o700) == 0 else { throw HVCError(.runtime, "mkdir \(tree): \(Errno.current)") }
        let file: FileDescriptor
        do {
            file = try FileDescriptor.open(archive, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        } catch {
            throw HVCError("creating \(archive)", cause: error)
        }
        var written: UInt64 = 0
        var failed = false
        do throws(HVCError) {
            try read(over: connect, record, path: path) { bytes in
                written += UInt64(bytes.count)
                guard written <= maxCopyBytes else { return false }
                failed = (try? file.writeAll(bytes)) == nil
                return !failed
            }
        } catch where written > maxCopyBytes {
            throw HVCError(.tooLarge, "\(path) in container \(record.name) is over \(maxCopyBytes) bytes")
        }
        file.close()
        if failed { throw HVCError(.runtime, "writing \(archive) failed: is the host's disk full?") }
        var message = [CChar](repeating: 0, count: 1024)
        guard hvc_extract_copy(archive, tree, maxCopyBytes, &message, message.count) == 0 else {
            throw HVCError(.runtime, "copying \(path) out of container \(record.name): " + String(cString: message).sanitizedGuestText)
        }
        let copied = tree + "/" + (source.name == "." ? "" : source.name)
        if rename(copied, target) != 0 {
            throw HVCError(.conflict, "\(target): \(Errno.current): remove it first, or copy into another place")
        }
        return target
    }

    /// Copies `source` on the host into the container at `path` (into it when it is a
    /// directory there, else as it, in a directory that exists).
    public static func copyIn(over connect: Connect, _ record: ContainerRecord, from source: String, to path: String) throws(HVCError) {
        let target = try containerPath(path)
        guard FileManager.default.fileExists(atPath: source) else { throw HVCError(.notFound, "\(source): no such file or directory on the host") }
        let name = (source as NSString).lastPathComponent
        let sourceDirectory = (source as NSString).deletingLastPathComponent
        let existing = try? stat(over: connect, record, path: target)
        let into: String
        var rename: String?
        if let existing, existing.isDirectory {
            into = target
        } else {
            let parent = split(target).directory
            guard (try? stat(over: connect, record, path: parent))?.isDirectory == true else {
                throw HVCError(.notFound, "\(parent) is not a directory in container \(record.name)")
            }
            into = parent
            if split(target).name != name { rename = target }
        }
        // The host's tar, as this user: what it cannot read stays out.
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/bin/tar")
        tar.arguments = ["-cf", "-", "-C", sourceDirectory.isEmpty ? "." : sourceDirectory, "--", name]
        let pipe = Pipe(), errors = Pipe()
        tar.standardOutput = pipe
        tar.standardError = errors
        do { try tar.run() } catch { throw HVCError("cannot run /bin/tar", cause: error) }
        let reader = pipe.fileHandleForReading
        try write(over: connect, record, directory: into) {
            let data = reader.availableData
            return data.isEmpty ? nil : Array(data)
        }
        tar.waitUntilExit()
        guard tar.terminationStatus == 0 else {
            let said = String(decoding: errors.fileHandleForReading.readDataToEndOfFile().prefix(512), as: UTF8.self)
            throw HVCError(.runtime, "tar of \(source): " + said.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        if let rename { try move(over: connect, record, from: into + "/" + name, to: rename) }
    }
}
