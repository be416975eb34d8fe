import ArgumentParser
import Foundation
import Runtime
import VMM

extension Accelerator: ExpressibleByArgument {}

/// Flags shared by `run`, `create` and `exec`: how the process runs.
struct ProcessOptions: ParsableArguments {
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

    func validate() throws {
        for entry in env where !entry.contains("=") || entry.hasPrefix("=") {
            throw ValidationError("--env \"\(entry)\" is not KEY=VALUE")
        }
    }
}

/// The VM's shape, for `run`, `create`, `template create` and `pool set`: a template or pool
/// serves VMs of exactly one shape.
struct VMShapeOptions: ParsableArguments {
    @Option(help: "Guest memory, e.g. 256m or 1g.")
    var memory = "256m"
    @Option(help: "Virtual CPUs (also the VMM's CPU quota).")
    var cpus = 1
    @Option(help: "Accelerator: kvm or tcg (default: $HVC_ACCEL, else detected).")
    var accel: Accelerator?

    func validate() throws {
        guard (1...16).contains(cpus) else { throw ValidationError("--cpus must be between 1 and 16") }
    }

    func memoryMiB() throws(HVCError) -> Int { try RunOptions.parseMemory(memory) }
}

/// Flags shared by `run` and `create`: what the container is.
struct ContainerOptions: ParsableArguments {
    @Flag(help: "Remove the container when it exits.")
    var rm = false
    @OptionGroup var process: ProcessOptions
    @Option(help: "Container name.")
    var name: String?
    @Option(help: "Container hostname (default: the short container id).")
    var hostname: String?
    @OptionGroup var shape: VMShapeOptions
    @Option(help: "Most processes and threads the VMM's cgroup allows.")
    var pidsLimit = 256
    @Option(help: "Override the image's entrypoint (a single executable).")
    var entrypoint: String?
    @Option(help: "Rotate the container's log past this size, e.g. 10m.")
    var logMaxSize = "10m"
    @Flag(help: "Boot the VM cold instead of cloning the image's template.")
    var noTemplate = false

    @Argument(help: "Image name or id.")
    var image: String
    @Argument(parsing: .captureForPassthrough, help: "Command and arguments.")
    var command: [String] = []

    func validate() throws {
        guard (32...65536).contains(pidsLimit) else {
            throw ValidationError("--pids-limit must be between 32 and 65536 (QEMU itself needs a few dozen threads)")
        }
    }

    func runOptions() throws(HVCError) -> RunOptions {
            var options = RunOptions(image: image)
            options.command = command
            options.entrypoint = entrypoint.map { [$0] }
            options.environment = process.env
            options.workingDirectory = process.workdir
            options.user = process.user
            options.name = name
            options.hostname = hostname
            options.memoryMiB = try shape.memoryMiB()
            options.cpus = shape.cpus
            options.pidsLimit = pidsLimit
            options.accelerator = shape.accel
            options.interactive = process.interactive
            options.terminal = process.tty
            options.remove = rm
            options.template = !noTemplate
            return options
    }

    /// The API's create request for these options; refuses what the API does not take yet.
    func createRequest(start: Bool, attached: Bool = false) throws(HVCError) -> [String: Any] {
        if !attached && (rm || process.tty || process.interactive) {
            throw HVCError("--rm, -t and -i through hvcd need an attached run (without -d)")
        }
        if shape.accel != nil || entrypoint != nil || pidsLimit != 256 || logMaxSize != "10m" {
            throw HVCError("--accel, --entrypoint, --pids-limit and --log-max-size are not available through hvcd yet")
        }
        var request: [String: Any] = ["image": image, "memory": shape.memory, "cpus": shape.cpus, "start": start, "env": process.env]
        if !command.isEmpty { request["cmd"] = command }
        if noTemplate { request["template"] = false }
        if let name { request["name"] = name }
        if let hostname { request["hostname"] = hostname }
        if let workdir = process.workdir { request["workdir"] = workdir }
        if let user = process.user { request["user"] = user }
        if process.tty { request["tty"] = true }
        return request
    }

    func logMaxBytes() throws(HVCError) -> Int {
        try RunOptions.parseSize(logMaxSize, minimum: 4096, what: "log size")
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command in a new container, in its own micro-VM.")

    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Run in the background and print the container id.")
    var detach = false
    @OptionGroup var container: ContainerOptions

    func validate() throws {
        if detach && container.rm { throw ValidationError("--rm and --detach cannot be used together yet") }
    }

    func run() throws {
        try HVC.guarded {
            if let daemon = try global.daemon() {
                guard !detach else {
                    let data = try daemon.call("POST", "/v1/containers", json: try container.createRequest(start: true))
                    print(try daemon.decode([String: String].self, data)["id"] ?? "")
                    return 0
                }
                // Attached: create, then start through the stream socket and attach before the
                // command runs, so that none of its output is missed.
                let data = try daemon.call("POST", "/v1/containers", json: try container.createRequest(start: false, attached: true))
                let id = try daemon.decode([String: String].self, data)["id"] ?? ""
                defer { if container.rm { _ = try? daemon.call("DELETE", "/v1/containers/\(id)?force=true") } }
                let channel = try daemon.openStream(container: id, start: true)
                return try ContainerManager.attach(over: channel, stdin: container.process.interactive, terminal: container.process.tty)
            }
            let options = try container.runOptions()
            let manager = ContainerManager(runtime: global.runtime())
            if detach {
                let record = try manager.create(options, logMaxBytes: container.logMaxBytes())
                do {
                    _ = try manager.start(record.id)
                } catch {
                    print(record.id)
                    throw error
                }
                print(record.id)
                return 0
            }
            let timing = ProcessInfo.processInfo.environment["HVC_TIMING"] == "1"
            return try manager.runAttached(options, timing: timing)
        }
    }
}

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a container without starting it.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var container: ContainerOptions

    func run() throws {
        try HVC.guarded {
            if let daemon = try global.daemon() {
                let data = try daemon.call("POST", "/v1/containers", json: try container.createRequest(start: false))
                print(try daemon.decode([String: String].self, data)["id"] ?? "")
                return 0
            }
            let record = try ContainerManager(runtime: global.runtime())
                .create(container.runOptions(), logMaxBytes: container.logMaxBytes())
            print(record.id)
            return 0
        }
    }
}
