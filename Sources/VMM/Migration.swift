import Foundation
import HVCSystem

/// Saving and restoring a VM's device state over QMP, with guest RAM left in its shared file
/// (`x-ignore-shared`): the state is a few tens of kilobytes.
///
/// The stream goes through a descriptor handed to QEMU with `getfd`: QEMU's `exec:` transport
/// forks a shell, which its own sandbox (`spawn=deny`) forbids.
public enum Migration {
    /// Guest RAM stays in its file; `events`: QEMU reports the migration's progress as
    /// `MIGRATION` events, which `save` waits on instead of asking.
    static var capabilities: [String: Any] {
        ["capabilities": [["capability": "x-ignore-shared", "state": true], ["capability": "events", "state": true]]]
    }

    /// Writes the device state of the (running or paused) VM to `state`, and waits until QEMU
    /// reports it complete; the VM is left paused.
    public static func save(_ qmp: QMPClient, to state: Int32, timeoutSeconds: Double = 60) throws(VMError) {
        try qmp.execute("migrate-set-capabilities", arguments: capabilities)
        try qmp.execute("getfd", arguments: ["fdname": "hvc-state"], passing: state)
        try qmp.execute("migrate", arguments: ["uri": "fd:hvc-state"])
        qmp.setTimeout(seconds: timeoutSeconds)
        let ended: [String: Any]
        do {
            ended = try qmp.waitForEvent("MIGRATION") { ["completed", "failed", "cancelled"].contains($0["status"] as? String ?? "") }
        } catch {
            throw .qmp("saving the VM state: \(error)")
        }
        guard (ended["data"] as? [String: Any])?["status"] as? String == "completed" else {
            let info = (try? qmp.execute("query-migrate")) as? [String: Any] ?? [:]
            throw .qmp("saving the VM state: \(info["error-desc"] as? String ?? "migration failed")")
        }
    }

    /// Starts loading device state from `state` into a VMM started with `-incoming defer`;
    /// the VM runs by itself once the state is in.
    public static func restore(_ qmp: QMPClient, from state: Int32) throws(VMError) {
        try qmp.execute("migrate-set-capabilities", arguments: capabilities)
        try qmp.execute("getfd", arguments: ["fdname": "hvc-state"], passing: state)
        try qmp.execute("migrate-incoming", arguments: ["uri": "fd:hvc-state"])
    }
}
