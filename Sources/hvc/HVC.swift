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
            Run.self, Create.self, Start.self, PS.self, Logs.self, Exec.self, Attach.self, Stop.self, Kill.self, Wait.self,
            Remove.self, Inspect.self, Images.self, Pull.self, Login.self, Load.self, Save.self, Tag.self, RemoveImage.self, Import.self, ImageGroup.self,
            Info.self, TemplateGroup.self, PoolGroup.self, Serve.self,
        ])

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

    @Option(help: "Talk to hvcd at unix:///path instead of working locally (default: $HVC_HOST).")
    var host = environment("HVC_HOST")

    /// The daemon to talk to, when one is given.
    func daemon() throws(HVCError) -> DaemonClient? {
        try host.map { (text) throws(HVCError) in try DaemonClient(host: text) }
    }

    /// Fails for commands that only work locally for now.
    func requireLocal(_ command: String) throws(HVCError) {
        if host != nil { throw HVCError("\(command) is not available through hvcd yet: run it without --host/HVC_HOST") }
    }

    func runtime() -> Runtime {
        Runtime(paths: RuntimePaths(root: root, runRoot: runRoot, assets: assets ?? RuntimePaths.defaultAssets()))
    }
}

func environment(_ name: String) -> String? {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
    return value
}
