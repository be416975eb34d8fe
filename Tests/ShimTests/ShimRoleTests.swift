import ArgumentParser
@testable import hvc_shim
import Runtime
import Testing

/// What the runtime writes to start `hvc-shim` is what `hvc-shim` parses.
struct ShimRoleTests {
    static let paths = RuntimePaths(root: "/var/lib/hvc", runRoot: "-a run root", assets: "/usr/local/share/hvc")

    static let roles: [Shim.Role] = [
        .supervise(container: "3f2a", awaitsAttach: false),
        .supervise(container: "3f2a", awaitsAttach: true),
        .keepTemplate(key: "9c1e"),
        .poolMember(pool: "77ab"),
        .nameServer,
        .ociInit(container: "3f2a", stateDirectory: "/run/hvc-oci/c1", consoleSocket: nil, networkNamespace: nil, cgroup: nil),
        .ociInit(container: "3f2a", stateDirectory: "-state", consoleSocket: "/tmp/console.sock", networkNamespace: "new",
                 cgroup: "/machine.slice/c1"),
        .ociExec(container: "3f2a", execFile: "/run/hvc-oci/c1/exec-1.json", consoleSocket: nil),
        .ociExec(container: "3f2a", execFile: "/run/hvc-oci/c1/exec-2.json", consoleSocket: "--odd"),
    ]

    @Test(arguments: roles)
    func parsesWhatTheLauncherWrites(role: Shim.Role) throws {
        let arguments = role.arguments(paths: Self.paths)
        #expect(arguments.first == role.name.rawValue)
        let command = try #require(try HVCShim.parseAsRoot(arguments) as? any ShimRoleCommand)
        #expect(command.role == role)
        #expect(command.state.root == Self.paths.root && command.state.runRoot == Self.paths.runRoot)
        #expect(command.state.assets == Self.paths.assets)
    }

    @Test func everyRoleIsASubcommand() {
        let names = HVCShim.configuration.subcommands.map { $0._commandName }
        #expect(names == Shim.Role.Name.allCases.map(\.rawValue))
    }

    @Test func commandLines() {
        #expect(Shim.Role.supervise(container: "3f2a", awaitsAttach: true).arguments(paths: Self.paths) == [
            "supervise", "3f2a", "--await-attach", "--root", "/var/lib/hvc", "--run-root", "-a run root", "--assets", "/usr/local/share/hvc",
        ])
        #expect(Shim.Role.nameServer.arguments(paths: Self.paths) == [
            "name-server", "--root", "/var/lib/hvc", "--run-root", "-a run root", "--assets", "/usr/local/share/hvc",
        ])
    }

    @Test func aRoleNeedsTheStatePaths() {
        #expect(throws: (any Error).self) { _ = try HVCShim.parseAsRoot(["keep-template", "9c1e", "--root", "/r"]) }
        #expect(throws: (any Error).self) { _ = try HVCShim.parseAsRoot(["9c1e", "--root", "/r", "--run-root", "/rr", "--assets", "/a"]) }
    }
}
