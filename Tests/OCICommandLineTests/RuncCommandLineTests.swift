import ArgumentParser
import Foundation
@testable import OCICommandLine
import Runtime
import Testing

/// runc's command line as podman (conmon), containerd's runc shim and Docker write it, read
/// into the commands' options.
struct RuncCommandLineTests {
    func canonical(_ arguments: [String]) throws -> [String] {
        try RuncCommandLine(arguments).canonicalArguments(commands: HVCOCI.commands)
    }

    func parse<Command: ParsableCommand>(_ arguments: [String], as type: Command.Type) throws -> Command {
        try #require(try HVCOCI.parseAsRoot(try canonical(arguments)) as? Command)
    }

    /// The message of the `HVCError` that `body` throws.
    func failure(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch let error as HVCError {
            return error.message
        } catch {
            return "not an HVCError: \(error)"
        }
    }

    /// Each command names itself: a name ArgumentParser derives from the type's description
    /// costs a scan of every loaded library's conformances, on every call podman makes.
    @Test func everyCommandNamesItself() {
        for command in HVCOCI.configuration.subcommands {
            #expect(command.configuration.commandName != nil, "\(command) has no commandName")
        }
        #expect(HVCOCI.commands.map(\.name) == ["create", "run", "start", "state", "kill", "delete", "exec", "ps", "pause", "resume", "update", "features"])
    }

    @Test func containerdCreate() throws {
        let arguments = ["--root", "/run/containerd/runc/k8s.io", "--log", "/b/log.json", "--log-format", "json", "--systemd-cgroup",
                         "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "--console-socket", "/tmp/console.sock",
                         "--no-pivot", "--no-new-keyring", "c1"]
        #expect(try canonical(arguments) == [
            "create", "--root", "/run/containerd/runc/k8s.io", "--log", "/b/log.json", "--log-format", "json",
            "--bundle", "/b", "--pid-file", "/b/init.pid", "--console-socket", "/tmp/console.sock", "--", "c1",
        ])
        let create = try parse(arguments, as: HVCOCI.Create.self)
        #expect(create.global.root == "/run/containerd/runc/k8s.io")
        #expect(create.global.log == "/b/log.json" && create.global.logFormat == "json")
        let request = try create.options.request(id: try create.required(create.id))
        #expect(request.id == "c1" && request.bundle == "/b" && request.pidFile == "/b/init.pid")
        #expect(request.consoleSocket == "/tmp/console.sock" && request.preservedFDs == 0)
    }

    @Test func goFlagForms() throws {
        // One dash or more, the value in the next word or after '=' (which may be empty).
        let create = try parse(["-root=/r", "---log", "/l", "create", "-bundle", "/b", "--pid-file=", "-preserve-fds=0", "c1"],
                               as: HVCOCI.Create.self)
        #expect(create.global.root == "/r" && create.global.log == "/l")
        #expect(create.options.bundle == "/b" && create.options.pidFile == "" && create.options.preserveFDs == "0")
        #expect(create.id == "c1")
    }

    @Test func valuesThatLookLikeFlags() throws {
        let create = try parse(["--root", "-odd", "create", "--bundle", "--also-odd", "c1"], as: HVCOCI.Create.self)
        #expect(create.global.root == "-odd" && create.options.bundle == "--also-odd" && create.id == "c1")
    }

    @Test func conmonExec() throws {
        let exec = try parse(["--root", "/run/runc", "exec", "--pid-file", "/p", "--process", "/proc.json", "--detach", "--tty",
                              "--console-socket", "/s", "c1"], as: HVCOCI.Exec.self)
        let request = try exec.request
        #expect(request.id == "c1" && request.processFile == "/proc.json" && request.pidFile == "/p" && request.consoleSocket == "/s")
        #expect(request.detach && request.tty && request.arguments.isEmpty)
    }

    @Test func shortNamesAndRepeatedEnvironment() throws {
        let exec = try parse(["exec", "-d", "-t", "-e", "A=1", "--env=B=2", "-e", "A=3", "-u", "0:0", "--cwd", "/w", "c1", "sh"],
                             as: HVCOCI.Exec.self)
        let request = try exec.request
        #expect(request.detach && request.tty && request.user == "0:0" && request.workingDirectory == "/w")
        #expect(request.environment == ["A=1", "B=2", "A=3"])
        #expect(request.arguments == ["sh"])
    }

    @Test func flagsEndAtTheFirstOperand() throws {
        let exec = try parse(["exec", "--tty", "c1", "ls", "-l", "--tty=false", "--"], as: HVCOCI.Exec.self)
        #expect(exec.id == "c1" && exec.tty)
        #expect(exec.command == ["ls", "-l", "--tty=false", "--"])
        let kill = try parse(["kill", "--", "c1", "KILL"], as: HVCOCI.Kill.self)
        #expect(kill.id == "c1" && kill.signal == "KILL")
    }

    @Test func unreadFlagsAreAcceptedWithTheirValues() throws {
        let arguments = ["--criu", "/usr/sbin/criu", "--debug", "--rootless=false", "create", "--unknown", "value", "--no-pivot",
                         "--no-new-keyring", "c1", "extra"]
        #expect(try canonical(arguments) == ["create", "--", "c1", "extra"])
        let create = try parse(arguments, as: HVCOCI.Create.self)
        #expect(create.id == "c1" && create.options.bundle == nil)
        let kill = try parse(["kill", "--all", "c1", "9"], as: HVCOCI.Kill.self)
        #expect(kill.id == "c1" && kill.signal == "9" && kill.all)
        #expect(try parse(["kill", "-a", "c1"], as: HVCOCI.Kill.self).all)
        #expect(try !parse(["kill", "c1", "KILL"], as: HVCOCI.Kill.self).all)
    }

    @Test(arguments: [
        (["delete", "c1"], false), (["delete", "--force", "c1"], true), (["delete", "-f", "c1"], true),
        (["delete", "--force=true", "c1"], true), (["delete", "--force=false", "c1"], false), (["delete", "--force=1", "c1"], false),
    ])
    func switches(arguments: [String], force: Bool) throws {
        let delete = try parse(arguments, as: HVCOCI.Delete.self)
        #expect(delete.force == force && delete.id == "c1")
    }

    @Test func theLastOfARepeatedFlagWins() throws {
        #expect(try parse(["--root", "/a", "--root", "/b", "create", "--bundle", "/x", "-b", "/y", "c1"], as: HVCOCI.Create.self)
            .options.bundle == "/y")
        #expect(try parse(["--root", "/a", "--root", "/b", "state", "c1"], as: HVCOCI.State.self).global.root == "/b")
    }

    @Test func updateResources() throws {
        #expect(try parse(["update", "--resources", "-", "c1"], as: HVCOCI.Update.self).resources == "-")
        #expect(try parse(["update", "-r", "/r.json", "c1"], as: HVCOCI.Update.self).resources == "/r.json")
        #expect(try parse(["update", "--resources", "/a", "-r", "/b", "c1"], as: HVCOCI.Update.self).resources == "/a")
        #expect(try parse(["update", "c1"], as: HVCOCI.Update.self).resources == nil)
    }

    @Test func psFormat() throws {
        #expect(try parse(["ps", "--format", "json", "c1"], as: HVCOCI.PS.self).format == "json")
        #expect(try parse(["ps", "c1"], as: HVCOCI.PS.self).format == nil)
    }

    @Test(arguments: [["--version"], ["-v"], ["-version"], ["--version", "create", "c1"], ["--root", "/r", "--version=false"]])
    func version(arguments: [String]) throws {
        #expect(try canonical(arguments) == ["--version"])
    }

    @Test func help() throws {
        #expect(try canonical(["--help"]) == ["--help"])
        #expect(try canonical(["-h"]) == ["--help"])
        #expect(try canonical(["create", "--help"]) == ["create", "--help", "--"])
    }

    @Test func commandErrors() {
        let commands = "create, run, start, state, kill, delete, exec, ps, pause, resume, update or features"
        #expect(failure { _ = try canonical([]) } == "no command: use " + commands)
        #expect(failure { _ = try canonical(["--root", "/r"]) } == "no command: use " + commands)
        #expect(failure { _ = try canonical(["checkpoint", "c1"]) } == "unknown command \"checkpoint\": use " + commands)
    }

    @Test func operandAndValueErrors() throws {
        let start = try parse(["start"], as: HVCOCI.Start.self)
        #expect(failure { _ = try start.required(start.id) } == "start: give the container id")
        let create = try parse(["create", "--preserve-fds", "two", "c1"], as: HVCOCI.Create.self)
        #expect(failure { _ = try create.options.request(id: "c1") } == "--preserve-fds two: give a count")
        let exec = try parse(["exec", "--preserve-fds", "1", "c1", "true"], as: HVCOCI.Exec.self)
        #expect(failure { _ = try exec.request } == "--preserve-fds 1: open files cannot be passed into a VM")
        let missing = try parse(["exec", "--preserve-fds", "1"], as: HVCOCI.Exec.self)
        #expect(failure { _ = try missing.request } == "exec: give the container id")
    }

    @Test func hvcPaths() throws {
        let state = try parse(["--root", "/oci", "--hvc-root", "/h", "state", "c1"], as: HVCOCI.State.self)
        let containers = state.global.containers(environment: ["HVC_ROOT": "/env", "HVC_RUN_ROOT": "/env-run", "HVC_ASSETS": ""])
        #expect(containers.stateRoot == "/oci")
        #expect(containers.runtime.paths.root == "/h" && containers.runtime.paths.runRoot == "/env-run")
        #expect(containers.runtime.paths.assets == RuntimePaths.defaultAssets(environment: [:]))
        let defaults = try parse(["state", "c1"], as: HVCOCI.State.self).global.containers(environment: [:])
        #expect(defaults.stateRoot == OCIContainers.defaultStateRoot && defaults.runtime.paths.root == RuntimePaths.defaultRoot)
    }

    @Test func errorLogLines() throws {
        let json = ErrorLog(path: nil, json: true).line("container \"c1\" does not exist", time: "2025-01-01T00:00:00Z")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String])
        #expect(object == ["level": "error", "msg": "container \"c1\" does not exist", "time": "2025-01-01T00:00:00Z"])
        #expect(ErrorLog(path: nil, json: false).line("gone", time: "T") == #"time="T" level=error msg="gone""#)
    }
}
