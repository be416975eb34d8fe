import ArgumentParser
import Runtime

/// `hvc-shim oci-exec ID --exec-file FILE`: the host process of an OCI exec: starts its
/// process in the container, relays it and ends as it did.
struct OCIExecCommand: ShimRoleCommand {
    static let configuration = CommandConfiguration(
        commandName: Shim.Role.Name.ociExec.rawValue,
        abstract: "Be an OCI exec's process: run it in the container, relay it, end as it ends.")

    @Argument(help: "The hvc container's id.")
    var container: String

    @Option(parsing: .unconditional, help: "The process to run, as hvc-oci wrote it (removed once read).")
    var execFile: String

    @Option(parsing: .unconditional, help: "The caller's socket for the terminal's master.")
    var consoleSocket: String?

    @OptionGroup var state: StateOptions

    var role: Shim.Role { .ociExec(container: container, execFile: execFile, consoleSocket: consoleSocket) }

    func run() throws {
        do {
            OCIProcessExit.asCommand(try OCIContainers.runExec(
                runtime: state.runtime(), execFile: execFile, container: container, consoleSocket: consoleSocket))
        } catch {
            OCIProcessExit.failing(error)
        }
    }
}
