import CLinux
import Foundation
import HVCSystem

/// A read-only tree holding only some host files under `/usr`, each at the path a jailed
/// process opens it by, bound as a jail's `/usr` in place of the host's: a VMM's binary, its
/// dynamic loader and libraries, the modules it loads and its firmware.
///
/// One tree per contents, `<directory>/<key>/usr`, with its manifest beside it. Made once (hard
/// links to the host's files, copies where the state directory is on another file system) and
/// made again when any file it was made from has changed: a check reads the manifest and stats
/// each file, nothing more. Made and replaced whole (a staging directory renamed into place, or
/// exchanged with the old tree), so that a VMM started meanwhile binds the old tree or the new,
/// never a part of one.
public struct UsrTree: Sendable {
    /// What a tree holds: ELF objects placed with every library the loader maps for them, and
    /// files placed as they are.
    public struct Contents: Equatable, Sendable {
        /// Executables, and modules they load (each with its libraries).
        public private(set) var objects: [String]
        /// Other files: firmware.
        public private(set) var files: [String]

        public init(objects: [String], files: [String] = []) {
            self.objects = Array(Set(objects)).sorted()
            self.files = Array(Set(files)).sorted()
        }

        /// The tree's directory name: FNV-1a of the contents. The manifest names the contents
        /// too, so two contents of one key replace each other's tree; they never share one.
        public var key: String {
            let text = (objects.map { "object " + $0 } + files.map { "file " + $0 }).joined(separator: "\n")
            let hash = text.utf8.reduce(UInt64(0xcbf2_9ce4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
            let hex = String(hash, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }
    }

    /// Where the trees are kept (one directory per contents).
    public let directory: String
    public let contents: Contents

    public init(directory: String, contents: Contents) {
        self.directory = directory
        self.contents = contents
    }

    /// This tree's directory: its `usr` and its manifest.
    var home: String { directory + "/" + contents.key }
    /// What a jail binds as its `/usr`.
    public var path: String { home + "/usr" }
    var manifestPath: String { home + "/manifest" }

    /// The tree's manifest, if the tree is there and current.
    public func currentManifest() -> Manifest? {
        guard let text = try? String(contentsOfFile: manifestPath, encoding: .utf8),
              let manifest = Manifest(text: text),
              manifest.isCurrent(for: contents, identity: FileIdentity.of) else { return nil }
        return manifest
    }

    /// Makes the tree, or makes it again, unless it is current; returns its manifest.
    @discardableResult
    public func prepare() throws(JailError) -> Manifest {
        if let manifest = currentManifest() { return manifest }
        return try build()
    }

    /// Where a jailed process finds host file `path` in its `/usr`, relative to it: a path under
    /// `/usr` as it is, one under the jail's merged-/usr links (`/lib`, `/lib64`, `/bin`) under
    /// the directory they point to; `.` and `..` taken as the kernel takes them in a tree of
    /// plain directories. Nil for anything else, which a jail holding only `/usr` cannot show.
    public static func placement(of path: String) -> String? {
        guard path.hasPrefix("/") else { return nil }
        var components: [Substring] = []
        for component in path.split(separator: "/") {
            switch component {
            case ".": continue
            case "..": if !components.isEmpty { components.removeLast() }
            default: components.append(component)
            }
        }
        guard components.count >= 2 else { return nil }
        if components[0] == "usr" { return components.dropFirst().joined(separator: "/") }
        if JailPlan.usrLinks.contains(String(components[0])) { return components.joined(separator: "/") }
        return nil
    }

    // MARK: - Building

    private func build() throws(JailError) -> Manifest {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw .usrTree("\(directory): \(error.localizedDescription)")
        }
        // One builder at a time: the others wait here, then find its tree current.
        let lock = open(directory + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw .usrTree("\(directory)/.lock: \(Errno.current)") }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 {
            guard Errno.current == .interrupted else { throw .usrTree("lock \(directory): \(Errno.current)") }
        }
        if let manifest = currentManifest() { return manifest }

        let staging = directory + "/.building-" + ProcessStamp.current.nameComponent + "-\(UInt32.random(in: 0...UInt32.max))"
        var placed = false
        defer { if !placed { try? FileManager.default.removeItem(atPath: staging) } }
        try UsrTree.makeDirectory(staging, mode: 0o755)
        try UsrTree.makeDirectory(staging + "/usr", mode: 0o755)
        let closure = try LibraryClosure.of(contents.objects, load: UsrTree.loadELF)
        var entries: [Manifest.Entry] = []
        var taken: Set<String> = []
        for path in closure + contents.files {
            guard let relative = UsrTree.placement(of: path) else {
                throw .usrTree("\(path) lies outside /usr, the one host tree a VMM's jail shows")
            }
            // The loader may reach one file by two names (/lib/x and /usr/lib/x): placed once.
            guard taken.insert(relative).inserted else { continue }
            // The identity is taken before the file is placed: a file changed meanwhile makes
            // the next check find the tree stale.
            guard !path.contains("\n"), let identity = FileIdentity.of(path) else {
                throw .usrTree("\(path) is not a regular file")
            }
            try UsrTree.place(path, at: staging + "/usr/" + relative, under: staging + "/usr")
            entries.append(.init(path: path, identity: identity))
        }
        let manifest = Manifest(contents: contents, entries: entries)
        do {
            try Data(manifest.text.utf8).write(to: URL(fileURLWithPath: staging + "/manifest"))
        } catch {
            throw .usrTree("\(staging)/manifest: \(error.localizedDescription)")
        }

        // Into place in one step: renamed there when there is no tree yet, else exchanged with
        // the stale one, which is then removed (a VMM started from it keeps what it has mapped).
        if rename(staging, home) != 0 {
            guard Errno.current == .exists || Errno.current == .notEmpty else { throw .usrTree("rename to \(home): \(Errno.current)") }
            guard hvc_rename_exchange(staging, home) == 0 else { throw .usrTree("exchange \(home): \(Errno.current)") }
            try? FileManager.default.removeItem(atPath: staging)
        }
        placed = true
        prune()
        return manifest
    }

    /// Removes what no VMM start can want any more: trees made for objects or files no longer
    /// on the host (a removed QEMU, a test's stand-in), and staging directories of dead builders.
    /// Called by the builder, under the lock.
    private func prune() {
        let fileManager = FileManager.default
        for name in (try? fileManager.contentsOfDirectory(atPath: directory)) ?? [] where name != contents.key {
            let path = directory + "/" + name
            if name.hasPrefix(".building-") {
                let builder = ProcessStamp(parsing: name.dropFirst(".building-".count), separator: "-")
                if let builder, !builder.isAlive { try? fileManager.removeItem(atPath: path) }
            } else if name.count == 16, name.allSatisfy(\.isHexDigit),
                      let text = try? String(contentsOfFile: path + "/manifest", encoding: .utf8),
                      let manifest = Manifest(text: text),
                      (manifest.contents.objects + manifest.contents.files).contains(where: { !fileManager.fileExists(atPath: $0) }) {
                try? fileManager.removeItem(atPath: path)
            }
        }
    }

    /// Puts the host file `path` at `target`: a hard link to the file it names (symlinks
    /// followed), or a copy where linking is refused (another file system, a link limit).
    static func place(_ path: String, at target: String, under base: String) throws(JailError) {
        guard let resolved = realpath(path, nil) else { throw .usrTree("\(path): \(Errno.current)") }
        let source = String(cString: resolved)
        free(resolved)
        let parent = (target as NSString).deletingLastPathComponent
        var directory = base
        for component in parent.dropFirst(base.count).split(separator: "/") {
            directory += "/" + component
            try makeDirectory(directory, mode: 0o755)
        }
        if link(source, target) == 0 { return }
        let error = Errno.current
        guard [EXDEV, EPERM, EMLINK].contains(error.rawValue) else { throw .usrTree("link \(source): \(error)") }
        do {
            try copy(source, to: target)
        } catch {
            throw .usrTree("copy \(source): \(error)")
        }
    }

    /// Copies a regular file with its permission bits (no set-ID), flushed to disk: a tree whose
    /// manifest is current must not hold a file cut short by a crash.
    private static func copy(_ source: String, to target: String) throws(Errno) {
        let input = try FileDescriptor.open(source, O_RDONLY)
        var info = stat()
        try valueOrErrno { fstat(input.raw, &info) }
        let output = try FileDescriptor.open(target, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        while true {
            let chunk = try input.read(max: 1 << 16)
            if chunk.isEmpty { break }
            try output.writeAll(chunk)
        }
        try valueOrErrno { fchmod(output.raw, info.st_mode & 0o755) }
        try valueOrErrno { fsync(output.raw) }
    }

    /// mkdir with exactly `mode` (whatever the umask); an existing directory is left as it is.
    static func makeDirectory(_ path: String, mode: mode_t) throws(JailError) {
        if mkdir(path, mode) == 0 {
            guard chmod(path, mode) == 0 else { throw .usrTree("chmod \(path): \(Errno.current)") }
        } else if Errno.current != .exists {
            throw .usrTree("mkdir \(path): \(Errno.current)")
        }
    }

    /// The ELF file at `path`, or nil where there is no regular file.
    static func loadELF(_ path: String) throws -> ELFFile? {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        return try ELFFile.read(path: path)
    }
}
