import AgentProtocol
import CLinux
import Foundation
import HVCSystem

/// Shares a container's host folders and volumes into its VM: each becomes a mount on an entry
/// (`m0`, `m1`, ...) of the directory the VMM serves over 9P, made in the VMM's own mount
/// namespace only, so that the host never holds it and it goes with the VMM. The guest agent
/// then mounts each entry on its target in the container (a block volume's image through a
/// loop device first).
enum SharedFolders {
    /// The entry of a container's own root directory.
    static let rootEntry = "root"

    /// Places the folders of `mounts` (and `root`, a root directory, as `rootEntry`) for the VMM
    /// `vmmPID`, each entry's name after `prefix` (a pod member's own); returns what the agent
    /// mounts, in order.
    static func share(_ mounts: [ContainerMount], root: String? = nil, prefix: String = "", tenant: String, runtime: Runtime,
                      vmmPID: Int32, directory: VMDirectory) throws(HVCError) -> [GuestMount] {
        var guestMounts: [GuestMount] = []
        var trees: [(fd: Int32, entry: String)] = []
        defer { for tree in trees { close(tree.fd) } }
        if let root {
            let fd = hvc_mount_tree_open(nil, root, UInt32(HVC_MOUNT_NOSUID | HVC_MOUNT_NODEV))
            guard fd >= 0 else { throw HVCError("root directory \(root): \(Errno.current)") }
            trees.append((fd, prefix + rootEntry))
            guard mkdir(directory.shares + "/" + prefix + rootEntry, 0o755) == 0 || Errno.current == .exists else {
                throw HVCError("shared folder entry \(prefix + rootEntry): \(Errno.current)")
            }
        }
        for mount in mounts {
            switch mount.type {
            case .tmpfs:
                guestMounts.append(GuestMount(kind: .tmpfs, source: mount.tmpfsOptions, target: mount.target, readOnly: mount.readOnly))
            case .bind, .volume:
                // A block volume's image is shared as a file; the guest mounts it through a loop device.
                let block = mount.type == .volume && runtime.volumes.load(mount.source, tenant: tenant)?.driver == .block
                if block { try BlockVolume.lock(runtime.volumes.imagePath(mount.source, tenant: tenant), volume: mount.source) }
                let entry = prefix + "m\(trees.count)"
                let fd = try openTree(mount, block: block, tenant: tenant, runtime: runtime)
                trees.append((fd, entry))
                var info = stat()
                guard fstat(fd, &info) == 0 else { throw HVCError("shared folder \(mount.source): \(Errno.current)") }
                let path = directory.shares + "/" + entry
                let made = (info.st_mode & S_IFMT) == S_IFDIR ? mkdir(path, 0o755) : open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
                guard made >= 0 || Errno.current == .exists else { throw HVCError("shared folder entry \(path): \(Errno.current)") }
                if (info.st_mode & S_IFMT) != S_IFDIR { close(made) }
                // An empty volume gets the image's files at its target first, as Docker fills it
                // (a block volume when the guest finds its file system empty).
                let populate = mount.type == .volume && !mount.readOnly && (block
                    || ((try? FileManager.default.contentsOfDirectory(atPath: runtime.volumes.dataPath(mount.source, tenant: tenant))) ?? ["?"]).isEmpty)
                guestMounts.append(GuestMount(kind: block ? .block : .share, source: entry, target: mount.target, readOnly: mount.readOnly,
                                              populate: populate))
            }
        }
        guard !trees.isEmpty else { return guestMounts }
        let targets = trees.map { strdup(VMDirectory.Jailed.shares + "/" + $0.entry) }
        defer { targets.forEach { free($0) } }
        let placed = trees.indices.map { i in hvc_placed_mount(tree: trees[i].fd, target: targets[i], tmpfs_options: nil, create: 0) }
        var result = hvc_spawn_result()
        let status = placed.withUnsafeBufferPointer { hvc_mounts_place(vmmPID, -1, $0.baseAddress, $0.count, 0, &result) }
        guard status == 0 else { throw HVCError("sharing folders with the VM: \(Errno.current)") }
        guard result.stage == 0 else {
            throw HVCError("sharing folders with the VM: \(String(cString: strerror(result.error)))")
        }
        return guestMounts
    }

    /// Takes back the entries named after `prefix` from the VMM `vmmPID` (when it still runs)
    /// and removes them.
    static func unshare(prefix: String, vmmPID: Int32?, directory: VMDirectory) {
        guard !prefix.isEmpty, let names = try? FileManager.default.contentsOfDirectory(atPath: directory.shares) else { return }
        let entries = names.filter { $0.hasPrefix(prefix) }
        guard !entries.isEmpty else { return }
        if let vmmPID {
            let targets = entries.map { strdup(VMDirectory.Jailed.shares + "/" + $0) }
            defer { targets.forEach { free($0) } }
            let pointers = targets.map { UnsafePointer($0) }
            _ = pointers.withUnsafeBufferPointer { hvc_mounts_detach(vmmPID, $0.baseAddress, $0.count) }
        }
        for entry in entries {
            let path = directory.shares + "/" + entry
            if rmdir(path) != 0 { unlink(path) }
        }
    }

    /// A detached copy of the folder's mounts, never writable where the mount is read-only,
    /// without set-ID programs or devices; a tenant's folder resolved beneath its bind root.
    private static func openTree(_ mount: ContainerMount, block: Bool, tenant: String, runtime: Runtime) throws(HVCError) -> Int32 {
        let flags = UInt32(HVC_MOUNT_NOSUID | HVC_MOUNT_NODEV) | (mount.readOnly ? UInt32(HVC_MOUNT_READONLY) : 0)
        let fd: Int32
        switch (mount.type, mount.within) {
        case (.volume, _):
            let path = block ? runtime.volumes.imagePath(mount.source, tenant: tenant) : runtime.volumes.dataPath(mount.source, tenant: tenant)
            fd = hvc_mount_tree_open(nil, path, flags)
        case (_, let root?):
            // The path as it resolves now, opened beneath the root: a component swapped for a
            // symlink since then makes the open fail instead of leaving the root.
            let real = URL(fileURLWithPath: mount.source).resolvingSymlinksInPath().path
            guard real == root || real.hasPrefix(root + "/") else {
                throw HVCError(.forbidden, "host path \(mount.source) is no longer beneath \(root)")
            }
            let beneath = String(real.dropFirst(root.count).drop { $0 == "/" })
            fd = hvc_mount_tree_open(root, beneath.isEmpty ? "." : beneath, flags)
        default:
            fd = hvc_mount_tree_open(nil, mount.source, flags)
        }
        guard fd >= 0 else {
            let what = mount.type == .volume ? "volume \(mount.source)" : "host path \(mount.source)"
            throw HVCError("\(what): \(Errno.current)")
        }
        return fd
    }
}
