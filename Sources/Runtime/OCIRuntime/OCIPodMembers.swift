import AgentProtocol
import Foundation
import HVCSystem

/// A pod's containers after its sandbox: each runs in the sandbox's VM as a container of its
/// own (`PodMember`): its bundle's root and folders are shared into that VM, and its host
/// process (what `--pid-file` names, as containerd's shim and conmon need one per container) is
/// an `hvc-shim oci-exec` relay that holds its first process until `start`, then ends as it does.
extension OCIContainers {
    /// The entries of a member's folders in its VM's shared directory begin with this; `+` is in
    /// no member's name, so no member's prefix begins another's.
    static func sharePrefix(_ memberName: String) -> String { memberName + "+" }

    func createMember(_ request: CreateRequest, bundle: String, spec: OCISpec, process: ProcessSpec, root: String,
                      mounts: [ContainerMount], sandbox sandboxID: String) throws(HVCError) {
        let pod: OCIRecord, podContainers: OCIContainers
        do {
            (pod, podContainers) = try load(sandboxID)
        } catch where error.kind == .notFound {
            throw HVCError(.notFound, "pod sandbox \"\(sandboxID)\" does not exist: create the pod's sandbox before its containers")
        }
        guard pod.sandbox == nil else {
            throw HVCError(.invalid, "\"\(sandboxID)\" is a container of pod \(pod.sandbox ?? ""), not a pod's sandbox")
        }
        let podStatus = podContainers.state(pod).status
        guard podStatus == "running" else {
            throw HVCError(.conflict, "pod sandbox \"\(sandboxID)\" is \(podStatus): a pod's containers need its sandbox running")
        }
        let vm = try runtime.containers.resolve(pod.container)
        guard let vmmPID = vm.state.vmmPID, vmmPID > 0 else { throw HVCError(.conflict, "pod sandbox \"\(sandboxID)\" has no VM running") }
        let limit = spec.memoryLimitBytes
        if let limit {
            let others = podContainers.members(of: sandboxID)
                .filter { $0.id != request.id && podContainers.memberState($0).status != "stopped" }
                .reduce(UInt64(0)) { $0 + ($1.memoryBytes ?? 0) }
            let podBytes = UInt64(vm.config.memoryMiB) << 20
            let overhead = UInt64(OCISpec.podOverheadMiB) << 20
            guard limit + others + overhead <= podBytes else {
                throw HVCError(.invalid, "container \"\(request.id)\" asks for \(limit >> 20) MiB of memory, but pod \(sandboxID)'s VM has \(vm.config.memoryMiB) MiB: \(others >> 20) MiB for its other containers and \(OCISpec.podOverheadMiB) MiB for its guest; give the sandbox more (annotation \(OCISpec.memoryAnnotation)) or the container less")
            }
        }
        try makeDirectory(stateRoot, mode: 0o711)
        guard mkdir(directory(request.id), 0o700) == 0 else {
            if Errno.current == .exists { throw HVCError(.conflict, "container \"\(request.id)\" exists already") }
            throw HVCError("state directory \(directory(request.id)): \(Errno.current)")
        }
        let name = PodMember.isValidName(request.id) ? request.id : "m-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let prefix = OCIContainers.sharePrefix(name)
        let vmDirectory = VMDirectory(path: VMDirectory.path(in: runtime.paths.vms, id: vm.id))
        var relay: Int32?
        do throws(HVCError) {
            let guestMounts = try SharedFolders.share(mounts, root: root, prefix: prefix, tenant: vm.config.tenant, runtime: runtime,
                                                      vmmPID: vmmPID, directory: vmDirectory)
            var member = PodMember(name: name, rootShare: prefix + SharedFolders.rootEntry, readOnlyRoot: spec.root?.readonly == true,
                                   mounts: guestMounts, memoryBytes: limit ?? 0)
            if let pids = spec.linux?.resources?.pids?.limit, pids > 0 { member.pidsLimit = UInt32(clamping: pids) }
            if let quota = spec.linux?.resources?.cpu?.quota, quota > 0 {
                let period = max(1, spec.linux?.resources?.cpu?.period ?? 100_000)
                member.cpuQuotaMicroseconds = UInt32(clamping: max(1000, UInt64(quota) * 100_000 / period))
            }
            guard mkfifo(startFIFO(request.id), 0o600) == 0 else { throw HVCError("start FIFO: \(Errno.current)") }
            var record = OCIRecord(id: request.id, bundle: bundle, container: pod.container, pid: 0, created: Date(),
                                   annotations: spec.annotations ?? [:], stateRoot: stateRoot, root: runtime.paths.root,
                                   runRoot: runtime.paths.runRoot, assets: runtime.paths.assets)
            record.sandbox = sandboxID
            record.memberName = name
            record.memoryBytes = limit
            if let reference = reference(request.id) {
                try makeDirectory(OCIContainers.defaultStateRoot, mode: 0o711)
                try writeAtomically(reference, Data(stateRoot.utf8))
            }
            let file = directory(request.id) + "/member.json"
            try writeAtomically(file, try JSONEncoder.hvc.encode(ExecFile(
                process: .init(process), rows: process.rows, columns: process.columns, member: member,
                gate: directory(request.id), cgroup: spec.linux?.cgroupsPath)))
            let role = Shim.Role.ociExec(container: pod.container, execFile: file, consoleSocket: request.consoleSocket)
            do {
                record.pid = try Shim.start(role, paths: runtime.paths, environment: Shim.supervisorEnvironment, keepsStdio: true)
            } catch {
                throw HVCError("cannot start \(Shim.path())", cause: error)
            }
            relay = record.pid
            try writeAtomically(directory(request.id) + "/oci.json", try JSONEncoder.hvc.encode(record))
            guard awaitMarker("created", of: record, seconds: 60) else {
                throw HVCError("container \"\(request.id)\" could not join pod \(sandboxID): its sandbox's VM is gone")
            }
            if let pidFile = request.pidFile { try writeAtomically(pidFile, Data("\(record.pid)".utf8)) }
        } catch {
            if let relay {
                Glibc.kill(relay, SIGKILL)
                _ = ProcessStamp(pid: relay, start: nil).awaitEnd(seconds: 10)
            }
            SharedFolders.unshare(prefix: prefix, vmmPID: vmmPID, directory: vmDirectory)
            try? FileManager.default.removeItem(atPath: directory(request.id))
            if let reference = reference(request.id) { unlink(reference) }
            throw error
        }
    }

    /// The records of the containers of pod `sandboxID` under this state root.
    func members(of sandboxID: String) -> [OCIRecord] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: stateRoot)) ?? []
        return names.compactMap { OCIContainers.record(in: stateRoot + "/" + $0) }.filter { $0.sandbox == sandboxID }
    }

    /// A member is created while its relay waits at the gate, running once the guest started
    /// its first process, stopped once the relay has ended.
    func memberState(_ record: OCIRecord) -> OCIState {
        let status: String
        if !processIsAlive(record.pid) {
            status = "stopped"
        } else {
            status = FileManager.default.fileExists(atPath: directory(record.id) + "/started") ? "running" : "created"
        }
        return OCIContainers.ociState(record, status: status)
    }

    func startMember(_ record: OCIRecord) throws(HVCError) {
        guard memberState(record).status == "created" else {
            throw HVCError(.conflict, "container \"\(record.id)\" is not created: it cannot start")
        }
        try releaseStart(record.id)
        guard awaitMarker("started", of: record, seconds: 60) else {
            throw HVCError("container \"\(record.id)\" did not start in pod \(record.sandbox ?? "")")
        }
    }

    /// Signals reach the member's first process through its relay, which forwards the usual
    /// ones; SIGKILL ends the relay, and the guest ends the member when its relay is gone.
    func killMember(_ record: OCIRecord, signal: Int32) throws(HVCError) {
        let status = memberState(record).status
        guard status != "stopped" else { throw HVCError(.conflict, "cannot signal container \"\(record.id)\": container not running") }
        if status == "created" || signal == SIGKILL {
            Glibc.kill(record.pid, SIGKILL)
            return
        }
        guard StdioSession.forwardedSignals.contains(signal) else {
            throw HVCError(.invalid, "signal \(signal) cannot reach a pod's container: send TERM, INT, HUP, QUIT, USR1, USR2 or KILL")
        }
        Glibc.kill(record.pid, signal)
    }

    func deleteMember(_ record: OCIRecord, force: Bool) throws(HVCError) {
        let status = memberState(record).status
        if status == "running" && !force {
            throw HVCError(.conflict, "container \"\(record.id)\" is running: stop it first, or delete --force")
        }
        if status != "stopped" { Glibc.kill(record.pid, SIGKILL) }
        _ = ProcessStamp(pid: record.pid, start: nil).awaitEnd(seconds: 10)
        if let name = record.memberName {
            let vm = try? runtime.containers.resolve(record.container)
            let vmmPID = vm?.state.status == .running ? vm?.state.vmmPID : nil
            SharedFolders.unshare(prefix: OCIContainers.sharePrefix(name), vmmPID: vmmPID,
                                  directory: VMDirectory(path: VMDirectory.path(in: runtime.paths.vms, id: record.container)))
        }
        try? FileManager.default.removeItem(atPath: directory(record.id))
        unlink(OCIContainers.defaultStateRoot + "/" + record.id + ".ref")
    }

    /// Ends the relays of a sandbox's members before its VM goes (their records stay, stopped,
    /// for their own `delete`).
    func endMembers(of sandbox: OCIRecord) {
        for member in members(of: sandbox.id) where processIsAlive(member.pid) {
            Glibc.kill(member.pid, SIGKILL)
            _ = ProcessStamp(pid: member.pid, start: nil).awaitEnd(seconds: 10)
        }
    }
}
