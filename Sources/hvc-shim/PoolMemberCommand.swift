import ArgumentParser
import Foundation
import Runtime

/// `hvc-shim pool-member POOL`: a booted clone waiting in a warm pool; the supervisor of the
/// container that claims it. Exits 0 when it leaves the pool unclaimed, 125 when its VM could
/// not be made ready, else with the container's exit code.
struct PoolMemberCommand: ShimRoleCommand {
    static let configuration = CommandConfiguration(
        commandName: Shim.Role.Name.poolMember.rawValue,
        abstract: "Wait in a warm pool as a booted clone, then supervise the container that claims it.")

    @Argument(help: "The pool's name.")
    var pool: String

    @OptionGroup var state: StateOptions

    var role: Shim.Role { .poolMember(pool: pool) }

    func run() throws {
        do {
            Foundation.exit(try PoolMember.serve(runtime: state.runtime(), poolName: pool) ?? 0)
        } catch {
            exitReporting(error.message, code: 125)
        }
    }
}
