import CLinux
import Foundation
import HVCSystem
import Jail
import VMM

/// The host-side confinement of one VMM: its own uid, a cgroup with its limits, a jail
/// directory holding only the VM's files, and the seccomp policy. `release` gives the uid and
/// cgroup back; the jail directory goes with its `VMDirectory`.
final class VMConfinement: @unchecked Sendable {
    // @unchecked: set once in `make`; `release` is called once, by the owner.
    private(set) var plan: JailPlan!
    private var cgroup: VMCgroup?
    private var identity: (pool: IdentityPool, uid: UInt32)?
    /// The VM's network namespace on the host (a bind mount), when it has a network interface.
    private(set) var networkNamespace: String?
    private var networkNamespaceFD: FileDescriptor?
    /// The VM's TAP device in that namespace, passed to the VMM.
    private(set) var tap: FileDescriptor?

    struct Request {
        var owner: String
        var tenant: String
        var shape: VMShape
        var pidsLimit: Int
        /// A clone boots no kernel: its jail holds no kernel or initramfs.
        var bootsKernel = true
        /// The VM serves host folders to its guest (see `fileServerCapabilities`).
        var servesFolders = false
        /// A caller's interface that the NIC takes over: the TAP device is made in its
        /// namespace, and the VMM gets an empty namespace of its own.
        var joinedInterface: JoinedInterface?
    }

    private init() {}

    /// What QEMU's 9P server needs to act for the guest's users on shared files (passthrough):
    /// give a new file its writer's owner (CHOWN), reach files of any owner and mode (DAC_OVERRIDE),
    /// set modes and times on them (FOWNER), keep set-group-ID directories' gid (FSETID). No MKNOD,
    /// no SYS_ADMIN; the jail holds nothing else these could reach, its /proc only its own process,
    /// and the seccomp policy refuses set-ID modes and device nodes.
    /// The host's page cache of what the 9P server writes is charged to the VMM: room for it, so
    /// that a guest whose own page cache fills its RAM (a block volume) and then flushes is not
    /// stopped by the host's OOM killer while that cache is dirty.
    static let fileServerCacheMiB = 64

    static let fileServerCapabilities: [Int32] = [0 /* CHOWN */, 1 /* DAC_OVERRIDE */, 3 /* FOWNER */, 4 /* FSETID */]

    static func make(_ request: Request, directory: VMDirectory, runtime: Runtime) throws(HVCError) -> VMConfinement {
        let confinement = VMConfinement()
        do {
            try confinement.build(request, directory: directory, runtime: runtime)
        } catch {
            confinement.release()
            throw error
        }
        return confinement
    }

    private func build(_ request: Request, directory: VMDirectory, runtime: Runtime) throws(HVCError) {
        do {
            let policy = try SeccompPolicy.load(path: runtime.paths.seccompPolicy)
            let rules = try policy.compile(isKnownSyscall: seccompKnowsSyscall)
            var range = IdentityPool.defaultRange
            if let text = ProcessInfo.processInfo.environment["HVC_UID_RANGE"], !text.isEmpty {
                range = try IdentityPool.parseRange(text)
            }
            let pool = IdentityPool(directory: runtime.paths.identities, range: range)
            let uid = try pool.claim(owner: request.owner)
            identity = (pool, uid)
            let usr = runtime.vmmUsr
            try usr.prepare()
            var mounts = JailPlan.hostMounts(usr: usr.path)
            if request.bootsKernel {
                mounts += [
                    JailPlan.Mount(source: runtime.paths.kernel, target: VMDirectory.Jailed.kernel),
                    JailPlan.Mount(source: runtime.paths.initramfs, target: VMDirectory.Jailed.initramfs),
                ]
            }
            mounts.append(JailPlan.Mount(source: request.shape.image.rootfsPath, target: VMDirectory.Jailed.rootDisk))
            try makeDirectory(directory.shares, mode: 0o755)
            mounts.append(JailPlan.Mount(source: directory.shares, target: VMDirectory.Jailed.shares))
            var extraGroup: UInt32 = 0
            if request.shape.accelerator == .kvm {
                mounts.append(JailPlan.Mount(source: "/dev/kvm", target: VMDirectory.Jailed.kvm, writable: true, device: true))
                var info = stat()
                if stat("/dev/kvm", &info) == 0 { extraGroup = info.st_gid }
            }
            let version = CgroupVersion.detect()
            if version != .unavailable {
                let vmCgroup = VMCgroup(version: version, tenant: request.tenant, vm: String(request.owner.prefix(16)))
                cgroup = vmCgroup
                try directory.recordCgroups(vmCgroup.directories)
                try vmCgroup.create(CgroupLimits(
                    memoryBytes: Int64(request.shape.memoryMiB + QEMUCommandLine.overheadMiB
                        + (request.servesFolders ? VMConfinement.fileServerCacheMiB : 0)) << 20,
                    cpus: request.shape.cpus, pids: request.pidsLimit))
            }
            var plan = JailPlan(root: directory.jailRoot, mounts: mounts, cgroup: cgroup, uid: uid, gid: uid, rules: rules)
            plan.seccompDefaultError = try policy.defaultError()
            plan.extraGroup = extraGroup
            if request.servesFolders {
                plan.keptCapabilities = VMConfinement.fileServerCapabilities
                // Files in shared folders may be of any size; the jail's own files are bounded
                // by its tmpfs instead.
                plan.maxFileSize = UInt64.max
            }
            if request.shape.networkInterface, let joined = request.joinedInterface {
                let fd = hvc_tap_open(joined.namespace, JoinedInterface.tap, Int32(joined.mtu))
                guard fd >= 0 else { throw HVCError("TAP device in \(joined.namespace): \(Errno.current)") }
                tap = FileDescriptor(fd)
            } else if request.shape.networkInterface {
                plan.networkNamespaceFD = try makeNetworkMemberspace(owner: request.owner, directory: directory, runtime: runtime)
            }
            try plan.prepareRoot()
            self.plan = plan
        } catch let error as HVCError {
            throw error
        } catch {
            throw HVCError(cause: error)
        }
    }

    /// A network namespace of the VM's own with its TAP device: the VMM lives in it, and a
    /// container's network attaches to it. Recorded first, so that a sweep finds it.
    private func makeNetworkMemberspace(owner: String, directory: VMDirectory, runtime: Runtime) throws(HVCError) -> Int32 {
        let parent = runtime.paths.runRoot + "/netns"
        try makeDirectory(parent, mode: 0o700)
        let path = parent + "/" + owner.prefix(16)
        try directory.recordNetworkMemberspace(path)
        guard hvc_netns_create(path) == 0 else { throw HVCError("network namespace \(path): \(Errno.current)") }
        networkNamespace = path
        do {
            networkNamespaceFD = try FileDescriptor.open(path, O_RDONLY)
        } catch {
            throw HVCError("network namespace \(path)", cause: error)
        }
        let fd = hvc_tap_open(path, NetworkAttachment.tap, Int32(HostNetwork.mtu))
        guard fd >= 0 else { throw HVCError("TAP device in \(path): \(Errno.current)") }
        tap = FileDescriptor(fd)
        return networkNamespaceFD!.raw
    }

    func release() {
        tap?.close()
        tap = nil
        networkNamespaceFD?.close()
        networkNamespaceFD = nil
        if let networkNamespace { hvc_netns_remove(networkNamespace) }
        networkNamespace = nil
        cgroup?.remove()
        cgroup = nil
        if let identity { identity.pool.release(identity.uid) }
        identity = nil
    }
}
