import CLinux
import Foundation
import HVCSystem

/// `hvc-shim` processes: container supervisors, template keepers and pool members. Each runs in
/// its own session and outlives the process that starts it; until then, that process reaps it.
enum Shim {
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

    /// Starts `hvc-shim` with the runtime's paths and `arguments`, its output to `output`
    /// (/dev/null when nil), in a session of its own; with `keepsStdio`, with this process's
    /// stdio and session instead (an OCI container's process). Returns its pid, or the errno of
    /// what failed.
    static func start(_ arguments: [String], paths: RuntimePaths, environment: [String] = minimalEnvironment,
                      output: Int32? = nil, keepsStdio: Bool = false) throws(Errno) -> Int32 {
        let shim = path()
        let argv = [shim, "--root", paths.root, "--run-root", paths.runRoot, "--assets", paths.assets] + arguments
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
        Thread.detachNewThread { var ignored: Int32 = 0; waitpid(pid, &ignored, 0) }
        return pid
    }
}
