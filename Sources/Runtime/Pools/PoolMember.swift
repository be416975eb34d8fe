import AgentProtocol
import CLinux
import Foundation
import HVCSystem
import VMM

/// What a container's creator sends a pooled VM to take it: one JSON line.
struct PoolClaimRequest: Codable {
    var container: String
    /// The claiming connection carries the init process's stdio (an attached `hvc run`).
    var attached: Bool
    var keepStdinOpen: Bool
    var rows: UInt16
    var columns: UInt16
    /// Hold the command until the claimer sends `attach` on the claiming connection (hvc-oci's
    /// `start`); nil: no.
    var gated: Bool?
}

/// The pooled VM's answer: one JSON line; with `ok`, the pid of its new supervisor.
struct PoolClaimReply: Codable {
    var ok: Bool
    var pid: Int32
    var error: String?
}

/// One VM of a warm pool (`hvc-shim pool-member POOL`): clones the pool's template, connects
/// to its agent and takes its `ready`, then waits on its socket for a container to claim it,
/// and becomes that container's supervisor. Leaves when its pool shrinks or goes, or its
/// template is replaced.
public enum PoolMember {
    nonisolated(unsafe) static var stopRequested: sig_atomic_t = 0

    /// The member's life in this process, which SIGTERM asks to leave the pool. Returns nil
    /// when it leaves unclaimed (its VM gone), or the container's exit code once a claim made
    /// this process the container's supervisor and the container ended. Throws when the VM
    /// could not be made ready or the claim could not be answered.
    public static func serve(runtime: Runtime, poolName: String) throws(HVCError) -> Int32? {
        signal(SIGTERM) { _ in PoolMember.stopRequested = 1 }
        guard let pool = runtime.pools.pool(named: poolName) else { return nil }
        // A VM getting ready for a pool takes what CPU running containers leave (its VMM inherits
        // this); a claim gives both back the normal share.
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, waitingNice)
        let id = ContainerID.generate()
        let directory = try VMDirectory.create(in: runtime.paths.vms, id: id)
        var launched: LaunchedVM?
        // Until a supervisor takes the VM over, every way out of here ends it.
        var handedOver = false
        defer {
            if !handedOver {
                launched?.vm.kill()
                _ = launched?.vm.waitForExit(timeoutSeconds: 5)
                launched?.confinement?.release()
                directory.remove()
            }
        }
        let image = try runtime.images.resolve(pool.imageID)
        let shape = pool.shape(image)
        let provider = TemplateClone(
            request: VMRequest(owner: id, tenant: "hvc-pool", imageReference: pool.image, shape: shape, pidsLimit: 256, servesFolders: true),
            runtime: runtime, capturesTemplate: false)
        let vm = try provider.launch(in: directory, timing: nil) { (vm: LaunchedVM) throws(HVCError) in launched = vm }
        try provider.restore(vm, in: directory, timing: nil)
        guard let key = vm.template?.key else { throw HVCError("pool \(poolName): the VM is not a clone of a template") }
        let channel = try provider.connect(vm, in: directory).channel
        do {
            channel.setReceiveTimeout(seconds: 60)
            guard case .ready(let ready) = try channel.receive().message, ready.version == Limits.version else {
                throw HVCError("pool \(poolName): the guest agent did not say ready")
            }
            // Have the guest run a first command's paths now, so that a claim finds them translated:
            // with a root to rehearse a container on, shared as a bundle's root is.
            let rehearsal = PoolRehearsal.share(directory: directory, vmmPID: vm.vm.pid, runtime: runtime)
            defer { if let rehearsal { PoolRehearsal.remove(rehearsal, directory: directory, vmmPID: vm.vm.pid) } }
            try channel.send(Frame(.warmUp))
            guard case .warmedUp = try channel.receive().message else { throw HVCError("pool \(poolName): the guest did not warm up") }
            channel.setReceiveTimeout(seconds: 0)
        } catch let error as HVCError {
            throw error
        } catch {
            throw HVCError("pool \(poolName): guest agent", cause: error)
        }

        let pools = runtime.pools
        let members = pools.memberDirectory(key)
        try makeDirectory(pools.runDirectory, mode: 0o700)
        try makeDirectory(members, mode: 0o700)
        // Enough VMs wait already (another refill got there first): this one is not needed.
        if pools.members(key).count >= pool.size { return nil }
        let name = String(id.prefix(12))
        let socketPath = members + "/" + name + ".sock"
        let pidPath = members + "/" + name + ".pid"
        try? writeAtomically(pidPath, Data("\(ProcessStamp.current)\n".utf8))
        let fd = hvc_unix_listen(socketPath, 4)
        guard fd >= 0 else { throw HVCError("pool \(poolName): \(socketPath): \(Errno.current)") }
        let listener = FileDescriptor(fd)
        func unregister() {
            listener.close()
            unlink(socketPath)
            unlink(pidPath)
        }

        while true {
            var poller = pollfd(fd: listener.raw, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 1000)
            if stopRequested != 0 || !stillWanted(runtime: runtime, pool: poolName, key: key, socket: socketPath) {
                unregister()
                return nil
            }
            guard ready > 0 else { continue }
            let client = accept(listener.raw, nil, nil)
            guard client >= 0 else { continue }
            let connection = FileDescriptor(client)
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            guard let (request, record) = takeClaim(connection, runtime: runtime, pool: pool) else { continue }
            unregister()
            resetPriority(getpid())
            resetPriority(vm.vm.pid)
            let reply = PoolClaimReply(ok: true, pid: getpid(), error: nil)
            do {
                try connection.writeAll(Array((try? JSONEncoder().encode(reply)) ?? Data()) + [0x0a])
            } catch {
                throw HVCError("pool \(poolName): claim reply", cause: error)
            }
            let claimer = FrameChannel(socket: connection)
            var gate: (@Sendable () -> Bool)?
            if request.gated == true { gate = { awaitAttach(claimer) } }
            let supervisor = Supervisor(
                config: record.config, runtime: runtime, provider: PooledVM(launched: vm, directory: directory),
                attached: request.attached ? claimer : nil,
                keepStdinOpen: request.keepStdinOpen, terminalSize: (request.rows, request.columns), timing: false,
                gate: gate, endsWithClient: gate != nil)
            handedOver = true
            return Supervisor.runUnderRestartPolicy(supervisor)
        }
    }

    /// The nice value of a VM while it gets ready and waits in a pool.
    static let waitingNice: Int32 = 19

    /// Gives every thread of `pid` the normal nice value (nice is per thread on Linux).
    private static func resetPriority(_ pid: Int32) {
        for task in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? [] {
            if let tid = UInt32(task) { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), tid, 0) }
        }
    }

    /// A gated claim's gate: the claimer's `attach`, the first frame it sends. Its leaving (or
    /// anything else) means the command is not to run.
    private static func awaitAttach(_ client: FrameChannel) -> Bool {
        guard case .attach? = try? client.receive().message else { return false }
        return true
    }

    /// Reads and checks a claim: from root, for a created container this VM fits.
    private static func takeClaim(_ connection: FileDescriptor, runtime: Runtime, pool: Pool) -> (PoolClaimRequest, ContainerRecord)? {
        func refuse(_ why: String) -> (PoolClaimRequest, ContainerRecord)? {
            let reply = PoolClaimReply(ok: false, pid: 0, error: why)
            try? connection.writeAll(Array((try? JSONEncoder().encode(reply)) ?? Data()) + [0x0a])
            return nil
        }
        var uid: uid_t = 0, gid: gid_t = 0, pid: pid_t = 0
        guard hvc_peer_credentials(connection.raw, &uid, &gid, &pid) == 0, uid == 0 else { return refuse("not root") }
        connection.setReceiveTimeout(seconds: 5)
        guard let line = try? connection.readLine(max: maxLine) ?? nil,
              let request = try? JSONDecoder().decode(PoolClaimRequest.self, from: Data(line)) else { return refuse("bad request") }
        connection.setReceiveTimeout(seconds: 0)
        guard let record = try? runtime.containers.resolve(request.container), record.id == request.container,
              record.state.status == .created else { return refuse("no such created container") }
        guard request.gated != true || request.attached else { return refuse("a gated claim is an attached one") }
        guard pool.fits(record.config) else { return refuse("the container does not fit this pool") }
        return (request, record)
    }

    /// Bounds a claim's request and reply lines.
    static let maxLine = 1 << 16

    /// Whether the pool still wants this VM: the pool exists, its template is current, and
    /// this VM is within the pool's size (oldest sockets first).
    private static func stillWanted(runtime: Runtime, pool name: String, key: String, socket: String) -> Bool {
        guard let pool = runtime.pools.pool(named: name), runtime.templates.load(key) != nil else { return false }
        guard let index = runtime.pools.members(key).firstIndex(of: socket) else { return false }
        return index < pool.size
    }
}
