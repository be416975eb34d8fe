import AgentProtocol
import CLinux
import Glibc
import HVCSystem

/// What a template's VM does once, before it is captured, so that no clone of it repeats the
/// work: the image's files read into the page cache (a clone's first command finds them in
/// memory instead of going through the virtual disk), and one container set-up rehearsed
/// (namespaces, mounts, pivot_root, and an exec that finds nothing). Nothing of it is
/// visible to a container but the placeholder files that `hello` overwrites.
///
/// Last, it prepares the container itself (namespaces, mounts, pivot_root) around a stub that
/// waits for its process: a clone's `start` only hands the stub its command.
enum Prewarm {
    /// The container prepared for the first `start`, if preparing it worked.
    nonisolated(unsafe) static var prepared: hvc_prepared_container?

    /// Bounds on what the page cache takes (it becomes part of the template's memory).
    static let byteBudget = 32 << 20
    static let largestFile = 8 << 20
    static let entryBudget = 8192

    static func run() {
        var state = Walk()
        readFiles(Boot.lowerDirectory, depth: 0, state: &state)
        try? writeContainerFile("/etc/hostname", "hvc\n")
        try? writeContainerFile("/etc/hosts", "127.0.0.1\tlocalhost\n")
        try? writeContainerFile("/etc/machine-id", "\n")
        _ = try? readContainerFile("/etc/passwd")
        _ = try? readContainerFile("/etc/group")
        rehearseSpawn()
        prepared = try? prepare().get()
    }

    /// For a clone waiting in a pool (its VMM translates guest code afresh): the paths a first
    /// command takes, done once ahead, with nothing left behind — an exec of a static binary
    /// (this agent, which exits at once), random bytes read and mixed, a container file written.
    static func warmUp() {
        var result = hvc_spawn_result()
        let status = withCStringArray(["hvc-agent", warmUpExitArgument]) { argv in
            withCStringArray([]) { envp in
                hvc_spawn_supervised("/proc/self/exe", argv, envp, 2, 2, &result)
            }
        }
        if status == 0, result.pid > 0 {
            var ignored: Int32 = 0
            waitpid(result.pid, &ignored, 0)
        }
        if let urandom = try? FileDescriptor.open("/dev/urandom", O_RDWR), let bytes = try? urandom.read(max: 32) {
            try? urandom.writeAll(bytes)
        }
        try? writeContainerFile("/etc/hostname", "hvc\n")
        _ = try? readContainerFile("/etc/passwd")
        // The shared-folder export, mounted now: its paths translated, and a container with
        // folders finds it mounted. (A template must not: QEMU cannot save a VM whose 9P
        // export is mounted.)
        guard ContainerMounts.mountShares() == nil else { return }
        rehearseOnShare()
    }

    /// When the host shares a rehearsal root: a throwaway container set up on it as a bundle's
    /// is (moved onto the share, a tmpfs placed, its user looked up through 9P, its program
    /// executed from the share), so that a claim finds these paths translated too. It leaves
    /// nothing: the program exits at once, the container's mount namespace with it.
    private static func rehearseOnShare() {
        let root = ContainerMounts.sharesDirectory + "/" + GuestMount.rehearsalRoot
        var info = stat()
        guard stat(root, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { return }
        _ = try? readContainerFile("/etc/passwd", root: root)
        _ = try? readContainerFile("/etc/group", root: root)
        guard case .success(var container) = prepare() else { return }
        defer {
            var ignored: Int32 = 0
            waitpid(container.pid, &ignored, 0)
        }
        let scratch = [GuestMount(kind: .tmpfs, source: "size=64k", target: "/tmp", readOnly: false)]
        guard ContainerMounts.place(scratch, readOnlyRoot: false, root: GuestMount.rehearsalRoot, in: container.pid) == nil else {
            kill(container.pid, SIGKILL)
            close(container.control)
            close(container.reports)
            return
        }
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { if null >= 0 { close(null) } }
        var result = hvc_spawn_result()
        _ = withCStringArray([GuestMount.rehearsalCommand]) { argv in
            withCStringArray(["PATH=/bin"]) { envp in
                "/bin".withCString { path in
                    "/".withCString { cwd in
                        var process = hvc_process(
                            argv: argv, envp: envp, path: path, cwd: cwd, uid: 0, gid: 0, groups: nil,
                            group_count: 0, stdin_fd: null, stdout_fd: null, stderr_fd: null, terminal: 0,
                            privileges: hvc_privileges())
                        return hvc_start_prepared_container(&container, "hvc", &process, &result)
                    }
                }
            }
        }
    }

    /// The argument that makes the agent exit at once (the warm-up's exec).
    static let warmUpExitArgument = "--warm-up-exit"

    /// A container set up ahead of its process, or why it could not be (as `Agent.describe` puts it).
    static func prepare() -> Result<hvc_prepared_container, Boot.Failure> {
        var prepared = hvc_prepared_container()
        let status = Boot.rootfs.withCString { root in
            "hvc".withCString { host in
                Boot.cgroup.withCString { cgroup in
                    var container = hvc_container(rootfs: root, hostname: host, cgroup: cgroup, delegated_leaf: Boot.delegatedLeaf)
                    return hvc_prepare_container(&container, &prepared)
                }
            }
        }
        guard status == 0, prepared.stage == 0, prepared.pid > 0 else {
            var result = hvc_spawn_result()
            result.stage = prepared.stage
            result.error = status == 0 ? prepared.error : errno
            return .failure(Boot.Failure(description: Agent.describe(result, "")))
        }
        return .success(prepared)
    }

    struct Walk {
        var bytes = 0
        var entries = 0
        var seen = Set<UInt64>()
    }

    private static func readFiles(_ directory: String, depth: Int, state: inout Walk) {
        guard depth < 8, let dir = opendir(directory) else { return }
        defer { closedir(dir) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while state.entries < entryBudget, state.bytes < byteBudget, let entry = readdir(dir) {
            state.entries += 1
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let path = directory + "/" + name
            switch Int32(entry.pointee.d_type) {
            case Int32(DT_DIR):
                readFiles(path, depth: depth + 1, state: &state)
            case Int32(DT_REG):
                var info = stat()
                guard lstat(path, &info) == 0, Int(info.st_size) <= largestFile,
                      state.seen.insert(UInt64(info.st_ino)).inserted else { continue }
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { continue }
                while state.bytes < byteBudget {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                    state.bytes += n
                }
                close(fd)
            default:
                continue
            }
        }
    }

    /// Sets up a container whose command does not exist, and reaps it.
    private static func rehearseSpawn() {
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard null >= 0 else { return }
        defer { close(null) }
        var result = hvc_spawn_result()
        let status = withCStringArray(["/.hvc-prewarm"]) { argv in
            withCStringArray(["PATH=/bin"]) { envp in
                "/bin".withCString { path in
                    "/".withCString { cwd in
                        Boot.rootfs.withCString { root in
                            "hvc".withCString { host in
                                Boot.cgroup.withCString { cgroup in
                                    var process = hvc_process(
                                        argv: argv, envp: envp, path: path, cwd: cwd, uid: 0, gid: 0, groups: nil,
                                        group_count: 0, stdin_fd: null, stdout_fd: null, stderr_fd: null, terminal: 0,
                                        privileges: hvc_privileges())
                                    var container = hvc_container(rootfs: root, hostname: host, cgroup: cgroup, delegated_leaf: Boot.delegatedLeaf)
                                    return hvc_spawn_container_init(&container, &process, &result)
                                }
                            }
                        }
                    }
                }
            }
        }
        if status == 0, result.pid > 0 {
            var ignored: Int32 = 0
            waitpid(result.pid, &ignored, 0)
        }
    }
}
