import ArgumentParser
import Foundation
import Runtime

extension HVCOCI {
    /// runc's `start`: lets the created container's command run.
    struct Start: RuncCommand {
        static let configuration = CommandConfiguration(commandName: "start", abstract: "Start a created container's command.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The container's id.")
        var id: String?
        @Argument(help: .hidden)
        var ignored: [String] = []

        func run() throws {
            try global.containers().start(try required(id))
        }
    }

    /// runc's `state`: the runtime spec's state as JSON.
    struct State: RuncCommand {
        static let configuration = CommandConfiguration(commandName: "state", abstract: "Print a container's state as JSON.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The container's id.")
        var id: String?
        @Argument(help: .hidden)
        var ignored: [String] = []

        func run() throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let state = try global.containers().state(try required(id))
            guard let data = try? encoder.encode(state) else { throw HVCError("cannot encode the state") }
            print(String(decoding: data, as: UTF8.self))
        }
    }

    /// runc's `kill`: a signal to the container's command.
    struct Kill: RuncCommand {
        static let configuration = CommandConfiguration(commandName: "kill", abstract: "Send a signal (default TERM) to a container's command.")

        static let flags = RuncFlags(switches: ["all"])

        @OptionGroup var global: GlobalOptions
        @Flag(name: [.customLong("all"), .customShort("a")], help: "Every process of the container (its VM's, or its pod member's): no error once none is left.")
        var all = false
        @Argument(help: "The container's id.")
        var id: String?
        @Argument(help: "The signal: a name (TERM, SIGTERM) or a number.")
        var signal: String?
        @Argument(help: .hidden)
        var ignored: [String] = []

        func run() throws {
            let id = try required(id)
            try global.containers().kill(id, signal: try SignalName.parse(signal ?? "TERM"), all: all)
        }
    }

    /// runc's `delete`.
    struct Delete: RuncCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a stopped container (with --force, any).")
        static let flags = RuncFlags(switches: ["force"])

        @OptionGroup var global: GlobalOptions
        @Flag(name: [.customLong("force"), .customShort("f")], help: "Kill the container first if it runs; no error if it is gone.")
        var force = false
        @Argument(help: "The container's id.")
        var id: String?
        @Argument(help: .hidden)
        var ignored: [String] = []

        func run() throws {
            try global.containers().delete(try required(id), force: force)
        }
    }

    /// runc's `pause`: stops the whole VM.
    struct Pause: RuncCommand {
        static let configuration = CommandConfiguration(commandName: "pause", abstract: "Pause a running container (its whole VM).")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The container's id.")
        var id: String?
        @Argument(help: .hidden)
        var ignored: [String] = []

        func run() throws {
            try global.containers().pause(try required(id), frozen: true)
        }
    }

    /// runc's `resume`.
    struct Resume: RuncCommand {
        static let configuration = CommandConfiguration(commandName: "resume", abstract: "Resume a paused container.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The container's id.")
        var id: String?
        @Argument(help: .hidden)
        var ignored: [String] = []

        func run() throws {
            try global.containers().pause(try required(id), frozen: false)
        }
    }
}
