import ArgumentParser
import Foundation
import Runtime

extension HVCOCI {
    /// runc's `create`: records the container and boots its VM; its command waits for `start`.
    struct Create: RuncCommand {
        static let configuration = CommandConfiguration(
            commandName: "create", abstract: "Create a container from an OCI bundle; its command waits for start.")
        static var flags: RuncFlags { CreateOptions.flags }

        @OptionGroup var global: GlobalOptions
        @OptionGroup var options: CreateOptions
        @Argument(help: "The container's id.")
        var id: String?
        @Argument(help: .hidden)
        var ignored: [String] = []

        func run() throws {
            try global.containers().create(try options.request(id: try required(id)))
        }
    }

    /// runc's `run`: `create`, then `start`.
    struct Run: RuncCommand {
        static let configuration = CommandConfiguration(commandName: "run", abstract: "Create a container and start its command.")
        static var flags: RuncFlags { CreateOptions.flags }

        @OptionGroup var global: GlobalOptions
        @OptionGroup var options: CreateOptions
        @Argument(help: "The container's id.")
        var id: String?
        @Argument(help: .hidden)
        var ignored: [String] = []

        func run() throws {
            let containers = global.containers()
            try containers.create(try options.request(id: try required(id)))
            try containers.start(try required(id))
        }
    }
}

/// The flags of `create` and `run`.
struct CreateOptions: ParsableArguments {
    static let flags = RuncFlags(values: ["bundle", "pid-file", "console-socket", "preserve-fds"])

    @Option(name: [.customLong("bundle"), .customShort("b")], parsing: .unconditional, help: "The bundle's directory (default: the current one).")
    var bundle: String?

    @Option(name: .customLong("pid-file"), parsing: .unconditional, help: "A file to write the container's process id to.")
    var pidFile: String?

    @Option(name: .customLong("console-socket"), parsing: .unconditional, help: "A Unix socket to send the terminal's master to.")
    var consoleSocket: String?

    @Option(name: .customLong("preserve-fds"), parsing: .unconditional, help: "Open files passed beyond stdio (only 0: a VM takes none).")
    var preserveFDs: String?

    func request(id: String) throws(HVCError) -> OCIContainers.CreateRequest {
        var request = OCIContainers.CreateRequest(id: id, bundle: bundle ?? FileManager.default.currentDirectoryPath)
        request.pidFile = pidFile
        request.consoleSocket = consoleSocket
        if let preserveFDs {
            guard let count = Int(preserveFDs), count >= 0 else { throw HVCError(.invalid, "--preserve-fds \(preserveFDs): give a count") }
            request.preservedFDs = count
        }
        return request
    }
}
