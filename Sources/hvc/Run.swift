import ArgumentParser
import Foundation
import OCI
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

    func memoryMiB() throws(HVCError) -> Int { try RunOptions.parseMemory(memory) }

    func checkedCPUs() throws(HVCError) -> Int {
        try RunOptions.checkCPUs(cpus)
        return cpus
    }
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
    @Option(name: [.customLong("network"), .customLong("net")], help: "Network to join (default: bridge), or none for no network interface.")
    var network: String?
    @Option(name: [.customShort("p"), .customLong("publish")], help: "Publish a port: [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp].")
    var publish: [String] = []
    @Flag(name: [.customShort("P"), .customLong("publish-all")], help: "Publish every port the image exposes on a free host port.")
    var publishAll = false
    @Option(name: [.customShort("v"), .customLong("volume")], help: "Mount a host folder or a volume: HOSTDIR:TARGET[:ro], NAME:TARGET[:ro], or TARGET (anonymous volume).")
    var volume: [String] = []
    @Option(help: "Mount: type=bind|volume|tmpfs,source=...,target=...[,readonly][,tmpfs-size=...][,tmpfs-mode=...].")
    var mount: [String] = []
    @Option(help: "Mount a tmpfs: TARGET[:size=...,mode=...].")
    var tmpfs: [String] = []
    @Flag(help: "Mount the image's root read-only (tmpfs on /tmp, /var/tmp and /run).")
    var readOnly = false
    @Flag(help: "Give the container a /dev/kvm of its VM's own, to run VMs in it (see hvc info).")
    var nested = false
    @Option(help: "Storage driver option: size=SIZE bounds the writable layer (default: half the VM's memory, where it lives).")
    var storageOpt: [String] = []
    @Option(help: "What to do when the command ends: no, on-failure[:N], always or unless-stopped (each restart is a new VM).")
    var restart = "no"
    @Option(help: "Set a label: KEY=VALUE (or KEY, empty).")
    var label: [String] = []
    @Option(help: "Another name for the container on its network's name server.")
    var networkAlias: [String] = []
    @Option(help: "Health check command, run by the container's shell (over the image's HEALTHCHECK).")
    var healthCmd: String?
    @Option(help: "Time between health checks, e.g. 30s (default 30s).")
    var healthInterval: String?
    @Option(help: "Longest a health check may run, e.g. 30s (default 30s).")
    var healthTimeout: String?
    @Option(help: "Failures in a row that make the container unhealthy (default 3).")
    var healthRetries: Int?
    @Option(help: "Time after start in which failed checks do not count, e.g. 10s.")
    var healthStartPeriod: String?
    @Flag(help: "Run no health check, not even the image's.")
    var noHealthcheck = false

    @Argument(help: "Image name or id.")
    var image: String
    @Argument(parsing: .captureForPassthrough, help: "Command and arguments.")
    var command: [String] = []

    /// The API's create request for these flags: what the local path and hvcd both check.
    func request(start: Bool) throws(HVCError) -> CreateContainerRequest {
        var request = CreateContainerRequest(image: image)
        request.cmd = command.isEmpty ? nil : command
        request.entrypoint = entrypoint.map { [$0] }
        request.name = name
        request.env = process.env.isEmpty ? nil : process.env
        request.workdir = process.workdir
        request.user = process.user
        request.hostname = hostname
        request.memory = shape.memory
        request.cpus = shape.cpus
        request.pidsLimit = pidsLimit
        request.logMaxSize = logMaxSize
        request.accel = shape.accel?.rawValue
        request.start = start ? true : nil
        request.template = noTemplate ? false : nil
        request.tty = process.tty ? true : nil
        request.autoRemove = rm ? true : nil
        request.networks = network.map { [$0] }
        request.ports = publish.isEmpty ? nil : publish
        request.publishAll = publishAll ? true : nil
        request.nested = nested ? true : nil
        for option in storageOpt {
            guard option.hasPrefix("size=") else {
                throw HVCError(.invalid, "storage option \"\(option.prefix(64))\" is not known: hvc takes size=SIZE (e.g. size=64m)")
            }
            request.storageSize = String(option.dropFirst(5))
        }
        var mounts: [ContainerMount] = []
        for text in volume { mounts.append(try ContainerMount.parseVolumeFlag(text)) }
        for text in mount { mounts.append(try ContainerMount.parseMountFlag(text)) }
        for text in tmpfs { mounts.append(try ContainerMount.parseTmpfsFlag(text)) }
        request.mounts = mounts.isEmpty ? nil : mounts
        request.readOnly = readOnly ? true : nil
        request.restart = restart == "no" ? nil : restart
        request.healthcheck = try healthcheck()
        request.labels = try Labels.parse(label)
        request.networkAliases = networkAlias.isEmpty ? nil : networkAlias
        return request
    }

    /// The `--health-*` flags as Docker's `Healthcheck`; nil when none is given.
    func healthcheck() throws(HVCError) -> Healthcheck? {
        if noHealthcheck {
            guard healthCmd == nil else { throw HVCError(.invalid, "--no-healthcheck and --health-cmd cannot be combined") }
            return Healthcheck(Test: ["NONE"])
        }
        guard healthCmd != nil || healthInterval != nil || healthTimeout != nil || healthRetries != nil || healthStartPeriod != nil else { return nil }
        return Healthcheck(Test: healthCmd.map { ["CMD-SHELL", $0] }, Interval: try healthInterval.map(Healthcheck.parseDuration),
                           Timeout: try healthTimeout.map(Healthcheck.parseDuration), Retries: healthRetries,
                           StartPeriod: try healthStartPeriod.map(Healthcheck.parseDuration))
    }

    /// What an attached local run does: the request's options, with stdin and removal.
    func runOptions() throws(HVCError) -> RunOptions {
        var options = try request(start: false).runOptions()
        options.interactive = process.interactive
        return options
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a command in a new container, in its own micro-VM.")

    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Run in the background and print the container id.")
    var detach = false
    @OptionGroup var container: ContainerOptions

    func validate() throws {
        if detach && container.rm { throw ValidationError("--rm and --detach cannot be used together yet") }
        if !detach && container.restart != "no" {
            throw ValidationError("--restart needs --detach: the policy is kept by a detached container's supervisor")
        }
    }

    func run() throws {
        try HVC.guarded {
            if detach {
                print(try global.containers().create(container.request(start: true)))
                return 0
            }
            if let daemon = try global.daemon() {
                // Attached: create, then start through the stream socket and attach before the
                // command runs, so that none of its output is missed.
                let service = DaemonContainers(client: daemon)
                // This client removes it (`--rm`) once it has the exit, so that nothing races its last frames.
                var request = try container.request(start: false)
                request.autoRemove = nil
                let id = try service.create(request)
                defer { if container.rm { try? service.remove(id, force: true, volumes: true) } }
                let channel = try daemon.openStream(container: id, start: true)
                return try ContainerManager.attach(over: channel, stdin: container.process.interactive, terminal: container.process.tty)
            }
            let timing = ProcessInfo.processInfo.environment["HVC_TIMING"] == "1"
            return try ContainerManager(runtime: global.runtime()).runAttached(container.runOptions(), timing: timing)
        }
    }
}

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a container without starting it.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var container: ContainerOptions

    func run() throws {
        try HVC.guarded {
            print(try global.containers().create(container.request(start: false)))
            return 0
        }
    }
}
