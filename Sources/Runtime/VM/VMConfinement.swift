import Foundation
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

    struct Request {
        var owner: String
        var tenant: String
        var shape: VMShape
        var pidsLimit: Int
        /// A clone boots no kernel: its jail holds no kernel or initramfs.
        var bootsKernel = true
    }

    private init() {}

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
            let rules = try SeccompPolicy.load(path: runtime.paths.seccompPolicy).compile(isKnownSyscall: seccompKnowsSyscall)
            var range = IdentityPool.defaultRange
            if let text = ProcessInfo.processInfo.environment["HVC_UID_RANGE"], !text.isEmpty {
                range = try IdentityPool.parseRange(text)
            }
            let pool = IdentityPool(directory: runtime.paths.identities, range: range)
            let uid = try pool.claim(owner: request.owner)
            identity = (pool, uid)
            var mounts = JailPlan.hostMounts()
            if request.bootsKernel {
                mounts += [
                    JailPlan.Mount(source: runtime.paths.kernel, target: VMDirectory.Jailed.kernel),
                    JailPlan.Mount(source: runtime.paths.initramfs, target: VMDirectory.Jailed.initramfs),
                ]
            }
            mounts.append(JailPlan.Mount(source: request.shape.image.rootfsPath, target: VMDirectory.Jailed.rootDisk))
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
                    memoryBytes: Int64(request.shape.memoryMiB + QEMUCommandLine.overheadMiB) << 20,
                    cpus: request.shape.cpus, pids: request.pidsLimit))
            }
            var plan = JailPlan(root: directory.jailRoot, mounts: mounts, cgroup: cgroup, uid: uid, gid: uid, rules: rules)
            plan.extraGroup = extraGroup
            try plan.prepareRoot()
            self.plan = plan
        } catch let error as HVCError {
            throw error
        } catch {
            throw HVCError("\(error)")
        }
    }

    func release() {
        cgroup?.remove()
        cgroup = nil
        if let identity { identity.pool.release(identity.uid) }
        identity = nil
    }
}
