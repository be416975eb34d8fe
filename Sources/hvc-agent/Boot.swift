import CLinux
import Glibc
import HVCSystem

/// Guest start-up: the filesystems the agent needs, the container root, the host channel.
enum Boot {
    static let lowerDirectory = "/run/hvc/lower"
    static let writableDirectory = "/run/hvc/rw"
    static let rootfs = "/run/hvc/rootfs"
    static let cgroup = "/sys/fs/cgroup/container"
    /// In a VM that can nest (its kernel found virtualization in the CPU), where the container's
    /// processes live: a leaf below its cgroup, so that the container can manage the tree below
    /// its cgroup itself, as hvc or another runtime inside it does. Allocated once, for C.
    nonisolated(unsafe) static var delegatedLeaf: UnsafeMutablePointer<CChar>?
    static let portName = "hvc.agent"

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Mounts `/sys`, `/run`, the cgroup filesystem and `/dev/pts` (for the agent's ptys).
    /// `/proc` and `/dev` come from the pre-init.
    static func mountSystem() throws(Failure) {
        try mount("sysfs", "/sys", "sysfs", flags: UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC))
        try mount("tmpfs", "/run", "tmpfs", flags: UInt(MS_NOSUID | MS_NODEV), data: "mode=755")
        try mount("cgroup2", "/sys/fs/cgroup", "cgroup2", flags: UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC))
        try makeDirectory("/dev/pts")
        try mount("devpts", "/dev/pts", "devpts", flags: UInt(MS_NOSUID | MS_NOEXEC), data: "mode=0620,ptmxmode=0666")
        // Make the controllers available to the container's cgroup.
        try? writeFile("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids +cpu")
        try makeDirectory(cgroup)
        if access("/sys/class/misc/kvm", F_OK) == 0 {
            try makeDirectory(cgroup + "/init")
            delegatedLeaf = strdup(cgroup + "/init")
        }
    }

    /// The read-only image on `device` below a tmpfs upper layer, merged at `rootfs`.
    static func mountRoot(device: String, type: String) throws(Failure) {
        try makeDirectory(lowerDirectory)
        try makeDirectory(writableDirectory)
        try makeDirectory(rootfs)
        try mount(device, lowerDirectory, type, flags: UInt(MS_RDONLY))
        try mount("tmpfs", writableDirectory, "tmpfs", flags: 0, data: "mode=755")
        try makeDirectory(writableDirectory + "/upper")
        try makeDirectory(writableDirectory + "/work")
        let options = "lowerdir=\(lowerDirectory),upperdir=\(writableDirectory)/upper,workdir=\(writableDirectory)/work"
        try mount("overlay", rootfs, "overlay", flags: 0, data: options)
    }

    /// Bounds the writable layer mounted at boot (a template's clone shares that boot) to `bytes`,
    /// in pages; a layer already fuller than that refuses the remount.
    static func limitWritableLayer(bytes: UInt64) -> String? {
        do {
            try mount("tmpfs", writableDirectory, "tmpfs", flags: UInt(MS_REMOUNT), data: "size=\(bytes)")
            return nil
        } catch {
            return "writable layer size: \(error)"
        }
    }

    /// Finds the virtio-serial port the host named `hvc.agent` and opens it.
    static func openPort() throws(Failure) -> FileDescriptor {
        let base = "/sys/class/virtio-ports"
        guard let dir = opendir(base) else { throw Failure(description: "no \(base): virtio console missing") }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasPrefix("vport"), (try? readFile("\(base)/\(name)/name"))?.trimmed == portName else { continue }
            do {
                return try FileDescriptor.open("/dev/\(name)", O_RDWR)
            } catch {
                throw Failure(description: "open /dev/\(name): \(error)")
            }
        }
        throw Failure(description: "no virtio port named \(portName)")
    }

    /// `key=value` pairs from the kernel command line.
    static func commandLine() -> [String: String] {
        var result: [String: String] = [:]
        for word in ((try? readFile("/proc/cmdline")) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let pair = word.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { result[String(pair[0])] = String(pair[1]) }
        }
        return result
    }

    static func mount(_ source: String, _ target: String, _ type: String, flags: UInt, data: String? = nil) throws(Failure) {
        let result = data.map { Glibc.mount(source, target, type, flags, $0) } ?? Glibc.mount(source, target, type, flags, nil)
        if result != 0 {
            throw Failure(description: "mount \(type) on \(target): \(Errno.current)")
        }
    }

    static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws(Failure) {
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, mode) != 0 && errno != EEXIST {
                throw Failure(description: "mkdir \(prefix): \(Errno.current)")
            }
        }
    }
}

func readFile(_ path: String, max: Int = 1 << 20) throws(Errno) -> String {
    let fd = try FileDescriptor.open(path, O_RDONLY)
    var bytes: [UInt8] = []
    while bytes.count < max {
        let chunk = try fd.read(max: min(65536, max - bytes.count))
        if chunk.isEmpty { break }
        bytes += chunk
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Writes a file of the container's root filesystem: the image's symlinks resolve inside it.
func writeContainerFile(_ path: String, _ text: String) throws(Errno) {
    try writeContainerFile(path, Array(text.utf8))
}

func writeContainerFile(_ path: String, _ bytes: [UInt8]) throws(Errno) {
    let fd = FileDescriptor(try valueOrErrno { hvc_open_in_root(Boot.rootfs, path, O_WRONLY | O_CREAT | O_TRUNC, 0o644) })
    try fd.writeAll(bytes)
}

/// Reads a file of the container's root filesystem (at most 1 MiB of it).
func readContainerFile(_ path: String, root: String = Boot.rootfs) throws(Errno) -> String {
    let fd = FileDescriptor(try valueOrErrno { hvc_open_in_root(root, path, O_RDONLY, 0) })
    var bytes: [UInt8] = []
    while bytes.count < 1 << 20 {
        let chunk = try fd.read(max: 65536)
        if chunk.isEmpty { break }
        bytes += chunk
    }
    return String(decoding: bytes, as: UTF8.self)
}

func writeFile(_ path: String, _ text: String, mode: mode_t = 0o644) throws(Errno) {
    let fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
    try fd.writeAll(Array(text.utf8))
}

extension String {
    var trimmed: String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}
