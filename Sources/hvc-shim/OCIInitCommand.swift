import ArgumentParser
import Runtime

/// `hvc-shim oci-init ID --state-directory DIR`: an OCI container's own process (what runc's
/// `--pid-file` names): boots the VM, waits for `start`, relays the command and ends as it did.
struct OCIInitCommand: ShimRoleCommand {
    static let configuration = CommandConfiguration(
        commandName: Shim.Role.Name.ociInit.rawValue,
        abstract: "Be an OCI container's process: boot its VM, wait for start, relay its command, end as it ends.")

    @Argument(help: "The hvc container's id.")
    var container: String

    @Option(parsing: .unconditional, help: "The OCI container's state directory (its start FIFO).")
    var stateDirectory: String

    @Option(parsing: .unconditional, help: "The caller's socket for the terminal's master.")
    var consoleSocket: String?

    @Option(parsing: .unconditional, help: "The network namespace to join, or \"new\".")
    var netns: String?

    @Option(parsing: .unconditional, help: "The cgroup v2 path to join.")
    var cgroup: String?

    @OptionGroup var state: StateOptions

    var role: Shim.Role {
        .ociInit(container: container, stateDirectory: stateDirectory, consoleSocket: consoleSocket, networkNamespace: netns, cgroup: cgroup)
    }

    func run() throws {
        do {
            OCIProcessExit.asCommand(try OCIContainers.runInit(
                runtime: state.runtime(), stateDirectory: stateDirectory, container: container, consoleSocket: consoleSocket,
                networkNamespace: netns, cgroup: cgroup))
        } catch {
            OCIProcessExit.failing(error)
        }
    }
}
