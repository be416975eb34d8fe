import ArgumentParser
import Foundation
import Runtime
import VMM

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start created or exited containers in the background (an exited one in a new VM).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Containers (name, id or id prefix).")
    var containers: [String]

    func run() throws {
        try HVC.guarded {
            try global.forEach(containers) { service, container throws(HVCError) in
                try service.start(container)
                return container
            }
        }
    }
}

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "exec", abstract: "Run a command in a running container.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var process: ProcessOptions
    @Argument(help: "Container (name, id or id prefix).")
    var container: String
    @Argument(parsing: .captureForPassthrough, help: "Command and arguments.")
    var command: [String]

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("give a command to run after the container") }
    }

    func run() throws {
        try HVC.guarded {
            let service = try global.containers()
            let record = try service.inspect(container)
            let spec = ContainerManager.execSpec(record, arguments: command, environment: process.env,
                                                 workingDirectory: process.workdir, user: process.user, terminal: process.tty)
            return try ContainerManager.exec(over: try service.control(record), spec: spec, interactive: process.interactive)
        }
    }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop running containers: SIGTERM, then SIGKILL after a grace period.")

    @OptionGroup var global: GlobalOptions
    @Option(name: [.customShort("t"), .customLong("time")], help: "Seconds to wait before SIGKILL.")
    var time = 10
    @Argument(help: "Containers (name, id or id prefix).")
    var containers: [String]

    func run() throws {
        try HVC.guarded {
            try global.forEach(containers) { service, container throws(HVCError) in
                try service.stop(container, timeout: time)
                return container
            }
        }
    }
}

struct Restart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restart", abstract: "Stop containers (as stop does) and start them again, each in a new VM.")

    @OptionGroup var global: GlobalOptions
    @Option(name: [.customShort("t"), .customLong("time")], help: "Seconds to wait before SIGKILL.")
    var time = 10
    @Argument(help: "Containers (name, id or id prefix).")
    var containers: [String]

    func run() throws {
        try HVC.guarded {
            try global.forEach(containers) { service, container throws(HVCError) in
                try service.restart(container, timeout: time)
                return container
            }
        }
    }
}

struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "Send a signal to the command of running containers.")

    @OptionGroup var global: GlobalOptions
    @Option(name: .shortAndLong, help: "Signal name or number.")
    var signal = "KILL"
    @Argument(help: "Containers (name, id or id prefix).")
    var containers: [String]

    func run() throws {
        try HVC.guarded {
            let number = try SignalName.parse(signal)
            return try global.forEach(containers) { service, container throws(HVCError) in
                try service.kill(container, signal: number)
                return container
            }
        }
    }
}

struct Wait: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wait", abstract: "Wait for containers to exit and print their exit codes.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Containers (name, id or id prefix).")
    var containers: [String]

    func run() throws {
        try HVC.guarded {
            try global.forEach(containers) { service, container throws(HVCError) in
                "\(try service.wait(container))"
            }
        }
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove containers.")

    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Kill and remove running containers.")
    var force = false
    @Flag(name: .shortAndLong, help: "Remove the containers' anonymous volumes too.")
    var volumes = false
    @Argument(help: "Containers (name, id or id prefix).")
    var containers: [String]

    func run() throws {
        try HVC.guarded {
            try global.forEach(containers) { service, container throws(HVCError) in
                try service.remove(container, force: force, volumes: volumes)
                return container
            }
        }
    }
}

struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach", abstract: "Print a running container's output from now on; exit with its command's code.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Container (name, id or id prefix).")
    var container: String

    func run() throws {
        try HVC.guarded {
            let service = try global.containers()
            return try ContainerManager.attach(over: try service.control(try service.inspect(container)), stdin: false, terminal: false)
        }
    }
}
