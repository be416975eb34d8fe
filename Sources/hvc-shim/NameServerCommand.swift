import ArgumentParser
import Foundation
import Runtime

/// `hvc-shim name-server`: the state's DNS server for container names. Exits 0 when idle or
/// when another serves the state, 1 when it cannot drop its privileges.
struct NameServerCommand: ShimRoleCommand {
    static let configuration = CommandConfiguration(
        commandName: Shim.Role.Name.nameServer.rawValue,
        abstract: "Answer DNS queries for the containers of the state's networks until none has members.")

    @OptionGroup var state: StateOptions

    var role: Shim.Role { .nameServer }

    func run() throws {
        do {
            try NameServer.serve(runtime: state.runtime())
            Foundation.exit(0)
        } catch {
            exitReporting(error.message, code: 1)
        }
    }
}
