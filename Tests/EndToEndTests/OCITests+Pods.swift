import Foundation
import Testing

extension EndToEnd.OCITests {
    /// The running hvc containers (VMs) of the harness's store, by id.
    func runningVMs() -> [String] {
        h.hvc(["ps", "-q"]).stdout.split(separator: "\n").map(String.init)
    }

    /// A podman pod is one VM: its infra container boots it, each `--pod` container runs in it
    /// as a container of its own (its own root and pid namespace, the pod's localhost), and
    /// `podman pod rm -f` ends it with nothing left.
    @Test func podmanPodIsOneVM() throws {
        let pod = "pod-\(UUID().uuidString.prefix(8).lowercased())"
        let before = Set(runningVMs())
        let vmmsBefore = Set(h.leftoverVMMs())
        #expect(run(["pod", "create", "--name", pod]).status == 0)
        var removed = false
        defer { if !removed { _ = run(["pod", "rm", "-f", pod]) } }
        let web = run(["run", "-d", "--pod", pod, "--name", pod + "-web", Self.image, "httpd", "-f", "-p", "8080", "-h", "/www"])
        try #require(web.status == 0, "\(web.stderr)")
        let script = "i=0; until wget -q -O - http://127.0.0.1:8080/; do i=$((i+1)); [ $i -gt 50 ] && exit 9; sleep 0.1; done; cat /proc/sys/kernel/random/boot_id; cat /proc/1/cmdline; echo; uname -r"
        let client = run(["run", "--rm", "--pod", pod, Self.image, "sh", "-c", script])
        #expect(client.status == 0, "\(client.stderr)")
        let lines = client.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "served-from-a-vm", "the page over the pod's localhost: \(client.stdout)")
        let webFacts = run(["exec", pod + "-web", "sh", "-c", "cat /proc/sys/kernel/random/boot_id; cat /proc/1/cmdline; echo; uname -r"])
        #expect(webFacts.status == 0, "\(webFacts.stderr)")
        let webLines = webFacts.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4 && webLines.count == 3, "\(client.stdout) | \(webFacts.stdout)")
        if lines.count == 4, webLines.count == 3 {
            #expect(lines[1] == webLines[0], "one kernel: the same boot_id in both containers")
            #expect(lines[1] != Harness.run(["/bin/cat", "/proc/sys/kernel/random/boot_id"]).trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(lines[2].hasPrefix("sh") && webLines[1].hasPrefix("httpd"), "each container's own pid 1: \(lines[2]), \(webLines[1])")
            #expect(lines[3].hasSuffix("-hvc") && webLines[2] == lines[3])
        }
        let pods = Set(runningVMs()).subtracting(before)
        #expect(pods.count == 1, "one VM for the pod: \(pods)")
        #expect(Set(h.leftoverVMMs()).subtracting(vmmsBefore).count == 1)
        #expect(run(["pod", "rm", "-f", "-t", "1", pod]).status == 0)
        removed = true
        #expect(Harness.eventually(30) { Set(runningVMs()).subtracting(before).isEmpty })
        #expect(Harness.eventually(30) { Set(h.leftoverVMMs()).subtracting(vmmsBefore).isEmpty })
    }

    /// A pod's containers driven through hvc-oci on bundles made here, as containerd's CRI marks
    /// them: per-container state, exec and kill; the refusals (unknown or ended sandbox, a member
    /// over the pod's memory); a member of a pod whose VM is killed ends with one line, and its
    /// state says so.
    @Test func podMembersThroughTheRuntime() throws {
        let base = h.root + "/../oci-pod-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        func bundle(_ name: String, args: [String], annotations: [String: String], memory: Int64? = nil) throws {
            let directory = base + "/" + name
            for step in [["/bin/mkdir", "-p", directory + "/rootfs/bin"], ["/bin/cp", "/bin/busybox", directory + "/rootfs/bin/busybox"]]
                + ["sh", "sleep", "cat", "echo", "hostname"].map({ ["/bin/ln", "-s", "busybox", directory + "/rootfs/bin/" + $0] }) {
                #expect(h.execute(step).status == 0)
            }
            var linux: [String: Any] = ["namespaces": [["type": "pid"], ["type": "mount"]]]
            if let memory { linux["resources"] = ["memory": ["limit": memory]] }
            let config: [String: Any] = [
                "ociVersion": "1.0.2", "root": ["path": "rootfs"], "hostname": "pod", "annotations": annotations, "linux": linux,
                "process": ["args": args, "env": ["PATH=/bin"], "cwd": "/", "user": ["uid": 0, "gid": 0]],
            ]
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: directory + "/config.json"))
        }
        let runtime = URL(fileURLWithPath: Harness.binary).deletingLastPathComponent().appendingPathComponent("hvc-oci").path
        let globals = ["--root", base + "/state", "--hvc-root", h.root, "--hvc-run-root", h.runRoot, "--hvc-assets", Harness.assets]
        func oci(_ arguments: [String], output: String = "stdio") -> Harness.Result3 {
            h.execute(["/bin/sh", "-c", "exec \"$@\" >>\(base)/\(output) 2>&1 </dev/null", "sh", runtime] + globals + arguments, timeout: 180)
        }
        func status(_ id: String) -> String? {
            let r = h.execute([runtime] + globals + ["state", id])
            return ((try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any])?["status"] as? String
        }
        func lastLine(_ file: String) -> String {
            ((try? String(contentsOfFile: base + "/" + file, encoding: .utf8)) ?? "").split(separator: "\n").last.map(String.init) ?? ""
        }
        let sandbox = ["io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "sb", "io.hvc.memory": "256m"]
        func member(of sandbox: String) -> [String: String] {
            ["io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sandbox]
        }
        try bundle("sb", args: ["sleep", "1000"], annotations: sandbox)
        try bundle("c1", args: ["sh", "-c", "echo c1 up; exec sleep 1000"], annotations: member(of: "sb"), memory: 64 << 20)
        try bundle("c2", args: ["sh", "-c", "trap 'echo c2 got TERM; exit 7' TERM; echo c2 up; while :; do sleep 0.1; done"],
                   annotations: member(of: "sb"))
        try bundle("big", args: ["true"], annotations: member(of: "sb"), memory: 1 << 30)
        try bundle("lost", args: ["true"], annotations: member(of: "no-such-sandbox"))

        let lost = oci(["create", "--bundle", base + "/lost", "lost"], output: "lost.out")
        #expect(lost.status != 0)
        #expect(lastLine("lost.out").contains("pod sandbox \"no-such-sandbox\" does not exist"), "\(lastLine("lost.out"))")

        #expect(oci(["create", "--bundle", base + "/sb", "sb"]).status == 0)
        defer { _ = oci(["delete", "--force", "sb"]) }
        #expect(oci(["create", "--bundle", base + "/c1", "c1"]).status != 0, "a member of a sandbox not yet started")
        #expect(oci(["start", "sb"]).status == 0)
        #expect(oci(["create", "--bundle", base + "/c1", "--pid-file", base + "/c1.pid", "c1"], output: "c1.out").status == 0)
        defer { _ = oci(["delete", "--force", "c1"]) }
        #expect(status("c1") == "created")
        #expect(oci(["start", "c1"]).status == 0)
        #expect(status("c1") == "running")
        #expect(Harness.eventually(20) { lastLine("c1.out") == "c1 up" })

        let big = oci(["create", "--bundle", base + "/big", "big"], output: "big.out")
        #expect(big.status != 0)
        #expect(lastLine("big.out").contains("asks for 1024 MiB of memory, but pod sb's VM has 256 MiB: 64 MiB for its other containers"),
                "\(lastLine("big.out"))")
        #expect(status("big") == nil, "a refused member leaves no record")

        #expect(oci(["create", "--bundle", base + "/c2", "c2"], output: "c2.out").status == 0)
        defer { _ = oci(["delete", "--force", "c2"]) }
        #expect(oci(["start", "c2"]).status == 0)
        #expect(Harness.eventually(20) { lastLine("c2.out") == "c2 up" })
        let exec = h.execute([runtime] + globals + ["exec", "c2", "sh", "-c", "cat /proc/1/cmdline | head -c 2; echo; hostname"])
        #expect(exec.status == 0, "\(exec.stderr)")
        #expect(exec.stdout == "sh\npod\n", "the exec runs in c2's own pid namespace: \(exec.stdout)")
        let execC1 = h.execute([runtime] + globals + ["exec", "c1", "cat", "/proc/1/cmdline"])
        #expect(execC1.stdout.hasPrefix("sleep"), "c1's own pid 1: \(execC1.stdout)")

        // A signal ends one member; the pod and the other member go on.
        #expect(oci(["kill", "c2", "TERM"]).status == 0)
        #expect(Harness.eventually(20) { status("c2") == "stopped" })
        #expect(lastLine("c2.out") == "c2 got TERM")
        #expect(status("sb") == "running" && status("c1") == "running")
        #expect(oci(["delete", "c2"]).status == 0)

        // The pod's VM killed: its member ends with one line, and says it has stopped.
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base + "/state/sb/oci.json"))) as? [String: Any]
        let vm = try #require(record?["container"] as? String)
        let vmm = try h.vmmPID(vm)
        kill(vmm, SIGKILL)
        #expect(Harness.eventually(30) { status("c1") == "stopped" })
        #expect(Harness.eventually(30) { status("sb") == "stopped" })
        #expect(lastLine("c1.out").hasPrefix("hvc-oci: pod container c1: "), "\(lastLine("c1.out"))")
        let ended = oci(["create", "--bundle", base + "/c2", "c2"], output: "ended.out")
        #expect(ended.status != 0)
        #expect(lastLine("ended.out").contains("pod sandbox \"sb\" is stopped"), "\(lastLine("ended.out"))")
        #expect(oci(["delete", "c1"]).status == 0)
        #expect(oci(["delete", "sb"]).status == 0)
        #expect(Harness.eventually(30) { !h.leftoverVMDirectories().contains { vm.hasPrefix($0) } })
        #expect(h.execute(["/bin/ls", base + "/state"]).stdout.isEmpty, "no record left")
    }
}
