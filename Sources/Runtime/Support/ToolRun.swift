import AgentProtocol
import Foundation
import HVCSystem

/// A helper program run to completion: mkfs.erofs, tar, the CNI plugins, nft, tc, ip. Spawned with posix_spawn
/// and waited for directly: Foundation's `Process` polls for the exit in 50 ms steps, which a
/// container's start and end would pay for each tool.
struct ToolRun {
    var status: Int32
    var output: Data
    var errorOutput: String

    var succeeded: Bool { status == 0 }

    /// Runs `path` with `input` on its stdin; `environment` replaces the inherited one when given.
    static func run(_ path: String, _ arguments: [String], environment: [String: String]? = nil, input: Data = Data()) -> ToolRun {
        func failed(_ why: String) -> ToolRun { ToolRun(status: 127, output: Data(), errorOutput: "\(path): \(why)") }
        guard let stdin = try? FileDescriptor.pipe(), let stdout = try? FileDescriptor.pipe(),
              let stderr = try? FileDescriptor.pipe() else { return failed("pipe: \(Errno.current)") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin.read.raw, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout.write.raw, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr.write.raw, 2)
        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        // The pipes are close-on-exec: the child keeps only the three dup2'd ends.
        let spawned = withCStringArray([path] + arguments) { argv in
            withCStringArray(env) { envp in
                posix_spawn(&pid, path, &actions, nil,
                            UnsafeMutablePointer(mutating: UnsafeRawPointer(argv).assumingMemoryBound(to: UnsafeMutablePointer<CChar>?.self)),
                            UnsafeMutablePointer(mutating: UnsafeRawPointer(envp).assumingMemoryBound(to: UnsafeMutablePointer<CChar>?.self)))
            }
        }
        stdin.read.close()
        stdout.write.close()
        stderr.write.close()
        guard spawned == 0 else {
            stdin.write.close()
            return failed(String(cString: strerror(spawned)))
        }
        // Inputs are small (a config): they fit the pipe, so writing all first cannot stall.
        try? stdin.write.writeAll(Array(input))
        stdin.write.close()
        var out: [UInt8] = [], err: [UInt8] = []
        var open = [stdout.read, stderr.read]
        while !open.isEmpty {
            guard let events = try? poll(open.map { ($0.raw, PollEvents.readable) }, timeoutMilliseconds: -1) else { break }
            for (index, event) in events.enumerated().reversed() where !event.isEmpty {
                let chunk = (try? open[index].read(max: 65536)) ?? []
                if chunk.isEmpty {
                    open[index].close()
                    open.remove(at: index)
                } else if open[index] === stdout.read {
                    if out.count < 1 << 20 { out += chunk }
                } else if err.count < 1 << 16 {
                    err += chunk
                }
            }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && Errno.current == .interrupted {}
        return ToolRun(status: ExitStatus(waitStatus: status).code, output: Data(out),
                       errorOutput: String(decoding: err, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The tool's complaint in one line, for an error message.
    var complaint: String {
        let text = errorOutput.isEmpty ? String(decoding: output, as: UTF8.self) : errorOutput
        return text.split(separator: "\n").last.map(String.init) ?? "exit status \(status)"
    }
}
