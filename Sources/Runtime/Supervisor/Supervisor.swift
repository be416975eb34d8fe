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
public final class Supervisor: Sendable {
    public static let initProcess: UInt32 = 1
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
    let store: ContainerStore
    let timing: RunTiming
    /// `hvc run`'s own client (in-process), owning process 1's stdio from the start.
    private let inProcessClient: Client?
    /// Wait (a while) for a client to attach before starting the command.
    private let awaitsAttach: Bool
    private let attachArrived = DispatchSemaphore(value: 0)
    private let terminalSize: (rows: UInt16, columns: UInt16)
    private let prebooted: PrebootedVM?
    /// Called once the VM is up, before its command is sent: an OCI `create` holds the command
    /// here until `start`. Returns false when the command is not to run.
    private let gate: (@Sendable () -> Bool)?
    /// All that the supervising thread and the clients' threads share, under one lock.
    private let life: Mutex<Life>
    /// The container's place on its network, made while its VM starts.
    private let network = Mutex(NetworkSide())

    struct NetworkSide {
        var ports: PortReservation?
        var attachment: NetworkAttachment?
        /// Set while the attachment is being made in the background.
        var pending: DispatchSemaphore?
        var failure: HVCError?
    }

    /// A pooled VM handed to this supervisor: up, connected, its `ready` received.
    struct PrebootedVM: Sendable {
        let launched: LaunchedVM
        let directory: VMDirectory
    }

    /// A connection on the control socket (or the attached `hvc run` through a socket pair).
    final class Client: Sendable {
        let channel: FrameChannel
        init(channel: FrameChannel) { self.channel = channel }
    }

    /// Where the container's life is. Only forward: booting → launched → connected → running →
    /// ended; any of them may go straight to ended.
    enum Phase {
        /// No VM yet.
        case booting
        /// A VM is this container's: the end kills it and releases its confinement.
        case launched(LaunchedVM)
        /// The agent channel is open: control frames go to the guest.
        case connected(LaunchedVM, FrameChannel)
        /// The container's command runs: clients may start processes.
        case running(LaunchedVM, FrameChannel)
        /// Torn down: nothing goes to the guest any more.
        case ended

        var vm: LaunchedVM? {
            switch self {
            case .launched(let vm), .connected(let vm, _), .running(let vm, _): vm
            case .booting, .ended: nil
            }
        }

        var channel: FrameChannel? {
            switch self {
            case .connected(_, let channel), .running(_, let channel): channel
            case .booting, .launched, .ended: nil
            }
        }

        var isRunning: Bool { if case .running = self { true } else { false } }
        var hasEnded: Bool { if case .ended = self { true } else { false } }
        /// The command has started or never will.
        var isPastStart: Bool { isRunning || hasEnded }
    }

    struct Life {
        var phase = Phase.booting
        /// The client owning process 1's stdio, and whether that stdin stays open.
        var initClient: Client?
        var keepInitStdinOpen: Bool
        /// A client asked for the VM to go (`shutdown`): its end is not a failure.
        var forcedStop = false
        /// The guest left the command's `start` unanswered past `agentAnswerSeconds`: its VM was killed.
        var startUnanswered = false
        var listening = false
        /// Which client owns which guest process, under the client's own numbering.
        var byAgentID: [UInt32: (client: Client, local: UInt32)] = [:]
        var nextAgentID: UInt32 = 2
        /// Processes clients started (`exec`) that the guest has not yet answered for.
        var unansweredStarts: Set<UInt32> = []
        var clients: [ObjectIdentifier: Client] = [:]
        /// Clients that attached after the command started: they get its output and exit.
        var observers: [ObjectIdentifier: Client] = [:]
        var attachTaken = false

        func agentID(client: Client, local: UInt32) -> UInt32? {
            byAgentID.first { $0.value.client === client && $0.value.local == local }?.key
        }
    }

    /// - Parameters:
    ///   - attached: the in-process client of `hvc run` without `-d`, owning the init process's stdio.
    ///   - awaitsAttach: hold the command until a control-socket client sends `attach` (at most
    ///     a minute), so that it sees all of the command's output (attached runs through hvcd).
    public convenience init(config: ContainerConfig, runtime: Runtime, attached: FrameChannel? = nil,
                            keepStdinOpen: Bool = false, terminalSize: (UInt16, UInt16) = (24, 80), timing: Bool = false,
                            awaitsAttach: Bool = false, gate: (@Sendable () -> Bool)? = nil) {
        self.init(config: config, runtime: runtime, attached: attached, keepStdinOpen: keepStdinOpen,
                  terminalSize: terminalSize, timing: timing, prebooted: nil, awaitsAttach: awaitsAttach, gate: gate)
    }

    init(config: ContainerConfig, runtime: Runtime, attached: FrameChannel?, keepStdinOpen: Bool,
         terminalSize: (UInt16, UInt16), timing: Bool, prebooted: PrebootedVM?, awaitsAttach: Bool = false,
         gate: (@Sendable () -> Bool)? = nil) {
        self.prebooted = prebooted
        self.gate = gate
        self.config = config
        self.runtime = runtime
        self.store = runtime.containers
        let inProcessClient = attached.map { Client(channel: $0) }
        self.inProcessClient = inProcessClient
        self.awaitsAttach = awaitsAttach && inProcessClient == nil
        self.terminalSize = terminalSize
        self.timing = RunTiming(enabled: timing)
        var life = Life(initClient: inProcessClient, keepInitStdinOpen: keepStdinOpen)
        if let inProcessClient {
            life.byAgentID[Supervisor.initProcess] = (inProcessClient, Supervisor.initProcess)
            life.clients[ObjectIdentifier(inProcessClient)] = inProcessClient
        }
        self.life = Mutex(life)
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
            connected(prebooted.launched, channel)
            try prepareNetwork()
            try attachNetwork(prebooted.launched, directory: directory, inBackground: false)
            try sendSession(channel, directory: directory)
        } else {
            try prepareNetwork()
            let request = VMLaunch.Request(
                owner: config.id, tenant: config.tenant, imageReference: config.image, imageID: config.imageID,
                memoryMiB: config.memoryMiB, cpus: config.cpus, pidsLimit: config.pidsLimit,
                accelerator: config.accelerator, networkInterface: config.network != nil || config.joinedInterface != nil,
                fromTemplate: config.startsFromTemplate, servesFolders: config.sharesFolders,
                joinedInterface: config.joinedInterface, nested: config.nested ?? false)
            try VMLaunch.launch(request, directory: directory, runtime: runtime, timing: timing) { (launched: LaunchedVM) throws(HVCError) in
                try adopt(launched)
                // CNI's work overlaps the clone's restore or the cold boot.
                try attachNetwork(launched, directory: directory, inBackground: true)
            }
            guard let launched = life.withLock({ $0.phase.vm }) else { throw HVCError("the VM was not launched") }
            channel = try VMLaunch.connect(launched, directory: directory)
            connected(launched, channel)
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
        life.withLock { $0.phase = .launched(launched) }
        try store.update(config.id) {
            let supervisor = ProcessStamp.current
            $0.supervisorPID = supervisor.pid
            $0.supervisorStart = supervisor.start
            $0.vmmPID = launched.vm.pid
            $0.template = launched.template?.key
        }
    }

    private func connected(_ launched: LaunchedVM, _ channel: FrameChannel) {
        life.withLock { $0.phase = .connected(launched, channel) }
    }

    /// `ready` from the guest, then the session parameters and the container's command.
    /// A clone is already running when its host connects, so its parameters go out at once
    /// (the clock it is given is still current) and wait in the channel behind its `ready`.
    private func handshake(_ channel: FrameChannel, directory: VMDirectory, pipelined: Bool) throws(HVCError) {
        if pipelined { try sendSession(channel, directory: directory) }
        channel.setReceiveTimeout(seconds: Supervisor.agentAnswerSeconds)
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

    // MARK: Mounts

    /// Shares the container's folders into its VM (before the guest learns of them).
    private func shareFolders(_ directory: VMDirectory) throws(HVCError) -> [GuestMount] {
        guard config.rootDirectory != nil || !(config.mounts ?? []).isEmpty else { return [] }
        guard let vm = life.withLock({ $0.phase.vm }) else { throw HVCError("the VM is gone") }
        let shared = try SharedFolders.share(config.mounts ?? [], root: config.rootDirectory, tenant: config.tenant, runtime: runtime,
                                             vmmPID: vm.vm.pid, directory: directory)
        timing.mark("mounts")
        return shared
    }

    // MARK: Network

    /// Holds the host ports to publish, before anything else is made: a port taken elsewhere
    /// fails the start at once.
    private func prepareNetwork() throws(HVCError) {
        guard config.network != nil else { return }
        let ports = try PortReservation.reserve(config.ports ?? [])
        network.withLock { $0.ports = ports }
    }

    /// Joins the VM to the container's network (CNI in the VM's namespace, then the TAP
    /// redirect); in the background when `inBackground`, joined by `networkReady`.
    private func attachNetwork(_ launched: LaunchedVM, directory: VMDirectory, inBackground: Bool) throws(HVCError) {
        guard let name = config.network else { return }
        guard let netns = launched.confinement.networkNamespace else { throw HVCError("the VM has no network namespace") }
        let ports = network.withLock { $0.ports?.ports ?? [] }
        let work: @Sendable () -> Void = { [self] in
            let outcome: Result<NetworkAttachment, HVCError>
            do throws(HVCError) {
                let record = try runtime.networks.resolve(name, tenant: config.tenant)
                let store = runtime.containers
                let names = NetworkMembers(runtime: runtime, network: record)
                // A lease is live when its container is a member, or (not yet one) has not exited.
                runtime.networks.releaseStaleLeases(record) { id in
                    id == config.id || FileManager.default.fileExists(atPath: names.memberFile(id))
                        || (try? store.load(id)).map { $0.state.status != .exited } ?? false
                }
                var attachment = try NetworkAttachment.attach(
                    record, containerID: config.id, netns: netns, ipamDirectory: runtime.networks.ipamDirectory, ports: ports)
                attachment.memberFile = names.memberFile(config.id)
                try writeAtomically(directory.networkAttachment, try JSONEncoder.hvc.encode(attachment))
                try names.join(config.id, line: "\(attachment.endpoint.address)\t\(config.name) \(ContainerID.shortForm(config.id))")
                NameServer.ensureRunning(runtime)
                outcome = .success(attachment)
            } catch {
                outcome = .failure(error)
            }
            network.withLock { side in
                switch outcome {
                case .success(let attachment): side.attachment = attachment
                case .failure(let error): side.failure = error
                }
                side.pending?.signal()
            }
        }
        if inBackground {
            network.withLock { $0.pending = DispatchSemaphore(value: 0) }
            Thread.detachNewThread(work)
        } else {
            work()
        }
    }

    /// Waits for the network attachment and records the container's address. Returns what the
    /// guest needs to know.
    private func networkReady() throws(HVCError) -> (GuestInterface, nameservers: [String])? {
        if let joined = config.joinedInterface {
            // The caller's own configuration: its resolv.conf is among the bundle's mounts.
            try joined.join()
            let nic = joined.guestInterface
            return (GuestInterface(mac: nic.mac, address: nic.address, prefix: nic.prefix, gateway: nic.gateway, mtu: nic.mtu), [])
        }
        guard let name = config.network else { return nil }
        awaitAttachment()
        let (attachment, failure) = network.withLock { ($0.attachment, $0.failure) }
        if let failure { throw failure }
        guard let attachment, let mac = MACAddress(attachment.endpoint.mac) else { throw HVCError("network \(name): no address") }
        timing.mark("network")
        try store.update(config.id) { $0.endpoint = attachment.endpoint }
        let endpoint = attachment.endpoint
        let interface = GuestInterface(mac: mac.bytes, address: endpoint.address.value, prefix: UInt8(endpoint.prefix),
                                       gateway: endpoint.gateway.value, mtu: UInt16(attachment.network.mtu))
        // The network's name server first; the host's after it answer what it refuses (the
        // resolver uses three at most).
        let upstream = attachment.network.isInternal ? [] : HostResolvers.nameservers()
        return (interface, Array(([endpoint.gateway.description] + upstream).prefix(3)))
    }

    /// Undoes the attachment and lets the ports go; the VMM is gone, its namespace not yet.
    /// Returns whether there was an attachment.
    @discardableResult
    private func detachNetwork(directory: VMDirectory?) -> Bool {
        awaitAttachment()
        let side = network.withLock { side in
            defer { side = NetworkSide() }
            return side
        }
        if let attachment = side.attachment {
            attachment.detach(namespaceGoes: true)
            if let directory { unlink(directory.networkAttachment) }
        }
        side.ports?.release()
        return side.attachment != nil
    }

    /// Waits for a background attachment to finish, if one is under way (supervising thread only).
    private func awaitAttachment() {
        guard let pending = network.withLock({ $0.pending }) else { return }
        pending.wait()
        network.withLock { $0.pending = nil }
    }

    private func sendSession(_ channel: FrameChannel, directory: VMDirectory) throws(HVCError) {
        if let gate, !gate() { throw HVCError(.conflict, "the container was deleted before it started") }
        let mounts = try shareFolders(directory)
        let networkSetup = try networkReady()
        let now = UInt64(Date().timeIntervalSince1970 * 1e9)
        let spec = config.process.spec(rows: terminalSize.rows, columns: terminalSize.columns)
        var hello = Hello(
            entropy: randomBytes(256), unixTimeNanoseconds: now, hostname: config.hostname,
            interface: networkSetup?.0, nameservers: networkSetup?.nameservers ?? [],
            mounts: mounts, readOnlyRoot: config.readOnlyRoot ?? false, rootShare: config.rootDirectory.map { _ in SharedFolders.rootEntry })
        hello.pidsLimit = config.guestPidsLimit.map { UInt32(clamping: $0) } ?? 0
        hello.nested = config.nested ?? false
        hello.writableBytes = config.writableBytes.map { UInt64(clamping: $0) } ?? 0
        do {
            try channel.send(Frame(.hello(hello)))
            try channel.send(Frame(process: Supervisor.initProcess, .start(spec)))
            if !life.withLock({ $0.keepInitStdinOpen }) { try channel.send(Frame(process: Supervisor.initProcess, .closeStdin)) }
        } catch {
            throw HVCError("guest agent: \(error)\(directory.diagnostics())")
        }
    }

    /// Routes the agent's frames until the container's command has exited. A guest that breaks
    /// the protocol ends its container here, with the reason; the VM is killed by `finish`.
    private func relayUntilExit(_ channel: FrameChannel, directory: VMDirectory) -> (code: Int32, error: String?) {
        let log = ContainerLogWriter(path: store.logPath(config.id), maxBytes: config.logMaxBytes)
        defer { log.flush() }
        let brokeProtocol = "the guest agent broke the protocol: "
        var pacer = CPUPacer(share: Supervisor.relayCPUShare)
        armStartDeadline()
        while true {
            pacer.pace()
            let frame: Frame
            do {
                frame = try channel.receive()
            } catch {
                let (forcedStop, startUnanswered) = life.withLock { ($0.forcedStop, $0.startUnanswered) }
                if forcedStop { return (Supervisor.killedStatus, nil) }
                if startUnanswered {
                    return (HVCError.Kind.runtime.exitCode,
                            "the guest agent did not answer `start` within \(Supervisor.agentAnswerSeconds) s")
                }
                if case .malformed(let problem) = error { return (HVCError.Kind.runtime.exitCode, brokeProtocol + "\(problem)") }
                if let ending = directory.guestEnding() { return (HVCError.Kind.runtime.exitCode, ending) }
                return (Supervisor.killedStatus, "the VM ended unexpectedly: \(error)\(directory.diagnostics())")
            }
            if let violation = frame.guestViolation(started: life.withLock({ Supervisor.initProcess..<$0.nextAgentID })) {
                return (HVCError.Kind.runtime.exitCode, brokeProtocol + violation)
            }
            let isInit = frame.process == Supervisor.initProcess
            switch frame.message {
            case .started:
                if isInit {
                    timing.mark("started")
                    markRunning()
                }
                life.withLock { _ = $0.unansweredStarts.remove(frame.process) }
            case .startFailed:
                life.withLock { _ = $0.unansweredStarts.remove(frame.process) }
            case .stdout(let bytes) where isInit:
                log.append(bytes, stream: "stdout")
            case .stderr(let bytes) where isInit:
                log.append(bytes, stream: "stderr")
            case .oomKilled where isInit:
                _ = try? store.update(config.id) { $0.oomKilled = true }
            case .failure(let message):
                return (HVCError.Kind.runtime.exitCode, "guest agent failed: \(message.sanitizedGuestText)")
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

    /// Bounds the wait for the answer to the command's `start`: a guest that stays silent, or
    /// stops in the middle of a frame, would otherwise hold the container starting for ever.
    /// Past `agentAnswerSeconds` without `started` the VM is killed, which ends the receive.
    private func armStartDeadline() {
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(Supervisor.agentAnswerSeconds)) { [self] in
            let unanswered = life.withLock { life -> LaunchedVM? in
                guard case .connected(let vm, _) = life.phase else { return nil }
                life.startUnanswered = true
                return vm
            }
            unanswered?.vm.kill()
        }
    }

    /// Passes a guest frame to the client that owns the process, renumbered for it.
    private func forward(_ frame: Frame) {
        let ends: Bool
        switch frame.message {
        case .exited, .startFailed: ends = true
        default: ends = false
        }
        let (route, observers) = life.withLock { life in
            let route = life.byAgentID[frame.process]
            if ends { life.byAgentID[frame.process] = nil }
            return (route, frame.process == Supervisor.initProcess ? Array(life.observers.values) : [])
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
        life.withLock { life in
            if case .connected(let vm, let channel) = life.phase { life.phase = .running(vm, channel) }
        }
        _ = try? store.update(config.id) { state in
            state.status = .running
            state.started = Date()
        }
    }

    // MARK: Control socket

    private func listen(_ directory: VMDirectory) throws(HVCError) {
        guard !life.withLock({ life in defer { life.listening = true }; return life.listening }) else { return }
        let fd = hvc_unix_listen(directory.controlSocket, 64)
        guard fd >= 0 else { throw HVCError("control socket \(directory.controlSocket): \(Errno.current)") }
        let listener = FileDescriptor(fd)
        Thread.detachNewThread { [self] in
            while let client = try? listener.accept() {
                serve(Client(channel: FrameChannel(socket: client)))
            }
        }
    }

    /// Reads one client's requests on a thread of its own.
    private func serve(_ client: Client) {
        life.withLock { $0.clients[ObjectIdentifier(client)] = client }
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
        guard let channel = life.withLock({ $0.phase.channel }) else { return }
        if frame.process == 0 {
            switch frame.message {
            case .signal(let signal):
                try? channel.send(Frame(process: Supervisor.initProcess, .signal(signal)))
            case .shutdown:
                let vm = life.withLock { life in
                    life.forcedStop = true
                    return life.phase.vm
                }
                vm?.vm.kill()
            default:
                break
            }
            return
        }
        if case .start(let spec) = frame.message {
            let agentID: UInt32? = life.withLock { life in
                guard life.phase.isRunning, life.agentID(client: client, local: frame.process) == nil else { return nil }
                let id = life.nextAgentID
                life.nextAgentID += 1
                life.byAgentID[id] = (client, frame.process)
                life.unansweredStarts.insert(id)
                return id
            }
            guard let agentID else {
                try? client.channel.send(Frame(process: frame.process, .startFailed(.other, "container \(ContainerID.shortForm(config.id)) is not running")))
                return
            }
            try? channel.send(Frame(process: agentID, .start(spec)))
            armExecDeadline(agentID)
            return
        }
        guard let agentID = life.withLock({ $0.agentID(client: client, local: frame.process) }) else { return }
        switch frame.message {
        case .stdin, .closeStdin, .signal, .resize:
            try? channel.send(Frame(process: agentID, frame.message))
        default:
            break
        }
    }

    /// Bounds the wait for the guest's answer to a client's `start`: past `agentAnswerSeconds`
    /// the client is told, and the process, should it start after all, is killed. The container
    /// goes on: a guest too slow for one `exec` may serve the next.
    private func armExecDeadline(_ agentID: UInt32) {
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(Supervisor.agentAnswerSeconds)) { [self] in
            let (route, channel) = life.withLock { life -> ((client: Client, local: UInt32)?, FrameChannel?) in
                guard life.unansweredStarts.remove(agentID) != nil else { return (nil, nil) }
                defer { life.byAgentID[agentID] = nil }
                return (life.byAgentID[agentID], life.phase.channel)
            }
            guard let route else { return }
            try? channel?.send(Frame(process: agentID, .signal(SIGKILL)))
            try? route.client.channel.send(Frame(process: route.local, .startFailed(
                .other, "the guest agent did not answer `start` within \(Supervisor.agentAnswerSeconds) s")))
        }
    }

    /// A client takes process 1's stdio if it is the first to attach before the command
    /// starts; otherwise it observes the command's output and exit.
    private func attach(_ client: Client, stdin: Bool) {
        let owner = life.withLock { life -> Bool in
            if awaitsAttach && !life.attachTaken && !life.phase.isPastStart {
                life.attachTaken = true
                life.byAgentID[Supervisor.initProcess] = (client, Supervisor.initProcess)
                life.initClient = client
                life.keepInitStdinOpen = stdin
                return true
            }
            life.observers[ObjectIdentifier(client)] = client
            return false
        }
        if owner {
            attachArrived.signal()
            // Its stdin waits in its socket until the command exists (as `hvc run`'s does).
            while !life.withLock({ $0.phase.isPastStart }) { usleep(10_000) }
        }
    }

    private func drop(_ client: Client) {
        life.withLock { life in
            life.observers[ObjectIdentifier(client)] = nil
            life.clients[ObjectIdentifier(client)] = nil
            life.byAgentID = life.byAgentID.filter { $0.value.client !== client }
        }
    }

    // MARK: End

    /// Tears the VM down, records the exit, and lets the clients go.
    private func finish(code: Int32, error: String?, directory: VMDirectory?) -> Int32 {
        let (launched, channel) = life.withLock { life in
            defer { life.phase = .ended }
            return (life.phase.vm, life.phase.channel)
        }
        if let launched {
            // The container's end is known and nothing of the VM outlives it (its disk is
            // read-only, its writable layer in guest memory): no guest shutdown to wait for.
            launched.vm.kill()
            _ = launched.vm.waitForExit(timeoutSeconds: 5)
        }
        timing.mark("vm-gone")
        let hadAddress = detachNetwork(directory: directory)
        launched?.confinement.release()
        config.joinedInterface?.leave()
        if hadAddress { timing.mark("network-gone") }
        channel?.shutdown()
        let (clients, initClient) = life.withLock { (Array($0.clients.values), $0.initClient) }
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
            state.endpoint = nil
        }
        if config.autoRemove {
            store.remove(config.id)
            VolumeManager.removeAnonymous(of: config, runtime: runtime)
        }
        // Attached clients learn of a failure before the command started from its message.
        if let initClient, let error, code == HVCError.Kind.runtime.exitCode || code == Supervisor.killedStatus {
            try? initClient.channel.send(Frame(.failure(error)))
        }
        for client in clients { client.channel.shutdown() }
        timing.report()
        return code
    }
}
