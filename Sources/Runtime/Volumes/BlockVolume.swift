import Foundation
import HVCSystem

/// What holds a volume's files.
public enum VolumeDriver: String, Codable, Sendable, CaseIterable {
    /// A host directory, served to the VM over 9P: host and container see each other's writes at once.
    case local
    /// An ext4 image the guest's own kernel mounts (through a loop device on the 9P share), so that
    /// small-file work runs in the guest's page cache instead of a 9P round trip per call. One
    /// running container mounts it at a time; its writes reach the image when its process exits.
    case block
}

/// A block volume's image: made sparse and formatted on the host, locked while a VM mounts it.
enum BlockVolume {
    static let imageName = "disk.ext4"
    static let defaultSize = 10 << 30
    /// ext4 with its journal needs a few MiB; beyond 16 TiB it needs options we do not give.
    static let sizeRange = (16 << 20)...(16 << 40)
    static let mkfs = "/usr/sbin/mkfs.ext4"

    /// The image's size from a create request's options (`size`), for `driver`.
    static func size(driver: VolumeDriver, options: [String: String]?) throws(HVCError) -> Int? {
        let options = options ?? [:]
        switch driver {
        case .local:
            guard options.isEmpty else {
                throw HVCError(.invalid, "the local volume driver takes no options (got \(options.keys.sorted().joined(separator: ", "))): it is a host directory")
            }
            return nil
        case .block:
            if let unknown = options.keys.sorted().first(where: { $0 != "size" }) {
                throw HVCError(.invalid, "unknown option \"\(unknown.prefix(64))\" for the block volume driver: it takes size (e.g. size=10g)")
            }
            guard let text = options["size"] else { return defaultSize }
            let bytes = try RunOptions.parseSize(text, minimum: sizeRange.lowerBound, what: "block volume size")
            guard bytes <= sizeRange.upperBound else {
                throw HVCError(.invalid, "block volume size \(text) is too large: give at most 16384g")
            }
            return bytes
        }
    }

    /// Makes the sparse image `path` of `size` bytes holding an empty ext4 file system with its
    /// root owned by root. The image is all zeros before mkfs, so the inode tables and journal
    /// need no zeroing (the guest mounts it with `noinit_itable`).
    static func make(_ path: String, size: Int) throws(HVCError) {
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw HVCError("block volume image \(path): \(Errno.current)") }
        let sized = ftruncate(fd, off_t(size)) == 0
        let error = Errno.current
        close(fd)
        guard sized else {
            unlink(path)
            throw HVCError("block volume image \(path): \(error)")
        }
        let run = ToolRun.run(mkfs, ["-q", "-F", "-b", "4096", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0", path])
        guard run.succeeded else {
            unlink(path)
            throw HVCError("mkfs.ext4 for a block volume: \(run.errorOutput.trimmingCharacters(in: .whitespacesAndNewlines)): install e2fsprogs")
        }
    }

    /// This process's locks on the images its VM mounts, by path.
    nonisolated(unsafe) private static var held: [String: Int32] = [:]
    private static let heldLock = NSLock()

    /// Takes the image's lock for this process's lifetime, or says that another container has it.
    static func lock(_ path: String, volume: String) throws(HVCError) {
        heldLock.lock()
        defer { heldLock.unlock() }
        guard held[path] == nil else { return }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw HVCError("block volume \(volume): \(Errno.current)") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let error = Errno.current
            close(fd)
            guard error == .wouldBlock else { throw HVCError("block volume \(volume): lock: \(error)") }
            throw HVCError(.conflict, "volume \"\(volume)\" is mounted by another running container: a block volume is one container's at a time (stop that one, or use a local volume to share)")
        }
        held[path] = fd
    }
}

extension BlockVolume {
    /// Lets go of every image this process locked: its VM is gone.
    static func releaseAll() {
        heldLock.lock()
        defer { heldLock.unlock() }
        for fd in held.values { close(fd) }
        held = [:]
    }
}
