import ArgumentParser
import Foundation
import Runtime

extension HVCOCI {
    /// runc's `exec`: a process in a running container, its host process relaying it.
    struct Exec: RuncCommand {
        static let configuration = CommandConfiguration(
            commandName: "exec", abstract: "Run a process in a running container.",
            discussion: "Flags end at the id: what follows is the command and its arguments.")
        static let flags = RuncFlags(values: ["process", "cwd", "user", "pid-file", "console-socket", "preserve-fds"],
                                     switches: ["tty", "detach"], lists: ["env"])

        @OptionGroup var global: GlobalOptions

        @Option(name: [.customLong("process"), .customShort("p")], parsing: .unconditional, help: "A JSON file of the process (the spec's process object).")
        var process: String?

        @Option(name: [.customLong("env"), .customShort("e")], parsing: .unconditionalSingleValue, help: "An environment variable, NAME=VALUE (repeats).")
        var environment: [String] = []

        @Option(name: .customLong("cwd"), parsing: .unconditional, help: "The working directory.")
        var cwd: String?

        @Option(name: [.customLong("user"), .customShort("u")], parsing: .unconditional, help: "The user, UID[:GID].")
        var user: String?

        @Flag(name: [.customLong("tty"), .customShort("t")], help: "Give the process a terminal (with --console-socket).")
        var tty = false

        @Flag(name: [.customLong("detach"), .customShort("d")], help: "Return once the process runs.")
        var detach = false

        @Option(name: .customLong("pid-file"), parsing: .unconditional, help: "A file to write the process's host pid to.")
        var pidFile: String?

        @Option(name: .customLong("console-socket"), parsing: .unconditional, help: "A Unix socket to send the terminal's master to.")
        var consoleSocket: String?

        @Option(name: .customLong("preserve-fds"), parsing: .unconditional, help: "Open files passed beyond stdio (only 0: a VM takes none).")
        var preserveFDs: String?

        @Argument(help: "The container's id.")
        var id: String?

        @Argument(help: "The command and its arguments (without --process).")
        var command: [String] = []

        var request: OCIContainers.ExecRequest {
            get throws(HVCError) {
                var request = OCIContainers.ExecRequest(id: try required(id))
                request.processFile = process
                request.arguments = command
                request.environment = environment
                request.workingDirectory = cwd
                request.user = user
                request.tty = tty
                request.detach = detach
                request.pidFile = pidFile
                request.consoleSocket = consoleSocket
                if let preserveFDs, preserveFDs != "0" {
                    throw HVCError(.invalid, "--preserve-fds \(preserveFDs): open files cannot be passed into a VM")
                }
                return request
            }
        }

        func run() throws {
            Foundation.exit(try global.containers().exec(try request))
        }
    }

    /// runc's `ps`: the container's host processes.
    struct PS: RuncCommand {
        static let configuration = CommandConfiguration(commandName: "ps", abstract: "List a container's host processes.")
        static let flags = RuncFlags(values: ["format"])

        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("format"), parsing: .unconditional, help: "table or json.")
        var format: String?
        @Argument(help: "The container's id.")
        var id: String?
        @Argument(help: .hidden)
        var ignored: [String] = []

        func run() throws {
            let pids = try global.containers().processes(try required(id))
            if format == "json" {
                print("[" + pids.map(String.init).joined(separator: ",") + "]")
            } else {
                print("PID")
                for pid in pids { print(pid) }
            }
        }
    }
}
