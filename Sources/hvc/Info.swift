import ArgumentParser
import Foundation
import Jail
import Runtime
import VMM

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Show what this host offers, which accelerator hvc uses and why, and what is missing.",
        aliases: ["doctor"])

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try HVC.guarded {
            try global.requireLocal("info")
            let runtime = global.runtime()
            let host = HostVirtualization.probe()
            let choice = try runtime.chooseAccelerator(nil)
            let fileManager = FileManager.default
            var missing: [(String, String)] = []
            print("root:            \(runtime.paths.root)")
            print("run root:        \(runtime.paths.runRoot)")
            print("assets:          \(runtime.paths.assets)")
            print("cpu vmx/svm:     \(host.hasHardwareVirtualization ? "yes" : "no")")
            print("/dev/kvm:        \(host.kvmDeviceUsable ? "usable" : "missing or not accessible")\(host.kvmIsPVM ? " (PVM: kvm_pvm loaded)" : "")")
            print("accelerator:     \(choice.accelerator.rawValue) (\(choice.reason))")
            print("guest clock:     \(runtime.guestClock(choice.accelerator).explanation)")
            print("guest cpu:       \(QEMUCommandLine.cpuModel(accelerator: choice.accelerator, nested: false, bytewiseCopies: runtime.guestBytewiseCopies))")
            print("nesting:         \(runtime.nesting(choice.accelerator)) (hvc run --nested)")
            print("cgroups:         \(CgroupVersion.detect())")
            let policy = Result { () throws(JailError) -> (rules: Int, defaultError: String?) in
                let policy = try SeccompPolicy.load(path: runtime.paths.seccompPolicy)
                let rules = try policy.compile(isKnownSyscall: seccompKnowsSyscall).count
                return (rules, try policy.defaultError() == 0 ? nil : policy.defaultAction?.errno)
            }
            switch policy {
            case .success(let (rules, defaultError)):
                let filter = defaultError.map { "seccomp allow list (\(rules) rules; any other call fails with \($0))" }
                    ?? "seccomp deny list (\(rules) rules)"
                print("confinement:     namespaces (mnt pid net ipc uts), pivot_root, cgroup limits, own uid, no capabilities, no_new_privs, \(filter) + QEMU -sandbox")
            case .failure(let error):
                print("confinement:     unavailable: \(error)")
                missing.append(("seccomp policy \(runtime.paths.seccompPolicy)", "make assets"))
            }
            if !fileManager.isExecutableFile(atPath: runtime.qemuBinary) {
                missing.append((runtime.qemuBinary, "apt-get install qemu-system-x86"))
            } else {
                let usr = runtime.vmmUsr
                switch Result(catching: { () throws(JailError) in try usr.prepare() }) {
                case .success(let manifest):
                    print("vmm /usr:        \(usr.path) (\(manifest.entries.count) files, \(manifest.bytes >> 20) MiB)")
                case .failure(let error):
                    print("vmm /usr:        unavailable: \(error)")
                }
            }
            if !fileManager.fileExists(atPath: runtime.paths.kernel) {
                missing.append(("guest kernel \(runtime.paths.kernel)", "make assets"))
            }
            if !fileManager.fileExists(atPath: runtime.paths.initramfs) {
                missing.append(("agent initramfs \(runtime.paths.initramfs)", "make assets"))
            }
            if let release = try? String(contentsOfFile: runtime.paths.assets + "/kernel-release", encoding: .utf8) {
                print("guest kernel:    \(release.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            let networks = runtime.networks.list(tenant: nil)
            print("networks:        \(networks.map { "\($0.name) \($0.subnet)" + ($0.tenant == "default" ? "" : " (\($0.tenant))") }.joined(separator: ", "))")
            for (tool, package) in NetworkTools.required where !fileManager.isExecutableFile(atPath: tool) {
                missing.append((tool, "apt-get install \(package)"))
            }
            let images = (try? runtime.images.list()) ?? []
            print("images:          \(images.flatMap(\.references).joined(separator: ", "))")
            if !images.contains(where: { $0.references.contains("busybox:latest") }) {
                missing.append(("default image busybox", "make image"))
            }
            for (what, fix) in missing { print("missing:         \(what): run `\(fix)`") }
            return missing.isEmpty ? 0 : 1
        }
    }
}
