import Foundation

/// `ps --filter` (and the Docker API's `filters`), as Docker has them: values of one key are
/// alternatives, but every `label` must hold, and keys together must all hold. Keys: `id` (a prefix), `name` (a part), `label` (`KEY` or
/// `KEY=VALUE`), `status` (`created`, `restarting`, `running`, `exited`), `ancestor` (the
/// image as given, or its id or an id prefix), `exited` (the exit code), `network`, `volume`,
/// `health` (`starting`, `healthy`, `unhealthy`, `none`).
public struct ContainerFilter: Equatable, Sendable {
    public static let keys = ["id", "name", "label", "status", "ancestor", "exited", "network", "volume", "health"]

    public private(set) var values: [String: [String]] = [:]

    public init() {}

    /// Each `KEY=VALUE` text.
    public init(parsing texts: [String]) throws(HVCError) {
        for text in texts {
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw HVCError(.invalid, "filter \"\(text.prefix(64))\" is not KEY=VALUE") }
            try add(parts[0], parts[1])
        }
    }

    public mutating func add(_ key: String, _ value: String) throws(HVCError) {
        guard ContainerFilter.keys.contains(key) else {
            throw HVCError(.invalid, "the \(key.prefix(32)) filter is not supported by hvc: use \(ContainerFilter.keys.joined(separator: ", "))")
        }
        if key == "exited", Int32(value) == nil { throw HVCError(.invalid, "the exited filter takes an exit code, not \"\(value.prefix(32))\"") }
        values[key, default: []].append(value)
    }

    public func matches(_ record: ContainerRecord) -> Bool {
        values.allSatisfy { key, given in
            key == "label" ? given.allSatisfy { ContainerFilter.holds(key, $0, record) } : given.contains { ContainerFilter.holds(key, $0, record) }
        }
    }

    static func holds(_ key: String, _ value: String, _ record: ContainerRecord) -> Bool {
        let config = record.config, state = record.state
        switch key {
        case "id": return !value.isEmpty && record.id.hasPrefix(value)
        case "name": return record.name.contains(value.hasPrefix("/") ? String(value.dropFirst()) : value)
        case "label":
            let parts = value.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard let label = config.labels?[parts[0]] else { return false }
            return parts.count == 1 || label == parts[1]
        case "status":
            return value == (state.restarting == true ? "restarting" : state.status.rawValue)
        case "ancestor":
            let id = value.hasPrefix("sha256:") ? String(value.dropFirst(7)) : value
            return config.image == value || config.image == value + ":latest" || (id.count >= 4 && config.imageID.hasPrefix(id))
        case "exited": return state.status == .exited && state.exitCode.map(String.init) == value
        case "network": return config.network == value
        case "volume": return (config.mounts ?? []).contains { $0.source == value || $0.target == value }
        case "health": return value == (state.health?.status.rawValue ?? "none")
        default: return false
        }
    }
}
