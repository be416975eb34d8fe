import Foundation

/// A file as the staleness check knows it: replaced, rewritten or touched, it has another.
public struct FileIdentity: Equatable, Sendable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public var modifiedSeconds: Int64
    public var modifiedNanoseconds: Int64

    public init(device: UInt64, inode: UInt64, size: Int64, modifiedSeconds: Int64, modifiedNanoseconds: Int64) {
        self.device = device
        self.inode = inode
        self.size = size
        self.modifiedSeconds = modifiedSeconds
        self.modifiedNanoseconds = modifiedNanoseconds
    }

    init(_ info: stat) {
        self.init(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                  modifiedSeconds: Int64(info.st_mtim.tv_sec), modifiedNanoseconds: Int64(info.st_mtim.tv_nsec))
    }

    /// stat(2) of `path`, following symlinks (a link pointed elsewhere is another file); nil if
    /// there is no regular file there.
    public static func of(_ path: String) -> FileIdentity? {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        return FileIdentity(info)
    }
}

extension UsrTree {
    /// What a tree was made for and from, kept beside it: its contents, and the identity of each
    /// host file placed in it when it was placed. Text, one line per item:
    ///
    ///     hvc-usr-tree 1
    ///     object /usr/bin/qemu-system-x86_64
    ///     file /usr/share/qemu/qboot.rom
    ///     entry DEVICE INODE SIZE SECONDS.NANOSECONDS /lib/x86_64-linux-gnu/libc.so.6
    public struct Manifest: Equatable, Sendable {
        public struct Entry: Equatable, Sendable {
            /// The host path, as the VMM opens it (its place in the tree follows from it).
            public var path: String
            public var identity: FileIdentity

            public init(path: String, identity: FileIdentity) {
                self.path = path
                self.identity = identity
            }
        }

        static let header = "hvc-usr-tree 1"
        public var contents: Contents
        public var entries: [Entry]

        public init(contents: Contents, entries: [Entry]) {
            self.contents = contents
            self.entries = entries
        }

        /// Bytes of the files placed, as they were placed.
        public var bytes: Int64 { entries.reduce(0) { $0 + $1.identity.size } }

        public var text: String {
            var lines = [Manifest.header]
            lines += contents.objects.map { "object " + $0 }
            lines += contents.files.map { "file " + $0 }
            lines += entries.map { entry in
                let i = entry.identity
                let nanoseconds = String(i.modifiedNanoseconds)
                return "entry \(i.device) \(i.inode) \(i.size) \(i.modifiedSeconds)."
                    + String(repeating: "0", count: max(0, 9 - nanoseconds.count)) + nanoseconds + " " + entry.path
            }
            return lines.joined(separator: "\n") + "\n"
        }

        /// Parses `text`; nil if any line is not one this writes (a manifest of another format,
        /// or one cut short).
        public init?(text: String) {
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            guard lines.first == Substring(Manifest.header), lines.last == "" else { return nil }
            lines.removeFirst()
            lines.removeLast()
            var objects: [String] = [], files: [String] = [], entries: [Entry] = []
            for line in lines {
                let fields = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard fields.count == 2 else { return nil }
                let rest = String(fields[1])
                switch fields[0] {
                case "object":
                    guard rest.hasPrefix("/") else { return nil }
                    objects.append(rest)
                case "file":
                    guard rest.hasPrefix("/") else { return nil }
                    files.append(rest)
                case "entry":
                    let parts = rest.split(separator: " ", maxSplits: 4, omittingEmptySubsequences: false)
                    guard parts.count == 5, let device = UInt64(parts[0]), let inode = UInt64(parts[1]),
                          let size = Int64(parts[2]), size >= 0 else { return nil }
                    let time = parts[3].split(separator: ".", omittingEmptySubsequences: false)
                    guard time.count == 2, time[1].count == 9, let seconds = Int64(time[0]), let nanoseconds = Int64(time[1]),
                          parts[4].hasPrefix("/") else { return nil }
                    entries.append(Entry(path: String(parts[4]), identity: FileIdentity(
                        device: device, inode: inode, size: size, modifiedSeconds: seconds, modifiedNanoseconds: nanoseconds)))
                default:
                    return nil
                }
            }
            let contents = Contents(objects: objects, files: files)
            // Written sorted and once each: anything else was not written by this.
            guard contents.objects == objects, contents.files == files else { return nil }
            self.init(contents: contents, entries: entries)
        }

        /// Whether the tree made with this manifest is the one `contents` asks for, from the
        /// host's files as they are now (`identity` of each placed path).
        public func isCurrent(for contents: Contents, identity: (String) -> FileIdentity?) -> Bool {
            guard self.contents == contents, !entries.isEmpty else { return false }
            return entries.allSatisfy { identity($0.path) == $0.identity }
        }
    }
}
