import Foundation
import HVCSystem

/// Containers under `<root>/containers/<id>`: `config.json` (fixed at creation), `state.json`
/// (rewritten atomically at each transition), `container.log`, and a `lock` file that
/// serializes transitions of that one container. Names are claimed under a store-wide lock.
public struct ContainerStore: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    func path(_ id: String) -> String { directory + "/" + id }
    public var events: ContainerEventJournal { ContainerEventJournal(path: directory + "/.events.jsonl") }
    public func logPath(_ id: String) -> String { path(id) + "/container.log" }

    /// Creates the container's directory with its configuration; fails if the name is taken.
    public func create(_ config: ContainerConfig) throws(HVCError) -> ContainerRecord {
        try makeDirectory(directory, mode: 0o711)
        return try withLock(directory + "/.names.lock") { () throws(HVCError) in
            if let clash = try list().first(where: { $0.name == config.name }) {
                throw HVCError(.conflict, "the name \"\(config.name)\" is already used by container \(ContainerID.shortForm(clash.id)): remove it or choose another name")
            }
            // Made whole under another name and renamed into place, so that a creator killed
            // half-way leaves no container that cannot be listed, nor removed.
            let staging = directory + "/" + ContainerStore.creatingPrefix + ProcessStamp.current.nameComponent + "-" + config.id
            try makeDirectory(staging, mode: 0o700)
            try writeAtomically(staging + "/state.json", JSONEncoder.hvc.encode(ContainerState()))
            try writeAtomically(staging + "/config.json", JSONEncoder.hvc.encode(config))
            guard rename(staging, path(config.id)) == 0 else {
                let error = Errno.current
                try? FileManager.default.removeItem(atPath: staging)
                throw HVCError("create \(path(config.id))", cause: error)
            }
            events.append("create", config: config)
            return ContainerRecord(config: config, state: ContainerState(), logPath: logPath(config.id))
        }
    }

    /// Directories of containers being created (`<prefix><pid>-<start>-<id>`, see `ProcessStamp`) and removed (`<prefix><id>`).
    static let creatingPrefix = ".creating-"
    static let removingPrefix = ".removing-"

    /// Every container whose files are complete, oldest first, with stale states settled.
    public func list() throws(HVCError) -> [ContainerRecord] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        removeAbandoned(names)
        return names.filter { $0.count == 64 }.compactMap { try? load($0) }.sorted { $0.config.created < $1.config.created }
    }

    /// Finishes what killed processes left: removals, and creations whose creator is dead.
    private func removeAbandoned(_ names: [String]) {
        for name in names {
            if name.hasPrefix(ContainerStore.removingPrefix) {
                try? FileManager.default.removeItem(atPath: directory + "/" + name)
            } else if name.hasPrefix(ContainerStore.creatingPrefix),
                      let creator = ProcessStamp(parsing: name.dropFirst(ContainerStore.creatingPrefix.count), separator: "-"),
                      !creator.isAlive {
                try? FileManager.default.removeItem(atPath: directory + "/" + name)
            }
        }
    }

    /// The container named by `text`: a full id, a name, or a unique id prefix.
    public func resolve(_ text: String) throws(HVCError) -> ContainerRecord {
        let all = try list()
        if let exact = all.first(where: { $0.id == text || $0.name == text }) { return exact }
        let matches = text.isEmpty ? [] : all.filter { $0.id.hasPrefix(text) }
        if matches.count == 1 { return matches[0] }
        if matches.count > 1 {
            throw HVCError(.conflict, "\"\(text)\" matches \(matches.count) containers: give more of the id")
        }
        throw HVCError(.notFound, "no such container: \(text)")
    }

    func load(_ id: String) throws(HVCError) -> ContainerRecord {
        let dir = path(id)
        guard let configData = FileManager.default.contents(atPath: dir + "/config.json"),
              let config = try? JSONDecoder.hvc.decode(ContainerConfig.self, from: configData)
        else { throw HVCError(.notFound, "no such container: \(id)") }
        var state = readState(id) ?? ContainerState()
        if settle(state) != nil {
            state = try update(id) { if let settled = settle($0) { $0 = settled } }
        }
        return ContainerRecord(config: config, state: state, logPath: logPath(id))
    }

    private func readState(_ id: String) -> ContainerState? {
        guard let data = FileManager.default.contents(atPath: path(id) + "/state.json") else { return nil }
        return try? JSONDecoder.hvc.decode(ContainerState.self, from: data)
    }

    /// A running container whose supervisor is gone has ended: its VM died with the supervisor.
    /// So has a created one whose supervisor took its VM and died before the command started.
    func settle(_ state: ContainerState) -> ContainerState? {
        guard state.status != .exited, let supervisor = state.supervisor, !supervisor.isAlive else { return nil }
        let pid = supervisor.pid
        var settled = state
        settled.status = .exited
        settled.finished = Date()
        if state.status == .running {
            settled.exitCode = 137
            settled.error = "supervisor (pid \(pid)) died; the VM was killed with it"
        } else {
            settled.exitCode = HVCError.Kind.runtime.exitCode
            settled.error = "supervisor (pid \(pid)) died before the container started; the VM was killed with it"
        }
        settled.endpoint = nil
        return settled
    }

    /// Changes a container's state under its lock and writes it back atomically.
    @discardableResult
    public func update(_ id: String, _ change: (inout ContainerState) throws(HVCError) -> Void) throws(HVCError) -> ContainerState {
        try withLock(path(id) + "/lock") { () throws(HVCError) in
            guard var state = readState(id) else { throw HVCError(.notFound, "no such container: \(id)") }
            let before = state.status
            try change(&state)
            try writeAtomically(path(id) + "/state.json", JSONEncoder.hvc.encode(state))
            if state.status != before, let config = readConfig(id) {
                if state.status == .running { events.append("start", config: config) }
                if state.status == .exited { events.append("die", config: config, exitCode: state.exitCode) }
            }
            return state
        }
    }

    /// Removes a container's files: gone at once (a rename), then deleted, so that a remover
    /// killed half-way leaves nothing that looks like a container.
    public func remove(_ id: String) {
        let config = readConfig(id)
        let removing = directory + "/" + ContainerStore.removingPrefix + id
        if rename(path(id), removing) == 0 { try? FileManager.default.removeItem(atPath: removing) }
        if let config { events.append("destroy", config: config) }
    }

    private func readConfig(_ id: String) -> ContainerConfig? {
        FileManager.default.contents(atPath: path(id) + "/config.json").flatMap { try? JSONDecoder.hvc.decode(ContainerConfig.self, from: $0) }
    }
}

/// Runs `body` holding an exclusive `flock` on `path` (created if needed).
func withLock<R>(_ path: String, _ body: () throws(HVCError) -> R) throws(HVCError) -> R {
    let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw HVCError("lock \(path): \(Errno.current)") }
    defer { close(fd) }
    while flock(fd, LOCK_EX) != 0 && Errno.current == .interrupted {}
    return try body()
}

/// The entries of `<directory>/<tenant>/` for `tenant`, or for every tenant when nil (the
/// directories not starting with `.`): how per-tenant stores (networks, volumes) are laid out.
func entriesPerTenant(in directory: String, tenant: String?) -> [(tenant: String, entry: String)] {
    let tenants = tenant.map { [$0] } ?? ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { !$0.hasPrefix(".") }
    return tenants.flatMap { tenant in
        ((try? FileManager.default.contentsOfDirectory(atPath: directory + "/" + tenant)) ?? []).map { (tenant, $0) }
    }
}
