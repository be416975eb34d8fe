import Foundation
import Testing

extension EndToEnd {
    /// `--nested`: a container with a /dev/kvm of its VM's own, proven by a real KVM guest run
    /// from inside it (`Fixtures/kvmprobe.c`, built here).
    @Suite struct NestedTests {
        let h: Harness
        static let image = "nestedtest:2"
        static let probeOutput = "byte from the KVM guest: K\n"

        init() throws {
            h = try Harness.make()
            if !h.hvc(["images"]).stdout.contains("nestedtest") { try NestedTests.makeImage(h) }
        }

        static func makeImage(_ h: Harness) throws {
            let tree = h.root + "/../nestedtree-\(UUID().uuidString.prefix(8))"
            defer { try? FileManager.default.removeItem(atPath: tree) }
            var steps: [[String]] = [
                ["/bin/mkdir", "-p", tree + "/bin", tree + "/proc", tree + "/sys", tree + "/dev", tree + "/tmp"],
                ["/bin/cp", "/bin/busybox", tree + "/bin/busybox"],
                ["/usr/bin/gcc", "-static", "-O2", "-o", tree + "/bin/kvmprobe", Harness.repository + "/Tests/EndToEndTests/Fixtures/kvmprobe.c"],
            ]
            for applet in ["sh", "ls", "mknod", "cat", "grep", "sleep"] { steps.append(["/bin/ln", "-s", "busybox", tree + "/bin/" + applet]) }
            for step in steps {
                let r = h.execute(step)
                guard r.status == 0 else { throw HarnessError(message: "\(step.joined(separator: " ")): \(r.stderr)") }
            }
            let r = h.hvc(["import", "--cmd", "sh", "--env", "PATH=/bin", tree, image])
            guard r.status == 0 else { throw HarnessError(message: "import: \(r.stderr)") }
        }

        @Test func kvmWorksInANestedContainerAndNowhereElse() throws {
            #expect(h.hvc(["info"]).stdout.contains("nesting:         emulated SVM"))
            // Twice: the first boots and captures the nested template, the second is its clone.
            for _ in 0..<2 {
                let nested = h.hvc(["run", "--rm", "--nested", "--network", "none", NestedTests.image, "kvmprobe"], timeout: 300)
                #expect(nested.status == 0 && nested.stdout == NestedTests.probeOutput, "\(nested.stdout) \(nested.stderr)")
            }
            let plain = h.hvc(["run", "--rm", "--network", "none", NestedTests.image, "sh", "-c", "ls /dev; kvmprobe"])
            #expect(plain.status == 1 && !plain.stdout.contains("kvm") && plain.stderr.contains("open /dev/kvm"), "\(plain.stdout) \(plain.stderr)")
            // Root in a plain container may make the node, but its VM's CPU has no SVM: its kernel has no KVM.
            let made = h.hvc(["run", "--rm", "--network", "none", NestedTests.image, "sh", "-c",
                              "mknod /dev/kvm c 10 232 && kvmprobe; grep -c svm /proc/cpuinfo"])
            #expect(made.status != 0 && !made.stdout.contains("byte from") && made.stdout.hasSuffix("0\n"), "\(made.stdout) \(made.stderr)")
        }

        /// Under TCG the guest's CPU hides ERMS (TCG runs `rep movsb` a byte per step), and the
        /// benchmark's `HVC_GUEST_ERMS=on` really gives the old CPU back.
        @Test func underTCGTheGuestCPUHidesByteWiseStringCopies() throws {
            let info = h.hvc(["info"]).stdout
            let countERMS = ["sh", "-c", "grep -cw erms /proc/cpuinfo; grep -cw fsrm /proc/cpuinfo; true"]
            let hidden = h.hvc(["run", "--rm", "--network", "none", NestedTests.image] + countERMS)
            let shown = h.execute(["/usr/bin/env", "HVC_GUEST_ERMS=on", Harness.binary, "run", "--rm", "--no-template",
                                   "--network", "none", NestedTests.image] + countERMS)
            #expect(hidden.status == 0 && shown.status == 0, "\(hidden.stderr) \(shown.stderr)")
            if info.contains("accelerator:     tcg") {
                #expect(info.contains("guest cpu:       max,svm=off,erms=off,fsrm=off"), "\(info)")
                #expect(hidden.stdout == "0\n0\n", "\(hidden.stdout)")
                #expect(shown.stdout.hasPrefix("1\n"), "\(shown.stdout)")
            } else {
                #expect(info.contains("guest cpu:       host,vmx=off,svm=off"), "\(info)")
                #expect(hidden.stdout == shown.stdout, "\(hidden.stdout) \(shown.stdout)")
            }
        }

        /// Debian's QEMU (the binary, its libraries and the microvm firmware copied from this
        /// host's package), hvc's own guest kernel and an initramfs whose /init prints a marker.
        static let secondLevelImage = "nestedqemu:1"
        static let marker = "second-level-guest-up"

        static func makeSecondLevelImage(_ h: Harness) throws {
            let tree = h.root + "/../l2tree-\(UUID().uuidString.prefix(8))"
            defer { try? FileManager.default.removeItem(atPath: tree) }
            let built = h.execute(["/bin/bash", "-c", "\"$1\" \"$2\" \"$3\" && python3 \"$4/bench/bench.py\" initramfs \"$2/l2/init.cpio\" /bin/busybox \"$5\"",
                                   "bash", Harness.repository + "/rootfs/images/qemu/build-tree.sh", tree, Harness.assets,
                                   Harness.repository, marker])
            guard built.status == 0 else { throw HarnessError(message: "second-level image: \(built.stderr)") }
            let r = h.hvc(["import", "--cmd", "sh", "--env", "PATH=/bin", tree, secondLevelImage], timeout: 300)
            guard r.status == 0 else { throw HarnessError(message: "import: \(r.stderr)") }
        }

        /// The container's QEMU boots hvc's guest kernel under the container's own KVM (a
        /// second-level VM) to the marker its /init prints.
        @Test func aSecondLevelVMBootsInANestedContainer() throws {
            if !h.hvc(["images"]).stdout.contains("nestedqemu") { try NestedTests.makeSecondLevelImage(h) }
            let qemu = ["qemu-system-x86_64", "-L", "/usr/share/qemu", "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on,acpi=off",
                        "-accel", "kvm", "-cpu", "host", "-m", "128", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
                        "-serial", "stdio", "-kernel", "/l2/vmlinux", "-initrd", "/l2/init.cpio", "-append", "console=ttyS0 quiet reboot=t panic=-1"]
            let r = h.hvc(["run", "--rm", "--nested", "--memory", "1g", "--network", "none", NestedTests.secondLevelImage] + qemu, timeout: 300)
            #expect(r.status == 0 && r.stdout.contains(NestedTests.marker), "\(r.stdout) \(r.stderr)")
            // Without --nested the same QEMU finds no KVM.
            let plain = h.hvc(["run", "--rm", "--memory", "1g", "--network", "none", NestedTests.secondLevelImage] + qemu, timeout: 300)
            #expect(plain.status != 0 && !plain.stdout.contains(NestedTests.marker), "\(plain.stdout) \(plain.stderr)")
        }

        /// An image holding hvc itself (`rootfs/images/hvc/build-tree.sh`): its binaries and assets,
        /// QEMU, the tools its networks use, and a store with the default busybox image.
        static let hvcImage = "hvcinside:1"

        static func makeHVCImage(_ h: Harness) throws {
            let tree = h.root + "/../hvctree-\(UUID().uuidString.prefix(8))"
            defer { try? FileManager.default.removeItem(atPath: tree) }
            let built = h.execute([Harness.repository + "/rootfs/images/hvc/build-tree.sh", tree, Harness.assets,
                                   (Harness.binary as NSString).deletingLastPathComponent], timeout: 300)
            guard built.status == 0 else { throw HarnessError(message: "hvc image: \(built.stderr)") }
            let r = h.hvc(["import", "--cmd", "sh", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                           tree, hvcImage], timeout: 300)
            guard r.status == 0 else { throw HarnessError(message: "import: \(r.stderr)") }
        }

        /// hvc inside hvc: in a nested container, hvc finds its VM's /dev/kvm, chooses KVM, and runs
        /// a container of its own in a second-level VM, on its default network.
        @Test func hvcRunsInsideANestedContainer() throws {
            if !h.hvc(["images"]).stdout.contains("hvcinside") { try NestedTests.makeHVCImage(h) }
            let run = h.hvc(["run", "--rm", "--nested", "--memory", "2g", NestedTests.hvcImage,
                             "hvc", "run", "--rm", "busybox", "echo", "hi"], timeout: 600)
            #expect(run.status == 0 && run.stdout == "hi\n", "\(run.stdout) \(run.stderr)")
            // Its VMM runs under the container's KVM: the inner QEMU's own command line says so.
            let inner = h.hvc(["run", "--rm", "--nested", "--memory", "2g", NestedTests.hvcImage, "sh", "-c",
                               "hvc info | grep accelerator && hvc run -d --network none --name inner busybox sleep 600 >/dev/null && "
                                   + "tr '\\0' ' ' < /proc/$(pidof qemu-system-x86_64)/cmdline"], timeout: 300)
            #expect(inner.status == 0 && inner.stdout.hasPrefix("accelerator:     kvm") && inner.stdout.contains(" -accel kvm -cpu host,vmx=off,svm=off "),
                    "\(inner.stdout) \(inner.stderr)")
            // Without --nested the inner hvc finds no KVM: only TCG inside TCG (minutes per boot).
            let plain = h.hvc(["run", "--rm", "--memory", "2g", NestedTests.hvcImage, "hvc", "info"], timeout: 300)
            #expect(plain.status == 0 && plain.stdout.contains("accelerator:     tcg"), "\(plain.stdout) \(plain.stderr)")
        }

        /// A pool of nested VMs serves nested containers (their own CPU model and template),
        /// and only them.
        @Test func aNestedPoolServesNestedContainers() throws {
            let set = h.hvc(["pool", "set", "--nested", NestedTests.image, "1"], timeout: 300)
            try #require(set.status == 0, "\(set.stderr)")
            defer { _ = h.hvc(["pool", "set", "--nested", NestedTests.image, "0"]) }
            let waiting = h.poolMembers()
            try #require(waiting.count == 1)
            // A plain container of the image is not given the nested VM.
            let plain = h.hvc(["run", "-d", "--name", "nested-pool-plain", NestedTests.image, "sleep", "60"])
            defer { _ = h.hvc(["rm", "-f", "nested-pool-plain"]) }
            #expect(plain.status == 0 && !waiting.contains(supervisor("nested-pool-plain") ?? -1))
            let run = h.hvc(["run", "-d", "--nested", "--name", "nested-pooled", NestedTests.image, "sleep", "60"])
            defer { _ = h.hvc(["rm", "-f", "nested-pooled"]) }
            #expect(run.status == 0 && waiting.contains(supervisor("nested-pooled") ?? -1), "\(run.stderr)")
            let probe = h.hvc(["exec", "nested-pooled", "kvmprobe"])
            #expect(probe.status == 0 && probe.stdout == NestedTests.probeOutput, "\(probe.stdout) \(probe.stderr)")
        }

        func supervisor(_ container: String) -> Int32? {
            let r = h.hvc(["inspect", container])
            let array = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [[String: Any]]
            return ((array?.first?["state"] as? [String: Any])?["supervisorPID"] as? Int).map(Int32.init)
        }

        @Test func tenantsNestOnlyWhenTheTenantsFileSaysSo() throws {
            let tenants = #"{"tenants": {"nesters": {"uids": [2601], "nested": true}, "plain": {"uids": [2602]}}}"#
            try h.withDaemon(tenants: tenants) { daemon in
                let refused = daemon.hvc(as: 2602, ["run", "--rm", "--nested", "--network", "none", NestedTests.image, "kvmprobe"])
                #expect(refused.status == 125 && refused.stderr.contains("may not run nested"), "\(refused.stderr)")
                let allowed = daemon.hvc(as: 2601, ["run", "--rm", "--nested", "--network", "none", NestedTests.image, "kvmprobe"])
                #expect(allowed.status == 0 && allowed.stdout == NestedTests.probeOutput, "\(allowed.stdout) \(allowed.stderr)")
            }
        }
    }
}
