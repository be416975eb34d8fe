import AgentProtocol
import CLinux
import Glibc
import HVCSystem

/// Where a pod member lives in the guest: its root (a share entry bound on a directory of its
/// own, which its container pivots onto) and its cgroup, a sibling of the pod's first
/// container's under the VM's root cgroup.
enum PodMembers {
    static let roots = "/run/hvc/members"
    static let cgroups = "/sys/fs/cgroup/pod"

    struct Placed {
        var root: String
        var cgroup: String
    }

    struct Running {
        var pid: pid_t
        var root: String
        var cgroup: String
        /// The host's id for its first process.
        var childID: UInt32
    }

    /// Binds the member's root share and makes its cgroup with its limits.
    static func place(_ member: PodMember) -> Result<Placed, Boot.Failure> {
        let placed = Placed(root: roots + "/" + member.name, cgroup: cgroups + "/" + member.name)
        do throws(Boot.Failure) {
            if let failure = ContainerMounts.mountShares() { throw Boot.Failure(description: "shared folders: \(failure)") }
            try Boot.makeDirectory(placed.root, mode: 0o755)
            try Boot.mount(ContainerMounts.sharesDirectory + "/" + member.rootShare, placed.root, "", flags: UInt(MS_BIND | MS_REC))
            if mkdir(cgroups, 0o755) == 0 {
                try? writeFile(cgroups + "/cgroup.subtree_control", "+memory +pids +cpu")
            }
            guard mkdir(placed.cgroup, 0o755) == 0 || errno == EEXIST else {
                throw Boot.Failure(description: "cgroup \(placed.cgroup): \(Errno.current)")
            }
            if member.memoryBytes > 0 { try limit(placed.cgroup, "memory.max", "\(member.memoryBytes)") }
            if member.pidsLimit > 0 { try limit(placed.cgroup, "pids.max", "\(member.pidsLimit)") }
            if member.cpuQuotaMicroseconds > 0 { try limit(placed.cgroup, "cpu.max", "\(member.cpuQuotaMicroseconds) 100000") }
        } catch {
            remove(placed)
            return .failure(Boot.Failure(description: "container \(member.name): \(error.description)"))
        }
        return .success(placed)
    }

    private static func limit(_ cgroup: String, _ file: String, _ value: String) throws(Boot.Failure) {
        do {
            try writeFile(cgroup + "/" + file, value + "\n")
        } catch {
            throw Boot.Failure(description: "\(file) \(value): \(error)")
        }
    }

    /// Undoes `place` once the member's first process is gone (its pid namespace, and so every
    /// process of it, went with it). A cgroup still emptying stays, to be reused by name.
    static func remove(_ placed: Placed) {
        umount2(placed.root, Int32(MNT_DETACH))
        rmdir(placed.root)
        rmdir(placed.cgroup)
    }
}
