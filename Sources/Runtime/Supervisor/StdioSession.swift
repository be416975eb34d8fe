import AgentProtocol
import CLinux
import Foundation
import HVCSystem
import VMM

/// The client side of one process in a container: relays the terminal's stdin, signals and
/// window size to it, and its output back, until it exits. Talks frames to the container's
/// supervisor (over the control socket, or a socket pair for attached runs).
final class StdioSession: @unchecked Sendable {
    // @unchecked: `channel` is Sendable; the rest is touched by the calling thread only.
    static let process: UInt32 = 1

    let channel: FrameChannel
    private let stdout = FileDescriptor(dup(1))
    private let stderr = FileDescriptor(dup(2))

    /// Signals passed on to the process.
    static let forwardedSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH]

    init(channel: FrameChannel) { self.channel = channel }

    /// The size of the terminal on stdin, or `fallback` where there is none or it has no size
    /// yet (a new pty).
    static func terminalSize(or fallback: (rows: UInt16, columns: UInt16)) -> (rows: UInt16, columns: UInt16) {
        var rows: UInt16 = 0
        var columns: UInt16 = 0
        guard hvc_get_window_size(0, &rows, &columns) == 0, rows > 0, columns > 0 else { return fallback }
        return (rows, columns)
    }

    /// Blocks the forwarded signals in the calling thread; call before starting other threads.
    static func blockForwardedSignals() {
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in forwardedSignals { sigaddset(&mask, signal) }
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    /// Starts `spec` (unless the supervisor already started the process) and relays until it
    /// exits; returns its exit code.
    func run(start spec: ProcessSpec?, interactive: Bool, terminal: Bool, onStarted: (() -> Void)? = nil) throws(HVCError) -> Int32 {
        if let spec {
            do {
                try channel.send(Frame(process: StdioSession.process, .start(spec)))
            } catch {
                throw HVCError("container supervisor", cause: error)
            }
        }
        let terminalState = terminal ? TerminalMode.makeRaw(0) : nil
        defer { terminalState?.restore() }
        startSignalRelay(terminal: terminal)
        if interactive {
            startStdinRelay()
        } else if spec != nil {
            try? channel.send(Frame(process: StdioSession.process, .closeStdin))
        }
        while true {
            let frame: Frame
            do {
                frame = try channel.receive()
            } catch .closed {
                throw HVCError("the container ended before the command finished")
            } catch {
                throw HVCError("container supervisor", cause: error)
            }
            if frame.process == 0, case .failure(let message) = frame.message { throw HVCError(message.sanitizedGuestText) }
            guard frame.process == StdioSession.process else { continue }
            switch frame.message {
            case .startFailed(let reason, let message):
                let text = message.sanitizedGuestText
                switch reason {
                case .notFound: throw HVCError(.commandNotFound, text)
                case .notExecutable: throw HVCError(.cannotExecute, text)
                case .other: throw HVCError(text)
                }
            case .stdout(let bytes):
                try? stdout.writeAll(bytes)
            case .stderr(let bytes):
                try? stderr.writeAll(bytes)
            case .started:
                onStarted?()
            case .exited(let status):
                return status.code
            case .failure(let message):
                throw HVCError(message.sanitizedGuestText)
            default:
                break
            }
        }
    }

    private func startStdinRelay() {
        let channel = self.channel
        Thread.detachNewThread {
            let input = FileDescriptor(dup(0))
            while true {
                guard let bytes = try? input.read(max: Limits.maxChunk), !bytes.isEmpty else { break }
                do { try channel.send(Frame(process: StdioSession.process, .stdin(bytes))) } catch { return }
            }
            try? channel.send(Frame(process: StdioSession.process, .closeStdin))
        }
    }

    private func startSignalRelay(terminal: Bool) {
        let channel = self.channel
        Thread.detachNewThread {
            var mask = sigset_t()
            sigemptyset(&mask)
            for signal in StdioSession.forwardedSignals { sigaddset(&mask, signal) }
            while true {
                var signal: Int32 = 0
                guard sigwait(&mask, &signal) == 0 else { continue }
                if signal == SIGWINCH {
                    var rows: UInt16 = 0
                    var columns: UInt16 = 0
                    if terminal, hvc_get_window_size(0, &rows, &columns) == 0 {
                        try? channel.send(Frame(process: StdioSession.process, .resize(rows: rows, columns: columns)))
                    }
                    continue
                }
                try? channel.send(Frame(process: StdioSession.process, .signal(signal)))
            }
        }
    }
}

/// Puts a terminal in raw mode and gives back the old settings.
struct TerminalMode {
    let fd: Int32
    let saved: termios

    static func makeRaw(_ fd: Int32) -> TerminalMode? {
        guard isatty(fd) == 1 else { return nil }
        var original = termios()
        guard tcgetattr(fd, &original) == 0 else { return nil }
        var raw = original
        cfmakeraw(&raw)
        tcsetattr(fd, TCSANOW, &raw)
        return TerminalMode(fd: fd, saved: original)
    }

    func restore() {
        var saved = self.saved
        tcsetattr(fd, TCSANOW, &saved)
    }
}

/// Host-side timestamps of one run, printed to stderr as an `hvc-timing:` line when enabled.
public final class RunTiming: @unchecked Sendable {
    // @unchecked: marks are taken by the supervisor's own thread only.
    /// When the command began (set by the CLI first thing); marks count from it.
    nonisolated(unsafe) public static var origin: UInt64 = 0
    let enabled: Bool
    private let start = RunTiming.origin != 0 ? RunTiming.origin : monotonicNanoseconds()
    private var marks: [(String, UInt64)] = []
    var guestAgentStart: UInt64 = 0
    var guestReady: UInt64 = 0

    init(enabled: Bool) {
        self.enabled = enabled
        mark("supervisor")
    }

    func mark(_ name: String) {
        if enabled { marks.append((name, monotonicNanoseconds() - start)) }
    }

    func report() {
        guard enabled else { return }
        var line = "hvc-timing:"
        for (name, at) in marks { line += " \(name)=\(String(format: "%.1f", Double(at) / 1e6))ms" }
        line += " guest-agent-start=\(String(format: "%.1f", Double(guestAgentStart) / 1e6))ms"
        line += " guest-ready=\(String(format: "%.1f", Double(guestReady) / 1e6))ms"
        writeToStandardError(line + "\n")
    }
}
