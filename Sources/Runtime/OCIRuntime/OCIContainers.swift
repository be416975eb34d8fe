import AgentProtocol
import CLinux
import Foundation
import HVCSystem
import Jail
import OCI

/// What `hvc-oci` keeps of one container under its state root: `<root>/<id>/oci.json` and the
/// `start` FIFO that holds the container's command until `start`.
public struct OCIRecord: Codable, Sendable {
    public var id: String
    public var bundle: String
    /// The hvc container that runs it.
    public var container: String
    /// The container's host process (its `hvc-shim`): what `--pid-file` names.
    public var pid: Int32
    public var created: Date
    public var annotations: [String: String]
    /// Where it is: its state root, and the hvc state it runs in, so that a caller that gives
    /// no global flags (podman's `state`, its cleanup's `delete`) still finds it.
    public var stateRoot: String
    public var root: String
    public var runRoot: String
    public var assets: String
    /// A pod member's: its sandbox's OCI id (`container` is then the sandbox's hvc container),
    /// its name in the sandbox's VM, and its memory limit.
    public var sandbox: String?
    public var memberName: String?
    public var memoryBytes: UInt64?
}

/// The runtime spec's state of a container, as `hvc-oci state` prints it.
public struct OCIState: Encodable, Sendable {
    public var ociVersion = "1.0.2"
    public var id: String
    public var status: String
    public var pid: Int32
    public var bundle: String
    public var annotations: [String: String]
    public var created: String?
}

/// runc's verbs on OCI bundles, each container in a micro-VM of its own: the bundle's root
/// directory is shared into a clone of the bundle template (one per VM shape), and a supervisor
/// (`hvc-shim oci-init`) is the container's host process.
public struct OCIContainers: Sendable {
    public let runtime: Runtime
    /// runc's `--root`: where the records are.
    public let stateRoot: String

    public static let defaultStateRoot = "/run/hvc-oci"
    /// The image every bundle's VM boots: nothing in it is seen, the bundle's root is mounted over.
    public static let baseImage = "hvc-oci-base:1"
    static let tenant = "oci"

    public init(runtime: Runtime, stateRoot: String) {
        self.runtime = runtime
        self.stateRoot = stateRoot
    }

    func directory(_ id: String) -> String { stateRoot + "/" + id }
    func startFIFO(_ id: String) -> String { directory(id) + "/start" }

    /// runc's rule for ids: one path component of letters, digits and `_+-.`.
    static func checkID(_ id: String) throws(HVCError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
        guard !id.isEmpty, id.count <= 1024, id != ".", id != "..", id.allSatisfy({ allowed.contains($0) }) else {
            throw HVCError(.invalid, "invalid container id \"\(id)\": use letters, digits and _+-.")
        }
    }

    /// The container `id`: under this state root, or where the default root's reference to it
    /// points. Returns it with the containers of its own state root and hvc state.
    public func load(_ id: String) throws(HVCError) -> (OCIRecord, OCIContainers) {
        try OCIContainers.checkID(id)
        var roots = [stateRoot]
        if let text = try? String(contentsOfFile: OCIContainers.defaultStateRoot + "/" + id + ".ref", encoding: .utf8) {
            roots.append(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        for root in roots {
            guard let record = OCIContainers.record(in: root + "/" + id) else { continue }
            let runtime = Runtime(paths: RuntimePaths(root: record.root, runRoot: record.runRoot, assets: record.assets))
            return (record, OCIContainers(runtime: runtime, stateRoot: record.stateRoot))
        }
        throw HVCError(.notFound, "container \"\(id)\" does not exist")
    }

    /// The record in a container's state directory, if it holds one.
    static func record(in directory: String) -> OCIRecord? {
        guard let data = FileManager.default.contents(atPath: directory + "/oci.json") else { return nil }
        return try? JSONDecoder.hvc.decode(OCIRecord.self, from: data)
    }

    /// The default state root's pointer to a container kept under another root.
    func reference(_ id: String) -> String? {
        stateRoot == OCIContainers.defaultStateRoot ? nil : OCIContainers.defaultStateRoot + "/" + id + ".ref"
    }

    // MARK: create

    public struct CreateRequest: Sendable {
        public var id: String
        public var bundle: String
        public var pidFile: String?
        public var consoleSocket: String?
        /// runc's `--preserve-fds`: open files for the process beyond stdio.
        public var preservedFDs = 0
        public init(id: String, bundle: String) {
            self.id = id
            self.bundle = bundle
        }
    }

    /// Records the container, starts its supervisor (which boots the VM and waits for `start`)
    /// and writes the pid file once the VM is up.
    public func create(_ request: CreateRequest) throws(HVCError) {
        try OCIContainers.checkID(request.id)
        let bundle = URL(fileURLWithPath: request.bundle).standardizedFileURL.path
        let spec = try OCISpec.load(bundle: bundle)
        let (process, root, mounts) = try OCIContainers.contents(of: spec, bundle: bundle, request: request)
        if case .member(let sandbox) = spec.podRole(id: request.id) {
            try createMember(request, bundle: bundle, spec: spec, process: process, root: root, mounts: mounts, sandbox: sandbox)
            return
        }
        // A CPU quota over the host's CPUs is no error for runc: the VM gets what the host has.
        let host = HostCapacity.current
        var shape = try spec.vmShape()
        if spec.annotations?[OCISpec.cpusAnnotation] == nil { shape.cpus = min(shape.cpus, host.cpus) }
        try RunOptions.checkFits(cpus: shape.cpus, memoryMiB: shape.memoryMiB, host: host)
        var joined: JoinedInterface?
        if let namespace = spec.networkNamespace, !namespace.isEmpty {
            joined = try JoinedInterface.discover(namespace: namespace)
        }
        try makeDirectory(stateRoot, mode: 0o711)
        guard mkdir(directory(request.id), 0o700) == 0 else {
            if Errno.current == .exists { throw HVCError(.conflict, "container \"\(request.id)\" exists already") }
            throw HVCError("state directory \(directory(request.id)): \(Errno.current)")
        }
        var made: String?
        do throws(HVCError) {
            let image = try baseImage()
            let id = ContainerID.generate()
            let name = ContainerID.isValidName(request.id) && request.id.count <= 64 && (try? runtime.containers.resolve(request.id)) == nil
                ? request.id : ContainerID.randomName()
            var config = ContainerConfig(
                id: id, name: name, image: OCIContainers.baseImage, imageID: image.id, process: .init(process),
                hostname: spec.hostname ?? ContainerID.shortForm(id), memoryMiB: shape.memoryMiB, cpus: shape.cpus,
                pidsLimit: 256, accelerator: try runtime.chooseAccelerator(nil).accelerator, tenant: OCIContainers.tenant,
                created: Date(), autoRemove: false, logMaxBytes: RunOptions.defaultLogMaxBytes, template: nil,
                network: nil, ports: nil)
            config.rootDirectory = root
            config.readOnlyRoot = spec.root?.readonly == true ? true : nil
            config.mounts = mounts.isEmpty ? nil : mounts
            config.joinedInterface = joined
            if let limit = spec.linux?.resources?.pids?.limit, limit > 0 { config.guestPidsLimit = Int(clamping: limit) }
            if spec.annotations?[OCISpec.nestedAnnotation] == "true" {
                try runtime.checkNesting(config.accelerator)
                config.nested = true
            }
            _ = try runtime.containers.create(config)
            made = id
            guard mkfifo(startFIFO(request.id), 0o600) == 0 else { throw HVCError("start FIFO: \(Errno.current)") }
            var record = OCIRecord(id: request.id, bundle: bundle, container: id, pid: 0, created: Date(),
                                   annotations: spec.annotations ?? [:], stateRoot: stateRoot, root: runtime.paths.root,
                                   runRoot: runtime.paths.runRoot, assets: runtime.paths.assets)
            if let reference = reference(request.id) {
                try makeDirectory(OCIContainers.defaultStateRoot, mode: 0o711)
                try writeAtomically(reference, Data(stateRoot.utf8))
            }
            record.pid = try spawnInit(record, spec: spec, consoleSocket: request.consoleSocket)
            try writeAtomically(directory(request.id) + "/oci.json", try JSONEncoder.hvc.encode(record))
            try awaitCreated(record)
            if let pidFile = request.pidFile { try writeAtomically(pidFile, Data("\(record.pid)".utf8)) }
        } catch {
            if let made { runtime.containers.remove(made) }
            try? FileManager.default.removeItem(atPath: directory(request.id))
            if let reference = reference(request.id) { unlink(reference) }
            throw error
        }
    }

    /// What a bundle runs: its process (without a terminal when the caller gives no console
    /// socket), its root directory, its mounts.
    static func contents(of spec: OCISpec, bundle: String, request: CreateRequest) throws(HVCError)
        -> (process: ProcessSpec, root: String, mounts: [ContainerMount]) {
        var process = try spec.processSpec()
        guard let rootPath = spec.root?.path else { throw HVCError(.invalid, "config.json has no root.path") }
        let root = rootPath.hasPrefix("/") ? rootPath : bundle + "/" + rootPath
        var info = stat()
        guard stat(root, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw HVCError(.invalid, "the bundle's root \(root) is not a directory")
        }
        if request.consoleSocket == nil { process.terminal = false }
        guard request.preservedFDs == 0 else {
            throw HVCError(.invalid, "--preserve-fds \(request.preservedFDs): open files cannot be passed into a VM; pass the data another way")
        }
        return (process, root, try spec.containerMounts())
    }

    /// The base image, made on first use from an empty directory.
    private func baseImage() throws(HVCError) -> Image { try OCIContainers.baseImage(of: runtime) }

    static func baseImage(of runtime: Runtime) throws(HVCError) -> Image {
        if let image = try? runtime.images.resolve(OCIContainers.baseImage) { return image }
        let empty = runtime.paths.root + "/.oci-base-\(getpid())"
        try makeDirectory(empty, mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        for directory in ["proc", "sys", "dev", "run", "tmp"] { try makeDirectory(empty + "/" + directory, mode: 0o755) }
        return try runtime.images.importDirectory(empty, as: try ImageReference(name: OCIContainers.baseImage), config: ImageConfig())
    }

    /// Starts the container's supervisor with the caller's stdio (the container's), in the
    /// bundle's network namespace and cgroup (it joins them itself).
    private func spawnInit(_ record: OCIRecord, spec: OCISpec, consoleSocket: String?) throws(HVCError) -> Int32 {
        let role = Shim.Role.ociInit(container: record.container, stateDirectory: directory(record.id), consoleSocket: consoleSocket,
                                     networkNamespace: spec.networkNamespace.map { $0.isEmpty ? "new" : $0 },
                                     cgroup: spec.linux?.cgroupsPath)
        do {
            return try Shim.start(role, paths: runtime.paths, environment: Shim.supervisorEnvironment, keepsStdio: true)
        } catch {
            throw HVCError("cannot start \(Shim.path())", cause: error)
        }
    }

    /// Waits until the supervisor holds the command at the gate (the VM is up), or has ended.
    private func awaitCreated(_ record: OCIRecord) throws(HVCError) {
        guard awaitMarker("created", of: record, seconds: 180) else {
            let error = (try? runtime.containers.resolve(record.container))?.state.error
            throw HVCError("the container's VM did not come up\(error.map { ": " + $0 } ?? "")")
        }
    }

    // MARK: the container's own process (hvc-shim oci-init)

    /// Runs in the supervisor process: joins the bundle's network namespace and cgroup, boots the
    /// VM, says so, waits for `start`, then relays the command's stdio with this process's own.
    /// Returns the command's exit status (over 128 for a signal, as a shell reports it).
    public static func runInit(runtime: Runtime, stateDirectory: String, container: String, consoleSocket: String?,
                               networkNamespace: String?, cgroup: String?) throws(HVCError) -> Int32 {
        // The main thread's namespace is the process's (what /proc/<pid>/ns/net shows).
        if networkNamespace == "new" {
            guard hvc_netns_unshare() == 0 else { throw HVCError("new network namespace: \(Errno.current)") }
        } else if let networkNamespace, hvc_netns_enter(networkNamespace) != 0 {
            throw HVCError("network namespace \(networkNamespace): \(Errno.current)")
        }
        if let cgroup { joinCgroup(cgroup) }
        let record = try runtime.containers.resolve(container)
        let gate: @Sendable () -> Bool = { awaitStart(stateDirectory: stateDirectory) }
        if record.config.process.terminal, let consoleSocket { try attachConsole(consoleSocket) }
        return try ContainerManager(runtime: runtime).runHeld(record, gate: gate)
    }

    /// Says the container is created (its `created` marker), then waits at its start FIFO
    /// until `start` opens it; false when the FIFO is gone or closed without a word.
    static func awaitStart(stateDirectory: String) -> Bool {
        _ = FileManager.default.createFile(atPath: stateDirectory + "/created", contents: nil)
        let fd = open(stateDirectory + "/start", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var byte: UInt8 = 0
        return read(fd, &byte, 1) == 1
    }

    /// Lets the command held at `id`'s start FIFO go.
    func releaseStart(_ id: String) throws(HVCError) {
        let fd = open(startFIFO(id), O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw HVCError("start FIFO: \(Errno.current)") }
        var byte: UInt8 = 1
        _ = write(fd, &byte, 1)
        close(fd)
    }

    /// Waits while the container's host process lives for its state directory's `marker`.
    func awaitMarker(_ marker: String, of record: OCIRecord, seconds: Double) -> Bool {
        let path = directory(record.id) + "/" + marker
        return awaitChange(in: directory(record.id), seconds: seconds, whileAlive: [ProcessStamp(pid: record.pid, start: nil)]) {
            FileManager.default.fileExists(atPath: path)
        }
    }

    /// What `exec` hands its process's relay: the process, and its terminal's size; for a pod
    /// member, the member it runs in, or the member it starts with the gate it waits at first.
    struct ExecFile: Codable {
        var process: ContainerConfig.ProcessConfig
        var rows: UInt16
        var columns: UInt16
        var container: String?
        var member: PodMember?
        /// A member's state directory: its first process waits for `start` there.
        var gate: String?
        var cgroup: String?
    }

    /// Runs in an exec's relay process (`hvc-shim oci-exec`): starts the process in the
    /// container through its supervisor and relays its stdio (or a console-socket pty). Returns
    /// its exit status (over 128 for a signal). A pod member's first process is held until
    /// `start`, and this process is that member's own.
    public static func runExec(runtime: Runtime, execFile: String, container: String, consoleSocket: String?) throws(HVCError) -> Int32 {
        guard let data = FileManager.default.contents(atPath: execFile) else { throw HVCError("exec file \(execFile) is gone") }
        defer { unlink(execFile) }
        guard let exec = try? JSONDecoder.hvc.decode(ExecFile.self, from: data) else { throw HVCError("exec file \(execFile) is unreadable") }
        if let cgroup = exec.cgroup { joinCgroup(cgroup) }
        let manager = ContainerManager(runtime: runtime)
        let record = try runtime.containers.resolve(container)
        var spec = exec.process.spec(rows: exec.rows, columns: exec.columns)
        spec.container = exec.container ?? ""
        spec.member = exec.member
        if spec.terminal, let consoleSocket { try attachConsole(consoleSocket) }
        let channel = try manager.controlChannel(record)
        var onStarted: (() -> Void)?
        if let gate = exec.gate {
            unlink(execFile)
            guard awaitStart(stateDirectory: gate) else { throw HVCError("the container was ended before it started") }
            onStarted = { _ = FileManager.default.createFile(atPath: gate + "/started", contents: nil) }
        }
        // The caller has its terminal: `exec --detach` may return.
        unlink(execFile)
        do {
            return try ContainerManager.exec(over: channel, spec: spec, interactive: true, onStarted: onStarted)
        } catch where exec.member != nil && error.kind == .runtime {
            throw HVCError("pod container \(exec.member?.name ?? "")", cause: error)
        }
    }

    /// Moves this process into `path` of the cgroup v2 hierarchy (made if need be), as runc puts
    /// the container's process in its caller's cgroup; a caller's systemd slice form is skipped,
    /// and so is a v1 host (where `/sys/fs/cgroup` is a plain tmpfs: the VM has its own cgroups).
    static func joinCgroup(_ path: String) {
        guard path.hasPrefix("/"), case .v2(let root) = CgroupVersion.detect() else { return }
        let directory = root + path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try? "\(getpid())".write(toFile: directory + "/cgroup.procs", atomically: false, encoding: .utf8)
    }

    /// A terminal for the command: the pty's master goes to the caller over its console socket
    /// (as runc sends it), the slave becomes this process's stdio.
    static func attachConsole(_ socket: String) throws(HVCError) {
        var master: Int32 = -1, slave: Int32 = -1
        guard hvc_open_pty(&master, &slave) == 0 else { throw HVCError("pseudo-terminal: \(Errno.current)") }
        defer { close(master) }
        let connection = hvc_unix_connect(socket)
        guard connection >= 0 else { throw HVCError("console socket \(socket): \(Errno.current)") }
        defer { close(connection) }
        let name = "/dev/ptmx"
        let sent = name.withCString { text in
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: 1) { fds in
                fds[0] = master
                return hvc_send_fds(connection, text, strlen(text), fds.baseAddress, 1)
            }
        }
        guard sent >= 0 else { throw HVCError("console socket \(socket): \(Errno.current)") }
        guard dup2(slave, 0) >= 0, dup2(slave, 1) >= 0, dup2(slave, 2) >= 0 else { throw HVCError("terminal: \(Errno.current)") }
        if slave > 2 { close(slave) }
        // Its resizes then reach this process as SIGWINCH, which is relayed to the guest.
        _ = hvc_take_terminal(0)
    }

    // MARK: start, state, kill, delete

    /// Lets the command run, and returns once it runs (or has ended).
    public func start(_ id: String) throws(HVCError) {
        let (record, containers) = try load(id)
        try containers.start(record)
    }

    private func start(_ record: OCIRecord) throws(HVCError) {
        if record.sandbox != nil { return try startMember(record) }
        let id = record.id
        let container = try runtime.containers.resolve(record.container)
        guard container.state.status == .created, processIsAlive(record.pid) else {
            throw HVCError(.conflict, "container \"\(id)\" is not created: it cannot start")
        }
        try releaseStart(id)
        if let watch = try? ContainerWatch.of(runtime.containers) {
            _ = watch.wait(for: record.container, seconds: 60) { $0?.state.status != .created }
        }
    }

    public func state(_ id: String) throws(HVCError) -> OCIState {
        let (record, containers) = try load(id)
        return containers.state(record)
    }

    func state(_ record: OCIRecord) -> OCIState {
        if record.sandbox != nil { return memberState(record) }
        let container = try? runtime.containers.resolve(record.container)
        let alive = processIsAlive(record.pid)
        let status: String = switch container?.state.status {
        case .created? where alive: "created"
        case .running? where alive: isFrozen(record) ? "paused" : "running"
        default: "stopped"
        }
        return OCIContainers.ociState(record, status: status)
    }

    /// The runtime spec's state of `record` in `status`: its pid while it is not stopped.
    static func ociState(_ record: OCIRecord, status: String) -> OCIState {
        OCIState(id: record.id, status: status, pid: status == "stopped" ? 0 : record.pid, bundle: record.bundle,
                 annotations: record.annotations,
                 created: record.created.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
    }

    /// Signals the container's command. With `all` (runc's `kill --all`, which containerd
    /// sends after a command has exited), a container with nothing left running is no error.
    public func kill(_ id: String, signal: Int32, all: Bool = false) throws(HVCError) {
        let (record, containers) = try load(id)
        if all, containers.state(record).status == "stopped" { return }
        try containers.kill(record, signal: signal)
    }

    private func kill(_ record: OCIRecord, signal: Int32) throws(HVCError) {
        if record.sandbox != nil { return try killMember(record, signal: signal) }
        let id = record.id
        let state = state(record)
        switch state.status {
        case "paused" where signal == SIGKILL:
            // A frozen guest takes no signal: the VM ends with its supervisor.
            Glibc.kill(record.pid, SIGKILL)
        case "running", "paused":
            try ContainerManager(runtime: runtime).kill(record.container, signal: signal)
        case "created":
            // No command yet: the container ends with its supervisor.
            Glibc.kill(record.pid, SIGKILL)
        default:
            throw HVCError(.conflict, "cannot signal container \"\(id)\": container not running")
        }
    }

    /// Deletes the container; with `force`, a container that is not there (an aborted create,
    /// a second cleanup) is no error, as with runc.
    public func delete(_ id: String, force: Bool) throws(HVCError) {
        let record: OCIRecord, containers: OCIContainers
        do {
            (record, containers) = try load(id)
        } catch where error.kind == .notFound && force {
            try? FileManager.default.removeItem(atPath: directory(id))
            return
        }
        try containers.delete(record, force: force)
    }

    private func delete(_ record: OCIRecord, force: Bool) throws(HVCError) {
        if record.sandbox != nil { return try deleteMember(record, force: force) }
        let id = record.id
        let state = state(record)
        if (state.status == "running" || state.status == "paused") && !force {
            throw HVCError(.conflict, "container \"\(id)\" is \(state.status): stop it first, or delete --force")
        }
        endMembers(of: record)
        if state.status != "stopped" { Glibc.kill(record.pid, SIGKILL) }
        _ = ProcessStamp(pid: record.pid, start: nil).awaitEnd(seconds: 10)
        try? ContainerManager(runtime: runtime).remove(record.container, force: true)
        try? FileManager.default.removeItem(atPath: directory(id))
        unlink(OCIContainers.defaultStateRoot + "/" + id + ".ref")
    }

    // MARK: exec, ps, pause, resume, update

    public struct ExecRequest: Sendable {
        public var id: String
        /// `--process`: a JSON file of the process; else `arguments` with the container's defaults.
        public var processFile: String?
        public var arguments: [String] = []
        public var environment: [String] = []
        public var workingDirectory: String?
        public var user: String?
        public var tty = false
        public var detach = false
        public var pidFile: String?
        public var consoleSocket: String?
        public init(id: String) { self.id = id }
    }

    /// Starts a process in a running container. Its host process (what `--pid-file` names)
    /// relays its stdio and exits as it does; with `detach` this returns once that process is
    /// started, else when it ends, with its status.
    public func exec(_ request: ExecRequest) throws(HVCError) -> Int32 {
        let (record, containers) = try load(request.id)
        return try containers.exec(record, request)
    }

    private func exec(_ record: OCIRecord, _ request: ExecRequest) throws(HVCError) -> Int32 {
        let status = state(record).status
        guard status == "running" else {
            throw HVCError(.conflict, "container \"\(record.id)\" is \(status): exec needs a running container")
        }
        let container = try runtime.containers.resolve(record.container)
        var spec: ProcessSpec
        if let file = request.processFile {
            spec = try OCISpec.Process.load(file).spec()
        } else {
            guard !request.arguments.isEmpty else { throw HVCError(.invalid, "exec: give the command to run, or --process FILE") }
            spec = ContainerManager.execSpec(container, arguments: request.arguments, environment: request.environment,
                                             workingDirectory: request.workingDirectory, user: request.user, terminal: request.tty)
        }
        if request.consoleSocket == nil { spec.terminal = false }
        let file = directory(record.id) + "/exec-\(UInt64.random(in: 0...UInt64.max)).json"
        try writeAtomically(file, try JSONEncoder.hvc.encode(ExecFile(process: .init(spec), rows: spec.rows, columns: spec.columns,
                                                                  container: record.memberName)))
        let role = Shim.Role.ociExec(container: record.container, execFile: file, consoleSocket: request.consoleSocket)
        let pid: Int32
        do {
            // Without --detach, this process waits for the relay's status itself.
            pid = try Shim.start(role, paths: runtime.paths, environment: Shim.supervisorEnvironment, keepsStdio: true,
                                 reaps: request.detach)
        } catch {
            unlink(file)
            throw HVCError("cannot start \(Shim.path())", cause: error)
        }
        if let pidFile = request.pidFile { try writeAtomically(pidFile, Data("\(pid)".utf8)) }
        if request.detach {
            // Back once the relay has the process in hand (and has sent its terminal: callers
            // such as conmon expect it by the time this returns).
            _ = awaitChange(in: (file as NSString).deletingLastPathComponent, seconds: 60,
                            whileAlive: [ProcessStamp(pid: pid, start: nil)]) { !FileManager.default.fileExists(atPath: file) }
            return 0
        }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 {
            guard Errno.current == .interrupted else { return 125 }
        }
        return ExitStatus(waitStatus: raw).code
    }

    /// The container's host processes: its supervisor (the guest's processes are the guest's).
    public func processes(_ id: String) throws(HVCError) -> [Int32] {
        let (record, containers) = try load(id)
        return containers.state(record).status == "stopped" ? [] : [record.pid]
    }

    /// The container's VMM, while it runs.
    private func vmm(_ record: OCIRecord) -> Int32? {
        guard let pid = (try? runtime.containers.resolve(record.container))?.state.vmmPID, pid > 0 else { return nil }
        return pid
    }

    /// Whether the VMM is stopped (`pause`): the state letter of `/proc/<pid>/stat`.
    private func isFrozen(_ record: OCIRecord) -> Bool {
        guard let pid = vmm(record), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[close...].dropFirst().trimmingCharacters(in: .whitespaces).hasPrefix("T")
    }

    /// Pauses the whole VM, guest and devices, by stopping its VMM (SIGSTOP: the same on
    /// cgroup v1 and v2 hosts), or lets it go on.
    public func pause(_ id: String, frozen: Bool) throws(HVCError) {
        let (record, containers) = try load(id)
        try containers.pause(record, frozen: frozen)
    }

    private func pause(_ record: OCIRecord, frozen: Bool) throws(HVCError) {
        if record.sandbox != nil {
            throw HVCError(.invalid, "container \"\(record.id)\" is one of pod \(record.sandbox ?? ""): pause the pod's sandbox, which pauses its VM")
        }
        let status = state(record).status
        guard status == (frozen ? "running" : "paused") else {
            throw HVCError(.conflict, "container \"\(record.id)\" is \(status): \(frozen ? "only a running container pauses" : "only a paused container resumes")")
        }
        guard let pid = vmm(record), Glibc.kill(pid, frozen ? SIGSTOP : SIGCONT) == 0 else {
            throw HVCError("container \"\(record.id)\": its VM is gone")
        }
        let deadline = Date().addingTimeInterval(10)
        while isFrozen(record) != frozen, Date() < deadline { usleep(1_000) }
    }

    /// Applies a resources file (the spec's `linux.resources`; "-" for stdin) to the running VM:
    /// CPU quota and pids to its cgroup. The VM's memory is fixed at create: a memory limit
    /// below it is refused.
    public func update(_ id: String, resourcesFile: String) throws(HVCError) {
        let (record, containers) = try load(id)
        try containers.update(record, resourcesFile: resourcesFile)
    }

    private func update(_ record: OCIRecord, resourcesFile: String) throws(HVCError) {
        if record.sandbox != nil {
            throw HVCError(.invalid, "container \"\(record.id)\" is one of pod \(record.sandbox ?? ""): its limits are fixed when it is created")
        }
        let data = resourcesFile == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: resourcesFile)
        guard let data, data.count <= 1 << 20, let resources = try? JSONDecoder().decode(OCISpec.Resources.self, from: data) else {
            throw HVCError(.invalid, "update: \(resourcesFile) is not an OCI resources JSON file")
        }
        guard state(record).status != "stopped" else { throw HVCError(.conflict, "container \"\(record.id)\" is stopped") }
        let container = try runtime.containers.resolve(record.container)
        if let limit = resources.memory?.limit, limit > 0, limit < Int64(container.config.memoryMiB) << 20 {
            throw HVCError(.invalid, "memory limit \(limit >> 20) MiB is below the VM's \(container.config.memoryMiB) MiB, which is fixed when the container is created")
        }
        let cpu = resources.cpu.flatMap { cpu in cpu.quota.map { (quota: $0 > 0 ? Optional($0) : nil, period: cpu.period ?? 100_000) } }
        // The VMM's threads count too: the limit never goes below what the VM started with.
        let pids = resources.pids?.limit.flatMap { $0 > 0 ? max($0, Int64(container.config.pidsLimit)) : nil }
        // A pooled VM stays in the cgroup it was started in, named after its pool member.
        let named = VMDirectory(path: VMDirectory.path(in: runtime.paths.vms, id: container.id)).recordedCgroup()
        let cgroup = VMCgroup(version: CgroupVersion.detect(), tenant: named?.tenant ?? container.config.tenant,
                              vm: named?.vm ?? String(container.id.prefix(16)))
        do {
            try cgroup.update(cpu: cpu, pids: pids)
        } catch {
            throw HVCError("update", cause: error)
        }
    }
}
