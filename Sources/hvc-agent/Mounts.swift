import AgentProtocol
import CLinux
import Glibc
import HVCSystem

/// The container's mounts: its shared folders (entries of the VM's 9P share, mounted once at
/// `sharesDirectory`), block volumes (ext4 images among those entries) and tmpfs mounts, made in the prepared container's own mount namespace,
/// where its root is `/`: a target's symlinks resolve inside the container, never into the guest.
enum ContainerMounts {
    static let sharesDirectory = "/run/hvc/shares"
    /// Where block volumes' file systems are mounted, an entry each, before they are placed.
    static let blocksDirectory = "/run/hvc/blocks"
    /// 500 KB messages (QEMU's largest): sequential I/O in few round trips through the VMM.
    static let shareOptions = "trans=virtio,version=9p2000.L,cache=mmap,msize=512000"

    nonisolated(unsafe) private static var sharesMounted = false
    /// The block volumes mounted so far, by entry.
    nonisolated(unsafe) private static var blocksMounted: Set<String> = []

    /// Makes share `entry` the container's root, bound over the image's in the agent's own view
    /// (its files and later processes' working directories). Returns what went wrong, or nil.
    static func mountRoot(_ entry: String) -> String? {
        if let failure = mountShares() { return "root directory: \(failure)" }
        do {
            try Boot.mount(sharesDirectory + "/" + entry, Boot.rootfs, "", flags: UInt(MS_BIND | MS_REC))
        } catch {
            return "root directory: \(error)"
        }
        rootEntry = entry
        return nil
    }

    /// The share that is the container's root, once `mountRoot` made it so.
    nonisolated(unsafe) private(set) static var rootEntry: String?

    /// Copies what the image has at `target` (resolved inside the container's root) into the
    /// shared directory `entry`; nothing when the image has no directory there.
    static func populate(_ entry: String, from target: String) -> String? {
        let image = hvc_open_in_root(Boot.rootfs, target, O_RDONLY | O_DIRECTORY, 0)
        guard image >= 0 else { return errno == ENOENT || errno == ENOTDIR ? nil : "\(Errno.current)" }
        defer { close(image) }
        guard let volume = try? FileDescriptor.open(entry, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) else { return "open \(entry): \(Errno.current)" }
        return hvc_copy_tree(image, volume.raw, 0) == 0 ? nil : "\(Errno.current)"
    }

    /// Mounts the VM's 9P export at `sharesDirectory`, once. Returns what went wrong, or nil.
    static func mountShares() -> String? {
        guard !sharesMounted else { return nil }
        do {
            try Boot.makeDirectory(sharesDirectory, mode: 0o700)
            try Boot.mount(GuestMount.sharesTag, sharesDirectory, "9p", flags: 0, data: shareOptions)
        } catch {
            return error.description
        }
        sharesMounted = true
        return nil
    }

    /// Mounts the ext4 image that is share `entry` at `blocksDirectory/entry` through a loop
    /// device, once. Returns what went wrong, or nil.
    static func mountBlock(_ entry: String, readOnly: Bool) -> String? {
        guard !blocksMounted.contains(entry) else { return nil }
        let image = open(sharesDirectory + "/" + entry, (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW)
        guard image >= 0 else { return "open the image: \(Errno.current)" }
        defer { close(image) }
        var path = [CChar](repeating: 0, count: 64)
        let device = hvc_loop_attach(image, readOnly ? 1 : 0, &path, path.count)
        guard device >= 0 else { return "loop device: \(Errno.current)" }
        defer { close(device) }
        let target = blocksDirectory + "/" + entry
        do {
            try Boot.makeDirectory(target, mode: 0o700)
            // The image was zeros before mkfs: its inode tables need no zeroing in the background.
            // Read-only: no journal replay, which would write.
            try Boot.mount(String(cString: path), target, "ext4", flags: UInt(MS_NOSUID | MS_NODEV) | (readOnly ? UInt(MS_RDONLY) : 0),
                           data: readOnly ? "noload" : "noinit_itable")
        } catch {
            return "\(error)"
        }
        blocksMounted.insert(entry)
        return nil
    }

    /// Whether a block volume's file system holds nothing yet but mkfs's `lost+found`.
    static func isEmptyFileSystem(_ path: String) -> Bool {
        guard let dir = opendir(path) else { return false }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." && name != "lost+found" { return false }
        }
        return true
    }

    /// Writes the block volumes' files to their images, before the container's exit is reported
    /// (the host ends the VM after it).
    static func flushBlocks() {
        guard !blocksMounted.isEmpty else { return }
        sync()
    }

    /// Makes `mounts` (and the root read-only) in the namespace of the prepared container `pid`.
    /// Returns what went wrong, or nil.
    /// With `root`, a share, the container (prepared on the image's root) is moved onto it first.
    static func place(_ mounts: [GuestMount], readOnlyRoot: Bool, root rootShare: String? = nil, in pid: pid_t) -> String? {
        if mounts.contains(where: { $0.kind == .share || $0.kind == .block }), let failure = mountShares() {
            return "shared folders: \(failure)"
        }
        for mount in mounts where mount.kind == .block {
            if let failure = mountBlock(mount.source, readOnly: mount.readOnly) {
                return "block volume at \(mount.target): \(failure)"
            }
        }
        for mount in mounts where mount.populate {
            let directory: String
            switch mount.kind {
            case .share: directory = sharesDirectory + "/" + mount.source
            case .block where isEmptyFileSystem(blocksDirectory + "/" + mount.source): directory = blocksDirectory + "/" + mount.source
            default: continue
            }
            if let failure = populate(directory, from: mount.target) {
                return "filling the volume at \(mount.target): \(failure)"
            }
        }
        var trees: [Int32] = []
        defer { trees.forEach { close($0) } }
        for mount in mounts {
            let directory: String
            switch mount.kind {
            case .share: directory = sharesDirectory
            case .block: directory = blocksDirectory
            case .tmpfs: trees.append(-1); continue
            }
            let flags = mount.readOnly ? UInt32(HVC_MOUNT_READONLY) : 0
            let fd = hvc_mount_tree_open(nil, directory + "/" + mount.source, flags)
            guard fd >= 0 else { return "shared folder for \(mount.target): \(Errno.current)" }
            trees.append(fd)
        }
        var root: Int32 = -1
        if let rootShare {
            root = hvc_mount_tree_open(nil, sharesDirectory + "/" + rootShare, 0)
            guard root >= 0 else { return "root directory: \(Errno.current)" }
        }
        defer { if root >= 0 { close(root) } }
        let strings = mounts.map { (strdup($0.target), $0.kind == .tmpfs ? strdup($0.source + ($0.readOnly ? ",ro" : "")) : nil) }
        defer { strings.forEach { free($0.0); free($0.1) } }
        let placed = mounts.indices.map { i in
            hvc_placed_mount(tree: trees[i], target: strings[i].0, tmpfs_options: strings[i].1, create: 1)
        }
        var result = hvc_spawn_result()
        let status = placed.withUnsafeBufferPointer { hvc_mounts_place(pid, root, $0.baseAddress, $0.count, readOnlyRoot ? 1 : 0, &result) }
        guard status == 0 else { return "mounts: \(Errno.current)" }
        guard result.stage == 0 else { return "mounts: \(String(cString: strerror(result.error)))" }
        return nil
    }
}
