import ArgumentParser
import Foundation
import Runtime

/// `hvc-oci`: runc's command line, each container in a micro-VM of its own, for podman
/// (conmon), containerd's runc shim and Docker.
///
/// The command line is read the way runc reads it (`RuncCommandLine`), then parsed in one
/// canonical form by the command types below.
public struct HVCOCI: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "hvc-oci",
        abstract: "runc's command line, each container in a micro-VM of its own.",
        usage: "hvc-oci [global flags] <command> [flags] <id> [operands]",
        discussion: """
            Global flags come before the command and the command's flags before its first operand, as runc \
            takes them. A flag may be written with one dash or two, its value in the next word or after '='. \
            Other flags of runc's (--systemd-cgroup, --debug, --no-pivot, --no-new-keyring, kill's --all, \
            ...) are accepted and ignored, with their values.
            """,
        version: "hvc-oci version 0.1\nspec: 1.0.2",
        subcommands: [
            Create.self, Run.self, Start.self, State.self, Kill.self, Delete.self, Exec.self, PS.self, Pause.self,
            Resume.self, Update.self, Features.self,
        ])

    public init() {}

    /// Each command's name and the flags it reads, in the order of the usage line.
    static var commands: [(name: String, flags: RuncFlags)] {
        configuration.subcommands.compactMap { type in (type as? any RuncCommand.Type).map { (type._commandName, $0.flags) } }
    }

    /// Parses `arguments` (runc's command line, less the program name) and runs the command;
    /// ends the process with the command's status. An error is one line on stderr and in
    /// the `--log` file, and exit status 1.
    public static func main(arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Never {
        let line = RuncCommandLine(arguments)
        let log = ErrorLog(path: line.globals["log"], json: line.globals["log-format"] == "json")
        do {
            var command = try parseAsRoot(try line.canonicalArguments(commands: commands))
            signal(SIGPIPE, SIG_IGN)
            try command.run()
            Foundation.exit(0)
        } catch let error as HVCError {
            log.fail(error.message)
        } catch {
            guard exitCode(for: error) != .success else { exit(withError: error) }
            log.fail(message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments")
        }
    }
}

/// A command of runc's: the flags it reads, by their long names, which its type declares.
protocol RuncCommand: ParsableCommand {
    static var flags: RuncFlags { get }
}

extension RuncCommand {
    static var flags: RuncFlags { RuncFlags() }

    /// The container id, which every command but `features` needs.
    func required(_ id: String?) throws(HVCError) -> String {
        guard let id else { throw HVCError(.invalid, "\(Self._commandName): give the container id") }
        return id
    }
}

/// The global flags hvc-oci reads: runc's state root and error log, and hvc's own paths
/// (callers pass these as runtime flags: podman's `--runtime-flag`).
struct GlobalOptions: ParsableArguments {
    static let flags = RuncFlags(values: ["root", "log", "log-format", "hvc-root", "hvc-run-root", "hvc-assets"])

    @Option(name: .customLong("root"), parsing: .unconditional, help: "Where the containers' records are (default: \(OCIContainers.defaultStateRoot)).")
    var root: String?

    @Option(name: .customLong("log"), parsing: .unconditional, help: "A file that errors are appended to as well.")
    var log: String?

    @Option(name: .customLong("log-format"), parsing: .unconditional, help: "The log's format: text or json.")
    var logFormat: String?

    @Option(name: .customLong("hvc-root"), parsing: .unconditional, help: "hvc's persistent state directory (default: $HVC_ROOT or /var/lib/hvc).")
    var hvcRoot: String?

    @Option(name: .customLong("hvc-run-root"), parsing: .unconditional, help: "hvc's volatile state directory (default: $HVC_RUN_ROOT or /run/hvc).")
    var hvcRunRoot: String?

    @Option(name: .customLong("hvc-assets"), parsing: .unconditional, help: "The guest kernel and initramfs (default: $HVC_ASSETS or share/hvc).")
    var hvcAssets: String?

    /// The containers under the state root, in hvc's state: each path from its flag, else the
    /// environment (which callers such as conmon do not pass on), else the default.
    func containers(environment: [String: String] = ProcessInfo.processInfo.environment) -> OCIContainers {
        func setting(_ flag: String?, _ variable: String) -> String? {
            flag ?? environment[variable].flatMap { $0.isEmpty ? nil : $0 }
        }
        let paths = RuntimePaths(root: setting(hvcRoot, "HVC_ROOT") ?? RuntimePaths.defaultRoot,
                                 runRoot: setting(hvcRunRoot, "HVC_RUN_ROOT") ?? RuntimePaths.defaultRunRoot,
                                 assets: setting(hvcAssets, "HVC_ASSETS") ?? RuntimePaths.defaultAssets(environment: environment))
        return OCIContainers(runtime: Runtime(paths: paths), stateRoot: root ?? OCIContainers.defaultStateRoot)
    }
}
