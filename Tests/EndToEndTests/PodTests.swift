import Foundation
import Testing

extension EndToEnd {
    /// Kubernetes' way in: containerd 1.6's CRI plugin (a private containerd per scenario) with a
    /// runtime handler `hvc` whose binary is hvc-oci, driven by a real CRI client
    /// (Fixtures/cri_pods.py, the PyPI CRI stubs over gRPC). A pod is one VM.
    @Suite struct PodTests {
        let h: Harness
        let base: String
        let python: String

        init() throws {
            h = try Harness.make()
            python = try #require(ProcessInfo.processInfo.environment["HVC_FUZZ_PYTHON"], "HVC_FUZZ_PYTHON is unset: run through `make test`")
            base = URL(fileURLWithPath: h.root + "/../cri").standardizedFileURL.path
            try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
            if !FileManager.default.fileExists(atPath: base + "/pod.tar") {
                let made = h.execute([python, PodTests.driver, "--base", base + "/image", "make-image", base + "/pod.tar"], timeout: 300)
                guard made.status == 0 else { throw HarnessError(message: "pod image: \(made.stdout) \(made.stderr)") }
            }
            let runtime = URL(fileURLWithPath: Harness.binary).deletingLastPathComponent().appendingPathComponent("hvc-oci").path
            try """
                #!/bin/sh
                exec \(runtime) --hvc-root=\(h.root) --hvc-run-root=\(h.runRoot) --hvc-assets=\(Harness.assets) "$@"

                """.write(toFile: base + "/hvc-oci-wrapper", atomically: false, encoding: .utf8)
            chmod(base + "/hvc-oci-wrapper", 0o755)
            // Kills the VMM of the pod whose sandbox id is $1 (hvc-oci names its VM after it).
            try """
                #!/bin/sh
                pid=$(HVC_ROOT=\(h.root) HVC_RUN_ROOT=\(h.runRoot) \(Harness.binary) inspect "$1" | \(python) -c 'import json, sys; d = json.load(sys.stdin); print((d[0] if isinstance(d, list) else d)["state"]["vmmPID"])')
                exec kill -KILL "$pid"

                """.write(toFile: base + "/kill-vmm", atomically: false, encoding: .utf8)
            chmod(base + "/kill-vmm", 0o755)
        }

        static let driver = Harness.repository + "/Tests/EndToEndTests/Fixtures/cri_pods.py"

        /// One scenario of the driver in a directory of its own; its JSON.
        func scenario(_ arguments: [String], environment: [String: String] = [:]) throws -> [String: Any] {
            let directory = base + "/run-\(UUID().uuidString.prefix(8))"
            var h = self.h
            h.extraEnvironment = environment
            let r = h.execute([python, PodTests.driver, "--base", directory, "--runtime-wrapper", base + "/hvc-oci-wrapper",
                               "--image-tar", base + "/pod.tar"] + arguments, timeout: 600)
            try #require(r.status == 0, "cri_pods.py \(arguments): \(r.stdout.suffix(2000)) \(r.stderr.suffix(2000))")
            return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        }

        /// What a probe printed in a container (ExecSync), and its exit code.
        static func probe(_ json: [String: Any], _ container: String, _ name: String) -> (code: Int?, output: String) {
            let probe = ((json["probes"] as? [String: Any])?[container] as? [String: Any])?[name] as? [String: Any]
            return (probe?["exit_code"] as? Int, (probe?["stdout"] as? String ?? "").trimmingCharacters(in: .whitespacesAndNewlines))
        }

        /// What the scenario's teardown found left behind (all but its routine steps); a
        /// teardown that did not report is itself something left unchecked.
        static func leftBehind(_ json: [String: Any]) -> [String] {
            guard let teardown = json["teardown"] as? [String: Any], teardown["routine"] != nil else { return ["no teardown report"] }
            return teardown.keys.filter { $0 != "routine" }.sorted()
        }

        /// Two containers of one pod in one VM: the page served on the pod's localhost, one
        /// kernel (boot id) and each container's own pid 1, ExecSync in each, the pod's IP from
        /// the host; then Stop/RemovePodSandbox leave no VMM, netns, mount, cgroup, lease or file.
        @Test func aPodThroughTheCRIIsOneVM() throws {
            let cgroupsBefore = HostSnapshot.take().cgroups
            let vmmsBefore = Set(h.leftoverVMMs())
            let json = try scenario(["pod", "hvc"])
            #expect(json["error"] == nil, "\(json["error"] ?? "")")
            let sandbox = json["sandbox_status"] as? [String: Any]
            #expect(sandbox?["state"] as? String == "SANDBOX_READY" && sandbox?["runtime_handler"] as? String == "hvc")
            let client = json["client_fetch"] as? [String: Any]
            #expect(client?["exit_code"] as? Int == 0 && client?["stdout"] as? String == "served-from-a-pod\n",
                    "the client fetched the web container's page over localhost: \(client ?? [:])")
            let host = json["host_fetch"] as? [String: Any]
            #expect(host?["body"] as? String == "served-from-a-pod\n", "the host fetched it at the pod's IP: \(host ?? [:])")
            let hostBoot = ((json["host"] as? [String: Any])?["boot_id"] as? String ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            let web = PodTests.probe(json, "web", "boot_id"), client2 = PodTests.probe(json, "client", "boot_id")
            #expect(web.code == 0 && client2.code == 0 && !web.output.isEmpty)
            #expect(web.output == client2.output, "one VM: one kernel for both containers")
            #expect(web.output != hostBoot, "the guest's kernel, not the host's")
            #expect(PodTests.probe(json, "web", "uname_r").output.hasSuffix("-hvc"))
            #expect(PodTests.probe(json, "web", "pid1_cmdline").output.hasPrefix("/bin/httpd"), "web's own pid 1")
            #expect(PodTests.probe(json, "client", "pid1_cmdline").output.hasPrefix("/bin/sleep"), "client's own pid 1")
            let stop = json["stop_remove"] as? [String: Any]
            #expect(stop?["stop_error"] is NSNull && stop?["remove_error"] is NSNull, "\(stop ?? [:])")
            let after = json["after_remove"] as? [String: Any]
            #expect((after?["pod_sandboxes"] as? [Any])?.isEmpty == true && (after?["containers"] as? [Any])?.isEmpty == true)
            #expect((after?["lease_files"] as? [Any])?.isEmpty == true, "no CNI lease: \(after?["lease_files"] ?? "")")
            #expect(after?["netns_exists"] as? Bool == false, "the pod's netns is gone")
            #expect((after?["pod_processes"] as? [Any])?.isEmpty == true, "\(after?["pod_processes"] ?? "")")
            #expect(PodTests.leftBehind(json).isEmpty, "the driver's teardown found: \(json["teardown"] ?? "")")
            #expect(Harness.eventually(30) { Set(h.leftoverVMMs()).subtracting(vmmsBefore).isEmpty }, "no VMM left")
            #expect(Harness.eventually(30) { h.leftoverMounts().allSatisfy { !$0.contains("/vms/") } }, "no VM's jail mount: \(h.leftoverMounts())")
            #expect(Harness.eventually(30) { HostSnapshot.take().cgroups.subtracting(cgroupsBefore).isEmpty })
        }

        /// A runc pod through the same containerd setup: the peer, on the host's kernel.
        @Test func aRuncPodBesideItWorks() throws {
            let json = try scenario(["pod", "runc"])
            #expect(json["error"] == nil, "\(json["error"] ?? "")")
            let hostBoot = ((json["host"] as? [String: Any])?["boot_id"] as? String ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(PodTests.probe(json, "web", "boot_id").output == hostBoot)
            #expect((json["client_fetch"] as? [String: Any])?["stdout"] as? String == "served-from-a-pod\n")
            #expect(PodTests.leftBehind(json).isEmpty, "\(json["teardown"] ?? "")")
        }

        /// Through the CRI: a member over the pod's memory is refused with the numbers; a member
        /// of a stopped pod is refused; the pod's VM killed under a running member ends it with
        /// an exit code and leaves nothing behind.
        @Test func badMembersAndAKilledPodVM() throws {
            let vmmsBefore = Set(h.leftoverVMMs())
            let json = try scenario(["bad-member", "hvc"], environment: ["HVC_KILL_VMM_CMD": base + "/kill-vmm \"$1\""])
            #expect(json["error"] == nil, "\(json["error"] ?? "")")
            let big = (json["big"] as? [String: Any])?["member"] as? [String: Any]
            let refusal = ((big?["start_error"] as? [String: Any])?["details"] as? String) ?? ""
            #expect(refusal.contains("asks for 65536 MiB of memory, but pod") && refusal.contains("VM has 320 MiB"), "\(refusal)")
            let late = json["after_stop"] as? [String: Any]
            #expect(late?["create_error"] is [String: Any] && late?["id"] is NSNull, "a member of a stopped pod: \(late ?? [:])")
            let killed = try #require(json["vmm_killed"] as? [String: Any])
            #expect((killed["before"] as? [String: Any])?["state"] as? String == "CONTAINER_RUNNING")
            let after = killed["after"] as? [String: Any]
            #expect(after?["state"] as? String == "CONTAINER_EXITED" && (after?["exit_code"] as? Int ?? 0) != 0, "\(after ?? [:])")
            #expect(killed["left_running_after_ms"] is Double || killed["left_running_after_ms"] is Int)
            let log = killed["member_log"] as? String ?? ""
            #expect(log.split(separator: "\n").count == 1 && log.contains("hvc-oci: pod container "), "one line: \(log)")
            #expect(PodTests.leftBehind(json).isEmpty, "\(json["teardown"] ?? "")")
            #expect(Harness.eventually(30) { Set(h.leftoverVMMs()).subtracting(vmmsBefore).isEmpty })
        }
    }
}
