import Glibc

/// Signal names and numbers as `kill -s` and the API take them.
public enum SignalName {
    static let range: ClosedRange<Int32> = 1...64

    static let names: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL, "USR1": SIGUSR1, "USR2": SIGUSR2,
        "TERM": SIGTERM, "CONT": SIGCONT, "STOP": SIGSTOP, "ALRM": SIGALRM, "WINCH": SIGWINCH,
    ]

    /// `TERM`, `SIGTERM`, `term` or `15`; an unknown name or a number out of range is an error.
    public static func parse(_ text: String) throws(HVCError) -> Int32 {
        if let number = Int32(text), range.contains(number) { return number }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        guard let number = names[name] else {
            throw HVCError(.invalid, "unknown signal \"\(text.prefix(32))\": give a name like TERM or a number from 1 to 64")
        }
        return number
    }
}
