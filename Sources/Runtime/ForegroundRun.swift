import AgentProtocol
import CLinux
import Foundation
import HVCSystem
import VMM

/// `hvc run` attached to the terminal: boots the VM, starts the command, relays stdio and
/// signals, and returns the command's exit code. The VM is gone when this returns.
public final class ForegroundRun {
    let options: RunOptions
    let runtime: Runtime
    let timing: RunTiming

    public init(options: RunOptions, runtime: Runtime, reportTiming: Bool = false) {
        self.options = options
        self.runtime = runtime
        self.timing = RunTiming(enabled: reportTiming)
    }

    /// Signals `hvc run` passes on to the container's process.
    static let forwardedSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH]

    public func run() throws(HVCError) -> Int32 {
        try runtime.checkAssets()
        let image = try runtime.images.resolve(options.image)
        let accelerator = try runtime.chooseAccelerator(options.accelerator).accelerator
        let id = ContainerID.generate()
        let hostname = options.hostname ?? ContainerID.shortForm(id)
        var rows: UInt16 = 24
        var columns: UInt16 = 80
        if options.terminal { _ = hvc_get_window_size(0, &rows, &columns) }
        let spec = try options.processSpec(config: image.config, hostname: hostname, rows: rows, columns: columns)

        // Block the forwarded signals before any thread exists, so only the relay thread sees them.
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in ForegroundRun.forwardedSignals { sigaddset(&mask, signal) }
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        signal(SIGPIPE, SIG_IGN)

        let directory = try VMDirectory.create(in: runtime.paths.vms, id: id)
        defer {
            if ProcessInfo.processInfo.environment["HVC_DEBUG"] == "1",
               let console = FileManager.default.contents(atPath: directory.consoleLog) {
                FileHandle.standardError.write(Data("--- guest console ---\n".utf8) + console)
            }
            directory.remove()
        }
        let configuration = VMConfiguration(
            kernel: runtime.paths.kernel, initramfs: runtime.paths.initramfs, rootDisk: image.rootfsPath,
            rootFilesystemType: image.rootfsType, memoryMiB: options.memoryMiB, cpus: options.cpus,
            accelerator: accelerator, agentSocket: directory.agentSocket, qmpSocket: directory.qmpSocket,
            consoleLog: directory.consoleLog)
        timing.mark("launch")
        let vm: QEMUMachine
        do {
            vm = try QEMUMachine.launch(configuration, binary: runtime.qemuBinary, logPath: directory.vmmLog)
        } catch {
            throw HVCError("\(error)")
        }
        defer { end(vm) }
        try directory.recordVMM(pid: vm.pid)

        let channel: AgentChannel
        do {
            channel = try vm.connectAgent(timeoutSeconds: 30)
        } catch {
            throw HVCError("\(error)\(diagnostics(directory))")
        }
        timing.mark("connected")
        let session = Session(channel: channel, timing: timing)
        let exitCode = try session.run(
            spec: spec, hostname: hostname, interactive: options.interactive, terminal: options.terminal,
            onFailure: { self.diagnostics(directory) })
        timing.report()
        return exitCode
    }

    /// The VM ends with its container: ask the agent, then QEMU, then the kernel.
    private func end(_ vm: QEMUMachine) {
        if !vm.waitForExit(timeoutSeconds: 0.5) {
            try? vm.stop()
            if !vm.waitForExit(timeoutSeconds: 1) {
                vm.kill()
                _ = vm.waitForExit(timeoutSeconds: 5)
            }
        }
        timing.mark("vm-gone")
    }

    /// The tail of QEMU's and the guest console's output, for an error message.
    func diagnostics(_ directory: VMDirectory) -> String {
        var text = ""
        for (label, path) in [("qemu", directory.vmmLog), ("console", directory.consoleLog)] {
            guard let data = FileManager.default.contents(atPath: path), !data.isEmpty else { continue }
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").suffix(5)
            text += "\n  \(label): " + lines.joined(separator: "\n  \(label): ")
        }
        return text
    }
}

/// Host-side timestamps of one run, printed to stderr as `hvc-timing:` lines when enabled.
final class RunTiming: @unchecked Sendable {
    // @unchecked: marks are only taken on the main thread.
    let enabled: Bool
    private let start = monotonicNanoseconds()
    private var marks: [(String, UInt64)] = []
    var guestAgentStart: UInt64 = 0
    var guestReady: UInt64 = 0

    init(enabled: Bool) { self.enabled = enabled }

    func mark(_ name: String) {
        if enabled { marks.append((name, monotonicNanoseconds() - start)) }
    }

    func report() {
        guard enabled else { return }
        var line = "hvc-timing:"
        for (name, at) in marks { line += " \(name)=\(String(format: "%.1f", Double(at) / 1e6))ms" }
        line += " guest-agent-start=\(String(format: "%.1f", Double(guestAgentStart) / 1e6))ms"
        line += " guest-ready=\(String(format: "%.1f", Double(guestReady) / 1e6))ms"
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
