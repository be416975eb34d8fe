import Foundation
import Runtime

// hvc-oci: runc's command line, each container in a micro-VM of its own.
//   hvc-oci [--root DIR] [--log FILE] [--log-format text|json] [--systemd-cgroup] [--debug]
//           [--hvc-root DIR] [--hvc-run-root DIR] [--hvc-assets DIR] COMMAND ...
// Commands: create, run, start, state, kill, delete, exec, ps, pause, resume, update, features;
// --version.

struct Invocation {
    var globals: [String: String] = [:]
    var command = ""
    /// The command's flags in order (some repeat: exec's `--env`).
    var flagList: [(name: String, value: String)] = []
    var positional: [String] = []

    var flags: [String: String] { Dictionary(flagList, uniquingKeysWith: { $1 }) }
    func all(_ name: String) -> [String] { flagList.filter { $0.name == name }.map(\.value) }
}

/// Flags that take no value (runc's booleans); every other flag takes one, as `--f v` or `--f=v`.
let booleans: Set<String> = ["systemd-cgroup", "debug", "no-pivot", "no-new-keyring", "force", "all", "detach", "tty", "help",
                             "version", "no-new-privs", "no-subreaper"]
let aliases = ["b": "bundle", "f": "force", "a": "all", "d": "detach", "t": "tty", "p": "process", "h": "help", "v": "version",
               "e": "env", "u": "user"]

/// runc's command line: global flags, the command, its flags, then its arguments (flags end at
/// the first argument, as runc's parser does: `exec ID ls -l`).
func parse(_ arguments: [String]) -> Invocation {
    var invocation = Invocation()
    var rest = arguments[...]
    var inCommand = false
    while let argument = rest.popFirst() {
        if argument.hasPrefix("-"), argument != "-", invocation.positional.isEmpty {
            if argument == "--" {
                invocation.positional += rest
                break
            }
            var name = String(argument.drop { $0 == "-" })
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            name = aliases[name] ?? name
            if value == nil { value = booleans.contains(name) ? "true" : (rest.popFirst() ?? "") }
            if inCommand { invocation.flagList.append((name, value!)) } else { invocation.globals[name] = value }
        } else if !inCommand {
            invocation.command = argument
            inCommand = true
        } else {
            invocation.positional.append(argument)
        }
    }
    return invocation
}

let invocation = parse(Array(CommandLine.arguments.dropFirst()))
let logPath = invocation.globals["log"]
let jsonLog = invocation.globals["log-format"] == "json"

/// An error as runc reports it: a line on stderr and, with `--log`, in the log (containerd reads
/// the last `error` line of a JSON log).
func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("hvc-oci: \(message)\n".utf8))
    if let logPath, let handle = FileHandle(forWritingAtPath: logPath) ?? {
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        return FileHandle(forWritingAtPath: logPath)
    }() {
        handle.seekToEndOfFile()
        let time = ISO8601DateFormatter().string(from: Date())
        let line: String
        if jsonLog, let data = try? JSONSerialization.data(withJSONObject: ["level": "error", "msg": message, "time": time]) {
            line = String(decoding: data, as: UTF8.self)
        } else {
            line = "time=\"\(time)\" level=error msg=\"\(message)\""
        }
        handle.write(Data((line + "\n").utf8))
    }
    exit(code)
}

if invocation.globals["version"] != nil || invocation.command == "--version" {
    print("hvc-oci version 0.1\nspec: 1.0.2")
    exit(0)
}
signal(SIGPIPE, SIG_IGN)
// hvc's own paths: flags (callers pass them as runtime flags: podman's --runtime-flag), else the
// environment (which callers such as conmon do not pass on), else the defaults.
let environment = ProcessInfo.processInfo.environment
func setting(_ flag: String, _ variable: String) -> String? {
    invocation.globals[flag] ?? environment[variable].flatMap { $0.isEmpty ? nil : $0 }
}
let paths = RuntimePaths(root: setting("hvc-root", "HVC_ROOT") ?? RuntimePaths.defaultRoot,
                         runRoot: setting("hvc-run-root", "HVC_RUN_ROOT") ?? RuntimePaths.defaultRunRoot,
                         assets: setting("hvc-assets", "HVC_ASSETS") ?? RuntimePaths.defaultAssets())
let containers = OCIContainers(runtime: Runtime(paths: paths),
                               stateRoot: invocation.globals["root"] ?? OCIContainers.defaultStateRoot)

func id() -> String {
    guard let id = invocation.positional.first else { fail("\(invocation.command): give the container id") }
    return id
}

do throws(HVCError) {
    switch invocation.command {
    case "create", "run":
        var request = OCIContainers.CreateRequest(id: id(), bundle: invocation.flags["bundle"] ?? FileManager.default.currentDirectoryPath)
        request.pidFile = invocation.flags["pid-file"]
        request.consoleSocket = invocation.flags["console-socket"]
        if let text = invocation.flags["preserve-fds"] {
            guard let count = Int(text), count >= 0 else { fail("--preserve-fds \(text): give a count") }
            request.preservedFDs = count
        }
        try containers.create(request)
        if invocation.command == "run" { try containers.start(id()) }
    case "start":
        try containers.start(id())
    case "state":
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let state = try containers.state(id())
        guard let data = try? encoder.encode(state) else { fail("cannot encode the state") }
        print(String(decoding: data, as: UTF8.self))
    case "kill":
        let text = invocation.positional.count > 1 ? invocation.positional[1] : "TERM"
        try containers.kill(id(), signal: try SignalName.parse(text))
    case "delete":
        try containers.delete(id(), force: invocation.flags["force"] == "true")
    case "exec":
        let flags = invocation.flags
        var request = OCIContainers.ExecRequest(id: id())
        request.processFile = flags["process"]
        request.arguments = Array(invocation.positional.dropFirst())
        request.environment = invocation.all("env")
        request.workingDirectory = flags["cwd"]
        request.user = flags["user"]
        request.tty = flags["tty"] == "true"
        request.detach = flags["detach"] == "true"
        request.pidFile = flags["pid-file"]
        request.consoleSocket = flags["console-socket"]
        if let text = flags["preserve-fds"], text != "0" { fail("--preserve-fds \(text): open files cannot be passed into a VM") }
        exit(try containers.exec(request))
    case "ps":
        let pids = try containers.processes(id())
        if invocation.flags["format"] == "json" {
            print("[" + pids.map(String.init).joined(separator: ",") + "]")
        } else {
            print("PID")
            for pid in pids { print(pid) }
        }
    case "pause", "resume":
        try containers.pause(id(), frozen: invocation.command == "pause")
    case "update":
        guard let file = invocation.flags["resources"] ?? (invocation.flags["r"]) else {
            fail("update: give --resources FILE (the spec's linux.resources as JSON, - for stdin)")
        }
        try containers.update(id(), resourcesFile: file)
    case "features":
        print(#"{"ociVersionMin": "1.0.0", "ociVersionMax": "1.0.2", "hooks": [], "mountOptions": ["ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec"]}"#)
    case "":
        fail("no command: use create, run, start, state, kill, delete, exec, ps, pause, resume, update or features")
    default:
        fail("unknown command \"\(invocation.command)\": use create, run, start, state, kill, delete, exec, ps, pause, resume, update or features")
    }
    exit(0)
} catch {
    fail(error.message)
}
