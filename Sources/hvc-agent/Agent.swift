import AgentProtocol
import CLinux
import Glibc
import HVCSystem

/// One process the host started, and where its stdio goes.
final class Child {
    let id: UInt32
    let pid: pid_t
    var stdin: FileDescriptor?
    var pendingStdin: [UInt8] = []
    var closeStdinWhenFlushed = false
    /// stdout (or the pty master), stderr (nil with a pty).
    var outputs: [(fd: FileDescriptor, isStderr: Bool)]
    let terminal: FileDescriptor?
    var status: ExitStatus?

    init(id: UInt32, pid: pid_t, stdin: FileDescriptor?, outputs: [(FileDescriptor, Bool)], terminal: FileDescriptor?) {
        self.id = id
        self.pid = pid
        self.stdin = stdin
        self.outputs = outputs.map { (fd: $0.0, isStderr: $0.1) }
        self.terminal = terminal
    }
}

/// The session with the host: one event loop over the channel, the children's stdio and SIGCHLD.
///
/// Single-threaded on purpose: the container spawn clones this process, which is only safe
/// with no other threads running.
final class Agent {
    private let port: FileDescriptor
    private let signals: FileDescriptor
    private var decoder = FrameDecoder()
    private var hostname = "hvc"
    private var greeted = false
    /// The container's mounts, from `hello`, made before its first process.
    private var mounts: [GuestMount] = []
    private var readOnlyRoot = false
    /// The container gets /dev/kvm.
    private var nested = false
    private var children: [UInt32: Child] = [:]
    /// The pod's other containers, by name.
    private var members: [String: PodMembers.Running] = [:]
    private var initPID: pid_t?
    private var containerDone = false
    private var shutdownDeadline: UInt64?
    /// How long the host has to end the VM after the container's command has exited.
    static let hostGraceNanoseconds: UInt64 = 30_000_000_000
    /// Bound on stdin bytes held for a child that is not reading; past it the channel is not
    /// read, which pushes back on the host through virtio-serial.
    private let stdinHighWater = 1 << 20

    init(port: FileDescriptor) throws(Errno) {
        self.port = port
        signals = FileDescriptor(try valueOrErrno { hvc_signalfd_sigchld() })
    }

    func send(_ frame: Frame) {
        do {
            try port.writeAll(frame.encoded())
        } catch {
            powerOff()
        }
    }

    /// Runs until the container is over and the host said goodbye, then powers the VM off.
    func run() -> Never {
        while true {
            if let deadline = shutdownDeadline, monotonicNanoseconds() >= deadline { powerOff() }
            var entries: [(fd: Int32, events: PollEvents)] = [(signals.raw, .readable)]
            var actions: [(PollEvents) -> Void] = [{ _ in self.reapChildren() }]
            let stdinBacklog = children.values.reduce(0) { $0 + $1.pendingStdin.count }
            if stdinBacklog < stdinHighWater {
                entries.append((port.raw, .readable))
                actions.append { self.readChannel($0) }
            }
            for child in children.values {
                for output in child.outputs {
                    entries.append((output.fd.raw, .readable))
                    actions.append { _ in self.readOutput(child, output.fd) }
                }
                if let stdin = child.stdin, !child.pendingStdin.isEmpty {
                    entries.append((stdin.raw, .writable))
                    actions.append { _ in self.flushStdin(child) }
                }
            }
            let timeout: Int32 = shutdownDeadline == nil ? -1 : 50
            let results: [PollEvents]
            do {
                results = try poll(entries, timeoutMilliseconds: timeout)
            } catch {
                fail("poll: \(error)")
            }
            for (index, events) in results.enumerated() where !events.isEmpty {
                actions[index](events)
            }
            reportFinishedChildren()
        }
    }

    // MARK: Channel

    private func readChannel(_ events: PollEvents) {
        let bytes: [UInt8]
        do {
            bytes = try port.read(max: 65536)
        } catch {
            fail("read channel: \(error)")
        }
        if bytes.isEmpty {
            // No host on the other end. Before the session that only means "not yet"; after
            // it, the host is gone and so is the reason for this VM.
            if greeted { powerOff() }
            usleep(5000)
            return
        }
        decoder.append(bytes)
        do {
            while let frame = try decoder.next() { handle(frame) }
        } catch {
            fail("malformed frame from host: \(error)")
        }
    }

    private func handle(_ frame: Frame) {
        switch frame.message {
        case .hello(let hello):
            guard hello.version == Limits.version else {
                fail(ProtocolError.versionMismatch(host: hello.version, guest: Limits.version).description)
            }
            greet(hello)
        case .start(let spec):
            guard greeted else { fail("start before hello") }
            guard children[frame.process] == nil, frame.process != 0 else {
                send(Frame(process: frame.process, .startFailed(.other, "process id \(frame.process) in use")))
                return
            }
            start(spec, id: frame.process)
        case .stdin(let data):
            guard let child = children[frame.process], child.stdin != nil else { return }
            child.pendingStdin += data
            flushStdin(child)
        case .closeStdin:
            guard let child = children[frame.process] else { return }
            child.closeStdinWhenFlushed = true
            flushStdin(child)
        case .signal(let signal):
            guard let child = children[frame.process], child.status == nil, (1...64).contains(signal) else { return }
            kill(child.pid, signal)
        case .resize(let rows, let columns):
            guard let terminal = children[frame.process]?.terminal else { return }
            _ = hvc_set_window_size(terminal.raw, rows, columns)
        case .shutdown:
            if let initPID { kill(initPID, SIGKILL) }
            powerOff()
        case .warmUp:
            guard !greeted else { return }
            Prewarm.warmUp()
            send(Frame(.warmedUp))
        case .ready, .started, .startFailed, .stdout, .stderr, .exited, .failure, .oomKilled, .warmedUp, .attach:
            fail("host sent a guest-only message")
        }
    }

    private func greet(_ hello: Hello) {
        greeted = true
        hostname = hello.hostname.isEmpty ? "hvc" : hello.hostname
        mounts = hello.mounts
        readOnlyRoot = hello.readOnlyRoot
        nested = hello.nested
        if hello.pidsLimit > 0 { try? writeFile(Boot.cgroup + "/pids.max", "\(hello.pidsLimit)\n") }
        if hello.writableBytes > 0, hello.rootShare == nil,
           let failure = Boot.limitWritableLayer(bytes: hello.writableBytes) { fail(failure) }
        if let rootShare = hello.rootShare, let failure = ContainerMounts.mountRoot(rootShare) { fail(failure) }
        // A caller's root directory keeps its files as the caller made them (OCI runtimes write
        // none there; the caller mounts its own hostname, hosts and resolv.conf).
        let ownsFiles = hello.rootShare == nil
        // Seed the RNG before anything in the container can ask it for bytes: a clone of a
        // template would otherwise repeat its template's random stream.
        if let urandom = try? FileDescriptor.open("/dev/urandom", O_WRONLY) {
            _ = hello.entropy.withUnsafeBufferPointer { hvc_add_entropy(urandom.raw, $0.baseAddress, $0.count) }
        }
        var now = timespec(
            tv_sec: Int(hello.unixTimeNanoseconds / 1_000_000_000),
            tv_nsec: Int(hello.unixTimeNanoseconds % 1_000_000_000))
        clock_settime(CLOCK_REALTIME, &now)
        if ownsFiles { try? writeContainerFile("/etc/hostname", hostname + "\n") }
        // A machine id of this container's own, drawn after the reseed above; made of bytes, not
        // Strings, which cost a clone milliseconds to translate under TCG.
        if ownsFiles, let urandom = try? FileDescriptor.open("/dev/urandom", O_RDONLY), let bytes = try? urandom.read(max: 16), bytes.count == 16 {
            let digits = Array("0123456789abcdef".utf8)
            try? writeContainerFile("/etc/machine-id", bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] } + [UInt8(ascii: "\n")])
        }
        if let complaint = GuestNetwork.configure(hello, hostname: hostname, writesFiles: ownsFiles) { fail(complaint) }
        setUpFailure = setUpContainer()
    }

    /// Why the container could not be set up at `hello`: its first `start` reports it.
    private var setUpFailure: String?

    /// Places the container's mounts (and /dev/kvm) in a prepared container before its first
    /// process is asked for, as runc's `create` does: a gated container's `start` then only
    /// spawns. A container prepared on the image's root moves onto a root share first.
    private func setUpContainer() -> String? {
        let newRoot = Prewarm.prepared != nil ? ContainerMounts.rootEntry : nil
        guard !mounts.isEmpty || readOnlyRoot || nested || newRoot != nil else { return nil }
        let prepared: hvc_prepared_container
        do {
            prepared = try Prewarm.prepared ?? Prewarm.prepare().get()
            Prewarm.prepared = prepared
        } catch {
            return "\(error)"
        }
        if let failure = ContainerMounts.place(mounts, readOnlyRoot: readOnlyRoot, root: newRoot, in: prepared.pid) { return failure }
        if nested, let failure = Agent.makeNestingDevices(root: "/proc/\(prepared.pid)/root") { return failure }
        return nil
    }

    // MARK: Processes

    private func start(_ spec: ProcessSpec, id: UInt32) {
        if let member = spec.member {
            startMember(member, spec, id: id)
            return
        }
        if !spec.container.isEmpty {
            guard let member = members[spec.container] else {
                send(Frame(process: id, .startFailed(.other, "no container \"\(spec.container)\" runs in this pod")))
                return
            }
            spawn(spec, id: id, root: member.root) { process, result in
                member.cgroup.withCString { cgroup in
                    var container = hvc_container(rootfs: nil, hostname: nil, cgroup: cgroup, delegated_leaf: nil)
                    return hvc_spawn_container_exec(member.pid, &container, &process, &result)
                }
            }
            return
        }
        if initPID == nil {
            if let setUpFailure {
                send(Frame(process: id, .startFailed(.other, setUpFailure)))
                return
            }
            // Docker creates a missing working directory; so do we, before the first process.
            try? Boot.makeDirectory(Boot.rootfs + spec.workingDirectory)
        }
        let started = spawn(spec, id: id, root: Boot.rootfs) { [hostname, initPID] process, result in
            Boot.rootfs.withCString { root in
                hostname.withCString { host in
                    Boot.cgroup.withCString { cgroup in
                        var container = hvc_container(rootfs: root, hostname: host, cgroup: cgroup, delegated_leaf: Boot.delegatedLeaf)
                        if let initPID {
                            return hvc_spawn_container_exec(initPID, &container, &process, &result)
                        }
                        if var prepared = Prewarm.prepared {
                            Prewarm.prepared = nil
                            return hvc_start_prepared_container(&prepared, host, &process, &result)
                        }
                        return hvc_spawn_container_init(&container, &process, &result)
                    }
                }
            }
        }
        if let started, initPID == nil { initPID = started.pid }
    }

    /// Starts `spec` as child `id` through `launch` (which gets the process and fills the
    /// result): its identity from the passwd and group files under `root`, its stdio, its
    /// privileges. Reports `started` or `startFailed`; returns the child once started.
    @discardableResult
    private func spawn(_ spec: ProcessSpec, id: UInt32, root: String,
                       _ launch: (inout hvc_process, inout hvc_spawn_result) -> Int32) -> Child? {
        let lookup = UserLookup(
            passwd: (try? readContainerFile("/etc/passwd", root: root)) ?? "",
            group: (try? readContainerFile("/etc/group", root: root)) ?? "")
        let identity: Identity
        do {
            identity = try lookup.resolve(spec.user)
        } catch {
            send(Frame(process: id, .startFailed(.other, error.description)))
            return nil
        }
        var environment = spec.environment
        if !environment.contains(where: { $0.hasPrefix("HOME=") }) { environment.append("HOME=\(identity.home)") }
        let path = environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? ""
        let stdio: Stdio
        do {
            stdio = try Stdio(terminal: spec.terminal, rows: spec.rows, columns: spec.columns)
        } catch {
            send(Frame(process: id, .startFailed(.other, "stdio: \(error)")))
            return nil
        }
        var result = hvc_spawn_result()
        let privileges = Agent.privileges(spec)
        var groups = identity.groups
        for group in spec.additionalGroups where !groups.contains(group) { groups.append(group) }
        let spawned = withCStringArray(spec.arguments) { argv in
            withCStringArray(environment) { envp in
                groups.withUnsafeBufferPointer { groups in
                    path.withCString { cPath in
                        spec.workingDirectory.withCString { cwd in
                            var process = hvc_process(
                                argv: argv, envp: envp, path: cPath, cwd: cwd, uid: identity.uid, gid: identity.gid,
                                groups: groups.baseAddress, group_count: groups.count,
                                stdin_fd: stdio.childStdin.raw, stdout_fd: stdio.childStdout.raw,
                                stderr_fd: stdio.childStderr.raw, terminal: spec.terminal ? 1 : 0, privileges: privileges)
                            return launch(&process, &result)
                        }
                    }
                }
            }
        }
        stdio.closeChildEnds()
        if spawned != 0 {
            send(Frame(process: id, .startFailed(.other, "clone: \(Errno.current)")))
            return nil
        }
        if result.stage != 0 {
            send(Frame(process: id, .startFailed(Agent.classify(result), Agent.describe(result, spec.arguments[0]))))
            return nil
        }
        let child = Child(id: id, pid: result.pid, stdin: stdio.stdin, outputs: stdio.outputs, terminal: stdio.terminal)
        children[id] = child
        send(Frame(process: id, .started(pid: result.pid)))
        return child
    }

    /// Starts a pod member: its root and mounts, its cgroup, then its first process in a
    /// container prepared in the pod's UTS and IPC namespaces.
    private func startMember(_ member: PodMember, _ spec: ProcessSpec, id: UInt32) {
        guard let podInit = initPID, !containerDone else {
            send(Frame(process: id, .startFailed(.other, "the pod's first container is not running")))
            return
        }
        guard members[member.name] == nil else {
            send(Frame(process: id, .startFailed(.other, "a container \"\(member.name)\" runs in this pod already")))
            return
        }
        let placed: PodMembers.Placed
        switch PodMembers.place(member) {
        case .success(let value): placed = value
        case .failure(let failure):
            send(Frame(process: id, .startFailed(.other, failure.description)))
            return
        }
        var prepared = hvc_prepared_container()
        let made = placed.root.withCString { root in
            placed.cgroup.withCString { cgroup in
                var container = hvc_container(rootfs: root, hostname: nil, cgroup: cgroup, delegated_leaf: nil)
                return hvc_prepare_member_container(podInit, &container, &prepared)
            }
        }
        guard made == 0, prepared.stage == 0 else {
            let error = made != 0 ? Errno.current : Errno(rawValue: prepared.error)
            PodMembers.remove(placed)
            send(Frame(process: id, .startFailed(.other, "container \(member.name): setting up its namespaces: \(error)")))
            return
        }
        if let failure = ContainerMounts.place(member.mounts, readOnlyRoot: member.readOnlyRoot, in: prepared.pid) {
            close(prepared.control)
            close(prepared.reports)
            PodMembers.remove(placed)
            send(Frame(process: id, .startFailed(.other, failure)))
            return
        }
        let started = spawn(spec, id: id, root: placed.root) { process, result in
            hvc_start_prepared_container(&prepared, "", &process, &result)
        }
        guard let started else {
            PodMembers.remove(placed)
            return
        }
        members[member.name] = PodMembers.Running(pid: started.pid, root: placed.root, cgroup: placed.cgroup, childID: id)
    }

    /// What a nested container's own VMs need in its /dev (a tmpfs of its own, reached through
    /// its root): KVM, and TUN for their network devices.
    static func makeNestingDevices(root: String) -> String? {
        if hvc_make_char_device(root + "/dev/kvm", 10, 232, 0o666) != 0 { return "/dev/kvm: \(Errno.current)" }
        if mkdir(root + "/dev/net", 0o755) != 0 && errno != EEXIST { return "/dev/net: \(Errno.current)" }
        if hvc_make_char_device(root + "/dev/net/tun", 10, 200, 0o666) != 0 { return "/dev/net/tun: \(Errno.current)" }
        return nil
    }

    /// The process's limits, capability sets and no_new_privs, as the spawn takes them.
    static func privileges(_ spec: ProcessSpec) -> hvc_privileges {
        var privileges = hvc_privileges()
        for limit in spec.resourceLimits {
            _ = hvc_privileges_add_rlimit(&privileges, limit.resource, limit.soft, limit.hard)
        }
        if let sets = spec.capabilities {
            privileges.restrict_capabilities = 1
            privileges.bounding = sets.bounding
            privileges.effective = sets.effective
            privileges.permitted = sets.permitted
            privileges.inheritable = sets.inheritable
            privileges.ambient = sets.ambient
        }
        privileges.no_new_privileges = spec.noNewPrivileges ? 1 : 0
        return privileges
    }

    static func classify(_ result: hvc_spawn_result) -> StartFailure {
        guard result.stage == Int32(HVC_STAGE_EXEC.rawValue) else { return .other }
        switch result.error {
        case ENOENT, ENOTDIR: return .notFound
        case EACCES, ENOEXEC, EPERM, EISDIR: return .notExecutable
        default: return .other
        }
    }

    static func describe(_ result: hvc_spawn_result, _ command: String) -> String {
        let error = Errno(rawValue: result.error)
        switch UInt32(result.stage) {
        case HVC_STAGE_EXEC.rawValue:
            if error == .noEntry { return "exec \"\(command)\": executable file not found in $PATH" }
            return "exec \"\(command)\": \(error)"
        case HVC_STAGE_CWD.rawValue: return "working directory: \(error)"
        case HVC_STAGE_IDENTITY.rawValue: return "setting user: \(error)"
        case HVC_STAGE_CGROUP.rawValue: return "container setup: cgroup: \(error)"
        case HVC_STAGE_MOUNTS.rawValue: return "container setup: mounts: \(error)"
        case HVC_STAGE_HOSTNAME.rawValue: return "container setup: hostname: \(error)"
        case HVC_STAGE_PIVOT_ROOT.rawValue: return "container setup: pivot_root: \(error)"
        case HVC_STAGE_NAMESPACES.rawValue: return "joining the container: \(error)"
        case HVC_STAGE_STDIO.rawValue: return "container setup: stdio: \(error)"
        case HVC_STAGE_PRIVILEGES.rawValue: return "setting rlimits, capabilities or no_new_privs: \(error)"
        default: return "container setup: \(error)"
        }
    }

    private func flushStdin(_ child: Child) {
        guard let stdin = child.stdin else { return }
        while !child.pendingStdin.isEmpty {
            do {
                let written = try stdin.write(some: child.pendingStdin.prefix(65536))
                child.pendingStdin.removeFirst(written)
            } catch .wouldBlock {
                return
            } catch {
                // The reader is gone (EPIPE): drop what it will never read.
                child.pendingStdin.removeAll()
                child.closeStdinWhenFlushed = true
            }
        }
        if child.closeStdinWhenFlushed {
            // With a pty, stdin and stdout share the master: EOF is ^D, not a close.
            if child.terminal != nil {
                _ = try? stdin.write(some: [4])
            } else {
                stdin.close()
            }
            child.stdin = nil
        }
    }

    /// Relays one read of `fd`; returns false once the output has ended (or was already gone).
    @discardableResult
    private func readOutput(_ child: Child, _ fd: FileDescriptor) -> Bool {
        guard let index = child.outputs.firstIndex(where: { $0.fd === fd }) else { return false }
        let output = child.outputs[index]
        let bytes: [UInt8]
        do {
            bytes = try output.fd.read(max: Limits.maxChunk)
        } catch .wouldBlock {
            return false
        } catch {
            bytes = []  // EIO from a pty master once the slave side is gone: end of output.
        }
        if bytes.isEmpty {
            child.outputs.remove(at: index)
            return false
        }
        send(Frame(process: child.id, output.isStderr ? .stderr(bytes) : .stdout(bytes)))
        return true
    }

    private func reapChildren() {
        _ = try? signals.read(max: 1024)
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG | __WALL)
            if pid <= 0 { break }
            guard let child = children.values.first(where: { $0.pid == pid }) else { continue }
            child.status = ExitStatus(waitStatus: status)
        }
    }

    /// Reports exits once a process is gone; what it wrote before exiting is drained first.
    private func reportFinishedChildren() {
        for child in children.values {
            guard let status = child.status else { continue }
            for output in child.outputs {
                while readOutput(child, output.fd) {}
            }
            if child.outputs.isEmpty || child.pid != initPID {
                if child.pid == initPID && Agent.containerWasOOMKilled(Boot.cgroup) { send(Frame(process: child.id, .oomKilled)) }
                if let (name, member) = members.first(where: { $0.value.childID == child.id && $0.value.pid == child.pid }) {
                    if Agent.containerWasOOMKilled(member.cgroup) { send(Frame(process: child.id, .oomKilled)) }
                    members[name] = nil
                    PodMembers.remove(.init(root: member.root, cgroup: member.cgroup))
                }
                if child.pid == initPID { ContainerMounts.flushBlocks() }
                send(Frame(process: child.id, .exited(status)))
                children[child.id] = nil
                if child.pid == initPID {
                    containerDone = true
                    // The host ends the VM once it has read the exit; this is only for a host that
                    // never does. A write to the port returns once QEMU holds the bytes, not once
                    // the host has read them: a host behind a long flood of output may take seconds
                    // to reach the exit, and powering off before would lose the end of the output.
                    shutdownDeadline = monotonicNanoseconds() + Agent.hostGraceNanoseconds
                }
            }
        }
    }

    /// Whether the OOM killer acted in the container's cgroup (`memory.events`).
    static func containerWasOOMKilled(_ cgroup: String) -> Bool {
        guard let events = try? readFile(cgroup + "/memory.events") else { return false }
        for line in events.split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return line.split(separator: " ").last.flatMap { Int($0) }.map { $0 > 0 } ?? false
        }
        return false
    }

    func fail(_ message: String) -> Never {
        send(Frame(.failure(message)))
        powerOff()
    }

    func powerOff() -> Never {
        // With `reboot=t` and QEMU's -no-reboot, a reboot is the fastest way to end the VM.
        hvc_reboot()
        _exit(1)
    }
}

/// The stdio of one child: three pipes, or a pty used for all three.
struct Stdio {
    var stdin: FileDescriptor?
    var outputs: [(FileDescriptor, Bool)]
    var terminal: FileDescriptor?
    let childStdin: FileDescriptor
    let childStdout: FileDescriptor
    let childStderr: FileDescriptor

    init(terminal: Bool, rows: UInt16, columns: UInt16) throws(Errno) {
        if terminal {
            var master: Int32 = -1
            var slave: Int32 = -1
            try valueOrErrno { hvc_open_pty(&master, &slave) }
            let masterFD = FileDescriptor(master)
            let slaveFD = FileDescriptor(slave)
            _ = hvc_set_window_size(master, rows, columns)
            try masterFD.setNonBlocking()
            stdin = masterFD
            outputs = [(masterFD, false)]
            self.terminal = masterFD
            childStdin = slaveFD
            childStdout = slaveFD
            childStderr = slaveFD
        } else {
            let input = try FileDescriptor.pipe()
            let output = try FileDescriptor.pipe()
            let error = try FileDescriptor.pipe()
            try input.write.setNonBlocking()
            try output.read.setNonBlocking()
            try error.read.setNonBlocking()
            stdin = input.write
            outputs = [(output.read, false), (error.read, true)]
            self.terminal = nil
            childStdin = input.read
            childStdout = output.write
            childStderr = error.write
        }
    }

    func closeChildEnds() {
        childStdin.close()
        childStdout.close()
        childStderr.close()
    }
}
