import AgentProtocol
import Foundation
import HVCSystem
import VMM

/// The first part of a supervisor's work: makes a VM the container's. Launches it through its
/// provider (adopted at once, so that teardown covers any later failure), joins it to the
/// container's network while it starts, restores and connects it, shares the container's
/// folders, takes the guest's `ready`, and sends the session and the container's command.
struct SupervisorBoot {
    let config: ContainerConfig
    let runtime: Runtime
    let provider: any VMProvider
    let router: GuestRouter
    let network: ContainerNetworkSide
    let timing: RunTiming
    let terminalSize: (rows: UInt16, columns: UInt16)
    let gate: (@Sendable () -> Bool)?

    /// Returns the agent channel, with the command sent on it.
    func boot(_ directory: VMDirectory) throws(HVCError) -> FrameChannel {
        let pooled = provider is PooledVM
        let launched = try provider.launch(in: directory, timing: timing) { (launched: LaunchedVM) throws(HVCError) in
            try adopt(launched)
            // CNI's work overlaps the clone's restore or the cold boot; a pooled VM runs already.
            try network.attach(netns: launched.confinement?.networkNamespace, directory: directory, inBackground: !pooled)
        }
        try provider.restore(launched, in: directory, timing: timing)
        let link = try provider.connect(launched, in: directory)
        router.connected(launched, link.channel)
        switch link.greeting {
        case .taken:
            try sendSession(link.channel, directory: directory)
        case .awaited, .pipelined:
            timing.mark("connected")
            try handshake(link.channel, directory: directory, pipelined: link.greeting == .pipelined)
        }
        return link.channel
    }

    /// Takes charge of a VM: from here on, teardown ends it and releases its confinement. The
    /// container's state names this supervisor, the VMM and the template it was cloned from.
    private func adopt(_ launched: LaunchedVM) throws(HVCError) {
        router.adopt(launched)
        try runtime.containers.update(config.id) {
            let supervisor = ProcessStamp.current
            $0.supervisorPID = supervisor.pid
            $0.supervisorStart = supervisor.start
            $0.vmmPID = launched.vm.pid
            $0.template = launched.template?.key
        }
    }

    /// `ready` from the guest, then the session parameters and the container's command.
    /// A clone is already running when its host connects, so its parameters go out at once
    /// (the clock it is given is still current) and wait in the channel behind its `ready`.
    private func handshake(_ channel: FrameChannel, directory: VMDirectory, pipelined: Bool) throws(HVCError) {
        if pipelined { try sendSession(channel, directory: directory) }
        channel.setReceiveTimeout(seconds: router.answerSeconds)
        let frame: Frame
        do {
            frame = try channel.receive()
        } catch {
            throw HVCError("the VM did not come up", cause: error, detail: directory.diagnostics())
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

    /// Shares the container's folders into its VM (before the guest learns of them).
    private func shareFolders(_ directory: VMDirectory) throws(HVCError) -> [GuestMount] {
        guard config.rootDirectory != nil || !(config.mounts ?? []).isEmpty else { return [] }
        guard let vm = router.vm else { throw HVCError("the VM is gone") }
        let shared = try SharedFolders.share(config.mounts ?? [], root: config.rootDirectory, tenant: config.tenant, runtime: runtime,
                                             vmmPID: vm.vm.pid, directory: directory)
        timing.mark("mounts")
        return shared
    }

    /// A gated container (hvc-oci's, held until `start`) gets its `hello` before the gate, as runc's
    /// `create` sets up what `start` then runs: the guest mounts its root and folders while the
    /// caller goes on to `start`.
    private func sendSession(_ channel: FrameChannel, directory: VMDirectory) throws(HVCError) {
        let mounts = try shareFolders(directory)
        let networkSetup = try network.guestSetup(timing: timing)
        let now = UInt64(Date().timeIntervalSince1970 * 1e9)
        let spec = config.process.spec(rows: terminalSize.rows, columns: terminalSize.columns)
        var hello = Hello(
            entropy: randomBytes(256), unixTimeNanoseconds: now, hostname: config.hostname,
            interface: networkSetup?.0, nameservers: networkSetup?.nameservers ?? [],
            mounts: mounts, readOnlyRoot: config.readOnlyRoot ?? false, rootShare: config.rootDirectory.map { _ in SharedFolders.rootEntry })
        hello.pidsLimit = config.guestPidsLimit.map { UInt32(clamping: $0) } ?? 0
        hello.nested = config.nested ?? false
        hello.writableBytes = config.writableBytes.map { UInt64(clamping: $0) } ?? 0
        try send([Frame(.hello(hello))], on: channel, directory: directory)
        if let gate, !gate() { throw HVCError(.conflict, "the container was deleted before it started") }
        var command = [Frame(process: GuestRouter.initProcess, .start(spec))]
        if !router.keepsInitStdinOpen { command.append(Frame(process: GuestRouter.initProcess, .closeStdin)) }
        try send(command, on: channel, directory: directory)
    }

    private func send(_ frames: [Frame], on channel: FrameChannel, directory: VMDirectory) throws(HVCError) {
        do {
            for frame in frames { try channel.send(frame) }
        } catch {
            throw HVCError("guest agent", cause: error, detail: directory.diagnostics())
        }
    }
}
