import CLinux
import Foundation
import HVCSystem

/// `hvc-shim` processes: container supervisors, template keepers, pool members, the name
/// server and OCI containers' processes. Each runs in its own session and outlives the process
/// that starts it; until then, that process reaps it.
public enum Shim {
    /// What one `hvc-shim` process does: the subcommand it runs and that subcommand's arguments.
    /// `hvc-shim` parses what `arguments(paths:)` renders; tests and sweeps that look for these
    /// processes read the subcommand from `/proc/PID/cmdline` (its second word).
    public enum Role: Equatable, Sendable {
        /// Supervises the created container `container` for its whole life; with `awaitsAttach`,
        /// holds its command until a control-socket client attaches.
        case supervise(container: String, awaitsAttach: Bool)
        /// Holds the sealed memory of the template `key` for its clones.
        case keepTemplate(key: String)
        /// Waits in the warm pool `pool` as a booted clone until a container claims it.
        case poolMember(pool: String)
        /// Answers DNS queries for the containers of every network of the state.
        case nameServer
        /// Is the OCI container's process: boots `container`'s VM in the bundle's network
        /// namespace and cgroup, waits for `start` under `stateDirectory`, relays the command.
        case ociInit(container: String, stateDirectory: String, consoleSocket: String?, networkNamespace: String?, cgroup: String?)
        /// Relays an OCI exec's process (described by `execFile`) in `container`.
        case ociExec(container: String, execFile: String, consoleSocket: String?)

        /// The subcommands' names.
        public enum Name: String, CaseIterable, Sendable {
            case supervise
            case keepTemplate = "keep-template"
            case poolMember = "pool-member"
            case nameServer = "name-server"
            case ociInit = "oci-init"
            case ociExec = "oci-exec"
        }

        /// The subcommand that runs this role.
        public var name: Name {
            switch self {
            case .supervise: .supervise
            case .keepTemplate: .keepTemplate
            case .poolMember: .poolMember
            case .nameServer: .nameServer
            case .ociInit: .ociInit
            case .ociExec: .ociExec
            }
        }

        /// `hvc-shim`'s command line after its path: the subcommand, its operand, then its
        /// options and the state's paths, each option's value in the word after it.
        public func arguments(paths: RuntimePaths) -> [String] {
            var words = [name.rawValue]
            func option(_ flag: String, _ value: String?) {
                if let value { words += ["--" + flag, value] }
            }
            switch self {
            case .supervise(let container, let awaitsAttach):
                words.append(container)
                if awaitsAttach { words.append("--await-attach") }
            case .keepTemplate(let key):
                words.append(key)
            case .poolMember(let pool):
                words.append(pool)
            case .nameServer:
                break
            case .ociInit(let container, let stateDirectory, let consoleSocket, let networkNamespace, let cgroup):
                words.append(container)
                option("state-directory", stateDirectory)
                option("console-socket", consoleSocket)
                option("netns", networkNamespace)
                option("cgroup", cgroup)
            case .ociExec(let container, let execFile, let consoleSocket):
                words.append(container)
                option("exec-file", execFile)
                option("console-socket", consoleSocket)
            }
            option("root", paths.root)
            option("run-root", paths.runRoot)
            option("assets", paths.assets)
            return words
        }
    }

    /// `hvc-shim` beside the running executable, or `HVC_SHIM`.
    static func path() -> String {
        if let explicit = ProcessInfo.processInfo.environment["HVC_SHIM"], !explicit.isEmpty { return explicit }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/usr/local/bin/hvc"
        return URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("hvc-shim").path
    }

    static let minimalEnvironment = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]

    /// This process's environment for a container's supervisor, without the timing switch
    /// (which only `hvc run`'s own supervision reports).
    static var supervisorEnvironment: [String] {
        ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }.filter { !$0.hasPrefix("HVC_TIMING=") }
    }

    /// Starts `hvc-shim` in `role` on the state at `paths`, its output to `output` (/dev/null
    /// when nil), in a session of its own; with `keepsStdio`, with this process's stdio and
    /// session instead (an OCI container's process). A thread reaps it unless `reaps` is false (the
    /// caller waits for it). Returns its pid, or the errno of what failed.
    static func start(_ role: Role, paths: RuntimePaths, environment: [String] = minimalEnvironment,
                      output: Int32? = nil, keepsStdio: Bool = false, reaps: Bool = true) throws(Errno) -> Int32 {
        let shim = path()
        let argv = [shim] + role.arguments(paths: paths)
        let null = output == nil && !keepsStdio ? open("/dev/null", O_WRONLY | O_CLOEXEC) : -1
        defer { if null >= 0 { close(null) } }
        var spawned = hvc_spawn_result()
        let status = withCStringArray(argv) { cArgv in
            withCStringArray(environment) { cEnv in
                keepsStdio ? hvc_spawn_inheriting_stdio(shim, cArgv, cEnv, &spawned)
                    : hvc_spawn_detached(shim, cArgv, cEnv, output ?? null, &spawned)
            }
        }
        guard status == 0, spawned.stage == 0 else { throw spawned.error != 0 ? Errno(rawValue: spawned.error) : Errno.current }
        let pid = spawned.pid
        if reaps { Thread.detachNewThread { var ignored: Int32 = 0; waitpid(pid, &ignored, 0) } }
        return pid
    }
}
