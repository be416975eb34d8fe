import Foundation

/// What a container's supervisor does when the command ends (Docker's `--restart`): `no`,
/// `on-failure[:N]` (a non-zero exit, at most N restarts when N > 0), `always`, and
/// `unless-stopped`. A container stopped or killed by a user is not restarted (`hvc stop`,
/// `hvc kill`), nor a removed one. Each restart is a new VM: the writable layer starts from
/// the image again, the log goes on.
public struct RestartPolicy: Codable, Equatable, Sendable {
    public enum Name: String, Codable, Sendable, CaseIterable {
        case no
        case onFailure = "on-failure"
        case always
        case unlessStopped = "unless-stopped"
    }

    public var name: Name
    /// `on-failure`'s most restarts; 0: no bound.
    public var maximumRetries: Int

    public init(name: Name, maximumRetries: Int = 0) {
        self.name = name
        self.maximumRetries = maximumRetries
    }

    /// `no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N`.
    public static func parse(_ text: String) throws(HVCError) -> RestartPolicy {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let name = Name(rawValue: parts[0]) else {
            throw HVCError(.invalid, "restart policy \"\(text.prefix(64))\" is not known: use no, on-failure[:N], always or unless-stopped")
        }
        guard parts.count == 2 else { return RestartPolicy(name: name) }
        guard name == .onFailure, let count = Int(parts[1]), count >= 0 else {
            throw HVCError(.invalid, "restart policy \"\(text.prefix(64))\": only on-failure takes a count, a number of 0 or more")
        }
        return RestartPolicy(name: name, maximumRetries: count)
    }

    /// As `--restart` takes it.
    public var text: String {
        name == .onFailure && maximumRetries > 0 ? "\(name.rawValue):\(maximumRetries)" : name.rawValue
    }

    /// Whether a command that ended with `code`, after `count` restarts, runs again.
    public func restarts(after code: Int32, count: Int) -> Bool {
        switch name {
        case .no: false
        case .onFailure: code != 0 && (maximumRetries == 0 || count < maximumRetries)
        case .always, .unlessStopped: true
        }
    }

    /// The pause before restart number `quickRuns` in a row of runs that each ended within
    /// `RestartPolicy.steadyRun` (Docker's: 100 ms, doubling, at most a minute).
    public static func delay(quickRuns: Int) -> Double {
        quickRuns <= 1 ? 0.1 : min(0.1 * pow(2, Double(min(quickRuns - 1, 20))), 60)
    }

    /// A run at least this long resets the pause.
    public static let steadyRun: Double = 10
}
