import Foundation
import Jail
import VMM

/// The entry point of the runtime library: state locations, the image store, host facts.
public struct Runtime: Sendable {
    /// hvc's version; part of every template's key.
    public static let version = "0.1.0"
    public let paths: RuntimePaths
    public let images: ImageStore
    public let containers: ContainerStore
    public let qemuBinary: String

    public init(paths: RuntimePaths, qemuBinary: String = Runtime.defaultQEMU) {
        self.paths = paths
        self.images = ImageStore(directory: paths.images)
        self.containers = ContainerStore(directory: paths.containers)
        self.qemuBinary = qemuBinary
        sweep()
    }

    /// Undoes what dead supervisors left: their VMs' directories (with the VMM, network,
    /// cgroups and jail of each), their uid claims and network member files, and the files of
    /// dead pool members.
    func sweep() {
        VMDirectory.sweep(paths.vms)
        IdentityPool(directory: paths.identities).reclaimStale()
        NetworkMembers.sweep(paths)
        pools.sweepMembers()
    }

    /// Debian's QEMU.
    public static let systemQEMU = "/usr/bin/qemu-system-x86_64"

    /// `HVC_QEMU`, else Debian's QEMU. A VMM's jail holds files only from the host's `/usr`, so
    /// the binary must lie there (see `checkAssets`).
    public static var defaultQEMU: String {
        let explicit = ProcessInfo.processInfo.environment["HVC_QEMU"] ?? ""
        return explicit.isEmpty ? systemQEMU : explicit
    }

    /// The `/usr` of every VMM's jail: QEMU's binary, libraries, module and firmware. Another
    /// binary run in QEMU's place may become Debian's QEMU in the end (the isolation suite's
    /// stand-in does), so its tree holds that QEMU too.
    public var vmmUsr: UsrTree {
        let binaries = qemuBinary == Runtime.systemQEMU ? [qemuBinary] : [qemuBinary, Runtime.systemQEMU]
        return UsrTree(directory: paths.vmmUsrTrees, contents: QEMUHostFiles.treeContents(for: binaries))
    }

    /// The accelerator for a VM: `requested`, else `HVC_ACCEL`, else what the host supports.
    public func chooseAccelerator(_ requested: Accelerator?) throws(HVCError) -> AcceleratorChoice {
        var wanted = requested
        if wanted == nil, let env = ProcessInfo.processInfo.environment["HVC_ACCEL"], !env.isEmpty {
            guard let parsed = Accelerator(rawValue: env) else {
                throw HVCError(.invalid, "HVC_ACCEL=\(env) is not an accelerator: use kvm or tcg")
            }
            wanted = parsed
        }
        return AcceleratorChoice.choose(host: HostVirtualization.probe(), requested: wanted)
    }

    /// Whether guests under `accelerator` can have KVM of their own, and how.
    public func nesting(_ accelerator: Accelerator) -> Nesting {
        Nesting.choose(accelerator: accelerator, host: HostVirtualization.probe())
    }

    /// Fails, saying why, where a container cannot have a /dev/kvm of its own.
    public func checkNesting(_ accelerator: Accelerator) throws(HVCError) {
        let nesting = nesting(accelerator)
        guard nesting.isAvailable else { throw HVCError(.invalid, "--nested: nesting is \(nesting)") }
    }

    /// How guests under `accelerator` keep time; the host's TSC rate is measured once per boot.
    /// `HVC_GUEST_CLOCK=calibrated` leaves the guest to calibrate its clock, as hvc did before it
    /// measured the TSC (the benchmark compares the two).
    public func guestClock(_ accelerator: Accelerator) -> GuestClock {
        guard accelerator == .tcg else { return .kvmClock }
        if ProcessInfo.processInfo.environment["HVC_GUEST_CLOCK"] == "calibrated" { return .calibrated }
        let kHz = HostTSC.frequencyKHz(cachedIn: paths.root + "/host-tsc", cpuFlags: { HostVirtualization.probe().cpuFlags })
        return GuestClock.choose(accelerator: accelerator, hostTSCKHz: kHz)
    }

    /// `HVC_GUEST_ERMS=on` shows a TCG guest's CPU with ERMS and FSRM, as hvc did before it hid
    /// them (the benchmark compares the two).
    public var guestBytewiseCopies: Bool { ProcessInfo.processInfo.environment["HVC_GUEST_ERMS"] == "on" }

    /// Fails with the fix when a guest asset or QEMU is missing.
    public func checkAssets() throws(HVCError) {
        for (path, what) in [(paths.kernel, "guest kernel"), (paths.initramfs, "agent initramfs")]
        where !FileManager.default.fileExists(atPath: path) {
            throw HVCError("\(what) \(path) is missing: run `make assets` (or set HVC_ASSETS)")
        }
        guard qemuBinary.hasPrefix("/usr/"), !qemuBinary.split(separator: "/").contains("..") else {
            throw HVCError(.invalid, "QEMU binary \(qemuBinary) is outside /usr: a VMM's jail holds files only from /usr, so give one there (HVC_QEMU)")
        }
        guard FileManager.default.isExecutableFile(atPath: qemuBinary) else {
            throw HVCError("\(qemuBinary) is missing: apt-get install qemu-system-x86")
        }
    }
}
