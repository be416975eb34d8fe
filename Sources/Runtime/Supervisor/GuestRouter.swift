import AgentProtocol
import CLinux
import Foundation
import HVCSystem
import Synchronization
import VMM

/// Routes one container's frames: the guest agent's to the clients that own its processes (and
/// process 1's output to the log and to observers), the clients' to the guest, renumbered; serves
/// the control socket; bounds how long the guest may leave a `start` unanswered. Holds the
/// container's phase, which boot moves forward and teardown ends.
final class GuestRouter: Sendable {
    static let initProcess: UInt32 = 1

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
        /// The guest left the command's `start` unanswered past the deadline: its VM was killed.
        var startUnanswered = false
        var listening = false
        /// Which client owns which guest process, under the client's own numbering.
        var byAgentID: [UInt32: (client: Client, local: UInt32)] = [:]
        var nextAgentID: UInt32 = 2
        /// Processes clients started (`exec`) that the guest has not yet answered for.
        var unansweredStarts: Set<UInt32> = []
        /// Pod members' first processes, while they run.
        var memberStarts: Set<UInt32> = []
        var clients: [ObjectIdentifier: Client] = [:]
        /// Clients that attached after the command started: they get its output and exit.
        var observers: [ObjectIdentifier: Client] = [:]
        var attachTaken = false

        func agentID(client: Client, local: UInt32) -> UInt32? {
            byAgentID.first { $0.value.client === client && $0.value.local == local }?.key
        }
    }

    /// What the relay tells the rest of the supervisor, on the relay's thread.
    struct Hooks: Sendable {
        /// Process 1 wrote `bytes` to `stream` (`stdout` or `stderr`).
        var output: @Sendable ([UInt8], String) -> Void = { _, _ in }
        /// Process 1 started.
        var started: @Sendable () -> Void = {}
        /// Process 1 exited.
        var exited: @Sendable () -> Void = {}
        /// The guest's OOM killer ended a process of the container.
        var oomKilled: @Sendable () -> Void = {}
    }

    /// How a container's command ended: its exit code, and hvc's error when hvc ended it.
    struct Outcome: Equatable {
        var code: Int32
        var error: String?
    }

    let containerID: String
    let answerSeconds: Int
    let hooks: Hooks
    /// Hold the command until a control-socket client sends `attach` (attached runs through hvcd).
    let awaitsAttach: Bool
    private let attachArrived = DispatchSemaphore(value: 0)
    private let inProcess: Client?
    /// The container ends when the in-process client leaves (it is the container's host process).
    private let endsWithInProcessClient: Bool
    private let life: Mutex<Life>
    /// Signalled when the command has started or never will (for the attaching client).
    private let pastStart = Mutex<[DispatchSemaphore]>([])

    /// - Parameters:
    ///   - inProcess: the in-process client of `hvc run` without `-d`, owning process 1's stdio.
    init(containerID: String, inProcess: Client?, keepInitStdinOpen: Bool, awaitsAttach: Bool, answerSeconds: Int, hooks: Hooks,
         endsWithInProcessClient: Bool = false) {
        self.containerID = containerID
        self.endsWithInProcessClient = endsWithInProcessClient
        self.answerSeconds = answerSeconds
        self.hooks = hooks
        self.awaitsAttach = awaitsAttach && inProcess == nil
        self.inProcess = inProcess
        var life = Life(initClient: inProcess, keepInitStdinOpen: keepInitStdinOpen)
        if let inProcess {
            life.byAgentID[GuestRouter.initProcess] = (inProcess, GuestRouter.initProcess)
            life.clients[ObjectIdentifier(inProcess)] = inProcess
        }
        self.life = Mutex(life)
    }

    // MARK: Phase

    var vm: LaunchedVM? { life.withLock { $0.phase.vm } }
    var keepsInitStdinOpen: Bool { life.withLock { $0.keepInitStdinOpen } }

    /// A VM is the container's from here on: the end kills it.
    func adopt(_ launched: LaunchedVM) {
        life.withLock { $0.phase = .launched(launched) }
    }

    func connected(_ launched: LaunchedVM, _ channel: FrameChannel) {
        life.withLock { $0.phase = .connected(launched, channel) }
    }

    /// Ends the phase; returns the VM and channel there were, and the clients to let go.
    func end() -> (vm: LaunchedVM?, channel: FrameChannel?, clients: [Client], initClient: Client?) {
        let ended = life.withLock { life in
            defer { life.phase = .ended }
            return (life.phase.vm, life.phase.channel, Array(life.clients.values), life.initClient)
        }
        releaseAttacher()
        return ended
    }

    /// Waits (at most `seconds`) for a client to attach, when the command waits for one.
    func awaitAttach(seconds: Int) {
        guard awaitsAttach else { return }
        _ = attachArrived.wait(timeout: .now() + .seconds(seconds))
    }

    // MARK: Relay

    /// Routes the agent's frames until the container's command has exited. A guest that breaks
    /// the protocol ends its container here, with the reason; the VM is killed by teardown.
    /// `ending` says why a VM ended under the relay: the guest's own account (a panic, a reset)
    /// if it left one, and what the VMM's logs say.
    func relayUntilExit(_ channel: FrameChannel, pacer: inout CPUPacer,
                        ending: () -> (guest: String?, diagnostics: String)) -> Outcome {
        let brokeProtocol = "the guest agent broke the protocol: "
        let runtimeCode = HVCError.Kind.runtime.exitCode
        armStartDeadline()
        while true {
            pacer.pace()
            let frame: Frame
            do {
                frame = try channel.receive()
            } catch {
                let (forcedStop, startUnanswered) = life.withLock { ($0.forcedStop, $0.startUnanswered) }
                if forcedStop { return Outcome(code: Supervisor.killedStatus) }
                if startUnanswered {
                    return Outcome(code: runtimeCode, error: "the guest agent did not answer `start` within \(answerSeconds) s")
                }
                if case .malformed(let problem) = error { return Outcome(code: runtimeCode, error: brokeProtocol + "\(problem)") }
                let (guest, diagnostics) = ending()
                if let guest { return Outcome(code: runtimeCode, error: guest) }
                return Outcome(code: Supervisor.killedStatus, error: "the VM ended unexpectedly: \(error)\(diagnostics)")
            }
            if let violation = frame.guestViolation(started: life.withLock({ GuestRouter.initProcess..<$0.nextAgentID })) {
                return Outcome(code: runtimeCode, error: brokeProtocol + violation)
            }
            let isInit = frame.process == GuestRouter.initProcess
            switch frame.message {
            case .started:
                if isInit { markRunning() }
                life.withLock { _ = $0.unansweredStarts.remove(frame.process) }
            case .startFailed:
                life.withLock { _ = $0.unansweredStarts.remove(frame.process) }
            case .stdout(let bytes) where isInit:
                hooks.output(bytes, "stdout")
            case .stderr(let bytes) where isInit:
                hooks.output(bytes, "stderr")
            case .oomKilled where isInit:
                hooks.oomKilled()
            case .failure(let message):
                return Outcome(code: runtimeCode, error: "guest agent failed: \(message.sanitizedGuestText)")
            default:
                break
            }
            forward(frame)
            switch frame.message {
            case .exited(let status) where isInit:
                hooks.exited()
                return Outcome(code: status.code)
            case .startFailed(let reason, let message) where isInit:
                let kind: HVCError.Kind = switch reason {
                case .notFound: .commandNotFound
                case .notExecutable: .cannotExecute
                case .other: .runtime
                }
                return Outcome(code: kind.exitCode, error: message.sanitizedGuestText)
            default:
                break
            }
        }
    }

    /// Bounds the wait for the answer to the command's `start`: a guest that stays silent, or
    /// stops in the middle of a frame, would otherwise hold the container starting for ever.
    /// Past the deadline without `started` the VM is killed, which ends the receive.
    private func armStartDeadline() {
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(answerSeconds)) { [self] in
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
            if ends {
                life.byAgentID[frame.process] = nil
                life.memberStarts.remove(frame.process)
            }
            return (route, frame.process == GuestRouter.initProcess ? Array(life.observers.values) : [])
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
        releaseAttacher()
        hooks.started()
    }

    // MARK: Clients

    /// Serves the control socket at `path` (once; later calls do nothing).
    func listen(at path: String) throws(HVCError) {
        guard !life.withLock({ life in defer { life.listening = true }; return life.listening }) else { return }
        let fd = hvc_unix_listen(path, 64)
        guard fd >= 0 else { throw HVCError("control socket \(path): \(Errno.current)") }
        let listener = FileDescriptor(fd)
        Thread.detachNewThread { [self] in
            while let client = try? listener.accept() {
                serve(Client(channel: FrameChannel(socket: client)))
            }
        }
    }

    /// Reads the in-process client's requests (its stdin and signals wait in its socket until
    /// the command exists).
    func serveInProcessClient() {
        if let inProcess { serve(inProcess) }
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
                try? channel.send(Frame(process: GuestRouter.initProcess, .signal(signal)))
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
                if spec.member != nil { life.memberStarts.insert(id) }
                return id
            }
            guard let agentID else {
                try? client.channel.send(Frame(process: frame.process, .startFailed(.other, "container \(ContainerID.shortForm(containerID)) is not running")))
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

    /// Bounds the wait for the guest's answer to a client's `start`: past the deadline the
    /// client is told, and the process, should it start after all, is killed. The container
    /// goes on: a guest too slow for one `exec` may serve the next.
    private func armExecDeadline(_ agentID: UInt32) {
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(answerSeconds)) { [self] in
            let (route, channel) = life.withLock { life -> ((client: Client, local: UInt32)?, FrameChannel?) in
                guard life.unansweredStarts.remove(agentID) != nil else { return (nil, nil) }
                defer { life.byAgentID[agentID] = nil }
                return (life.byAgentID[agentID], life.phase.channel)
            }
            guard let route else { return }
            try? channel?.send(Frame(process: agentID, .signal(SIGKILL)))
            try? route.client.channel.send(Frame(process: route.local, .startFailed(
                .other, "the guest agent did not answer `start` within \(answerSeconds) s")))
        }
    }

    /// A client takes process 1's stdio if it is the first to attach before the command
    /// starts; otherwise it observes the command's output and exit.
    private func attach(_ client: Client, stdin: Bool) {
        let waiter = DispatchSemaphore(value: 0)
        let owner = life.withLock { life -> Bool in
            if awaitsAttach && !life.attachTaken && !life.phase.isPastStart {
                life.attachTaken = true
                life.byAgentID[GuestRouter.initProcess] = (client, GuestRouter.initProcess)
                life.initClient = client
                life.keepInitStdinOpen = stdin
                pastStart.withLock { $0.append(waiter) }
                return true
            }
            life.observers[ObjectIdentifier(client)] = client
            return false
        }
        guard owner else { return }
        attachArrived.signal()
        // Its stdin waits in its socket until the command exists (as `hvc run`'s does).
        waiter.wait()
    }

    /// Lets an attaching client's reader go on: the command has started or never will.
    private func releaseAttacher() {
        for waiter in pastStart.withLock({ waiting in defer { waiting = [] }; return waiting }) { waiter.signal() }
    }

    /// Forgets a client that hung up. A pod member it started ends with it: its relay is that
    /// member's host process, and a member nobody relays would run on unseen.
    private func drop(_ client: Client) {
        let (orphans, channel) = life.withLock { life -> ([UInt32], FrameChannel?) in
            life.observers[ObjectIdentifier(client)] = nil
            life.clients[ObjectIdentifier(client)] = nil
            let routes = life.byAgentID.filter { $0.value.client === client }.map(\.key)
            life.byAgentID = life.byAgentID.filter { $0.value.client !== client }
            let orphans = routes.filter { life.memberStarts.contains($0) }
            return (orphans, life.phase.channel)
        }
        for agentID in orphans { try? channel?.send(Frame(process: agentID, .signal(SIGKILL))) }
        if endsWithInProcessClient, client === inProcess { vm?.vm.kill() }
    }
}
