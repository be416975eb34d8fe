import Foundation
import Runtime
import VMM

/// The container verbs, carried out on the local state or by hvcd: each CLI verb is written
/// once against this, and both implementations take the same request types.
protocol ContainerService {
    /// Records a container; with `request.start`, starts it too. Returns its id.
    func create(_ request: CreateContainerRequest) throws(HVCError) -> String
    func start(_ container: String) throws(HVCError)
    func stop(_ container: String, timeout: Int) throws(HVCError)
    func restart(_ container: String, timeout: Int) throws(HVCError)
    /// What the container's VM uses now.
    func stats(_ container: String) throws(HVCError) -> ContainerStats
    func kill(_ container: String, signal: Int32) throws(HVCError)
    /// Waits for the container to exit; returns its exit code.
    func wait(_ container: String) throws(HVCError) -> Int32
    /// `volumes`: its anonymous volumes too.
    func remove(_ container: String, force: Bool, volumes: Bool) throws(HVCError)
    func list() throws(HVCError) -> [ContainerRecord]
    func inspect(_ container: String) throws(HVCError) -> ContainerRecord
    /// A connection to the container's supervisor that speaks the control protocol.
    func control(_ record: ContainerRecord) throws(HVCError) -> FrameChannel
}

/// The verbs on this machine's state, through the runtime library.
struct LocalContainers: ContainerService {
    let manager: ContainerManager

    func create(_ request: CreateContainerRequest) throws(HVCError) -> String {
        let options = try request.runOptions()
        return request.start == true ? try manager.createAndStart(options).id : try manager.create(options).id
    }

    func start(_ container: String) throws(HVCError) { _ = try manager.start(container) }
    func stop(_ container: String, timeout: Int) throws(HVCError) { _ = try manager.stop(container, timeout: timeout) }
    func restart(_ container: String, timeout: Int) throws(HVCError) { _ = try manager.restart(container, timeout: timeout) }
    func stats(_ container: String) throws(HVCError) -> ContainerStats {
        try ContainerStats.sample(try manager.runtime.containers.resolve(container), runtime: manager.runtime)
    }
    func kill(_ container: String, signal: Int32) throws(HVCError) { try manager.kill(container, signal: signal) }
    func wait(_ container: String) throws(HVCError) -> Int32 { try manager.wait(container) }
    func remove(_ container: String, force: Bool, volumes: Bool) throws(HVCError) {
        try manager.remove(container, force: force, volumes: volumes)
    }
    func list() throws(HVCError) -> [ContainerRecord] { try manager.runtime.containers.list() }
    func inspect(_ container: String) throws(HVCError) -> ContainerRecord { try manager.runtime.containers.resolve(container) }
    func control(_ record: ContainerRecord) throws(HVCError) -> FrameChannel { try manager.controlChannel(record) }
}

/// The verbs through hvcd's API (`Specs/api.yaml`) and its stream socket.
struct DaemonContainers: ContainerService {
    let client: DaemonClient

    private func path(_ container: String, _ action: String = "") -> String {
        "/v1/containers/" + DaemonClient.escape(container) + (action.isEmpty ? "" : "/" + action)
    }

    func create(_ request: CreateContainerRequest) throws(HVCError) -> String {
        try client.decode(CreatedContainer.self, try client.call("POST", "/v1/containers", body: request)).id
    }

    func start(_ container: String) throws(HVCError) { _ = try client.call("POST", path(container, "start")) }
    func stop(_ container: String, timeout: Int) throws(HVCError) { _ = try client.call("POST", path(container, "stop") + "?timeout=\(timeout)") }
    func restart(_ container: String, timeout: Int) throws(HVCError) {
        _ = try client.call("POST", path(container, "restart") + "?timeout=\(timeout)")
    }
    func stats(_ container: String) throws(HVCError) -> ContainerStats {
        try client.decode(ContainerStats.self, try client.call("GET", path(container, "stats")))
    }
    func kill(_ container: String, signal: Int32) throws(HVCError) { _ = try client.call("POST", path(container, "kill") + "?signal=\(signal)") }

    func wait(_ container: String) throws(HVCError) -> Int32 {
        try client.decode(WaitResult.self, try client.call("POST", path(container, "wait"))).exitCode
    }

    func remove(_ container: String, force: Bool, volumes: Bool) throws(HVCError) {
        _ = try client.call("DELETE", path(container) + "?force=\(force)&v=\(volumes)")
    }
    func list() throws(HVCError) -> [ContainerRecord] { try client.decode([ContainerRecord].self, try client.call("GET", "/v1/containers")) }

    func inspect(_ container: String) throws(HVCError) -> ContainerRecord {
        try client.decode(ContainerRecord.self, try client.call("GET", path(container)))
    }

    func control(_ record: ContainerRecord) throws(HVCError) -> FrameChannel { try client.openStream(container: record.id) }
}

extension GlobalOptions {
    /// hvcd when one is given (`--host`, `HVC_HOST`), else the local state.
    func containers() throws(HVCError) -> any ContainerService {
        if let daemon = try daemon() { return DaemonContainers(client: daemon) }
        return LocalContainers(manager: ContainerManager(runtime: runtime()))
    }

    /// Runs `action` on each container in turn, printing what it returns; a failure is reported
    /// on its own line and the others still run, as Docker does. Returns the last failure's code.
    func forEach(_ containers: [String], _ action: (any ContainerService, String) throws(HVCError) -> String) throws(HVCError) -> Int32 {
        let service = try self.containers()
        return eachReported(containers) { (container: String) throws(HVCError) in try action(service, container) }
    }
}

/// Runs `action` on each item in turn, printing what it returns; a failure is reported on its
/// own line and the others still run, as Docker does. Returns the last failure's code.
func eachReported(_ items: [String], _ action: (String) throws(HVCError) -> String) -> Int32 {
    var failure: HVCError?
    for item in items {
        do {
            print(try action(item))
        } catch {
            FileHandle.standardError.write(Data("hvc: \(error.message)\n".utf8))
            failure = error
        }
    }
    return failure?.exitCode ?? 0
}
