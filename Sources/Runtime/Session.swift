import AgentProtocol
import CLinux
import Foundation
import HVCSystem
import VMM

/// One conversation with a guest agent about one process: handshake, start, stdio, exit.
final class Session: @unchecked Sendable {
    // @unchecked: `channel` is Sendable; the rest is touched by the main thread only.
    static let process: UInt32 = 1

    let channel: AgentChannel
    let timing: RunTiming
    private let stdout = FileDescriptor(dup(1))
    private let stderr = FileDescriptor(dup(2))

    init(channel: AgentChannel, timing: RunTiming) {
        self.channel = channel
        self.timing = timing
    }

    func run(spec: ProcessSpec, hostname: String, interactive: Bool, terminal: Bool,
             onFailure: () -> String) throws(HVCError) -> Int32 {
        do {
            let ready = try receive(onFailure)
            guard case .ready(let info) = ready.message else {
                throw HVCError("guest agent did not start with `ready`\(onFailure())")
            }
            guard info.version == Limits.version else {
                throw HVCError("\(ProtocolError.versionMismatch(host: Limits.version, guest: info.version)): rebuild the agent with `make assets`")
            }
            timing.mark("ready")
            timing.guestAgentStart = info.agentStartNanoseconds
            timing.guestReady = info.readyNanoseconds
            let now = UInt64(Date().timeIntervalSince1970 * 1e9)
            try channel.send(Frame(.hello(Hello(entropy: randomBytes(256), unixTimeNanoseconds: now, hostname: hostname))))
            try channel.send(Frame(process: Session.process, .start(spec)))
        } catch let error as HVCError {
            throw error
        } catch {
            throw HVCError("guest agent: \(error)\(onFailure())")
        }

        let terminalState = terminal ? TerminalMode.makeRaw(0) : nil
        defer { terminalState?.restore() }
        startSignalRelay(terminal: terminal)
        if interactive {
            startStdinRelay()
        } else {
            try? channel.send(Frame(process: Session.process, .closeStdin))
        }

        while true {
            let frame = try receive(onFailure)
            guard frame.process == Session.process else { continue }
            switch frame.message {
            case .started:
                timing.mark("started")
            case .startFailed(let reason, let message):
                switch reason {
                case .notFound: throw HVCError(.commandNotFound, message)
                case .notExecutable: throw HVCError(.cannotExecute, message)
                case .other: throw HVCError(message)
                }
            case .stdout(let bytes):
                try? stdout.writeAll(bytes)
            case .stderr(let bytes):
                try? stderr.writeAll(bytes)
            case .exited(let status):
                timing.mark("exited")
                try? channel.send(Frame(.shutdown))
                return status.code
            case .failure(let message):
                throw HVCError("guest agent failed: \(message)")
            default:
                throw HVCError("guest agent sent an unexpected message\(onFailure())")
            }
        }
    }

    private func receive(_ onFailure: () -> String) throws(HVCError) -> Frame {
        do {
            let frame = try channel.receive()
            if frame.process == 0, case .failure(let message) = frame.message {
                throw HVCError("guest agent failed: \(message)")
            }
            return frame
        } catch let error as HVCError {
            throw error
        } catch AgentChannel.ReceiveError.closed {
            throw HVCError("the VM ended before the command finished\(onFailure())")
        } catch {
            throw HVCError("\(error)\(onFailure())")
        }
    }

    private func startStdinRelay() {
        let channel = self.channel
        Thread.detachNewThread {
            let input = FileDescriptor(dup(0))
            while true {
                guard let bytes = try? input.read(max: Limits.maxChunk), !bytes.isEmpty else { break }
                do { try channel.send(Frame(process: Session.process, .stdin(bytes))) } catch { return }
            }
            try? channel.send(Frame(process: Session.process, .closeStdin))
        }
    }

    private func startSignalRelay(terminal: Bool) {
        let channel = self.channel
        Thread.detachNewThread {
            var mask = sigset_t()
            sigemptyset(&mask)
            for signal in ForegroundRun.forwardedSignals { sigaddset(&mask, signal) }
            while true {
                var signal: Int32 = 0
                guard sigwait(&mask, &signal) == 0 else { continue }
                if signal == SIGWINCH {
                    var rows: UInt16 = 0
                    var columns: UInt16 = 0
                    if terminal, hvc_get_window_size(0, &rows, &columns) == 0 {
                        try? channel.send(Frame(process: Session.process, .resize(rows: rows, columns: columns)))
                    }
                    continue
                }
                try? channel.send(Frame(process: Session.process, .signal(signal)))
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
