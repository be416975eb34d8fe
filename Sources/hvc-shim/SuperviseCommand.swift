import ArgumentParser
import Foundation
import Runtime

/// `hvc-shim supervise ID`: supervises one detached container for its whole life and exits with
/// its exit code.
struct SuperviseCommand: ShimRoleCommand {
    static let configuration = CommandConfiguration(
        commandName: Shim.Role.Name.supervise.rawValue,
        abstract: "Supervise a created container: boot its VM, run its command, record how it ended.")

    @Argument(help: "The container's id.")
    var container: String

    @Flag(help: "Hold the command until a client attaches to the control socket.")
    var awaitAttach = false

    @OptionGroup var state: StateOptions

    var role: Shim.Role { .supervise(container: container, awaitsAttach: awaitAttach) }

    func run() throws {
        let runtime = state.runtime()
        do {
            let record = try runtime.containers.resolve(container)
            Foundation.exit(Supervisor.runUnderRestartPolicy(Supervisor(config: record.config, runtime: runtime, awaitsAttach: awaitAttach)))
        } catch {
            exitReporting(error.message, code: 125)
        }
    }
}
