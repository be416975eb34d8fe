import CLinux
import Foundation
import HVCSystem
import Jail
import Synchronization

/// A micro-VM run by one QEMU process.
///
/// The QEMU process is started with `PR_SET_PDEATHSIG`, tied to the thread that calls
/// `launch`: call it from a thread that lives as long as the VM should (the main thread).
public final class QEMUMachine: VirtualMachine {
    public let configuration: VMConfiguration
    public let pid: Int32
    /// Where the VMM's `/` is on the host (its jail), or "" when it is not jailed.
    public var hostRoot: String { root.withLock { $0 } }
    private let root: Mutex<String>
    private let exited = Mutex(false)

    private init(configuration: VMConfiguration, pid: Int32, hostRoot: String) {
        self.configuration = configuration
        self.pid = pid
        self.root = Mutex(hostRoot)
    }

    /// The jail directory was renamed on the host (the VMM itself sees no change).
    public func jailMoved(to hostRoot: String) {
        root.withLock { $0 = hostRoot }
    }

    /// Starts QEMU; its own output goes to `logPath`. With a `jail`, QEMU starts confined by it
    /// and the configuration's paths are paths inside the jail. `memoryFD` is the guest RAM
    /// file of a template capture or a clone (passed as the VMM's fd 3; jailed launches only).
    public static func launch(
        _ configuration: VMConfiguration, binary: String, logPath: String, jail: JailPlan? = nil,
        memoryFD: Int32 = -1, tapFD: Int32 = -1
    ) throws(VMError) -> QEMUMachine {
        guard (configuration.memory == .anonymous) == (memoryFD < 0) else {
            throw .launch("guest memory \(configuration.memory.rawValue) needs exactly one memory file")
        }
        guard configuration.networkInterface == (tapFD >= 0) else {
            throw .launch("a network interface needs exactly one TAP device")
        }
        let log: FileDescriptor
        do {
            log = try FileDescriptor.open(logPath, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        } catch {
            throw .launch("\(logPath): \(error)")
        }
        let argv = [binary] + QEMUCommandLine(configuration).arguments
        let environment = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
        if var jail {
            jail.inheritedFD = memoryFD
            jail.secondInheritedFD = tapFD
            switch jail.spawn(path: binary, arguments: argv, environment: environment, outputFD: log.raw) {
            case .success(let pid): return QEMUMachine(configuration: configuration, pid: pid, hostRoot: jail.root)
            case .failure(let error): throw .launch("\(error)")
            }
        }
        guard memoryFD < 0, tapFD < 0 else { throw .launch("a memory file or TAP device can only be passed to a jailed VMM") }
        var result = hvc_spawn_result()
        let status = withCStringArray(argv) { cArgv in
            withCStringArray(environment) { cEnv in
                hvc_spawn_supervised(binary, cArgv, cEnv, log.raw, log.raw, &result)
            }
        }
        guard status == 0 else { throw .launch("fork: \(Errno.current)") }
        if result.stage != 0 {
            var ignored: Int32 = 0
            waitpid(result.pid, &ignored, 0)
            throw .launch("exec \(binary): \(Errno(rawValue: result.error))")
        }
        return QEMUMachine(configuration: configuration, pid: result.pid, hostRoot: "")
    }

    public func connectAgent(timeoutSeconds: Double) throws(VMError) -> FrameChannel {
        let path = hostRoot + configuration.agentSocket
        switch connectWhenListening(path, seconds: timeoutSeconds, whileAlive: ProcessStamp(pid: pid, start: nil)) {
        case .success(let socket):
            return FrameChannel(socket: socket)
        case .failure(let error):
            if hasExited() { throw .launch("QEMU exited before the VM came up") }
            throw .agentUnavailable("\(path): \(error)")
        }
    }

    /// A QMP connection; QEMU serves one at a time, so drop it before `stop`.
    public func qmp(timeoutSeconds: Double) throws(VMError) -> QMPClient {
        switch connectWhenListening(hostRoot + configuration.qmpSocket, seconds: timeoutSeconds, whileAlive: ProcessStamp(pid: pid, start: nil)) {
        case .success(let socket):
            return try QMPClient(connected: socket)
        case .failure(let error):
            if hasExited() { throw .launch("QEMU exited before its QMP socket came up") }
            throw .qmp("connect \(hostRoot + configuration.qmpSocket): \(error)")
        }
    }

    public func stop() throws(VMError) {
        let qmp = try QMPClient(path: hostRoot + configuration.qmpSocket)
        do {
            try qmp.execute("quit")
        } catch {
            // QEMU may close the socket before answering `quit`; its exit is what counts.
        }
    }

    public func captureState(to state: Int32, bootTimeoutSeconds: Double) throws(VMError) {
        let qmp = try qmp(timeoutSeconds: 30)
        qmp.setTimeout(seconds: bootTimeoutSeconds)
        try qmp.execute("cont")
        _ = try qmp.waitForEvent("VSERPORT_CHANGE") {
            $0["id"] as? String == QEMUCommandLine.agentPortID && $0["open"] as? Bool == true
        }
        // The agent's `ready` write follows the open at once; let it reach the port.
        usleep(50_000)
        try Migration.save(qmp, to: state)
        _ = try? qmp.execute("quit")
    }

    public func restoreState(from state: Int32) throws(VMError) {
        try Migration.restore(try qmp(timeoutSeconds: 30), from: state)
    }

    public func kill() {
        if !hasExited() { Glibc.kill(pid, SIGKILL) }
    }

    /// Waits until every thread of QEMU has exited and it is reaped: its cgroups can go then.
    public func waitForExit(timeoutSeconds: Double) -> Bool {
        if hasExited() { return true }
        // QEMU is this process's child, so its pid is its own until reaped; its pidfd becomes
        // readable once its last thread has exited (a zombie leader with threads left is not yet).
        let fd = hvc_pidfd_open(pid)
        guard fd >= 0 else { return hasExited() }
        let handle = FileDescriptor(fd)
        let deadline = Deadline(secondsFromNow: timeoutSeconds)
        while !hasExited() {
            guard let left = deadline.millisecondsLeft else { return false }
            _ = try? poll([(handle.raw, .readable)], timeoutMilliseconds: left)
        }
        return true
    }

    /// Reaps QEMU if it has exited; only this object waits for its pid.
    private func hasExited() -> Bool {
        exited.withLock { done in
            if done { return true }
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid || (result < 0 && Errno.current == .noChild) { done = true }
            return done
        }
    }
}
