import Foundation
import HVCSystem
import Jail
import Testing

struct UsrTreeTests {
    static let identity = FileIdentity(device: 65025, inode: 1234, size: 22608, modifiedSeconds: 1_700_000_000, modifiedNanoseconds: 5)
    static let contents = UsrTree.Contents(objects: ["/usr/bin/qemu-system-x86_64", "/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so"],
                                           files: ["/usr/share/qemu/qboot.rom"])
    static let manifest = UsrTree.Manifest(contents: contents, entries: [
        .init(path: "/usr/bin/qemu-system-x86_64", identity: identity),
        .init(path: "/lib/x86_64-linux-gnu/libc.so.6", identity: FileIdentity(device: 1, inode: 2, size: 3, modifiedSeconds: 4, modifiedNanoseconds: 999_999_999)),
        .init(path: "/usr/share/qemu/a file with spaces", identity: identity),
    ])

    @Test(arguments: [
        ("/usr/bin/qemu-system-x86_64", "bin/qemu-system-x86_64"),
        ("/lib/x86_64-linux-gnu/libc.so.6", "lib/x86_64-linux-gnu/libc.so.6"),
        ("/lib64/ld-linux-x86-64.so.2", "lib64/ld-linux-x86-64.so.2"),
        ("/usr/bin/../share/qemu/qboot.rom", "share/qemu/qboot.rom"),
        ("/usr/./lib//x", "lib/x"),
        ("/etc/passwd", nil),
        ("/usr/../etc/passwd", nil),
        ("/sbin/init", nil),
        ("/usr", nil),
        ("/lib", nil),
        ("usr/bin/x", nil),
    ] as [(String, String?)])
    func placesFilesWhereTheJailedProcessLooks(_ path: String, _ expected: String?) {
        #expect(UsrTree.placement(of: path) == expected)
    }

    @Test func contentsAreKeyedWhateverTheirOrder() {
        let a = UsrTree.Contents(objects: ["/usr/bin/b", "/usr/bin/a", "/usr/bin/a"], files: ["/usr/share/f"])
        let b = UsrTree.Contents(objects: ["/usr/bin/a", "/usr/bin/b"], files: ["/usr/share/f"])
        #expect(a == b && a.key == b.key && a.objects == ["/usr/bin/a", "/usr/bin/b"])
        #expect(a.key.count == 16 && a.key.allSatisfy(\.isHexDigit))
        #expect(UsrTree.Contents(objects: ["/usr/bin/a"]).key != UsrTree.Contents(objects: ["/usr/bin/b"]).key)
        #expect(UsrTree.Contents(objects: ["/usr/bin/a"]).key != UsrTree.Contents(objects: [], files: ["/usr/bin/a"]).key)
    }

    @Test func theManifestReadsBackAsWritten() {
        let text = Self.manifest.text
        #expect(text.hasPrefix("hvc-usr-tree 1\nobject /usr/bin/qemu-system-x86_64\n"))
        #expect(text.contains("entry 65025 1234 22608 1700000000.000000005 /usr/bin/qemu-system-x86_64\n"))
        #expect(UsrTree.Manifest(text: text) == Self.manifest)
        #expect(Self.manifest.bytes == 22608 * 2 + 3)
    }

    @Test(arguments: [
        "",
        "hvc-usr-tree 2\nobject /usr/bin/a\n",
        "hvc-usr-tree 1\nobject /usr/bin/a",
        "hvc-usr-tree 1\nobject usr/bin/a\n",
        "hvc-usr-tree 1\nlibrary /usr/bin/a\n",
        "hvc-usr-tree 1\nobject /usr/bin/b\nobject /usr/bin/a\n",
        "hvc-usr-tree 1\nentry 1 2 3 4.5 /usr/bin/a\n",
        "hvc-usr-tree 1\nentry 1 2 -3 4.000000005 /usr/bin/a\n",
        "hvc-usr-tree 1\nentry 1 2 3 4.000000005\n",
        "hvc-usr-tree 1\nentry x 2 3 4.000000005 /usr/bin/a\n",
        "hvc-usr-tree 1\nentry 1 2 3 4.000000005 usr/bin/a\n",
        "hvc-usr-tree 1\n\n",
    ])
    func anythingElseIsNoManifest(_ text: String) {
        #expect(UsrTree.Manifest(text: text) == nil)
    }

    /// Changes to one placed file, and whether the tree stays current through each.
    enum Change: String, CaseIterable, Sendable {
        case none, replaced, rewritten, touched, otherDevice

        func apply(_ i: inout FileIdentity) {
            switch self {
            case .none: break
            case .replaced: i.inode += 1
            case .rewritten: i.size += 1
            case .touched: i.modifiedNanoseconds += 1
            case .otherDevice: i.device += 1
            }
        }
    }

    /// The staleness decision: current only for the same contents with every file as it was.
    @Test(arguments: Change.allCases)
    func staleWhenAFileChanged(_ change: Change) {
        let now = Dictionary(uniqueKeysWithValues: Self.manifest.entries.map { ($0.path, $0.identity) })
        let changed = { (path: String) -> FileIdentity? in
            guard var identity = now[path] else { return nil }
            if path == "/lib/x86_64-linux-gnu/libc.so.6" { change.apply(&identity) }
            return identity
        }
        #expect(Self.manifest.isCurrent(for: Self.contents, identity: changed) == (change == .none))
    }

    @Test func staleWhenAFileIsGoneOrTheContentsDiffer() {
        let now = Dictionary(uniqueKeysWithValues: Self.manifest.entries.map { ($0.path, $0.identity) })
        #expect(Self.manifest.isCurrent(for: Self.contents) { now[$0] })
        #expect(!Self.manifest.isCurrent(for: Self.contents) { $0.hasSuffix("libc.so.6") ? nil : now[$0] })
        #expect(!Self.manifest.isCurrent(for: UsrTree.Contents(objects: ["/usr/bin/qemu-system-x86_64"])) { now[$0] })
        #expect(!UsrTree.Manifest(contents: Self.contents, entries: []).isCurrent(for: Self.contents) { now[$0] })
    }

    /// A real tree of QEMU's files: hard links where the directory is on /usr's file system,
    /// made once, made again (exchanged) when stale, and others' trees of vanished files pruned.
    @Test func buildsChecksAndRebuildsATree() throws {
        let directory = "/tmp/hvc-usr-tree-test-\(getpid())-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let qemu = "/usr/bin/qemu-system-x86_64", rom = "/usr/share/qemu/qboot.rom"
        try #require(FileManager.default.fileExists(atPath: qemu) && FileManager.default.fileExists(atPath: rom))
        let tree = UsrTree(directory: directory, contents: .init(objects: [qemu], files: [rom]))
        let manifest = try tree.prepare()
        #expect(manifest.entries.count > 10 && manifest.entries.count < 100, "\(manifest.entries.count)")
        for entry in manifest.entries {
            let placed = tree.path + "/" + (UsrTree.placement(of: entry.path) ?? "?")
            var info = stat()
            #expect(stat(placed, &info) == 0, "\(placed)")
            var hostInfo = stat()
            stat(entry.path, &hostInfo)
            if hostInfo.st_dev == info.st_dev { #expect(info.st_ino == hostInfo.st_ino, "\(placed) is not a hard link") }
        }
        var usrInfo = stat()
        stat(tree.path, &usrInfo)
        #expect(usrInfo.st_mode & 0o777 == 0o755)
        #expect(tree.currentManifest() == manifest)

        // Stale: a recorded identity no longer matches. The next prepare exchanges a new tree in.
        let manifestPath = tree.path + "/../manifest"
        let text = try String(contentsOfFile: manifestPath, encoding: .utf8)
        let stale = text.replacingOccurrences(of: "entry \(manifest.entries[0].identity.device) ", with: "entry 7 ")
        try stale.write(toFile: manifestPath, atomically: true, encoding: .utf8)
        #expect(tree.currentManifest() == nil)
        let before = usrInfo.st_ino
        #expect(try tree.prepare() == manifest)
        stat(tree.path, &usrInfo)
        #expect(usrInfo.st_ino != before)
        #expect(try String(contentsOfFile: manifestPath, encoding: .utf8) == text)

        // A tree whose object is gone, and a dead builder's staging directory, go at the next build.
        let vanished = directory + "/00000000deadbeef"
        try FileManager.default.createDirectory(atPath: vanished + "/usr", withIntermediateDirectories: true)
        try "hvc-usr-tree 1\nobject /usr/local/libexec/hvc-gone/vmm\n".write(toFile: vanished + "/manifest", atomically: true, encoding: .utf8)
        let staging = directory + "/.building-999999999-1"
        // A live pid with another start time: a later process that reused a dead builder's pid.
        let me = ProcessStamp.current
        let reused = directory + "/.building-\(me.pid)-\((me.start ?? 0) + 1)-2"
        let live = directory + "/.building-" + me.nameComponent + "-3"
        for path in [staging, reused, live] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        try UsrTree(directory: directory, contents: .init(objects: ["/usr/bin/busybox"])).prepare()
        #expect(!FileManager.default.fileExists(atPath: vanished))
        #expect(!FileManager.default.fileExists(atPath: staging))
        #expect(!FileManager.default.fileExists(atPath: reused))
        #expect(FileManager.default.fileExists(atPath: live))
        #expect(tree.currentManifest() == manifest)
    }
}
