import Foundation
import Testing

extension EndToEnd {
    /// hvc-oci under the real podman: containers of podman's own image store, each in a VM.
    @Suite struct OCITests {
        let h: Harness
        /// podman with storage of its own under the harness's scratch directory, hvc-oci as its
        /// runtime and hvc's paths as runtime flags (conmon passes no environment on).
        let podman: [String]
        static let image = "localhost/ocitest:1"

        init() throws {
            h = try Harness.make()
            let base = URL(fileURLWithPath: h.root + "/../podman").standardizedFileURL.path
            let runtime = URL(fileURLWithPath: Harness.binary).deletingLastPathComponent().appendingPathComponent("hvc-oci").path
            podman = ["/usr/bin/podman", "--root", base + "/root", "--runroot", base + "/run", "--cgroup-manager", "cgroupfs",
                      "--events-backend", "none", "--runtime", runtime,
                      "--runtime-flag", "hvc-root=" + h.root, "--runtime-flag", "hvc-run-root=" + h.runRoot,
                      "--runtime-flag", "hvc-assets=" + Harness.assets, "--runtime-flag", "root=" + h.runRoot + "/oci"]
            if !h.execute(podman + ["images", "-q", OCITests.image]).stdout.isEmpty { return }
            let tree = base + "/tree"
            var steps: [[String]] = [["/bin/mkdir", "-p", tree + "/bin"], ["/bin/cp", "/bin/busybox", tree + "/bin/busybox"]]
            for applet in ["sh", "echo", "cat", "ls", "uname", "sleep", "id"] { steps.append(["/bin/ln", "-s", "busybox", tree + "/bin/" + applet]) }
            steps.append(["/bin/tar", "-C", tree, "-cf", base + "/tree.tar", "."])
            steps.append(podman + ["import", base + "/tree.tar", OCITests.image])
            for step in steps {
                let r = h.execute(step)
                guard r.status == 0 else { throw HarnessError(message: "\(step.joined(separator: " ")): \(r.stderr)") }
            }
        }

        func run(_ arguments: [String]) -> Harness.Result3 { h.execute(podman + arguments, timeout: 180) }

        @Test func podmanRunsInAGuestKernelWithExitCodes() throws {
            let r = run(["run", "--rm", "--network", "none", OCITests.image, "sh", "-c", "echo hi; uname -r"])
            #expect(r.status == 0, "\(r.stderr)")
            let lines = r.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first == "hi")
            let host = h.execute(["/bin/uname", "-r"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(lines.count == 2 && lines[1] != host && lines[1].hasSuffix("-hvc"), "\(lines) vs host \(host)")
            #expect(run(["run", "--rm", "--network", "none", OCITests.image, "sh", "-c", "exit 3"]).status == 3)
            // Nothing of hvc's is left: the container record, its state directory, its VM.
            #expect(h.hvc(["ps", "-a", "-q"]).stdout.split(separator: "\n").allSatisfy { !h.hvc(["inspect", String($0)]).stdout.contains("\"oci\"") })
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: h.runRoot + "/oci")) ?? []).isEmpty)
            #expect(Harness.eventually { h.leftoverVMMs().isEmpty })
        }

        @Test func detachedContainerLogsStopsAndGoes() throws {
            let d = run(["run", "-d", "--network", "none", OCITests.image, "sh", "-c",
                         "echo started; trap 'echo bye; exit 7' TERM; while true; do sleep 1; done"])
            try #require(d.status == 0, "\(d.stderr)")
            let id = d.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { _ = run(["rm", "-f", id]) }
            #expect(Harness.eventually(30) { run(["logs", id]).stdout == "started\n" })
            // The container's host process: a VM's supervisor, in the container's network namespace.
            let pid = run(["inspect", "--format", "{{.State.Pid}}", id]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let netns = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")
            #expect(netns != (try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")))
            #expect(run(["stop", "-t", "10", id]).status == 0)
            #expect(run(["inspect", "--format", "{{.State.ExitCode}}", id]).stdout == "7\n")
            #expect(run(["logs", id]).stdout == "started\nbye\n")
            #expect(run(["rm", id]).status == 0)
        }

        @Test func aHostFolderIsMounted() throws {
            let dir = h.root + "/../oci-folder-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try "from-host\n".write(toFile: dir + "/f", atomically: false, encoding: .utf8)
            let r = run(["run", "--rm", "--network", "none", "-v", dir + ":/data", OCITests.image, "sh", "-c", "cat /data/f; echo back > /data/g"])
            #expect(r.stdout == "from-host\n", "\(r.stderr)")
            #expect((try? String(contentsOfFile: dir + "/g", encoding: .utf8)) == "back\n")
        }

        /// The runtime spec's lifecycle and its error cases, hvc-oci driven directly on a bundle
        /// made here; the container's stdio (which create hands on) goes to a file.
        @Test func runtimeSpecLifecycleAndErrors() throws {
            let base = h.root + "/../oci-bundle-\(UUID().uuidString.prefix(8))"
            defer { try? FileManager.default.removeItem(atPath: base) }
            for step in [["/bin/mkdir", "-p", base + "/bundle/rootfs/bin"], ["/bin/cp", "/bin/busybox", base + "/bundle/rootfs/bin/busybox"],
                         ["/bin/ln", "-s", "busybox", base + "/bundle/rootfs/bin/sh"], ["/bin/ln", "-s", "busybox", base + "/bundle/rootfs/bin/sleep"]] {
                #expect(h.execute(step).status == 0)
            }
            let config = #"{"ociVersion": "1.0.2", "process": {"args": ["sh", "-c", "echo hi; sleep 300"], "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}}, "root": {"path": "rootfs"}, "hostname": "spec", "annotations": {"a": "b"}, "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"}]}}"#
            try config.write(toFile: base + "/bundle/config.json", atomically: false, encoding: .utf8)
            let runtime = URL(fileURLWithPath: Harness.binary).deletingLastPathComponent().appendingPathComponent("hvc-oci").path
            let globals = ["--root", base + "/state", "--log", base + "/log.json", "--log-format", "json",
                           "--hvc-root", h.root, "--hvc-run-root", h.runRoot, "--hvc-assets", Harness.assets]
            func oci(_ arguments: [String]) -> Harness.Result3 {
                h.execute(["/bin/sh", "-c", "exec \"$@\" >>\(base)/stdio 2>&1 </dev/null", "sh", runtime] + globals + arguments, timeout: 180)
            }
            func state() -> [String: Any] {
                let r = h.execute([runtime] + globals + ["state", "c1"])
                return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
            }
            #expect(oci(["create", "--bundle", base + "/bundle", "--pid-file", base + "/pid", "c1"]).status == 0)
            defer { _ = oci(["delete", "--force", "c1"]) }
            let created = state()
            let pid = (try? String(contentsOfFile: base + "/pid", encoding: .utf8)) ?? "none"
            #expect(created["status"] as? String == "created" && created["ociVersion"] as? String != nil)
            #expect((created["pid"] as? Int).map(String.init) == pid)
            #expect(created["bundle"] as? String == URL(fileURLWithPath: base + "/bundle").standardizedFileURL.path)
            #expect((created["annotations"] as? [String: String]) == ["a": "b"])
            #expect(oci(["create", "--bundle", base + "/bundle", "c1"]).status != 0, "a second create with one id")
            #expect(oci(["start", "c1"]).status == 0)
            #expect(state()["status"] as? String == "running")
            #expect(Harness.eventually(20) { ((try? String(contentsOfFile: base + "/stdio", encoding: .utf8)) ?? "").contains("hi") })
            #expect(oci(["delete", "c1"]).status != 0, "delete of a running container without --force")
            #expect(oci(["kill", "c1", "KILL"]).status == 0)
            #expect(Harness.eventually(20) { state()["status"] as? String == "stopped" })
            #expect(oci(["start", "c1"]).status != 0, "start of a stopped container")
            #expect(oci(["delete", "c1"]).status == 0)
            #expect(h.execute([runtime] + globals + ["state", "c1"]).status != 0)
            #expect(oci(["kill", "no-such-container", "TERM"]).status != 0)
            let log = (try? String(contentsOfFile: base + "/log.json", encoding: .utf8)) ?? ""
            let last = log.split(separator: "\n").last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(last?["level"] as? String == "error" && (last?["msg"] as? String)?.contains("no-such-container") == true, "\(log)")
        }
    }
}
