import Foundation
import Testing

extension EndToEnd {
    /// The set-up scripts on a machine that has never seen hvc: every state, run, cache and
    /// output directory they write under is missing, and each script must make its own. The
    /// guest kernel's cache stays the machine's (warm), so that the kernel is not rebuilt.
    @Suite struct SetupTests {
        let h: Harness

        init() throws { h = try Harness.make() }

        @Test func everySetUpScriptMakesTheDirectoriesItWrites() throws {
            let base = h.root + "/../fresh-\(UUID().uuidString.prefix(8))"
            let fresh = base + "/does/not/exist"
            #expect(!FileManager.default.fileExists(atPath: base))
            defer { try? FileManager.default.removeItem(atPath: base) }
            let repo = Harness.repository
            let assets = fresh + "/share/hvc"
            var environment = h
            environment.root = fresh + "/lib"
            environment.runRoot = fresh + "/run"
            environment.extraEnvironment["HVC_ASSETS"] = assets

            let kernel = h.execute(["/bin/bash", repo + "/rootfs/kernel/build.sh", assets + "/vmlinux"])
            #expect(kernel.status == 0 && kernel.stdout.contains("cached"), "\(kernel.stdout)\(kernel.stderr)")
            let agent = URL(fileURLWithPath: Harness.binary).deletingLastPathComponent().appendingPathComponent("hvc-agent").path
            let initramfs = h.execute(["/bin/bash", repo + "/rootfs/agent/build-initramfs.sh", agent, assets + "/initramfs.cpio"])
            #expect(initramfs.status == 0, "\(initramfs.stderr)")
            let policy = h.execute(["/usr/bin/install", "-D", "-m", "644", repo + "/Specs/seccomp/vmm.json", assets + "/seccomp/vmm.json"])
            #expect(policy.status == 0, "\(policy.stderr)")
            let image = environment.execute(["/bin/bash", repo + "/rootfs/images/busybox/build.sh", Harness.binary])
            #expect(image.status == 0, "\(image.stderr)")
            let run = environment.hvc(["run", "--rm", "busybox", "echo", "fresh"])
            #expect(run.status == 0 && run.stdout == "fresh\n", "\(run.stderr)")
            _ = environment.hvc(["template", "rm", "--all"])
            // Its default network's bridge and rules are the host's: removed with the store.
            #expect(environment.hvc(["network", "rm", "bridge"]).status == 0)

            // The fuzz tools' virtualenv, under a cache directory that does not exist yet.
            let venv = h.execute(["/usr/bin/make", "-s", "-C", repo, "fuzz-deps", "FUZZ_CACHE=" + fresh + "/cache"], timeout: 600)
            #expect(venv.status == 0, "\(venv.stdout)\(venv.stderr)")
            let venvs = (try? FileManager.default.contentsOfDirectory(atPath: fresh + "/cache")) ?? []
            #expect(venvs.contains { $0.hasPrefix("fuzz-venv-") }, "\(venvs)")
        }
    }
}
