import ArgumentParser
import Foundation
import Runtime
import VMM

extension Accelerator: ExpressibleByArgument {}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command in a new container, in its own micro-VM.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Remove the container when it exits (always the case for attached runs today).")
    var rm = false
    @Flag(name: .shortAndLong, help: "Keep stdin open and send it to the command.")
    var interactive = false
    @Flag(name: [.customShort("t"), .customLong("tty")], help: "Give the command a pseudo-terminal.")
    var tty = false
    @Option(name: [.customShort("e"), .customLong("env")], help: "Set an environment variable (KEY=VALUE).")
    var env: [String] = []
    @Option(name: [.customShort("w"), .customLong("workdir")], help: "Working directory inside the container.")
    var workdir: String?
    @Option(name: .shortAndLong, help: "User: NAME, UID, NAME:GROUP or UID:GID.")
    var user: String?
    @Option(help: "Container name.")
    var name: String?
    @Option(help: "Container hostname (default: the short container id).")
    var hostname: String?
    @Option(help: "Guest memory, e.g. 256m or 1g.")
    var memory = "256m"
    @Option(help: "Virtual CPUs.")
    var cpus = 1
    @Option(help: "Accelerator: kvm or tcg (default: $HVC_ACCEL, else detected).")
    var accel: Accelerator?
    @Option(help: "Override the image's entrypoint (a single executable).")
    var entrypoint: String?

    @Argument(help: "Image name or id.")
    var image: String
    @Argument(parsing: .captureForPassthrough, help: "Command and arguments.")
    var command: [String] = []

    func validate() throws {
        guard (1...16).contains(cpus) else { throw ValidationError("--cpus must be between 1 and 16") }
        for entry in env where !entry.contains("=") || entry.hasPrefix("=") {
            throw ValidationError("--env \"\(entry)\" is not KEY=VALUE")
        }
    }

    func run() throws {
        try HVC.guarded {
            var options = RunOptions(image: image)
            options.command = command
            options.entrypoint = entrypoint.map { [$0] }
            options.environment = env
            options.workingDirectory = workdir
            options.user = user
            options.name = name
            options.hostname = hostname
            options.memoryMiB = try RunOptions.parseMemory(memory)
            options.cpus = cpus
            options.accelerator = accel
            options.interactive = interactive
            options.terminal = tty
            options.remove = rm
            let timing = ProcessInfo.processInfo.environment["HVC_TIMING"] == "1"
            return try ForegroundRun(options: options, runtime: global.runtime(), reportTiming: timing).run()
        }
    }
}
