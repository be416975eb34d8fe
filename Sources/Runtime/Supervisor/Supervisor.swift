import AgentProtocol
import CLinux
import Foundation
import HVCSystem
import Jail
import Synchronization
import VMM

/// Owns one container's VM for the container's whole life: boots it, starts the command,
/// keeps the log, serves the control socket (exec, signals, stop), records the exit, and
/// tears everything down. Runs inside `hvc run` for attached containers and inside
/// `hvc-shim` for detached ones.
///
/// QEMU dies with the thread that called `run` (parent-death signal), so `run` must be
/// called on a thread that lives until it returns.
public final class Supervisor: @unchecked Sendable {
    // @unchecked: mutable routing state lives in `routes` (a Mutex); the rest is set before
    // any other thread starts, or touched by the agent-reader thread only.
    public static let initProcess: UInt32 = 1
    /// The status of a command ended by SIGKILL (its VM stopped or lost), as a shell reports it.
    static let killedStatus: Int32 = 128 + SIGKILL

    let config: ContainerConfig
    let runtime: Runtime
    let store: ContainerStore
    let timing: RunTiming
    /// The client owning process 1's stdio: `hvc run`'s own (in-process), or one that attached
    /// through the control socket before the command started (`awaitsAttach`).
    private var initClient: Client?
    private let inProcessClient: Client?
    private var keepInitStdinOpen: Bool
    /// Wait (a while) for a client to attach before starting the command.
    private let awaitsAttach: Bool
    private let attachArrived = DispatchSemaphore(value: 0)
    private var listening = false
    private let terminalSize: (rows: UInt16, columns: UInt16)
    private let routes = Mutex(Routes())
    private var channel: FrameChannel?
    private var vm: QEMUMachine?
    private var confinement: VMConfinement?
    private var launched: LaunchedVM?
    private let prebooted: PrebootedVM?

    /// A pooled VM handed to this supervisor: up, connected, its `ready` received.
    struct PrebootedVM {
        let launched: LaunchedVM
        let directory: VMDirectory
    }
    private let forcedStop = Mutex(false)

    /// A connection on the control socket (or the attached `hvc run` through a socket pair).
    final class Client: Sendable {
        let channel: FrameChannel
        init(channel: FrameChannel) { self.channel = channel }
    }

    /// Which client owns which guest process, under the client's own numbering.
    struct Routes {
        var byAgentID: [UInt32: (client: Client, local: UInt32)] = [:]
        var nextAgentID: UInt32 = 2
        var running = false
        var ended = false
        var clients: [ObjectIdentifier: Client] = [:]
        /// Clients that attached after the command started: they get its output and exit.
        var observers: [ObjectIdentifier: Client] = [:]
        var attachTaken = false

        mutating func agentID(client: Client, local: UInt32) -> UInt32? {
            byAgentID.first { $0.value.client === client && $0.value.local == local }?.key
        }
    }

    /// - Parameters:
    ///   - attached: the in-process client of `hvc run` without `-d`, owning the init process's stdio.
    ///   - awaitsAttach: hold the command until a control-socket client sends `attach` (at most
    ///     a minute), so that it sees all of the command's output (attached runs through hvcd).
    public convenience init(config: ContainerConfig, runtime: Runtime, attached: FrameChannel? = nil,
                            keepStdinOpen: Bool = false, terminalSize: (UInt16, UInt16) = (24, 80), timing: Bool = false,
                            awaitsAttach: Bool = false) {
        self.init(config: config, runtime: runtime, attached: attached, keepStdinOpen: keepStdinOpen,
                  terminalSize: terminalSize, timing: timing, prebooted: nil, awaitsAttach: awaitsAttach)
    }

    init(config: ContainerConfig, runtime: Runtime, attached: FrameChannel?, keepStdinOpen: Bool,
         terminalSize: (UInt16, UInt16), timing: Bool, prebooted: PrebootedVM?, awaitsAttach: Bool = false) {
        self.prebooted = prebooted
        self.config = config
        self.runtime = runtime
        self.store = runtime.containers
        self.inProcessClient = attached.map { Client(channel: $0) }
        self.initClient = inProcessClient
        self.awaitsAttach = awaitsAttach && inProcessClient == nil
        self.keepInitStdinOpen = keepStdinOpen
        self.terminalSize = terminalSize
        self.timing = RunTiming(enabled: timing)
        if let initClient {
            routes.withLock {
                $0.byAgentID[Supervisor.initProcess] = (initClient, Supervisor.initProcess)
                $0.clients[ObjectIdentifier(initClient)] = initClient
            }
        }
    }

    /// Runs the container to its end and records how it ended; returns its exit code.
    @discardableResult
    public func run() -> Int32 {
        let outcome: (code: Int32, error: String?)
        var directory: VMDirectory
        if let prebooted {
            directory = prebooted.directory
        } else {
            do {
                directory = try VMDirectory.create(in: runtime.paths.vms, id: config.id)
            } catch {
                return finish(code: error.exitCode, error: error.message, directory: nil)
            }
        }
        do {
            if awaitsAttach {
                try listen(directory)
                _ = attachArrived.wait(timeout: .now() + 60)
            }
            outcome = try boot(&directory)
        } catch {
            outcome = (error.exitCode, error.message)
        }
        return finish(code: outcome.code, error: outcome.error, directory: directory)
    }

    private func boot(_ directory: inout VMDirectory) throws(HVCError) -> (code: Int32, error: String?) {
        let channel: FrameChannel
        if let prebooted {
            // A pooled VM, up and `ready` already: it becomes this container's.
            directory = try prebooted.directory.move(in: runtime.paths.vms, id: config.id)
            prebooted.launched.vm.jailMoved(to: directory.jailRoot)
            try adopt(prebooted.launched)
            guard let ready = prebooted.launched.channel else { throw HVCError("pooled VM has no agent channel") }
            channel = ready
            self.channel = channel
            try sendSession(channel, directory: directory)
        } else {
            let shape = VMLaunch.Shape(
                owner: config.id, tenant: config.tenant, imageReference: config.image, imageID: config.imageID,
                memoryMiB: config.memoryMiB, cpus: config.cpus, pidsLimit: config.pidsLimit,
                accelerator: config.accelerator, fromTemplate: config.startsFromTemplate)
            try VMLaunch.launch(shape, directory: directory, runtime: runtime, timing: timing) { (launched: LaunchedVM) throws(HVCError) in
                try adopt(launched)
            }
            guard let launched else { throw HVCError("the VM was not launched") }
            channel = try VMLaunch.connect(launched, directory: directory)
            self.channel = channel
            timing.mark("connected")
            try handshake(channel, directory: directory, pipelined: launched.template != nil)
        }
        // The attached client's stdin and signals wait in its socket until the command exists.
        if let inProcessClient { serve(inProcessClient) }
        try listen(directory)
        return relayUntilExit(channel, directory: directory)
    }

    /// Takes charge of a VM: from here on, `finish` ends it and releases its confinement. The
    /// container's state names this supervisor, the VMM and the template it was cloned from.
    private func adopt(_ launched: LaunchedVM) throws(HVCError) {
        self.launched = launched
        self.vm = launched.vm
        self.confinement = launched.confinement
        try store.update(config.id) {
            $0.supervisorPID = getpid()
            $0.vmmPID = launched.vm.pid
            $0.template = launched.template?.key
        }
    }

    /// `ready` from the guest, then the session parameters and the container's command.
    /// A clone is already running when its host connects, so its parameters go out at once
    /// (the clock it is given is still current) and wait in the channel behind its `ready`.
    private func handshake(_ channel: FrameChannel, directory: VMDirectory, pipelined: Bool) throws(HVCError) {
        if pipelined { try sendSession(channel, directory: directory) }
        // Under TCG on a loaded two-core host a boot can take several seconds; a guest that
        // has not answered in two minutes is not coming.
        channel.setReceiveTimeout(seconds: 120)
        let frame: Frame
        do {
            frame = try channel.receive()
        } catch {
            throw HVCError("the VM did not come up: \(error)\(directory.diagnostics())")
        }
        guard case .ready(let ready) = frame.message else {
            throw HVCError("guest agent did not start with `ready`\(directory.diagnostics())")
        }
        guard ready.version == Limits.version else {
            throw HVCError("\(ProtocolError.versionMismatch(host: Limits.version, guest: ready.version)): rebuild the agent with `make assets`")
        }
        channel.setReceiveTimeout(seconds: 0)
        timing.mark("ready")
        timing.guestAgentStart = ready.agentStartNanoseconds
        timing.guestReady = ready.readyNanoseconds
        if !pipelined { try sendSession(channel, directory: directory) }
    }

    private func sendSession(_ channel: FrameChannel, directory: VMDirectory) throws(HVCError) {
        let now = UInt64(Date().timeIntervalSince1970 * 1e9)
        let spec = config.process.spec(rows: terminalSize.rows, columns: terminalSize.columns)
        do {
            try channel.send(Frame(.hello(Hello(entropy: randomBytes(256), unixTimeNanoseconds: now, hostname: config.hostname))))
            try channel.send(Frame(process: Supervisor.initProcess, .start(spec)))
            if !keepInitStdinOpen { try channel.send(Frame(process: Supervisor.initProcess, .closeStdin)) }
        } catch {
            throw HVCError("guest agent: \(error)\(directory.diagnostics())")
        }
    }

    /// Routes the agent's frames until the container's command has exited.
    private func relayUntilExit(_ channel: FrameChannel, directory: VMDirectory) -> (code: Int32, error: String?) {
        let log = ContainerLogWriter(path: store.logPath(config.id), maxBytes: config.logMaxBytes)
        defer { log.flush() }
        while true {
            let frame: Frame
            do {
                frame = try channel.receive()
            } catch {
                if forcedStop.withLock({ $0 }) { return (Supervisor.killedStatus, nil) }
                return (Supervisor.killedStatus, "the VM ended unexpectedly: \(error)\(directory.diagnostics())")
            }
            let isInit = frame.process == Supervisor.initProcess
            switch frame.message {
            case .started:
                if isInit {
                    timing.mark("started")
                    markRunning()
                }
            case .stdout(let bytes) where isInit:
                log.append(bytes, stream: "stdout")
            case .stderr(let bytes) where isInit:
                log.append(bytes, stream: "stderr")
            case .oomKilled where isInit:
                _ = try? store.update(config.id) { $0.oomKilled = true }
            case .failure(let message):
                return (HVCError.Kind.runtime.exitCode, "guest agent failed: \(message.sanitizedGuestText)")
            case .ready, .hello, .start, .stdin, .closeStdin, .signal, .resize, .shutdown, .warmUp, .warmedUp:
                return (HVCError.Kind.runtime.exitCode, "guest agent sent an unexpected message")
            default:
                break
            }
            forward(frame)
            switch frame.message {
            case .exited(let status) where isInit:
                timing.mark("exited")
                return (status.code, nil)
            case .startFailed(let reason, let message) where isInit:
                let kind: HVCError.Kind = switch reason {
                case .notFound: .commandNotFound
                case .notExecutable: .cannotExecute
                case .other: .runtime
                }
                let code = kind.exitCode
                return (code, message.sanitizedGuestText)
            default:
                break
            }
        }
    }

    /// Passes a guest frame to the client that owns the process, renumbered for it.
    private func forward(_ frame: Frame) {
        let ends: Bool
        switch frame.message {
        case .exited, .startFailed: ends = true
        default: ends = false
        }
        let (route, observers) = routes.withLock { routes in
            let route = routes.byAgentID[frame.process]
            if ends { routes.byAgentID[frame.process] = nil }
            return (route, frame.process == Supervisor.initProcess ? Array(routes.observers.values) : [])
        }
        for observer in observers where (try? observer.channel.send(frame)) == nil { drop(observer) }
        guard let route else { return }
        do {
            try route.client.channel.send(Frame(process: route.local, frame.message))
        } catch {
            drop(route.client)
        }
    }

    private func markRunning() {
        routes.withLock { $0.running = true }
        _ = try? store.update(config.id) { state in
            state.status = .running
            state.started = Date()
        }
    }

    // MARK: Control socket

    private func listen(_ directory: VMDirectory) throws(HVCError) {
        guard !listening else { return }
        listening = true
        let fd = hvc_unix_listen(directory.controlSocket, 64)
        guard fd >= 0 else { throw HVCError("control socket \(directory.controlSocket): \(Errno.current)") }
        let listener = FileDescriptor(fd)
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(listener.raw, nil, nil)
                if client < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return
                }
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                serve(Client(channel: FrameChannel(socket: FileDescriptor(client))))
            }
        }
    }

    /// Reads one client's requests on a thread of its own.
    private func serve(_ client: Client) {
        routes.withLock { $0.clients[ObjectIdentifier(client)] = client }
        Thread.detachNewThread { [self] in
            while let frame = try? client.channel.receive() {
                handle(frame, from: client)
            }
            drop(client)
        }
    }

    private func handle(_ frame: Frame, from client: Client) {
        if frame.process == 0, case .attach(let stdin) = frame.message {
            attach(client, stdin: stdin)
            return
        }
        guard let channel else { return }
        if frame.process == 0 {
            switch frame.message {
            case .signal(let signal):
                try? channel.send(Frame(process: Supervisor.initProcess, .signal(signal)))
            case .shutdown:
                forcedStop.withLock { $0 = true }
                vm?.kill()
            default:
                break
            }
            return
        }
        if case .start(let spec) = frame.message {
            let agentID: UInt32? = routes.withLock { routes in
                guard routes.running, !routes.ended, routes.agentID(client: client, local: frame.process) == nil else { return nil }
                let id = routes.nextAgentID
                routes.nextAgentID += 1
                routes.byAgentID[id] = (client, frame.process)
                return id
            }
            guard let agentID else {
                try? client.channel.send(Frame(process: frame.process, .startFailed(.other, "container \(ContainerID.shortForm(config.id)) is not running")))
                return
            }
            try? channel.send(Frame(process: agentID, .start(spec)))
            return
        }
        guard let agentID = routes.withLock({ $0.agentID(client: client, local: frame.process) }) else { return }
        switch frame.message {
        case .stdin, .closeStdin, .signal, .resize:
            try? channel.send(Frame(process: agentID, frame.message))
        default:
            break
        }
    }

    /// A client takes process 1's stdio if it is the first to attach before the command
    /// starts; otherwise it observes the command's output and exit.
    private func attach(_ client: Client, stdin: Bool) {
        let owner = routes.withLock { routes -> Bool in
            if awaitsAttach && !routes.attachTaken && !routes.running && !routes.ended {
                routes.attachTaken = true
                routes.byAgentID[Supervisor.initProcess] = (client, Supervisor.initProcess)
                return true
            }
            routes.observers[ObjectIdentifier(client)] = client
            return false
        }
        if owner {
            initClient = client
            keepInitStdinOpen = stdin
            attachArrived.signal()
            // Its stdin waits in its socket until the command exists (as `hvc run`'s does).
            while !routes.withLock({ $0.running || $0.ended }) { usleep(10_000) }
        }
    }

    private func drop(_ client: Client) {
        routes.withLock { routes in
            routes.observers[ObjectIdentifier(client)] = nil
            routes.clients[ObjectIdentifier(client)] = nil
            routes.byAgentID = routes.byAgentID.filter { $0.value.client !== client }
        }
    }

    // MARK: End

    /// Tears the VM down, records the exit, and lets the clients go.
    private func finish(code: Int32, error: String?, directory: VMDirectory?) -> Int32 {
        if let vm {
            // The container's end is known and nothing of the VM outlives it (its disk is
            // read-only, its writable layer in guest memory): no guest shutdown to wait for.
            vm.kill()
            _ = vm.waitForExit(timeoutSeconds: 5)
        }
        timing.mark("vm-gone")
        confinement?.release()
        channel?.shutdown()
        let clients = routes.withLock { routes in
            routes.ended = true
            return Array(routes.clients.values)
        }
        if let directory {
            if ProcessInfo.processInfo.environment["HVC_DEBUG"] == "1",
               let console = FileManager.default.contents(atPath: directory.consoleLog) {
                FileHandle.standardError.write(Data("--- guest console ---\n".utf8) + console)
            }
            directory.remove()
        }
        _ = try? store.update(config.id) { state in
            state.status = .exited
            state.finished = Date()
            state.exitCode = code
            state.error = error
        }
        if config.autoRemove { store.remove(config.id) }
        // Attached clients learn of a failure before the command started from its message.
        if let initClient, let error, code == HVCError.Kind.runtime.exitCode || code == Supervisor.killedStatus {
            try? initClient.channel.send(Frame(.failure(error)))
        }
        for client in clients { client.channel.shutdown() }
        timing.report()
        return code
    }
}
