extension Message {
    /// The message's name in the protocol (`hello`, `exited`, ...), for errors about it.
    public var name: String {
        switch self {
        case .hello: "hello"
        case .start: "start"
        case .stdin: "stdin"
        case .closeStdin: "closeStdin"
        case .signal: "signal"
        case .resize: "resize"
        case .shutdown: "shutdown"
        case .warmUp: "warmUp"
        case .attach: "attach"
        case .ready: "ready"
        case .started: "started"
        case .startFailed: "startFailed"
        case .stdout: "stdout"
        case .stderr: "stderr"
        case .exited: "exited"
        case .failure: "failure"
        case .oomKilled: "oomKilled"
        case .warmedUp: "warmedUp"
        }
    }
}

extension Frame {
    /// Why this frame, received from a guest once its session has begun (after `ready`, with
    /// process 1 asked to start), breaks the protocol; nil when it does not.
    ///
    /// A guest sends only guest → host messages, `ready` and `warmedUp` only before the session,
    /// and reports only on processes the host asked it to start (`started` holds their ids;
    /// reports on one that has ended are late, not wrong).
    public func guestViolation(started: Range<UInt32>) -> String? {
        switch message {
        case .hello, .start, .stdin, .closeStdin, .signal, .resize, .shutdown, .warmUp, .attach:
            "it sent `\(message.name)`, which only the host sends"
        case .ready, .warmedUp:
            "it sent `\(message.name)` after the session began"
        case .started, .startFailed, .stdout, .stderr, .exited, .oomKilled:
            started.contains(process) ? nil : "it sent `\(message.name)` for process \(process), which the host never started"
        case .failure:
            nil
        }
    }
}
