import ArgumentParser
import Foundation
import Runtime
import VMM

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start created containers in the background.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Containers (name, id or id prefix).")
    var containers: [String]

    func run() throws {
        try HVC.guarded {
            try global.forEach(containers) { target, container throws(HVCError) in
                switch target {
                case .daemon(let daemon):
                    _ = try daemon.call("POST", "/v1/containers/\(DaemonClient.escape(container))/start")
                case .local(let manager):
                    _ = try manager.start(container)
                }
                return container
            }
        }
    }
}

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a command in a running container.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var process: ProcessOptions
    @Argument(help: "Container (name, id or id prefix).")
    var container: String
    @Argument(parsing: .captureForPassthrough, help: "Command and arguments.")
    var command: [String]

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("give a command to run") }
    }

    func run() throws {
        try HVC.guarded {
            if let daemon = try global.daemon() {
                let record = try daemon.decode(ContainerRecord.self, try daemon.call("GET", "/v1/containers/\(DaemonClient.escape(container))"))
                let spec = ContainerManager.execSpec(record, arguments: command, environment: process.env,
                                                     workingDirectory: process.workdir, user: process.user, terminal: process.tty)
                let channel = try daemon.openStream(container: record.id)
                return try ContainerManager.exec(over: channel, spec: spec, interactive: process.interactive)
            }
            let manager = ContainerManager(runtime: global.runtime())
            let spec = try manager.execSpec(container, arguments: command, environment: process.env,
                                            workingDirectory: process.workdir, user: process.user, terminal: process.tty)
            return try manager.exec(container, spec: spec, interactive: process.interactive)
        }
    }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop running containers: SIGTERM, then SIGKILL after a grace period.")

    @OptionGroup var global: GlobalOptions
    @Option(name: [.customShort("t"), .customLong("time")], help: "Seconds to wait before SIGKILL.")
    var time = 10
    @Argument(help: "Containers (name, id or id prefix).")
    var containers: [String]

    func validate() throws {
        guard time >= 0 else { throw ValidationError("--time must not be negative") }
    }

    func run() throws {
        try HVC.guarded {
            try global.forEach(containers) { target, container throws(HVCError) in
                switch target {
                case .daemon(let daemon):
                    _ = try daemon.call("POST", "/v1/containers/\(DaemonClient.escape(container))/stop?timeout=\(time)")
                case .local(let manager):
                    _ = try manager.stop(container, timeout: time)
                }
                return container
            }
        }
    }
}

struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a signal to the command of running containers.")

    @OptionGroup var global: GlobalOptions
    @Option(name: .shortAndLong, help: "Signal name or number.")
    var signal = "KILL"
    @Argument(help: "Containers (name, id or id prefix).")
    var containers: [String]

    func validate() throws {
        guard SignalName.parse(signal) != nil else { throw ValidationError("unknown signal \"\(signal)\": use a name like TERM or a number") }
    }

    func run() throws {
        try HVC.guarded {
            let number = SignalName.parse(signal) ?? SIGKILL
            return try global.forEach(containers) { target, container throws(HVCError) in
                switch target {
                case .daemon(let daemon):
                    _ = try daemon.call("POST", "/v1/containers/\(DaemonClient.escape(container))/kill?signal=\(number)")
                case .local(let manager):
                    try manager.kill(container, signal: number)
                }
                return container
            }
        }
    }
}

struct Wait: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Wait for containers to exit and print their exit codes.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Containers (name, id or id prefix).")
    var containers: [String]

    func run() throws {
        try HVC.guarded {
            try global.forEach(containers) { target, container throws(HVCError) in
                switch target {
                case .daemon(let daemon):
                    let data = try daemon.call("POST", "/v1/containers/\(DaemonClient.escape(container))/wait")
                    return "\(try daemon.decode([String: Int32].self, data)["exitCode"] ?? -1)"
                case .local(let manager):
                    return "\(try manager.wait(container))"
                }
            }
        }
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove containers.")

    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Kill and remove running containers.")
    var force = false
    @Argument(help: "Containers (name, id or id prefix).")
    var containers: [String]

    func run() throws {
        try HVC.guarded {
            try global.forEach(containers) { target, container throws(HVCError) in
                switch target {
                case .daemon(let daemon):
                    _ = try daemon.call("DELETE", "/v1/containers/\(DaemonClient.escape(container))?force=\(force)")
                case .local(let manager):
                    try manager.remove(container, force: force)
                }
                return container
            }
        }
    }
}

enum SignalName {
    static let names: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL, "USR1": SIGUSR1, "USR2": SIGUSR2,
        "TERM": SIGTERM, "CONT": SIGCONT, "STOP": SIGSTOP, "ALRM": SIGALRM, "WINCH": SIGWINCH,
    ]

    static func parse(_ text: String) -> Int32? {
        if let number = Int32(text) { return (1...64).contains(number) ? number : nil }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        return names[name]
    }
}

struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a running container's output from now on; exit with its command's code.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Container (name, id or id prefix).")
    var container: String

    func run() throws {
        try HVC.guarded {
            if let daemon = try global.daemon() {
                return try ContainerManager.attach(over: try daemon.openStream(container: container), stdin: false, terminal: false)
            }
            return try ContainerManager(runtime: global.runtime()).attach(container)
        }
    }
}

/// Where a verb on containers goes: hvcd, when one is given, or the local state.
enum ContainerTarget {
    case daemon(DaemonClient)
    case local(ContainerManager)
}

extension GlobalOptions {
    /// Runs `action` on each container in turn, printing what it returns; a failure is reported
    /// on its own line and the others still run, as Docker does. Returns the last failure's code.
    func forEach(_ containers: [String], _ action: (ContainerTarget, String) throws(HVCError) -> String) throws(HVCError) -> Int32 {
        let target: ContainerTarget = if let daemon = try daemon() { .daemon(daemon) } else { .local(ContainerManager(runtime: runtime())) }
        var failure: HVCError?
        for container in containers {
            do {
                print(try action(target, container))
            } catch {
                FileHandle.standardError.write(Data("hvc: \(error.message)\n".utf8))
                failure = error
            }
        }
        return failure?.exitCode ?? 0
    }
}
