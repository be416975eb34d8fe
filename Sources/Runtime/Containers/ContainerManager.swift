import AgentProtocol
import CLinux
import Foundation
import HVCSystem
import VMM

/// Container lifecycle operations, shared by the CLI and the API server.
public struct ContainerManager: Sendable {
    public let runtime: Runtime
    var store: ContainerStore { runtime.containers }

    public init(runtime: Runtime) { self.runtime = runtime }

    /// Records a new container from `options`; nothing runs yet.
    /// `hostAccess` is what the tenant's default network gives, should this make it.
    /// `policy` says which host folders the caller may mount.
    public func create(_ options: RunOptions, tenant: String = ContainerManager.callerTenant(),
                       hostAccess: Bool = true, policy: MountPolicy = .unrestricted, mayNest: Bool = true) throws(HVCError) -> ContainerRecord {
        try options.validate()
        if options.nested, !mayNest {
            throw HVCError(.forbidden, "tenant \(tenant) may not run nested containers (\"nested\": true in the tenants file)")
        }
        try runtime.checkAssets()
        let image = try runtime.images.resolve(options.image)
        var network: String?
        switch options.network {
        case Network.noneName?: network = nil
        case nil, Network.defaultName?: network = try runtime.networks.defaultNetwork(tenant: tenant, hostAccess: hostAccess).name
        case let name?: network = try runtime.networks.resolve(name, tenant: tenant).name
        }
        var ports = options.ports
        if options.publishAll {
            for exposed in image.config.exposedPorts ?? [] {
                guard let mapping = try? PortMapping.parse(exposed), !ports.contains(where: {
                    $0.containerPort == mapping.containerPort && $0.protocol == mapping.protocol
                }) else { continue }
                ports.append(mapping)
            }
        }
        let accelerator = try runtime.chooseAccelerator(options.accelerator).accelerator
        if options.nested { try runtime.checkNesting(accelerator) }
        let id = ContainerID.generate()
        let hostname = options.hostname ?? ContainerID.shortForm(id)
        let spec = try options.processSpec(config: image.config, hostname: hostname)
        let name = options.name ?? ContainerID.randomName()
        guard ContainerID.isValidName(name) else {
            throw HVCError(.invalid, "invalid container name \"\(name)\": use letters, digits, _ . - (starting with a letter or digit)")
        }
        var config = ContainerConfig(
            id: id, name: name, image: options.image, imageID: image.id,
            process: .init(spec), hostname: hostname, memoryMiB: options.memoryMiB, cpus: options.cpus, pidsLimit: options.pidsLimit,
            accelerator: accelerator, tenant: tenant, created: Date(), autoRemove: options.remove,
            logMaxBytes: options.logMaxBytes, template: options.template ? nil : false,
            network: network, ports: ports.isEmpty ? nil : ports)
        config.readOnlyRoot = options.readOnlyRoot ? true : nil
        config.nested = options.nested ? true : nil
        config.writableBytes = options.writableBytes
        config.restartPolicy = options.restartPolicy.name == .no ? nil : options.restartPolicy
        config.labels = options.labels.isEmpty ? nil : options.labels
        config.networkAliases = options.networkAliases.isEmpty || network == nil ? nil : options.networkAliases
        let check = options.healthcheck.map { $0.overriding(image.config.healthcheck) } ?? image.config.healthcheck
        config.healthcheck = check?.command == nil ? nil : check
        let imageVolumes = (image.config.volumes ?? []).sorted()
        if options.mounts.isEmpty && imageVolumes.isEmpty && !options.readOnlyRoot { return try store.create(config) }
        return try runtime.volumes.resolveMounts(
            options.mounts, imageVolumes: imageVolumes, readOnlyRoot: options.readOnlyRoot, tenant: tenant, policy: policy
        ) { (mounts: [ContainerMount]) throws(HVCError) -> ContainerRecord in
            config.mounts = mounts.isEmpty ? nil : mounts
            return try store.create(config)
        }
    }

    /// Creates a container and starts it (`run -d`); a container whose command cannot start
    /// stays recorded as exited, with its error, as Docker keeps it.
    public func createAndStart(_ options: RunOptions, tenant: String = ContainerManager.callerTenant(),
                               hostAccess: Bool = true, policy: MountPolicy = .unrestricted) throws(HVCError) -> ContainerRecord {
        let record = try create(options, tenant: tenant, hostAccess: hostAccess, policy: policy)
        return try start(record.id)
    }

    /// The tenant of a CLI caller without a daemon: `default` for root, else `uid-N`.
    public static func callerTenant() -> String {
        getuid() == 0 ? "default" : "uid-\(getuid())"
    }

    /// `hvc run` without `-d`: this process supervises the VM while relaying the terminal.
    public func runAttached(_ options: RunOptions, timing: Bool = false) throws(HVCError) -> Int32 {
        let record = try create(options)
        let (rows, columns) = options.terminal ? StdioSession.terminalSize(or: (24, 80)) : (24, 80)
        StdioSession.blockForwardedSignals()
        if let claimed = PoolClaim.claim(record, runtime: runtime, attached: true, keepStdinOpen: options.interactive,
                                         rows: rows, columns: columns) {
            // The pooled VM's supervisor closes this connection once it has recorded the exit.
            defer { claimed.channel.waitForClose(timeoutSeconds: 10) }
            return try StdioSession(channel: claimed.channel)
                .run(start: nil, interactive: options.interactive, terminal: options.terminal)
        }
        let outcome: (session: Result<Int32, HVCError>, supervisor: Int32)
        do throws(HVCError) {
            outcome = try superviseHere(record, interactive: options.interactive, terminal: options.terminal,
                                        size: (rows, columns), timing: timing, gate: nil)
        } catch {
            store.remove(record.id)
            throw error
        }
        return try outcome.session.get()
    }

    /// Runs `record`'s supervisor on this thread, so that QEMU (which dies with the thread that
    /// started it) lives exactly as long as it should, while a client relays this process's
    /// stdio on a thread of its own. Returns the client's outcome and the supervisor's code.
    private func superviseHere(_ record: ContainerRecord, interactive: Bool, terminal: Bool, size: (UInt16, UInt16),
                               timing: Bool, gate: (@Sendable () -> Bool)?) throws(HVCError) -> (session: Result<Int32, HVCError>, supervisor: Int32) {
        let (clientEnd, supervisorEnd): (FrameChannel, FrameChannel)
        do {
            (clientEnd, supervisorEnd) = try FrameChannel.pair()
        } catch {
            throw HVCError("socketpair", cause: error)
        }
        let supervisor = Supervisor(config: record.config, runtime: runtime, attached: supervisorEnd, keepStdinOpen: interactive,
                                    terminalSize: size, timing: timing, gate: gate)
        let result = ResultBox()
        let session = StdioSession(channel: clientEnd)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do {
                result.set(.success(try session.run(start: nil, interactive: interactive, terminal: terminal)))
            } catch let error as HVCError {
                result.set(.failure(error))
            } catch {
                result.set(.failure(HVCError(cause: error)))
            }
            done.signal()
        }
        let code = supervisor.run()
        done.wait()
        return (result.result, code)
    }

    /// Supervises a created container in this process, its command's stdio this process's own,
    /// once `gate` lets it start (an OCI runtime's container process); returns its exit code.
    public func runHeld(_ record: ContainerRecord, gate: @escaping @Sendable () -> Bool) throws(HVCError) -> Int32 {
        let terminal = record.config.process.terminal
        let size = terminal ? StdioSession.terminalSize(or: (24, 80)) : (24, 80)
        StdioSession.blockForwardedSignals()
        // A pooled VM's supervisor holds the command for this process; this process's leaving ends it.
        if let claimed = PoolClaim.claim(record, runtime: runtime, attached: true, keepStdinOpen: true, rows: size.0, columns: size.1,
                                         gated: true, refill: .serviceOnly) {
            defer { claimed.channel.waitForClose(timeoutSeconds: 10) }
            guard gate() else {
                claimed.channel.shutdown()
                throw HVCError(.conflict, "the container was deleted before it started")
            }
            do {
                try claimed.channel.send(Frame(.attach(stdin: true)))
            } catch {
                throw HVCError("the pooled VM's supervisor is gone", cause: error)
            }
            return try StdioSession(channel: claimed.channel).run(start: nil, interactive: true, terminal: terminal)
        }
        let outcome = try superviseHere(record, interactive: true, terminal: terminal, size: size, timing: false, gate: gate)
        return (try? outcome.session.get()) ?? outcome.supervisor
    }

    /// Starts a created container under a detached supervisor (`hvc-shim`) and waits until its
    /// command is running (or failed to start).
    /// An exited container starts again in a new VM (its writable layer from the image again,
    /// its log going on), as `docker start` restarts one.
    public func start(_ nameOrID: String) throws(HVCError) -> ContainerRecord {
        var record = try store.resolve(nameOrID)
        if record.state.status == .running { return record }
        if record.state.status == .exited { record = try renew(record) }
        let shimPID: Int32
        if let claimed = PoolClaim.claim(record, runtime: runtime, attached: false, keepStdinOpen: false, rows: 24, columns: 80) {
            shimPID = claimed.supervisorPID
        } else {
            shimPID = try spawnSupervisor(record)
        }
        return try waitUntilStarted(record, supervisor: shimPID)
    }

    /// Starts a created container whose supervisor holds the command until a client attaches
    /// to its control socket (`Message.attach`); returns once that socket is there.
    public func startForAttach(_ nameOrID: String) throws(HVCError) -> ContainerRecord {
        var record = try store.resolve(nameOrID)
        if record.state.status == .exited { record = try renew(record) }
        guard record.state.status == .created else {
            throw HVCError(.conflict, "container \(record.name) is \(record.state.status.rawValue): attach to it instead")
        }
        let shimPID = try spawnSupervisor(record, awaitAttach: true)
        let socket = controlSocketPath(record)
        let vmDirectory = VMDirectory.path(in: runtime.paths.vms, id: record.id)
        let shim = [ProcessStamp(pid: shimPID, start: nil)]
        // The supervisor makes its VM's directory, then the socket in it.
        try? makeDirectory(runtime.paths.vms, mode: 0o711)
        let listening = awaitChange(in: runtime.paths.vms, seconds: 60, whileAlive: shim) {
            FileManager.default.fileExists(atPath: vmDirectory)
        } && awaitChange(in: vmDirectory, seconds: 60, whileAlive: shim) { FileManager.default.fileExists(atPath: socket) }
        guard listening else { throw HVCError("the container supervisor did not come up") }
        return record
    }

    /// Makes an exited container startable again: once the supervisor of its last run is
    /// gone, its state is that of a created container (its log kept).
    private func renew(_ record: ContainerRecord) throws(HVCError) -> ContainerRecord {
        if record.state.restarting == true {
            throw HVCError(.conflict, "container \(record.name) is restarting under its restart policy: stop it first (hvc stop)")
        }
        if let supervisor = record.state.supervisor, let watch = try? ContainerWatch.of(store),
           !watch.waitForEnd(of: supervisor, seconds: 10) {
            throw HVCError(.conflict, "container \(record.name) is still being torn down: try again")
        }
        try store.update(record.id) { state in
            state = ContainerState()
        }
        return try store.resolve(record.id)
    }

    /// Stops a running container (as `stop`), then starts it again in a new VM.
    public func restart(_ nameOrID: String, timeout: Int) throws(HVCError) -> ContainerRecord {
        let record = try stop(nameOrID, timeout: timeout)
        return try start(record.id)
    }

    private func waitUntilStarted(_ record: ContainerRecord, supervisor shimPID: Int32) throws(HVCError) -> ContainerRecord {
        let shim = ProcessStamp(pid: shimPID, start: nil)
        _ = try ContainerWatch.of(store).wait(for: record.id, seconds: 300, orEndOf: shim) { current in
            current?.state.status != .created
        }
        let current = try store.resolve(record.id)
        switch current.state.status {
        case .running:
            return current
        case .exited:
            let code = current.state.exitCode ?? 125
            throw HVCError(HVCError.Kind(startFailureCode: code), current.state.error ?? "container exited at once with code \(code)")
        case .created:
            if !shim.isAlive { throw HVCError("the container supervisor exited before starting the container") }
            throw HVCError("container \(record.name) did not start within 300 s")
        }
    }

    /// Starts `hvc-shim` for a created container; returns its pid.
    private func spawnSupervisor(_ record: ContainerRecord, awaitAttach: Bool = false) throws(HVCError) -> Int32 {
        do {
            return try Shim.start(.supervise(container: record.id, awaitsAttach: awaitAttach), paths: runtime.paths,
                                  environment: Shim.supervisorEnvironment)
        } catch {
            throw HVCError("cannot start the container supervisor \(Shim.path())", cause: error)
        }
    }

    /// Attaches to the command of a container over `channel` (a control socket, or hvcd's stream
    /// socket bridged to one) and relays its stdio until it exits; returns its exit code.
    public static func attach(over channel: FrameChannel, stdin: Bool, terminal: Bool) throws(HVCError) -> Int32 {
        StdioSession.blockForwardedSignals()
        do {
            try channel.send(Frame(.attach(stdin: stdin)))
        } catch {
            throw HVCError("container supervisor", cause: error)
        }
        return try StdioSession(channel: channel).run(start: nil, interactive: stdin, terminal: terminal)
    }

    /// Runs `spec` over a channel that speaks the control protocol (a supervisor's control
    /// socket, or hvcd's stream socket bridged to it), relaying this terminal; returns its code.
    public static func exec(over channel: FrameChannel, spec: ProcessSpec, interactive: Bool,
                            onStarted: (() -> Void)? = nil) throws(HVCError) -> Int32 {
        StdioSession.blockForwardedSignals()
        var spec = spec
        if spec.terminal { (spec.rows, spec.columns) = StdioSession.terminalSize(or: (spec.rows, spec.columns)) }
        return try StdioSession(channel: channel).run(start: spec, interactive: interactive, terminal: spec.terminal, onStarted: onStarted)
    }

    /// The exec's process spec: the container's environment and user unless overridden.
    public static func execSpec(_ record: ContainerRecord, arguments: [String], environment: [String], workingDirectory: String?,
                                user: String?, terminal: Bool) -> ProcessSpec {
        var env = record.config.process.environment
        RunOptions.merge(&env, environment)
        if terminal { RunOptions.merge(&env, ["TERM=xterm"]) }
        return ProcessSpec(arguments: arguments, environment: env,
                           workingDirectory: workingDirectory ?? record.config.process.workingDirectory,
                           user: user ?? record.config.process.user, terminal: terminal)
    }

    /// Sends `signal` to the container's command.
    public func kill(_ nameOrID: String, signal: Int32) throws(HVCError) {
        let record = try store.resolve(nameOrID)
        let channel = try controlChannel(record)
        try markStoppedByUser(record)
        do {
            try channel.send(Frame(.signal(signal)))
        } catch {
            throw HVCError("signal \(record.name)", cause: error)
        }
    }

    /// SIGTERM, then SIGKILL after `timeout` seconds, then the VM itself.
    public func stop(_ nameOrID: String, timeout: Int) throws(HVCError) -> ContainerRecord {
        guard timeout >= 0 else { throw HVCError(.invalid, "stop timeout \(timeout) is negative: give seconds, 0 or more") }
        var record = try store.resolve(nameOrID)
        if record.state.status != .running && record.state.restarting != true { return record }
        try markStoppedByUser(record)
        if record.state.restarting == true {
            // Its supervisor ends at the mark, or its new run has got as far as running.
            guard let watch = try? ContainerWatch.of(store) else { return record }
            let shim = record.state.supervisor
            _ = watch.wait(for: record.id, seconds: 60, orEndOf: shim) { $0 == nil || $0?.state.restarting != true }
            record = try store.resolve(record.id)
            guard record.state.status == .running else { return record }
        }
        let channel = try? controlChannel(record)
        try? channel?.send(Frame(.signal(SIGTERM)))
        if let done = waitForExit(record.id, seconds: Double(timeout)) { return done }
        try? channel?.send(Frame(.signal(SIGKILL)))
        if let done = waitForExit(record.id, seconds: 10) { return done }
        try? channel?.send(Frame(.shutdown))
        if let done = waitForExit(record.id, seconds: 10) { return done }
        throw HVCError("container \(record.name) did not stop")
    }

    /// Keeps the container's restart policy from bringing it back.
    private func markStoppedByUser(_ record: ContainerRecord) throws(HVCError) {
        guard record.config.restartPolicy != nil else { return }
        try store.update(record.id) { $0.stoppedByUser = true }
    }

    /// Waits for the container to exit; returns its exit code.
    public func wait(_ nameOrID: String) throws(HVCError) -> Int32 {
        let record = try store.resolve(nameOrID)
        let watch = try ContainerWatch.of(store)
        while true {
            let last = watch.wait(for: record.id, seconds: 3600) { $0 == nil || $0?.state.status == .exited }
            guard let last else { throw HVCError(.notFound, "container \(record.name) was removed while waited for") }
            if last.state.status == .exited { return last.state.exitCode ?? 0 }
        }
    }

    /// Removes containers; a running one only with `force`, which kills it first; with
    /// `volumes`, its anonymous volumes too (`rm -v`).
    public func remove(_ nameOrID: String, force: Bool, volumes: Bool = false) throws(HVCError) {
        var record = try store.resolve(nameOrID)
        if record.state.status == .running {
            guard force else {
                throw HVCError(.conflict, "container \(record.name) is running: stop it first, or use rm -f")
            }
            if let channel = try? controlChannel(record) { try? channel.send(Frame(.shutdown)) }
            if let done = waitForExit(record.id, seconds: 10) {
                record = done
            } else if let supervisor = record.state.supervisor, supervisor.isAlive {
                Glibc.kill(supervisor.pid, SIGKILL)
            }
        }
        // Let a supervisor that just recorded the exit finish its teardown.
        if let supervisor = record.state.supervisor, let watch = try? ContainerWatch.of(store) {
            _ = watch.waitForEnd(of: supervisor, seconds: 5)
        }
        store.remove(record.id)
        if volumes { VolumeManager.removeAnonymous(of: record.config, runtime: runtime) }
        runtime.sweep()
        // An address its supervisor leased and, killed, never recorded for a sweep to give back.
        if let name = record.config.network, let network = try? runtime.networks.resolve(name, tenant: record.config.tenant) {
            runtime.networks.releaseStaleLeases(network) { $0 != record.id }
        }
    }

    /// Waits until the container has exited; nil on timeout or when it is gone.
    func waitForExit(_ id: String, seconds: Double) -> ContainerRecord? {
        guard let watch = try? ContainerWatch.of(store) else { return nil }
        let last = watch.wait(for: id, seconds: seconds) { $0 == nil || $0?.state.status == .exited }
        return last?.state.status == .exited ? last : nil
    }

    /// The control socket of a running container's supervisor.
    public func controlSocketPath(_ record: ContainerRecord) -> String {
        VMDirectory.path(in: runtime.paths.vms, id: record.id) + "/control.sock"
    }

    /// A connection to a running container's supervisor.
    public func controlChannel(_ record: ContainerRecord) throws(HVCError) -> FrameChannel {
        guard record.state.status == .running else {
            throw HVCError(.conflict, "container \(record.name) is not running")
        }
        let path = controlSocketPath(record)
        do {
            return try FrameChannel.connect(path: path)
        } catch {
            // A container that ended since its record was read has no control socket any more.
            if let current = try? store.resolve(record.id), current.state.status != .running || waitForExit(record.id, seconds: 1) != nil {
                throw HVCError(.conflict, "container \(record.name) is not running")
            }
            throw HVCError("container \(record.name): control socket \(path)", cause: error)
        }
    }
}

final class ResultBox: @unchecked Sendable {
    // @unchecked: written once by one thread before a semaphore signal, read after the wait.
    private var value: Result<Int32, HVCError> = .failure(HVCError("no result"))
    func set(_ value: Result<Int32, HVCError>) { self.value = value }
    var result: Result<Int32, HVCError> { value }
}
