import Foundation
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
    /// Removed when the test process exits.
    nonisolated(unsafe) static var scratch: String?

    /// One private store per test process, with the busybox image imported once.
    static let shared: Result<Harness, HarnessError> = {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("hvc-e2e-\(getpid())").path
        let harness = Harness(root: base + "/root", runRoot: base + "/run", extraEnvironment: [:])
        Harness.scratch = base
        atexit {
            guard let scratch = Harness.scratch else { return }
            // Networks live on the host beyond the state directories: their bridges and rules go too.
            _ = system("""
                find \(scratch) -maxdepth 6 -type d -name networks | while read -r n; do \
                for f in "$n"/*/*.json; do b=$(grep -o '"bridge" : "[^"]*"' "$f" 2>/dev/null | cut -d'"' -f4); \
                [ -n "$b" ] && ip link del "$b" 2>/dev/null; done; \
                nft delete table inet hvc_$(printf %s "$n" | sha256sum | cut -c1-8) 2>/dev/null; done
                """)
            try? FileManager.default.removeItem(atPath: scratch)
        }
        let result = harness.execute(["/bin/bash", repository + "/rootfs/images/busybox/build.sh", binary])
        guard result.status == 0 else { return .failure(HarnessError(message: "busybox image: \(result.stderr)")) }
        return .success(harness)
    }()

    static func make() throws -> Harness { try shared.get() }

    struct Result3 {
        var status: Int32
        var stdout: String
        var stderr: String
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

    func execute(_ argv: [String], stdin: String? = nil, timeout: Double = 300) -> Result3 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        process.environment = environment
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        do { try process.run() } catch { return Result3(status: -1, stdout: "", stderr: "\(error)") }
        if let stdin {
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try? input.fileHandleForWriting.close()
        }
        let collected = Collected()
        let group = DispatchGroup()
        for (pipe, isOut) in [(out, true), (err, false)] {
            group.enter()
            DispatchQueue.global().async {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                collected.set(data, isOut: isOut)
                group.leave()
            }
        }
        if group.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            Issue.record("timed out after \(timeout)s: \(argv.joined(separator: " "))")
        }
        return Result3(status: Harness.exitStatus(of: process), stdout: collected.out, stderr: collected.err)
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

    /// Container supervisors (`hvc-shim` without `--keep-template`) of this harness.
    func supervisors() -> [Int32] {
        let keepers = Set(templateKeepers())
        let nameServers = Set(processes(named: "hvc-shim", matching: "--name-server"))
        return processes(named: "hvc-shim", matching: root).filter { !keepers.contains($0) && !nameServers.contains($0) }
    }

    /// Template keepers of this harness (they live as long as their template).
    func templateKeepers() -> [Int32] {
        processes(named: "hvc-shim", matching: "--keep-template").filter { pid in
            let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data()
            return data.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == root }
        }
    }

    /// Pids of the VMs waiting in pools now (their supervisors-to-be).
    func poolMembers() -> Set<Int32> {
        let base = runRoot + "/pools"
        var pids = Set<Int32>()
        for key in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] {
            for file in (try? FileManager.default.contentsOfDirectory(atPath: base + "/" + key)) ?? [] where file.hasSuffix(".pid") {
                if let text = try? String(contentsOfFile: base + "/" + key + "/" + file, encoding: .utf8),
                   let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) { pids.insert(pid) }
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

final class Collected: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    private let lock = NSLock()
    private var outData = Data()
    private var errData = Data()

    func set(_ data: Data, isOut: Bool) {
        lock.lock()
        if isOut { outData = data } else { errData = data }
        lock.unlock()
    }

    var out: String { lock.lock(); defer { lock.unlock() }; return String(decoding: outData, as: UTF8.self) }
    var err: String { lock.lock(); defer { lock.unlock() }; return String(decoding: errData, as: UTF8.self) }
}
