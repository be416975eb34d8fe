import AgentProtocol
import Foundation
import HVCSystem
import Synchronization
import VMM

/// Owns one container's VM for the container's whole life, in three parts: `SupervisorBoot`
/// makes the VM the container's (launched, on its network, folders shared, the command sent),
/// `GuestRouter` routes frames until the command exits (the log, the control socket, exec,
/// signals), `SupervisorTeardown` ends the VM and records the exit. Runs inside `hvc run` for
/// attached containers and inside `hvc-shim` for detached ones.
///
/// QEMU dies with the thread that called `run` (parent-death signal), so `run` must be
/// called on a thread that lives until it returns.
public final class Supervisor: Sendable {
    /// The status of a command ended by SIGKILL (its VM stopped or lost), as a shell reports it.
    static let killedStatus: Int32 = 128 + SIGKILL
    /// How long the guest agent may take to send `ready`, and then to answer the command's
    /// `start`. Under TCG on a loaded two-core host a boot or a first start takes several
    /// seconds; a guest that has not answered in two minutes is not coming (or is hostile).
    /// `HVC_AGENT_TIMEOUT` (seconds) overrides it.
    static let agentAnswerSeconds: Int = {
        if let text = ProcessInfo.processInfo.environment["HVC_AGENT_TIMEOUT"], let value = Int(text), value > 0 { return value }
        return 120
    }()
    /// The most of a host core the relay of one container's guest may take (see `CPUPacer`):
    /// a guest writing as fast as it can is slowed to it, a normal one never reaches it.
    static let relayCPUShare = 0.5

    let config: ContainerConfig
    let runtime: Runtime
    let timing: RunTiming
    /// The VM's source; nil: chosen at `run` from the container (clone or cold boot).
    private let provider: (any VMProvider)?
    private let router: GuestRouter
    private let terminalSize: (rows: UInt16, columns: UInt16)
    /// Called once the VM is up, before its command is sent: an OCI `create` holds the command
    /// here until `start`. Returns false when the command is not to run.
    private let gate: (@Sendable () -> Bool)?
    /// Process 1's output, written by the relay.
    private let log: ContainerLogWriter

    /// - Parameters:
    ///   - attached: the in-process client of `hvc run` without `-d`, owning the init process's stdio.
    ///   - awaitsAttach: hold the command until a control-socket client sends `attach` (at most
    ///     a minute), so that it sees all of the command's output (attached runs through hvcd).
    public convenience init(config: ContainerConfig, runtime: Runtime, attached: FrameChannel? = nil,
                            keepStdinOpen: Bool = false, terminalSize: (UInt16, UInt16) = (24, 80), timing: Bool = false,
                            awaitsAttach: Bool = false, gate: (@Sendable () -> Bool)? = nil) {
        self.init(config: config, runtime: runtime, provider: nil, attached: attached, keepStdinOpen: keepStdinOpen,
                  terminalSize: terminalSize, timing: timing, awaitsAttach: awaitsAttach, gate: gate)
    }

    init(config: ContainerConfig, runtime: Runtime, provider: (any VMProvider)?, attached: FrameChannel?, keepStdinOpen: Bool,
         terminalSize: (UInt16, UInt16), timing: Bool, awaitsAttach: Bool = false, gate: (@Sendable () -> Bool)? = nil,
         endsWithClient: Bool = false, answerSeconds: Int = Supervisor.agentAnswerSeconds) {
        self.config = config
        self.runtime = runtime
        self.provider = provider
        self.gate = gate
        self.terminalSize = terminalSize
        let timing = RunTiming(enabled: timing)
        self.timing = timing
        let store = runtime.containers
        let log = ContainerLogWriter(path: store.logPath(config.id), maxBytes: config.logMaxBytes)
        let id = config.id
        let hooks = GuestRouter.Hooks(
            output: { bytes, stream in log.append(bytes, stream: stream) },
            started: {
                timing.mark("started")
                _ = try? store.update(id) { state in
                    state.status = .running
                    state.started = Date()
                    state.restarting = nil
                }
            },
            exited: { timing.mark("exited") },
            oomKilled: { _ = try? store.update(id) { $0.oomKilled = true } })
        router = GuestRouter(containerID: config.id, inProcess: attached.map { GuestRouter.Client(channel: $0) },
                             keepInitStdinOpen: keepStdinOpen, awaitsAttach: awaitsAttach, answerSeconds: answerSeconds, hooks: hooks,
                             endsWithInProcessClient: endsWithClient)
        self.log = log
    }

    /// Runs the container to its end and records how it ended; returns its exit code.
    @discardableResult
    public func run() -> Int32 {
        let teardown = SupervisorTeardown(config: config, runtime: runtime, router: router, timing: timing)
        let provider: any VMProvider
        let directory: VMDirectory
        do throws(HVCError) {
            if let given = self.provider {
                provider = given
            } else {
                provider = try Supervisor.provider(for: config, runtime: runtime)
            }
            directory = try provider.directory(for: config.id, in: runtime.paths.vms)
        } catch {
            return teardown.finish(GuestRouter.Outcome(code: error.exitCode, error: error.message), network: nil, directory: nil)
        }
        var network: ContainerNetworkSide?
        var health: HealthMonitor?
        let outcome: GuestRouter.Outcome
        do throws(HVCError) {
            if router.awaitsAttach {
                try router.listen(at: directory.controlSocket)
                router.awaitAttach(seconds: 60)
            }
            let side = try ContainerNetworkSide(config: config, runtime: runtime)
            network = side
            let boot = SupervisorBoot(config: config, runtime: runtime, provider: provider, router: router, network: side,
                                      timing: timing, terminalSize: terminalSize, gate: gate)
            let channel = try boot.boot(directory)
            // The attached client's stdin and signals wait in its socket until the command exists.
            router.serveInProcessClient()
            try router.listen(at: directory.controlSocket)
            health = HealthMonitor(config: config, store: runtime.containers, controlSocket: directory.controlSocket)
            health?.start()
            var pacer = CPUPacer(share: Supervisor.relayCPUShare)
            outcome = relay(channel, directory: directory, pacer: &pacer)
        } catch {
            outcome = GuestRouter.Outcome(code: error.exitCode, error: error.message)
        }
        health?.stop()
        return teardown.finish(outcome, network: network, directory: directory)
    }

    /// The relay, with the log flushed after it.
    private func relay(_ channel: FrameChannel, directory: VMDirectory, pacer: inout CPUPacer) -> GuestRouter.Outcome {
        defer { log.flush() }
        return router.relayUntilExit(channel, pacer: &pacer) { (directory.guestEnding(), directory.diagnostics()) }
    }

    /// A clone of the image's template, or a cold boot where the container asks for one.
    static func provider(for config: ContainerConfig, runtime: Runtime) throws(HVCError) -> any VMProvider {
        let request = try VMRequest(config, runtime: runtime)
        return config.startsFromTemplate ? TemplateClone(request: request, runtime: runtime) : ColdBoot(request: request, runtime: runtime)
    }
}
