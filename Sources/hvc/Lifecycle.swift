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
            if let daemon = try global.daemon() {
                for container in containers {
                    _ = try daemon.call("POST", "/v1/containers/\(DaemonClient.escape(container))/start")
                    print(container)
                }
                return 0
            }
            let manager = ContainerManager(runtime: global.runtime())
            for container in containers {
                _ = try manager.start(container)
                print(container)
            }
            return 0
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
            if let daemon = try global.daemon() {
                for container in containers {
                    _ = try daemon.call("POST", "/v1/containers/\(DaemonClient.escape(container))/stop?timeout=\(time)")
                    print(container)
                }
                return 0
            }
            let manager = ContainerManager(runtime: global.runtime())
            for container in containers {
                _ = try manager.stop(container, timeout: time)
                print(container)
            }
            return 0
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
            if let daemon = try global.daemon() {
                for container in containers {
                    _ = try daemon.call("POST", "/v1/containers/\(DaemonClient.escape(container))/kill?signal=\(number)")
                    print(container)
                }
                return 0
            }
            let manager = ContainerManager(runtime: global.runtime())
            for container in containers {
                try manager.kill(container, signal: number)
                print(container)
            }
            return 0
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
            if let daemon = try global.daemon() {
                for container in containers {
                    let data = try daemon.call("POST", "/v1/containers/\(DaemonClient.escape(container))/wait")
                    print(try daemon.decode([String: Int32].self, data)["exitCode"] ?? -1)
                }
                return 0
            }
            let manager = ContainerManager(runtime: global.runtime())
            for container in containers { print(try manager.wait(container)) }
            return 0
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
            let daemon = try global.daemon()
            let manager = daemon == nil ? ContainerManager(runtime: global.runtime()) : nil
            var failure: HVCError?
            for container in containers {
                do {
                    if let daemon {
                        _ = try daemon.call("DELETE", "/v1/containers/\(DaemonClient.escape(container))?force=\(force)")
                    } else {
                        try manager?.remove(container, force: force)
                    }
                    print(container)
                } catch let error as HVCError {
                    FileHandle.standardError.write(Data("hvc: \(error.message)\n".utf8))
                    failure = error
                }
            }
            if let failure { return failure.exitCode }
            return 0
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
