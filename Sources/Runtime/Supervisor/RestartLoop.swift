import Foundation
import HVCSystem

extension Supervisor {
    /// Runs the container with `first`, then again (each time in a new VM, under a new
    /// supervisor of this process) for as long as its restart policy asks; returns the exit
    /// code of the last run. A user's stop or kill, or the container's removal, ends it.
    public static func runUnderRestartPolicy(_ first: Supervisor) -> Int32 {
        var supervisor = first
        var quickRuns = 0
        let (config, runtime) = (first.config, first.runtime)
        let store = runtime.containers
        while true {
            let began = Date()
            let code = supervisor.run()
            guard let policy = config.restartPolicy,
                  let state = try? store.load(config.id).state, state.stoppedByUser != true,
                  policy.restarts(after: code, count: state.restartCount ?? 0) else { return code }
            quickRuns = Date().timeIntervalSince(began) < RestartPolicy.steadyRun ? quickRuns + 1 : 0
            guard (try? store.update(config.id) { $0.restarting = true }) != nil else { return code }
            let resume = Date().addingTimeInterval(RestartPolicy.delay(quickRuns: quickRuns))
            while Date() < resume {
                usleep(50_000)
                guard let now = try? store.load(config.id).state, now.stoppedByUser != true else { return settle(config.id, store, code) }
            }
            // The mark is checked under the state's lock: a stop after this sees `restarting`
            // and waits for the new run to be running.
            let goesOn = (try? store.update(config.id) { state in
                if state.stoppedByUser == true {
                    state.restarting = nil
                } else {
                    state.restartCount = (state.restartCount ?? 0) + 1
                }
            })?.restarting == true
            guard goesOn else { return code }
            supervisor = Supervisor(config: config, runtime: runtime)
        }
    }

    /// Ends a wait to restart: the container is no longer restarting (if it still exists).
    private static func settle(_ id: String, _ store: ContainerStore, _ code: Int32) -> Int32 {
        _ = try? store.update(id) { $0.restarting = nil }
        return code
    }
}
