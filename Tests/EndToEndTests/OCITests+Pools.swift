import Foundation
import Testing

extension EndToEnd.OCITests {
    /// A warm pool of the VMs hvc-oci runs bundles in (`hvc pool set hvc-oci-base:1 N --network
    /// none`) serves podman: a container's VM is one that waited, still jailed; hvcd starts the
    /// VM that takes its place (outside conmon's tree); the container's host process is still
    /// the container: killed, before `start` or after, the pooled VM ends with it. Attached runs
    /// keep stdin, stdout, stderr and the exit code.
    @Test func podmanRunsTakePooledVMsThatHvcdReplaces() throws {
        try h.withDaemon(tenants: "{}") { _ in
            let hvcd = try #require(h.processes(named: "hvcd", matching: h.runRoot).first)
            let set = h.hvc(["pool", "set", "hvc-oci-base:1", "1", "--network", "none"])
            #expect(set.status == 0, "\(set.stderr)")
            defer {
                _ = h.hvc(["pool", "set", "hvc-oci-base:1", "0", "--network", "none"])
                #expect(Harness.eventually(15) { h.poolMembers().isEmpty })
            }
            let listed = h.hvc(["pool", "ls"])
            #expect(listed.stdout.contains("hvc-oci-base:1") && listed.stdout.contains("none"), "\(listed.stdout)")
            let waiting = h.poolMembers()
            #expect(waiting.count == 1, "\(waiting)")

            let started = run(["run", "-d", "--network", "none", Self.image, "sleep", "120"])
            #expect(started.status == 0, "\(started.stderr)")
            let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { _ = run(["rm", "-f", "-t", "0", id]) }
            let state = try h.state(id)
            let supervisor = try #require((state["supervisorPID"] as? Int).map(Int32.init))
            #expect(waiting.contains(supervisor), "the container's supervisor \(supervisor) is not the VM that waited: \(waiting)")
            let vmm = try h.vmmPID(id)
            let jail = try Harness.processStatus(vmm)
            // Jailed as any VM that serves folders: only the file server's CHOWN, DAC_OVERRIDE, FOWNER, FSETID.
            #expect(jail["NoNewPrivs"] == "1" && jail["Seccomp"] == "2" && jail["CapEff"] == "000000000000001b", "\(jail)")
            #expect((jail["Uid"]?.split(separator: "\t") ?? []).allSatisfy { $0 != "0" }, "\(jail)")
            let exec = run(["exec", id, "sh", "-c", "grep ' / ' /proc/mounts | cut -d' ' -f3; echo ok"])
            #expect(exec.stdout == "9p\nok\n", "the bundle's root is the container's: \(exec.stdout) \(exec.stderr)")

            // hvcd replaced the VM taken: the waiting one is its child, not conmon's.
            #expect(Harness.eventually(90) { h.poolMembers().count == 1 && !h.poolMembers().contains(supervisor) })
            let replacement = try #require(h.poolMembers().first)
            #expect(Self.parent(of: replacement) == hvcd)

            // The container's host process (what --pid-file names) killed outright, with nobody to
            // delete the container after it: before `start` and while running, its VM goes too.
            let base = h.root + "/../oci-pool-\(UUID().uuidString.prefix(8))"
            defer { try? FileManager.default.removeItem(atPath: base) }
            for step in [["/bin/mkdir", "-p", base + "/bundle/rootfs/bin"], ["/bin/cp", "/bin/busybox", base + "/bundle/rootfs/bin/busybox"],
                         ["/bin/ln", "-s", "busybox", base + "/bundle/rootfs/bin/sleep"]] {
                #expect(h.execute(step).status == 0)
            }
            let config = #"{"ociVersion": "1.0.2", "process": {"args": ["sleep", "300"], "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}}, "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"}]}}"#
            try config.write(toFile: base + "/bundle/config.json", atomically: false, encoding: .utf8)
            let runtime = URL(fileURLWithPath: Harness.binary).deletingLastPathComponent().appendingPathComponent("hvc-oci").path
            let globals = ["--root", base + "/state", "--hvc-root", h.root, "--hvc-run-root", h.runRoot, "--hvc-assets", Harness.assets]
            for startsFirst in [false, true] {
                let name = startsFirst ? "pool-killed-running" : "pool-killed-created"
                #expect(Harness.eventually(90) { h.poolMembers().count == 1 }, "the pool was not refilled")
                let member = try #require(h.poolMembers().first)
                let create = h.execute(["/bin/sh", "-c", "exec \"$@\" </dev/null >/dev/null 2>&1", "sh", runtime] + globals
                                       + ["create", "--bundle", base + "/bundle", "--pid-file", base + "/\(name).pid", name], timeout: 180)
                #expect(create.status == 0, "\(create.stderr)")
                defer { _ = h.execute([runtime] + globals + ["delete", "--force", name]) }
                if startsFirst { #expect(h.execute([runtime] + globals + ["start", name]).status == 0) }
                let vmm = try h.vmmPID(name)
                #expect(try h.state(name)["supervisorPID"] as? Int == Int(member), "\(name) did not take the pooled VM")
                if startsFirst {
                    // `update` finds the pooled VM's cgroup, named after the pool member it was.
                    try #"{"pids": {"limit": 999}}"#.write(toFile: base + "/resources.json", atomically: false, encoding: .utf8)
                    let update = h.execute([runtime] + globals + ["update", "--resources", base + "/resources.json", name])
                    #expect(update.status == 0, "\(update.stderr)")
                    let paths = try Harness.cgroupPaths(vmm)
                    let limit = try Harness.cgroupFile(vmm, controller: "pids", v2File: "pids.max", v1File: "pids.max")
                    #expect(limit == "999" && (paths["pids"] ?? paths[""] ?? "").contains("/hvc/hvc-pool/"), "\(paths): \(limit)")
                }
                let host = Int32((try? String(contentsOfFile: base + "/\(name).pid", encoding: .utf8)) ?? "") ?? 0
                #expect(host > 0 && host != member && kill(host, SIGKILL) == 0)
                #expect(Harness.eventually(30) { kill(vmm, 0) != 0 }, "\(name): the pooled VM outlived its container's host process")
                #expect(Harness.eventually(30) { kill(member, 0) != 0 })
            }

            // Attached, through the VM that waited (its supervisor ends with the container).
            #expect(Harness.eventually(90) { h.poolMembers().count == 1 }, "the pool was not refilled")
            let next = try #require(h.poolMembers().first)
            let attached = h.execute(podman + ["run", "--rm", "-i", "--network", "none", Self.image, "sh", "-c", "cat; echo err >&2; exit 3"],
                                     stdin: "from stdin\n", timeout: 180)
            #expect(attached.status == 3, "\(attached.stderr)")
            #expect(attached.stdout == "from stdin\n")
            #expect(attached.stderr.contains("err\n"))
            #expect(Harness.eventually(30) { kill(next, 0) != 0 }, "the run did not take the pooled VM")
        }
    }
}
