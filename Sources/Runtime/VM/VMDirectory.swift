import CLinux
import Foundation
import HVCSystem
import VMM

/// The per-VM directory under `<run-root>/vms`: its sockets, console log and QEMU log, plus
/// `owner` (the pid of the hvc process responsible for it) and `vmm` (QEMU's pid).
///
/// Whoever finds a directory whose owner is dead kills its VMM and removes it, so that a
/// SIGKILLed `hvc run` leaves nothing behind for long.
public struct VMDirectory: Sendable {
    public let path: String

    /// The VMM's jail: its `/`, holding its sockets, console log and own output: a tmpfs of
    /// `jailBytes`, which bounds all a guest can make its VMM write there.
    public var jailRoot: String { path + "/root" }
    static let jailBytes = 64 << 20
    public var agentSocket: String { jailRoot + Jailed.agentSocket }
    public var qmpSocket: String { jailRoot + Jailed.qmpSocket }
    public var consoleLog: String { jailRoot + Jailed.consoleLog }
    public var vmmLog: String { jailRoot + "/qemu.log" }
    /// The directory the VMM serves to the guest as its shared folders (read-only, bound at
    /// `Jailed.shares`): each of the container's folders is a mount on an entry of it, placed in
    /// the VMM's own mount namespace only.
    public var shares: String { path + "/shares" }

    /// Paths as the jailed VMM sees them.
    public enum Jailed {
        public static let kernel = "/vmlinux"
        public static let initramfs = "/initramfs.cpio"
        public static let rootDisk = "/rootfs.img"
        public static let agentSocket = "/agent.sock"
        public static let qmpSocket = "/qmp.sock"
        public static let consoleLog = "/console.log"
        public static let kvm = "/dev/kvm"
        public static let shares = "/shares"
    }
    /// Where the container's supervisor takes exec, signal and stop requests.
    public var controlSocket: String { path + "/control.sock" }

    /// The directory a container's VM uses.
    public static func path(in parent: String, id: String) -> String { parent + "/" + String(id.prefix(16)) }

    /// Makes a fresh directory named after the container id, owned by this process.
    public static func create(in parent: String, id: String) throws(HVCError) -> VMDirectory {
        try makeDirectory(parent, mode: 0o711)
        let path = VMDirectory.path(in: parent, id: id)
        guard mkdir(path, 0o700) == 0 else {
            throw HVCError("create \(path): \(Errno.current)")
        }
        let directory = VMDirectory(path: path)
        try writeAtomically(path + "/owner", Data("\(ProcessStamp.current)\n".utf8))
        guard mkdir(directory.jailRoot, 0o700) == 0,
              mount("tmpfs", directory.jailRoot, "tmpfs", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC),
                    "size=\(jailBytes),nr_inodes=256,mode=700") == 0 else {
            let error = Errno.current
            directory.remove()
            throw HVCError("jail directory \(directory.jailRoot)", cause: error)
        }
        return directory
    }

    /// Renames the directory to the one of container `id` (a pooled VM taken by a container).
    /// The VMM's view is unchanged: its jail root is mounted in its own namespace.
    public func move(in parent: String, id: String) throws(HVCError) -> VMDirectory {
        let target = VMDirectory.path(in: parent, id: id)
        guard rename(path, target) == 0 else {
            throw HVCError("rename \(path) to \(target): \(Errno.current)")
        }
        return VMDirectory(path: target)
    }

    /// Remembers the VM's cgroup directories, so that a sweep can remove them if the
    /// supervisor dies without doing so.
    public func recordCgroups(_ directories: [String]) throws(HVCError) {
        try writeAtomically(path + "/cgroups", Data(directories.joined(separator: "\n").utf8))
    }

    /// The tenant and VM names of the cgroup the VM was put in: the container's own, or, for a
    /// pooled VM, the pool member's (`…/hvc/<tenant>/<vm>`).
    public func recordedCgroup() -> (tenant: String, vm: String)? {
        guard let text = try? String(contentsOfFile: path + "/cgroups", encoding: .utf8),
              let first = text.split(separator: "\n").first else { return nil }
        let parts = first.split(separator: "/")
        guard parts.count >= 3, parts[parts.count - 3] == "hvc" else { return nil }
        return (String(parts[parts.count - 2]), String(parts[parts.count - 1]))
    }

    /// Remembers the VM's network namespace, before it is made.
    func recordNetworkMemberspace(_ path: String) throws(HVCError) {
        try writeAtomically(self.path + "/netns", Data(path.utf8))
    }

    /// Where the container's network attachment is recorded (see `NetworkAttachment`).
    var networkAttachment: String { path + "/network.json" }

    /// Where it is planned, before it is made (see `NetworkAttachmentPlan`).
    var networkAttachmentPlan: String { path + "/network-plan.json" }

    public func recordVMM(pid: Int32) throws(HVCError) {
        try writeAtomically(path + "/vmm", Data("\(pid)\n".utf8))
    }

    /// The tail of QEMU's and the guest console's output, for an error message.
    public func diagnostics() -> String {
        var text = ""
        for (label, file) in [("qemu", vmmLog), ("console", consoleLog)] {
            guard let data = FileManager.default.contents(atPath: file), !data.isEmpty else { continue }
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").suffix(5)
            text += "\n  \(label): " + lines.joined(separator: "\n  \(label): ")
        }
        return text
    }

    /// How the guest ended its VM, when its console says: a kernel panic (with its reason) or a
    /// reset (a reboot, or a triple fault: the kernel resets by one). nil for anything else.
    public func guestEnding() -> String? {
        guard let data = FileManager.default.contents(atPath: consoleLog) else { return nil }
        let console = String(decoding: data.suffix(64 * 1024), as: UTF8.self)
        if let range = console.range(of: "Kernel panic - not syncing: ") {
            let reason = console[range.upperBound...].prefix { !$0.isNewline }.prefix(160)
            return "the guest kernel panicked: \(reason.trimmingCharacters(in: .whitespaces))"
        }
        if console.contains("reboot: Restarting system") {
            return "the guest reset its VM (a reboot or a triple fault)"
        }
        return nil
    }

    /// Removes the directory, its `owner` last: a removal cut short (its remover killed) leaves
    /// a directory that the next sweep finds and finishes.
    public func remove() {
        umount2(jailRoot, Int32(MNT_DETACH))
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] where entry != "owner" {
            try? FileManager.default.removeItem(atPath: path + "/" + entry)
        }
        unlink(path + "/owner")
        rmdir(path)
    }

    /// Seconds after which a directory without an owner (its creator killed before it wrote
    /// one) is taken for abandoned.
    static let ownerlessGrace: Double = 60

    /// Kills the VMMs of directories whose owner died, and removes those directories.
    public static func sweep(_ parent: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return }
        for name in names {
            let directory = VMDirectory(path: parent + "/" + name)
            if let owner = directory.readStamp("owner") {
                guard !owner.isAlive else { continue }
            } else {
                guard let created = (try? FileManager.default.attributesOfItem(atPath: directory.path))?[.modificationDate] as? Date,
                      Date().timeIntervalSince(created) > ownerlessGrace else { continue }
            }
            if let vmm = directory.readPID("vmm"), processIsAlive(vmm), directory.isVMM(vmm) {
                kill(vmm, SIGKILL)
                _ = ProcessStamp(pid: vmm, start: nil).awaitEnd(seconds: 1)
            }
            // The network after the VMM: the lease and port rules, then the namespace, which takes
            // the veth and the TAP with it.
            if let data = FileManager.default.contents(atPath: directory.networkAttachment),
               let attachment = try? JSONDecoder.hvc.decode(NetworkAttachment.self, from: data) {
                attachment.detach(namespaceGoes: true)
            } else if let data = FileManager.default.contents(atPath: directory.networkAttachmentPlan),
                      let plan = try? JSONDecoder.hvc.decode(NetworkAttachmentPlan.self, from: data) {
                plan.undo()
            }
            if let netns = try? String(contentsOfFile: directory.path + "/netns", encoding: .utf8), netns.hasPrefix("/") {
                hvc_netns_remove(netns)
            }
            if let text = try? String(contentsOfFile: directory.path + "/cgroups", encoding: .utf8) {
                let cgroups = text.split(separator: "\n").filter { $0.hasPrefix("/sys/fs/cgroup/") }.map(String.init)
                // Kept, with its record of them, for a later sweep while a cgroup stays busy.
                guard removeCgroups(cgroups) else { continue }
            }
            directory.remove()
        }
    }

    /// Removes a dead VMM's cgroups; false if one is still busy after half a second. Its pid
    /// shows a zombie as soon as its main thread has exited, while its other threads, still in
    /// the cgroup, may take a moment longer to go.
    private static func removeCgroups(_ cgroups: [String]) -> Bool {
        for _ in 0..<50 {
            if cgroups.allSatisfy({ rmdir($0) == 0 || Errno.current == .noEntry }) { return true }
            usleep(10_000)
        }
        return false
    }

    private func readPID(_ file: String) -> Int32? {
        readStamp(file)?.pid
    }

    private func readStamp(_ file: String) -> ProcessStamp? {
        guard let text = try? String(contentsOfFile: path + "/" + file, encoding: .utf8) else { return nil }
        return ProcessStamp(parsing: text)
    }

    /// True when `pid` is still the QEMU of this directory, not a process that reused its pid:
    /// its output goes to this directory's log.
    private func isVMM(_ pid: Int32) -> Bool {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/1")) == vmmLog
    }
}

/// Whether `pid` runs; a zombie (dead, not yet reaped by a parent that may never do so) does
/// not. Where a record of a process outlives it, record a `ProcessStamp` instead.
func processIsAlive(_ pid: Int32) -> Bool {
    ProcessStamp(pid: pid, start: nil).isAlive
}
