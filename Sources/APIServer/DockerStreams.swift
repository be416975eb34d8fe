import AgentProtocol
import CLinux
import Foundation
import HVCSystem
import Runtime
import Synchronization
import VMM

/// What hvcd holds for Docker clients between requests: attaches that wait for their
/// container's start (the docker CLI attaches first, then starts), the live sessions that
/// `resize` reaches, and exec instances (`POST /containers/{id}/exec` to `GET /exec/{id}/json`).
final class DockerSessions: Sendable {
    /// An attach to a created container, waiting for `start`.
    final class PendingStart: Sendable {
        private let outcome = Mutex<Result<Void, HVCError>?>(nil)
        private let signal = DispatchSemaphore(value: 0)

        func resolve(_ result: Result<Void, HVCError>) {
            outcome.withLock { $0 = result }
            signal.signal()
        }

        /// Waits for `start` while `client` stays connected, at most `seconds`.
        func wait(whileConnected client: FileDescriptor, seconds: Int) -> Result<Void, HVCError>? {
            for _ in 0..<seconds {
                if signal.wait(timeout: .now() + 1) == .success { return outcome.withLock { $0 } }
                // POLLRDHUP: the client closed its end.
                var poller = pollfd(fd: client.raw, events: 0x2000, revents: 0)
                if poll(&poller, 1, 0) > 0 { return nil }
            }
            return nil
        }
    }

    /// The last window size asked for a session, and its channel once it runs.
    struct Session {
        var channel: FrameChannel?
        var size: (rows: UInt16, columns: UInt16)?
    }

    private let pending = Mutex<[String: PendingStart]>([:])
    private let sessions = Mutex<[String: Session]>([:])
    private let execs = Mutex<[String: DockerExec]>([:])
    /// Exec instances kept, at most; the oldest ended ones go first.
    static let maxExecs = 1024

    /// Registers an attach waiting for the start of container `id`.
    func awaitStart(_ id: String) -> PendingStart {
        let waiter = PendingStart()
        pending.withLock { $0[id] = waiter }
        return waiter
    }

    func forgetStart(_ id: String, _ waiter: PendingStart) {
        pending.withLock { if $0[id] === waiter { $0[id] = nil } }
    }

    /// The attach waiting for the start of container `id`, taken.
    func takePendingStart(_ id: String) -> PendingStart? {
        pending.withLock { $0.removeValue(forKey: id) }
    }

    /// A session (a container's attach, or an exec) now reachable for resizes; the size asked
    /// before it ran is applied.
    func open(_ key: String, channel: FrameChannel) {
        let size = sessions.withLock { sessions -> (rows: UInt16, columns: UInt16)? in
            defer { sessions[key, default: Session()].channel = channel }
            return sessions[key]?.size
        }
        if let size { try? channel.send(Frame(process: DockerRelay.process, .resize(rows: size.rows, columns: size.columns))) }
    }

    func close(_ key: String) {
        _ = sessions.withLock { $0.removeValue(forKey: key) }
    }

    /// Resizes the session's terminal, or keeps the size for when it opens.
    func resize(_ key: String, rows: UInt16, columns: UInt16) {
        let channel = sessions.withLock { sessions -> FrameChannel? in
            sessions[key, default: Session()].size = (rows, columns)
            return sessions[key]?.channel
        }
        try? channel?.send(Frame(process: DockerRelay.process, .resize(rows: rows, columns: columns)))
    }

    func add(_ exec: DockerExec) {
        execs.withLock { execs in
            if execs.count >= DockerSessions.maxExecs {
                for old in execs.values.filter({ !$0.isRunning }).sorted(by: { $0.created < $1.created })
                    .prefix(execs.count - DockerSessions.maxExecs + 1) {
                    execs[old.id] = nil
                }
            }
            execs[exec.id] = exec
        }
    }

    func exec(_ id: String) -> DockerExec? { execs.withLock { $0[id] } }
}

/// One `docker exec` instance: what to run where, and how it went.
final class DockerExec: Sendable {
    let id: String
    let container: String
    let tenant: String
    let spec: ProcessSpec
    let attachStdin: Bool
    let attachStdout: Bool
    let attachStderr: Bool
    let created = Date()
    private let state = Mutex<(started: Bool, running: Bool, exitCode: Int32?, pid: Int32)>((false, false, nil, 0))

    init(container: String, tenant: String, spec: ProcessSpec, stdin: Bool, stdout: Bool, stderr: Bool) {
        var bytes = [UInt8](repeating: 0, count: 32)
        for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255) }
        id = bytes.map { String(format: "%02x", $0) }.joined()
        self.container = container
        self.tenant = tenant
        self.spec = spec
        attachStdin = stdin
        attachStdout = stdout
        attachStderr = stderr
    }

    var isRunning: Bool { state.withLock { $0.running } }

    /// Marks it started; false when it was started already (an exec runs once).
    func begin() -> Bool {
        state.withLock { state in
            guard !state.started else { return false }
            state.started = true
            state.running = true
            return true
        }
    }

    func started(pid: Int32) { state.withLock { $0.pid = pid } }

    func ended(_ code: Int32) {
        state.withLock { state in
            state.running = false
            state.exitCode = code
        }
    }

    /// `GET /exec/{id}/json`.
    var inspect: [String: Any] {
        let now = state.withLock { $0 }
        return [
            "ID": id, "ContainerID": container, "Running": now.running, "ExitCode": now.exitCode.map { Int($0) } ?? NSNull(),
            "Pid": Int(now.pid), "OpenStdin": attachStdin, "OpenStdout": attachStdout, "OpenStderr": attachStderr,
            "CanRemove": false, "DetachKeys": "",
            "ProcessConfig": [
                "tty": spec.terminal, "entrypoint": spec.arguments.first ?? "", "arguments": Array(spec.arguments.dropFirst()),
                "privileged": false, "user": spec.user,
            ] as [String: Any],
        ]
    }
}

/// Relays one process between a Docker client's taken-over connection and the container's
/// supervisor (its control socket): the client's bytes as the process's stdin, its output
/// to the client — raw with a terminal, else in Docker's multiplexed frames (a byte for the
/// stream, three zero bytes, a big-endian u32 length, then the bytes).
struct DockerRelay {
    /// The process number this client gives the process (the attached command is 1 too).
    static let process: UInt32 = 1

    let channel: FrameChannel
    /// The client's connection; nil for a detached exec, whose output goes nowhere.
    let client: FileDescriptor?
    let terminal: Bool
    let stdin: Bool
    let stdout: Bool
    let stderr: Bool

    /// Relays until the process exits, the supervisor goes or the client goes; returns the
    /// exit code (125 when it was not learned), and calls `started` with the guest's pid.
    func run(started: (Int32) -> Void = { _ in }) -> Int32 {
        if stdin, let client {
            let channel = self.channel
            Thread.detachNewThread {
                while let bytes = try? client.read(max: Limits.maxChunk), !bytes.isEmpty {
                    if (try? channel.send(Frame(process: DockerRelay.process, .stdin(bytes)))) == nil { return }
                }
                try? channel.send(Frame(process: DockerRelay.process, .closeStdin))
            }
        }
        while true {
            guard let frame = try? channel.receive() else {
                write(2, Array("hvc: the container's supervisor went before the process ended\n".utf8))
                return 125
            }
            if frame.process == 0, case .failure(let message) = frame.message {
                write(2, Array((message.sanitizedGuestText + "\n").utf8))
                return 125
            }
            guard frame.process == DockerRelay.process else { continue }
            switch frame.message {
            case .stdout(let bytes):
                guard write(1, bytes) else { return 125 }
            case .stderr(let bytes):
                guard write(2, bytes) else { return 125 }
            case .started(let pid):
                started(pid)
            case .startFailed(let reason, let message):
                write(2, Array(("hvc: " + message.sanitizedGuestText + "\n").utf8))
                switch reason {
                case .notFound: return 127
                case .notExecutable: return 126
                case .other: return 125
                }
            case .exited(let status):
                return status.code
            case .failure(let message):
                write(2, Array((message.sanitizedGuestText + "\n").utf8))
                return 125
            default:
                continue
            }
        }
    }

    /// Writes output of `stream` (1 stdout, 2 stderr) if asked for; false once the client went.
    @discardableResult
    private func write(_ stream: UInt8, _ bytes: [UInt8]) -> Bool {
        guard let client, stream == 1 ? stdout : stderr else { return true }
        var data = bytes
        if !terminal {
            let size = UInt32(bytes.count)
            data = [stream, 0, 0, 0, UInt8(size >> 24), UInt8(size >> 16 & 0xff), UInt8(size >> 8 & 0xff), UInt8(size & 0xff)] + bytes
        }
        return (try? client.writeAll(data)) != nil
    }
}
