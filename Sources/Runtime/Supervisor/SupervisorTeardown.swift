import AgentProtocol
import Foundation
import HVCSystem
import VMM

/// The last part of a supervisor's work: ends the VM (nothing of it outlives its container:
/// its disk is read-only, its writable layer in guest memory, so there is no guest shutdown to
/// wait for), undoes its network and confinement, records the exit, and lets the clients go.
struct SupervisorTeardown {
    let config: ContainerConfig
    let runtime: Runtime
    let router: GuestRouter
    let timing: RunTiming

    /// Tears down and records `outcome`; returns the container's exit code.
    func finish(_ outcome: GuestRouter.Outcome, network: ContainerNetworkSide?, directory: VMDirectory?) -> Int32 {
        let store = runtime.containers
        let (launched, channel, clients, initClient) = router.end()
        if let launched {
            launched.vm.kill()
            _ = launched.vm.waitForExit(timeoutSeconds: 5)
        }
        timing.mark("vm-gone")
        // The guest wrote its block volumes before it reported the exit; another container may have them now.
        BlockVolume.releaseAll()
        let hadAddress = network?.detach(directory: directory) ?? false
        launched?.confinement?.release()
        config.joinedInterface?.leave()
        if hadAddress { timing.mark("network-gone") }
        channel?.shutdown()
        if let directory {
            if ProcessInfo.processInfo.environment["HVC_DEBUG"] == "1",
               let console = FileManager.default.contents(atPath: directory.consoleLog) {
                FileHandle.standardError.write(Data("--- guest console ---\n".utf8) + console)
            }
            directory.remove()
        }
        _ = try? store.update(config.id) { state in
            state.status = .exited
            state.finished = Date()
            state.exitCode = outcome.code
            state.error = outcome.error
            state.endpoint = nil
        }
        if config.autoRemove {
            store.remove(config.id)
            VolumeManager.removeAnonymous(of: config, runtime: runtime)
        }
        // Attached clients learn of a failure before the command started from its message.
        if let initClient, let error = outcome.error,
           outcome.code == HVCError.Kind.runtime.exitCode || outcome.code == Supervisor.killedStatus {
            try? initClient.channel.send(Frame(.failure(error)))
        }
        for client in clients { client.channel.shutdown() }
        timing.report()
        return outcome.code
    }
}
