import AgentProtocol
import Foundation
import HVCSystem
import VMM

/// One process run in a container for hvc's own use (a health check, a copy of files): over a
/// channel that speaks the control protocol, without a terminal, its stdin from `input` and
/// its output handed to `output` as it comes.
public enum ContainerProcess {
    /// How a run ended.
    public enum Ending: Equatable, Sendable {
        case exited(Int32)
        /// It could not start: not found, not executable, or another reason.
        case notStarted(String)
        /// It ran past its time and was killed.
        case timedOut
        /// The channel failed (the container ended, or its supervisor went).
        case lost(String)
    }

    static let process: UInt32 = 1

    /// Most bytes of a process's stderr kept to say why it failed.
    static let keptErrorBytes = 4096

    /// The first line of what a process wrote to stderr, sanitized, as `": LINE"`; empty when it
    /// wrote nothing.
    static func reason(_ errors: [UInt8]) -> String {
        let said = String(decoding: errors, as: UTF8.self).split(separator: "\n").first.map { String($0).sanitizedGuestText } ?? ""
        return said.isEmpty ? "" : ": " + said
    }

    /// Runs `arguments` with the container's environment and user. `input` gives stdin's next
    /// bytes (nil or empty: its end); `output` takes each chunk with its stream (1 stdout,
    /// 2 stderr) and returns false to stop reading (the process is killed).
    public static func run(over channel: FrameChannel, _ record: ContainerRecord, arguments: [String], seconds: Double? = nil,
                           input: (@Sendable () -> [UInt8]?)? = nil, output: (UInt8, [UInt8]) -> Bool) -> Ending {
        var spec = record.config.process.spec()
        spec.arguments = arguments
        spec.terminal = false
        return run(over: channel, spec: spec, seconds: seconds, input: input, output: output)
    }

    public static func run(over channel: FrameChannel, spec: ProcessSpec, seconds: Double? = nil,
                           input: (@Sendable () -> [UInt8]?)? = nil, output: (UInt8, [UInt8]) -> Bool) -> Ending {
        do {
            try channel.send(Frame(process: process, .start(spec)))
            if input == nil { try channel.send(Frame(process: process, .closeStdin)) }
        } catch {
            return .lost("\(error)")
        }
        if let input {
            Thread.detachNewThread {
                while let bytes = input(), !bytes.isEmpty {
                    for start in stride(from: 0, to: bytes.count, by: Limits.maxChunk) {
                        let chunk = Array(bytes[start..<min(start + Limits.maxChunk, bytes.count)])
                        if (try? channel.send(Frame(process: process, .stdin(chunk)))) == nil { return }
                    }
                }
                try? channel.send(Frame(process: process, .closeStdin))
            }
        }
        let deadline = seconds.map { Date().addingTimeInterval($0) }
        while true {
            if let deadline {
                let left = deadline.timeIntervalSinceNow
                guard left > 0 else { break }
                channel.setReceiveTimeout(seconds: max(1, Int(left.rounded(.up))))
            }
            let frame: Frame
            do {
                frame = try channel.receive()
            } catch {
                if case .io = error, let deadline, deadline.timeIntervalSinceNow <= 0 { break }
                return .lost("\(error)")
            }
            guard frame.process == process else { continue }
            switch frame.message {
            case .stdout(let bytes):
                guard output(1, bytes) else { return kill(channel, .lost("the reader stopped")) }
            case .stderr(let bytes):
                guard output(2, bytes) else { return kill(channel, .lost("the reader stopped")) }
            case .exited(let status):
                return .exited(status.code)
            case .startFailed(_, let message):
                return .notStarted(message.sanitizedGuestText)
            case .failure(let message):
                return .lost(message.sanitizedGuestText)
            default:
                continue
            }
        }
        return kill(channel, .timedOut)
    }

    private static func kill(_ channel: FrameChannel, _ ending: Ending) -> Ending {
        try? channel.send(Frame(process: process, .signal(SIGKILL)))
        return ending
    }
}
