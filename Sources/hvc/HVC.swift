import ArgumentParser
import Foundation
import HVCSystem
import Runtime

@main
struct HVC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hvc",
        abstract: "Run containers, each in its own micro-VM.",
        version: Runtime.version,
        subcommands: [
            Run.self, Create.self, Start.self, PS.self, Logs.self, Exec.self, Attach.self, Copy.self, Stats.self, Stop.self, Restart.self, Kill.self, Wait.self,
            Remove.self, Inspect.self, Images.self, Pull.self, Login.self, Load.self, Save.self, Tag.self, RemoveImage.self, Import.self, ImageGroup.self,
            Info.self, TemplateGroup.self, PoolGroup.self, NetworkGroup.self, VolumeGroup.self, Port.self, Serve.self,
        ])

    /// Parses the command line (global options may come before the verb, as `docker -H ... ps`
    /// takes them) and runs the verb. A bad flag or value exits 125 with one line, as Docker's.
    static func main() {
        let arguments = GlobalOptions.movedAfterVerb(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            guard exitCode(for: error) == .validationFailure else { exit(withError: error) }
            let line = message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            FileHandle.standardError.write(Data("hvc: \(line)\nSee 'hvc --help'.\n".utf8))
            Foundation.exit(HVCError.Kind.invalid.exitCode)
        }
    }

    /// Runs a subcommand body, turning an `HVCError` into its one-line message and exit code.
    static func guarded(_ body: () throws -> Int32) throws -> Never {
        RunTiming.origin = monotonicNanoseconds()
        do {
            let code = try body()
            Foundation.exit(code)
        } catch let error as HVCError {
            FileHandle.standardError.write(Data("hvc: \(error.message)\n".utf8))
            Foundation.exit(error.exitCode)
        }
    }
}

/// Options every command takes: where state lives.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Persistent state directory (default: $HVC_ROOT or /var/lib/hvc).")
    var root = environment("HVC_ROOT") ?? RuntimePaths.defaultRoot

    @Option(help: "Volatile state directory (default: $HVC_RUN_ROOT or /run/hvc).")
    var runRoot = environment("HVC_RUN_ROOT") ?? RuntimePaths.defaultRunRoot

    @Option(help: "Directory with the guest kernel and agent initramfs (default: $HVC_ASSETS or share/hvc).")
    var assets: String?

    @Option(name: [.customShort("H"), .long], help: "Talk to hvcd at unix:///path instead of working locally (default: $HVC_HOST).")
    var host = environment("HVC_HOST")

    /// The options above, each taking a value.
    static let names: Set<String> = ["--root", "--run-root", "--assets", "--host", "-H"]

    /// `hvc --host X ps` → `hvc ps --host X`: leading global options move after the verb (and
    /// its subcommand, for groups such as `image inspect`), where every verb declares them.
    static func movedAfterVerb(_ arguments: [String]) -> [String] {
        var globals: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            let name = String(argument.split(separator: "=", maxSplits: 1).first ?? "")
            guard names.contains(name) else { break }
            let count = argument.contains("=") ? 1 : 2
            globals += arguments[index..<min(index + count, arguments.count)]
            index += count
        }
        guard !globals.isEmpty else { return arguments }
        let rest = Array(arguments[index...])
        var command: ParsableCommand.Type = HVC.self
        var verbEnd = 0
        while verbEnd < rest.count,
              let sub = command.configuration.subcommands.first(where: {
                  $0._commandName == rest[verbEnd] || $0.configuration.aliases.contains(rest[verbEnd])
              }) {
            command = sub
            verbEnd += 1
        }
        return Array(rest[..<verbEnd]) + globals + Array(rest[verbEnd...])
    }

    /// The daemon to talk to, when one is given.
    func daemon() throws(HVCError) -> DaemonClient? {
        try host.map { (text) throws(HVCError) in try DaemonClient(host: text) }
    }

    /// Fails for commands that only work locally for now.
    func requireLocal(_ command: String) throws(HVCError) {
        if host != nil { throw HVCError(.invalid, "\(command) is not available through hvcd yet: run it without --host/HVC_HOST") }
    }

    func runtime() -> Runtime {
        Runtime(paths: RuntimePaths(root: root, runRoot: runRoot, assets: assets ?? RuntimePaths.defaultAssets()))
    }
}

func environment(_ name: String) -> String? {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
    return value
}
