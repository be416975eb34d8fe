import ArgumentParser
import Foundation
import HVCSystem
import Runtime

/// `hvc-shim`: the detached processes of hvc, one role each, started by the runtime with the
/// command line `Shim.Role.arguments(paths:)` renders.
@main
struct HVCShim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hvc-shim",
        abstract: "hvc's detached processes: container supervisors, template keepers, pool members, the name server, OCI processes.",
        subcommands: [
            SuperviseCommand.self, KeepTemplateCommand.self, PoolMemberCommand.self, NameServerCommand.self,
            OCIInitCommand.self, OCIExecCommand.self,
        ])

    /// Parses the command line and runs the role, which ends the process. A bad command line
    /// exits 2 with one line.
    static func main() {
        do {
            var command = try parseAsRoot()
            signal(SIGPIPE, SIG_IGN)
            try command.run()
        } catch {
            guard exitCode(for: error) == .validationFailure else { exit(withError: error) }
            let line = message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            writeToStandardError("hvc-shim: \(line)\n")
            Foundation.exit(2)
        }
    }

    func run() throws {
        let roles = Shim.Role.Name.allCases.map(\.rawValue).joined(separator: ", ")
        throw ValidationError("give a role: \(roles)")
    }
}

/// A role's command: what the runtime asked this process to be.
protocol ShimRoleCommand: ParsableCommand {
    var state: StateOptions { get }
    var role: Shim.Role { get }
}

/// Where the state this process works on lives; every role takes all three.
struct StateOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Persistent state directory.")
    var root: String

    @Option(parsing: .unconditional, help: "Volatile state directory.")
    var runRoot: String

    @Option(parsing: .unconditional, help: "Directory with the guest kernel and agent initramfs.")
    var assets: String

    var paths: RuntimePaths { RuntimePaths(root: root, runRoot: runRoot, assets: assets) }

    func runtime() -> Runtime { Runtime(paths: paths) }
}

/// Ends the process after one line on stderr.
func exitReporting(_ message: String, code: Int32) -> Never {
    writeToStandardError("hvc-shim: \(message)\n")
    exit(code)
}
