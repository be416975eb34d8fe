import AgentProtocol
import CLinux
import Foundation
import HVCSystem
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
/// (`hvc-shim --oci-init`) is the container's host process.
public struct OCIContainers: Sendable {
    public let runtime: Runtime
    /// runc's `--root`: where the records are.
    public let stateRoot: String

    public static let defaultStateRoot = "/run/hvc-oci"
    /// The image every bundle's VM boots: nothing in it is seen, the bundle's root is mounted over.
    static let baseImage = "hvc-oci-base:1"
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
            guard let data = FileManager.default.contents(atPath: root + "/" + id + "/oci.json"),
                  let record = try? JSONDecoder.hvc.decode(OCIRecord.self, from: data) else { continue }
            let runtime = Runtime(paths: RuntimePaths(root: record.root, runRoot: record.runRoot, assets: record.assets))
            return (record, OCIContainers(runtime: runtime, stateRoot: record.stateRoot))
        }
        throw HVCError(.notFound, "container \"\(id)\" does not exist")
    }

    /// The default state root's pointer to a container kept under another root.
    private func reference(_ id: String) -> String? {
        stateRoot == OCIContainers.defaultStateRoot ? nil : OCIContainers.defaultStateRoot + "/" + id + ".ref"
    }

    // MARK: create

    public struct CreateRequest: Sendable {
        public var id: String
        public var bundle: String
        public var pidFile: String?
        public var consoleSocket: String?
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
        var process = try spec.processSpec()
        guard let rootPath = spec.root?.path else { throw HVCError(.invalid, "config.json has no root.path") }
        let root = rootPath.hasPrefix("/") ? rootPath : bundle + "/" + rootPath
        var info = stat()
        guard stat(root, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw HVCError(.invalid, "the bundle's root \(root) is not a directory")
        }
        if request.consoleSocket == nil { process.terminal = false }
        let mounts = try spec.containerMounts()
        try makeDirectory(stateRoot, mode: 0o711)
        guard mkdir(directory(request.id), 0o700) == 0 else {
            if errno == EEXIST { throw HVCError(.conflict, "container \"\(request.id)\" exists already") }
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
                hostname: spec.hostname ?? ContainerID.shortForm(id), memoryMiB: spec.memoryMiB, cpus: spec.cpus,
                pidsLimit: 256, accelerator: try runtime.chooseAccelerator(nil).accelerator, tenant: OCIContainers.tenant,
                created: Date(), autoRemove: false, logMaxBytes: RunOptions.defaultLogMaxBytes, template: nil,
                network: nil, ports: nil)
            config.rootDirectory = root
            config.readOnlyRoot = spec.root?.readonly == true ? true : nil
            config.mounts = mounts.isEmpty ? nil : mounts
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
            try writeAtomically(directory(request.id) + "/oci.json", try JSONEncoder.hvc.encode(record))
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

    /// The base image, made on first use from an empty directory.
    private func baseImage() throws(HVCError) -> Image {
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
        let shim = Shim.path()
        var argv = [shim, "--root", runtime.paths.root, "--run-root", runtime.paths.runRoot, "--assets", runtime.paths.assets,
                    "--oci-init", directory(record.id)]
        if let consoleSocket { argv += ["--console-socket", consoleSocket] }
        if let path = spec.networkNamespace { argv += ["--netns", path.isEmpty ? "new" : path] }
        if let cgroup = spec.linux?.cgroupsPath { argv += ["--cgroup", cgroup] }
        argv.append(record.container)
        let environment = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }.filter { !$0.hasPrefix("HVC_TIMING=") }
        var result = hvc_spawn_result()
        let status = withCStringArray(argv) { cArgv in withCStringArray(environment) { hvc_spawn_inheriting_stdio(shim, cArgv, $0, &result) } }
        guard status == 0, result.stage == 0 else {
            throw HVCError("cannot start \(shim): \(Errno(rawValue: result.error != 0 ? result.error : errno))")
        }
        return result.pid
    }

    /// Waits until the supervisor holds the command at the gate (the VM is up), or has ended.
    private func awaitCreated(_ record: OCIRecord) throws(HVCError) {
        let marker = directory(record.id) + "/created"
        let deadline = Date().addingTimeInterval(180)
        while !FileManager.default.fileExists(atPath: marker) {
            var status: Int32 = 0
            if waitpid(record.pid, &status, WNOHANG) == record.pid || Date() > deadline {
                let error = (try? runtime.containers.resolve(record.container))?.state.error
                throw HVCError("the container's VM did not come up\(error.map { ": " + $0 } ?? "")")
            }
            usleep(5_000)
        }
    }

    // MARK: the container's own process (hvc-shim --oci-init)

    /// Runs in the supervisor process: joins the bundle's network namespace and cgroup, boots the
    /// VM, says so, waits for `start`, then relays the command's stdio with this process's own and
    /// exits as the command did (by the same signal, or with its code).
    public static func runInit(runtime: Runtime, stateDirectory: String, container: String, consoleSocket: String?,
                               networkNamespace: String?, cgroup: String?) -> Never {
        do throws(HVCError) {
            // The main thread's namespace is the process's (what /proc/<pid>/ns/net shows).
            if networkNamespace == "new" {
                guard hvc_netns_unshare() == 0 else { throw HVCError("new network namespace: \(Errno.current)") }
            } else if let networkNamespace, hvc_netns_enter(networkNamespace) != 0 {
                throw HVCError("network namespace \(networkNamespace): \(Errno.current)")
            }
            if let cgroup { joinCgroup(cgroup) }
            let record = try runtime.containers.resolve(container)
            let fifo = stateDirectory + "/start"
            let marker = stateDirectory + "/created"
            let gate: @Sendable () -> Bool = {
                FileManager.default.createFile(atPath: marker, contents: nil)
                let fd = open(fifo, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { return false }
                defer { close(fd) }
                var byte: UInt8 = 0
                return read(fd, &byte, 1) == 1
            }
            if record.config.process.terminal, let consoleSocket { try attachConsole(consoleSocket) }
            let code = try ContainerManager(runtime: runtime).runHeld(record, gate: gate)
            if code > 128, code - 128 <= 64 {
                signal(code - 128, SIG_DFL)
                var all = sigset_t()
                sigfillset(&all)
                pthread_sigmask(SIG_UNBLOCK, &all, nil)
                Glibc.kill(getpid(), code - 128)
            }
            exit(code)
        } catch {
            FileHandle.standardError.write(Data("hvc-oci: \(error.message)\n".utf8))
            exit(125)
        }
    }

    /// Moves this process into `path` of the cgroup v2 hierarchy (made if need be), as runc puts
    /// the container's process in its caller's cgroup; a caller's systemd slice form is skipped.
    static func joinCgroup(_ path: String) {
        guard path.hasPrefix("/") else { return }
        let directory = "/sys/fs/cgroup" + path
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
    }

    // MARK: start, state, kill, delete

    /// Lets the command run, and returns once it runs (or has ended).
    public func start(_ id: String) throws(HVCError) {
        let (record, containers) = try load(id)
        try containers.start(record)
    }

    private func start(_ record: OCIRecord) throws(HVCError) {
        let id = record.id
        let container = try runtime.containers.resolve(record.container)
        guard container.state.status == .created, processIsAlive(record.pid) else {
            throw HVCError(.conflict, "container \"\(id)\" is not created: it cannot start")
        }
        let fd = open(startFIFO(id), O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw HVCError("start FIFO: \(Errno.current)") }
        var byte: UInt8 = 1
        _ = write(fd, &byte, 1)
        close(fd)
        let deadline = Date().addingTimeInterval(60)
        while let now = try? runtime.containers.resolve(record.container), now.state.status == .created, Date() < deadline {
            usleep(2_000)
        }
    }

    public func state(_ id: String) throws(HVCError) -> OCIState {
        let (record, containers) = try load(id)
        return containers.state(record)
    }

    private func state(_ record: OCIRecord) -> OCIState {
        let id = record.id
        let container = try? runtime.containers.resolve(record.container)
        let alive = processIsAlive(record.pid)
        let status: String = switch container?.state.status {
        case .created? where alive: "created"
        case .running? where alive: "running"
        default: "stopped"
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return OCIState(id: id, status: status, pid: status == "stopped" ? 0 : record.pid, bundle: record.bundle,
                        annotations: record.annotations, created: formatter.string(from: record.created))
    }

    public func kill(_ id: String, signal: Int32) throws(HVCError) {
        let (record, containers) = try load(id)
        try containers.kill(record, signal: signal)
    }

    private func kill(_ record: OCIRecord, signal: Int32) throws(HVCError) {
        let id = record.id
        let state = state(record)
        switch state.status {
        case "running":
            try ContainerManager(runtime: runtime).kill(record.container, signal: signal)
        case "created":
            // No command yet: the container ends with its supervisor.
            Glibc.kill(record.pid, SIGKILL)
        default:
            throw HVCError(.conflict, "container \"\(id)\" is not running")
        }
    }

    public func delete(_ id: String, force: Bool) throws(HVCError) {
        let (record, containers) = try load(id)
        try containers.delete(record, force: force)
    }

    private func delete(_ record: OCIRecord, force: Bool) throws(HVCError) {
        let id = record.id
        let state = state(record)
        if state.status == "running" && !force {
            throw HVCError(.conflict, "container \"\(id)\" is running: stop it first, or delete --force")
        }
        if state.status != "stopped" { Glibc.kill(record.pid, SIGKILL) }
        let deadline = Date().addingTimeInterval(10)
        while processIsAlive(record.pid) && Date() < deadline { usleep(10_000) }
        try? ContainerManager(runtime: runtime).remove(record.container, force: true)
        try? FileManager.default.removeItem(atPath: directory(id))
        unlink(OCIContainers.defaultStateRoot + "/" + id + ".ref")
    }
}
