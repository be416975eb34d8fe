import CLinux
import Foundation
import Runtime
import Synchronization
import Testing

/// Every end-to-end suite nests in this one, so that no two VMs boot at once from the tests
/// (the machine has two cores; suites otherwise run in parallel).
@Suite(.serialized) struct EndToEnd {}

/// Runs the real `hvc` binary against a private state directory, with the real kernel,
/// agent and busybox image, as a user would.
struct Harness: Sendable {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let binary = ProcessInfo.processInfo.environment["HVC_BIN"] ?? repository + "/.build/release/hvc"
    static let assets = ProcessInfo.processInfo.environment["HVC_ASSETS"] ?? repository + "/build/share/hvc"

    var root: String
    var runRoot: String
    /// Set on top of the harness's environment for one call.
    var extraEnvironment: [String: String] = [:]
    /// This test process's directory, removed when it exits: a store per suite beneath it.
    static let scratch: String = {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("hvc-e2e-\(getpid())").path
        atexit {
            // Networks live on the host beyond the state directories: their bridges and rules go too.
            _ = system("""
                find \(Harness.scratch) -maxdepth 6 -type d -name networks | while read -r n; do \
                for f in "$n"/*/*.json; do b=$(grep -o '"bridge" : "[^"]*"' "$f" 2>/dev/null | cut -d'"' -f4); \
                [ -n "$b" ] && ip link del "$b" 2>/dev/null; done; \
                nft delete table inet hvc_$(printf %s "$n" | sha256sum | cut -c1-8) 2>/dev/null; done
                """)
            try? FileManager.default.removeItem(atPath: Harness.scratch)
        }
        return base
    }()

    /// The stores made so far, by suite.
    private static let stores = Mutex<[String: Result<Harness, HarnessError>]>([:])

    /// The store of the suite in `file` (its name less `Tests`: one per suite, so that what a
    /// suite counts and finds left is its own), made on first use with the busybox image.
    static func make(_ file: String = #fileID) throws -> Harness {
        let name = String(file.split(separator: "/").last ?? "store").split(separator: ".").first.map(String.init) ?? "store"
        let suite = name.hasSuffix("Tests") ? String(name.dropLast(5)) : name
        return try stores.withLock { stores in
            if let made = stores[suite] { return try made.get() }
            let base = scratch + "/" + suite
            let harness = Harness(root: base + "/root", runRoot: base + "/run", extraEnvironment: [:])
            let result = harness.execute(["/bin/bash", repository + "/rootfs/images/busybox/build.sh", binary])
            let made: Result<Harness, HarnessError> = result.status == 0 ? .success(harness)
                : .failure(HarnessError(message: "busybox image: \(result.stderr)"))
            stores[suite] = made
            return try made.get()
        }
    }

    struct Result3 {
        var status: Int32
        var stdout: String
        var stderr: String

        /// A command that was not run (an attack disabled in the isolation suite's broken variant).
        static let notRun = Result3(status: -1, stdout: "", stderr: "")
    }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["HVC_ROOT"] = root
        env["HVC_RUN_ROOT"] = runRoot
        env["HVC_ASSETS"] = Harness.assets
        env.removeValue(forKey: "HVC_TIMING")
        env.removeValue(forKey: "HVC_DEBUG")
        env.merge(extraEnvironment) { $1 }
        return env
    }

    /// Runs `hvc ARGS`; fails the test on timeout.
    func hvc(_ arguments: [String], stdin: String? = nil, timeout: Double = 120) -> Result3 {
        execute([Harness.binary] + arguments, stdin: stdin, timeout: timeout)
    }

    /// Runs `argv` with this harness's environment, `stdin` (else /dev/null), until it exits and
    /// its output ends; the status is the exit code, or the number of the signal that ended it.
    /// posix_spawn and waitpid directly: Foundation's `Process` loses children's exits to other
    /// threads now and then, and its `run` was seen to crash under the parallel suites.
    func execute(_ argv: [String], stdin: String? = nil, timeout: Double = 300) -> Result3 {
        var output: [Int32] = [-1, -1], errors: [Int32] = [-1, -1], input: [Int32] = [-1, -1]
        guard hvc_pipe(&output) == 0, hvc_pipe(&errors) == 0, hvc_pipe(&input) == 0 else {
            return Result3(status: -1, stdout: "", stderr: "pipe: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if stdin != nil {
            posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)
        let (pid, spawned) = Harness.spawn(argv, environment: environment.map { "\($0.key)=\($0.value)" }, actions: &actions)
        for fd in [output[1], errors[1], input[0]] { close(fd) }
        guard spawned == 0 else {
            for fd in [output[0], errors[0], input[1]] { close(fd) }
            return Result3(status: -1, stdout: "", stderr: "\(argv[0]): \(String(cString: strerror(spawned)))")
        }
        if let stdin {
            // Small inputs: they fit the pipe, so writing all first cannot stall.
            var bytes = Array(stdin.utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeMutableBytes { write(input[1], $0.baseAddress! + offset, $0.count - offset) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                offset += n
            }
        }
        close(input[1])
        var collected: [Int32: [UInt8]] = [output[0]: [], errors[0]: []]
        var open = [output[0], errors[0]]
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 {
                kill(pid, SIGKILL)
                Issue.record("timed out after \(timeout)s: \(argv.joined(separator: " "))")
                break
            }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), Int32(min(left, 1) * 1000))
            if ready < 0 && errno != EINTR { break }
            for entry in fds where entry.revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    collected[entry.fd, default: []] += buffer[0..<n]
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    open.removeAll { $0 == entry.fd }
                }
            }
        }
        close(output[0])
        close(errors[0])
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        let status = raw & 0x7f == 0 ? (raw >> 8) & 0xff : raw & 0x7f
        return Result3(status: status, stdout: String(decoding: collected[output[0]] ?? [], as: UTF8.self),
                       stderr: String(decoding: collected[errors[0]] ?? [], as: UTF8.self))
    }

    /// The standard output of `argv`, run without a harness's environment (empty if it cannot run).
    static func run(_ argv: [String]) -> String {
        var output: [Int32] = [-1, -1]
        guard hvc_pipe(&output) == 0 else { return "" }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let environment = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        let (pid, spawned) = Harness.spawn(argv, environment: environment, actions: &actions)
        close(output[1])
        defer { close(output[0]) }
        guard spawned == 0 else { return "" }
        var collected: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(output[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            collected += buffer[0..<n]
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return String(decoding: collected, as: UTF8.self)
    }

    /// A NULL-terminated C array of `strings`, for the duration of `body`.
    static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        let copies = strings.map { strdup($0) } + [nil]
        defer { copies.forEach { free($0) } }
        return copies.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// The process's exit status as Foundation reports it (the code, or the signal's number).
    /// Foundation learns of a child's exit from SIGCHLD, which another thread of this process can
    /// take first and drop: then the child stays a zombie and `waitUntilExit` never returns, so
    /// this reaps it too.
    /// Foundation is given two seconds to notice first, so that the two do not race to reap.
    static func exitStatus(of process: Process) -> Int32 {
        let pid = process.processIdentifier
        let patience = Date().addingTimeInterval(2)
        while process.isRunning {
            var raw: Int32 = 0
            if Date() > patience, waitpid(pid, &raw, WNOHANG) == pid {
                return raw & 0x7f == 0 ? (raw >> 8) & 0xff : raw & 0x7f
            }
            usleep(5_000)
        }
        return process.terminationStatus
    }

    /// Starts hvcd on a private socket in `directory`, on this harness's state, with the given
    /// tenants file.
    func startDaemon(_ directory: String, tenants: String) throws -> (socket: String, process: Process) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o755)
        try tenants.write(toFile: directory + "/tenants.json", atomically: true, encoding: .utf8)
        let socket = directory + "/hvc.sock"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Harness.daemon)
        process.arguments = ["--socket", socket, "--root", root, "--run-root", runRoot, "--assets", Harness.assets,
                             "--tenants", directory + "/tenants.json"]
        process.environment = environment
        try process.run()
        guard Harness.eventually(10, { FileManager.default.fileExists(atPath: socket) }) else {
            throw HarnessError(message: "hvcd did not start")
        }
        return (socket, process)
    }

    /// A running hvcd, started by `withDaemon`.
    struct Daemon {
        let socket: String
        let harness: Harness

        /// `hvc --host` on this daemon as `uid` (its own gid, no other groups).
        func hvc(as uid: Int, _ arguments: [String]) -> Result3 {
            harness.execute(["/usr/bin/setpriv", "--reuid", "\(uid)", "--regid", "\(uid)", "--clear-groups",
                             Harness.binary, "--host", "unix://" + socket] + arguments, timeout: 120)
        }
    }

    /// Runs `body` with an hvcd on a private socket and tenants file, stopped and removed after.
    func withDaemon<R>(tenants: String, _ body: (Daemon) throws -> R) throws -> R {
        let directory = root + "/../api-\(UUID().uuidString.prefix(8))"
        let (socket, process) = try startDaemon(directory, tenants: tenants)
        defer {
            process.terminate()
            process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: directory)
        }
        return try body(Daemon(socket: socket, harness: self))
    }

    static let daemon = URL(fileURLWithPath: binary).deletingLastPathComponent().appendingPathComponent("hvcd").path

    /// A docker-registry configuration serving `directory/data` on 127.0.0.1:`port`; returns its path.
    static func writeRegistryConfig(_ directory: String, port: Int) throws -> String {
        let config = """
            version: 0.1
            storage:
              filesystem:
                rootdirectory: \(directory)/data
            http:
              addr: 127.0.0.1:\(port)
            """
        try config.write(toFile: directory + "/config.yml", atomically: true, encoding: .utf8)
        return directory + "/config.yml"
    }

    /// Starts Debian's docker-registry on a free loopback port, serving `directory`; returns its
    /// address and process.
    func startRegistry(_ directory: String) throws -> (address: String, process: Process) {
        let port = Harness.freePort()
        let config = try Harness.writeRegistryConfig(directory, port: port)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/docker-registry")
        process.arguments = ["serve", config]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let address = "127.0.0.1:\(port)"
        guard registryComesUp(address) else {
            process.terminate()
            throw HarnessError(message: "registry did not start at \(address)")
        }
        return (address, process)
    }

    /// Pushes a layered test image whose last layer and config hold a new salt (so that they are
    /// new to any store) to `address`/`name`, staged in `directory`; returns the salt.
    func pushSaltedImage(to address: String, as name: String, staging directory: String) throws -> String {
        let archive = directory + "/layers-\(UUID().uuidString.prefix(8)).tar"
        let salt = UUID().uuidString
        let made = execute(["/usr/bin/python3", Harness.repository + "/Tests/EndToEndTests/Fixtures/make-image.py", "layers", archive,
                            "/tmp/hvc-outside", salt])
        guard made.status == 0 else { throw HarnessError(message: "make-image.py: \(made.stderr)") }
        let push = execute(["/usr/bin/skopeo", "copy", "--dest-tls-verify=false", "oci-archive:" + archive, "docker://\(address)/\(name)"])
        guard push.status == 0 else { throw HarnessError(message: "skopeo: \(push.stderr)") }
        return salt
    }

    /// A store of its own for a fuzz run: the busybox image, a running container `fuzz-live`
    /// and a created one `fuzz-created`; its cleanup removes every container, network, volume
    /// and template the run left.
    func fuzzStore() throws -> (store: Harness, directory: String, cleanup: () -> Void) {
        let directory = root + "/../fuzz-\(UUID().uuidString.prefix(8))"
        var store = self
        store.root = directory + "/root"
        store.runRoot = directory + "/run"
        let image = store.execute(["/bin/bash", Harness.repository + "/rootfs/images/busybox/build.sh", Harness.binary])
        guard image.status == 0 else { throw HarnessError(message: "busybox image: \(image.stderr)") }
        let running = store.hvc(["run", "-d", "--name", "fuzz-live", "busybox", "sleep", "1000"])
        let created = store.hvc(["create", "--name", "fuzz-created", "busybox", "sleep", "1000"])
        let cleanup = {
            let all = store.hvc(["ps", "-a", "-q"]).stdout.split(separator: "\n").map(String.init)
            _ = store.hvc(["rm", "-f"] + all, timeout: 300)
            _ = store.hvc(["network", "prune"])
            _ = store.hvc(["volume", "prune"])
            _ = store.hvc(["template", "rm", "--all"])
        }
        guard running.status == 0 && created.status == 0 else {
            cleanup()
            throw HarnessError(message: "fuzz containers: \(running.stderr)\(created.stderr)")
        }
        return (store, directory, cleanup)
    }

    /// Whether a registry answers at `address` (host:port) within 10 s.
    func registryComesUp(_ address: String) -> Bool {
        Harness.eventually(10) {
            execute(["/usr/bin/python3", "-c", "import urllib.request; urllib.request.urlopen('http://\(address)/v2/')"]).status == 0
        }
    }

    /// posix_spawn of `argv` with `actions`; the child starts with every signal at its default
    /// and none blocked (this process ignores SIGPIPE, and its threads block some). Returns the
    /// pid and posix_spawn's result.
    static func spawn(_ argv: [String], environment: [String], actions: inout posix_spawn_file_actions_t) -> (pid: pid_t, error: Int32) {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t(), none = sigset_t()
        sigfillset(&all)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let error = Harness.withCStrings(argv) { cArgv in
            Harness.withCStrings(environment) { cEnv in posix_spawn(&pid, argv[0], &actions, &attributes, cArgv, cEnv) }
        }
        return (pid, error)
    }

    /// The CPU time `pid` has used (utime + stime), in seconds; 0 once it is gone.
    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return 0 }
        // After the command name (which may hold spaces): utime and stime, fields 14 and 15 of the line.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The size of a file in bytes; 0 when there is none.
    static func fileSize(_ path: String) -> Int {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
    }

    /// `hvc inspect C`'s object for one container.
    func inspect(_ container: String) throws -> [String: Any] {
        let r = hvc(["inspect", container])
        let array = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]], "\(r.stderr)")
        return try #require(array.first)
    }

    /// Its `state` object.
    func state(_ container: String) throws -> [String: Any] {
        try #require(try inspect(container)["state"] as? [String: Any])
    }

    /// The pid of its VMM (QEMU).
    func vmmPID(_ container: String) throws -> Int32 {
        Int32(try #require(try state(container)["vmmPID"] as? Int))
    }

    /// The fields of `/proc/PID/status`.
    static func processStatus(_ pid: Int32) throws -> [String: String] {
        let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return fields
    }

    /// `controller:path` lines of `/proc/PID/cgroup`, for v1 controllers or the v2 ("") one.
    static func cgroupPaths(_ pid: Int32) throws -> [String: String] {
        let text = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)
        var paths: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            if parts.count == 3 { paths[String(parts[1])] = String(parts[2]) }
        }
        return paths
    }

    /// A file of `pid`'s cgroup: of `controller`'s hierarchy on a v1 host, of the unified one on v2.
    static func cgroupFile(_ pid: Int32, controller: String, v2File: String, v1File: String) throws -> String {
        let paths = try cgroupPaths(pid)
        let path: String
        if let v1 = paths[controller], v1 != "/" {
            path = "/sys/fs/cgroup/\(controller)\(v1)/\(v1File)"
        } else {
            path = "/sys/fs/cgroup\(paths[""] ?? "")/\(v2File)"
        }
        return try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Per-VM directories left under the run root.
    func leftoverVMDirectories() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: runRoot + "/vms")) ?? []
    }

    /// Mounts on the host under this run root (a VM's jail tmpfs, while it runs).
    func leftoverMounts() -> [String] {
        let table = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return table.split(separator: "\n").filter { $0.contains(runRoot + "/") }.map(String.init)
    }

    /// QEMU processes of this harness: jailed, their paths are the jail's, but their output
    /// still goes to a log under this run root.
    func leftoverVMMs() -> [Int32] {
        processes(named: "qemu-system").filter { pid in
            let log = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/1")) ?? ""
            return log.hasPrefix(runRoot + "/")
        }
    }

    /// Container supervisors of this harness: its `hvc-shim`s but template keepers and name servers.
    func supervisors() -> [Int32] {
        let services = Set(shims(.keepTemplate) + shims(.nameServer))
        return processes(named: "hvc-shim", matching: root).filter { !services.contains($0) }
    }

    /// Template keepers of this harness (they live as long as their template).
    func templateKeepers() -> [Int32] {
        shims(.keepTemplate).filter { Harness.commandLine($0).contains(root) }
    }

    /// `hvc-shim` processes in `role` (the second word of their command line), of any state.
    func shims(_ role: Shim.Role.Name) -> [Int32] {
        processes(named: "hvc-shim").filter { Harness.commandLine($0).dropFirst().first == role.rawValue }
    }

    /// The command line of `pid`, word by word (empty once it is gone).
    static func commandLine(_ pid: Int32) -> [String] {
        let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data()
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Pids of the VMs waiting in pools now (their supervisors-to-be).
    func poolMembers() -> Set<Int32> {
        let base = runRoot + "/pools"
        var pids = Set<Int32>()
        for key in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] {
            for file in (try? FileManager.default.contentsOfDirectory(atPath: base + "/" + key)) ?? [] where file.hasSuffix(".pid") {
                if let text = try? String(contentsOfFile: base + "/" + key + "/" + file, encoding: .utf8),
                   let pid = text.split(separator: " ").first.flatMap({ Int32($0) }) { pids.insert(pid) }
            }
        }
        return pids
    }

    /// Processes whose executable name contains `name` and, given a `needle`, whose command line
    /// contains it.
    func processes(named name: String, matching needle: String? = nil) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let executable = arguments.first, executable.split(separator: "/").last?.contains(name) == true else { return false }
            guard let needle else { return true }
            return arguments.contains { $0.contains(needle) }
        }
    }

    /// The host's kernel release (`uname -r`), which no guest's may be.
    static let hostKernelRelease: String = {
        var system = utsname()
        uname(&system)
        return withUnsafeBytes(of: system.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }()

    /// A TCP port free on every address of the host now, chosen by the kernel (a fixed port may
    /// be another program's on another machine).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 ? getsockname(fd, $0, &length) : -1 }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Waits up to `seconds` for `condition`.
    static func eventually(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
