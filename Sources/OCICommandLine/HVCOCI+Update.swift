import ArgumentParser
import Foundation
import Runtime

extension HVCOCI {
    /// runc's `update`: new resources for a running container's VM.
    struct Update: RuncCommand {
        static let configuration = CommandConfiguration(commandName: "update", abstract: "Apply new resources (CPU quota, pids) to a container's VM.")
        static let flags = RuncFlags(values: ["resources"], fallbacks: ["resources": "r"])

        @OptionGroup var global: GlobalOptions
        @Option(name: [.customLong("resources"), .customShort("r")], parsing: .unconditional, help: "The spec's linux.resources as a JSON file (- for stdin).")
        var resources: String?
        @Argument(help: "The container's id.")
        var id: String?
        @Argument(help: .hidden)
        var ignored: [String] = []

        func run() throws {
            guard let resources else {
                throw HVCError(.invalid, "update: give --resources FILE (the spec's linux.resources as JSON, - for stdin)")
            }
            try global.containers().update(try required(id), resourcesFile: resources)
        }
    }

    /// runc's `features`: what this runtime supports.
    struct Features: RuncCommand {
        static let configuration = CommandConfiguration(commandName: "features", abstract: "Print the runtime's features as JSON.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: .hidden)
        var ignored: [String] = []

        func run() throws {
            print(#"{"ociVersionMin": "1.0.0", "ociVersionMax": "1.0.2", "hooks": [], "mountOptions": ["ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec"]}"#)
        }
    }
}
