import Foundation
import Testing

extension EndToEnd {
    /// hvc-oci under the real podman: containers of podman's own image store, each in a VM.
    @Suite struct OCITests {
        let h: Harness
        /// podman with storage of its own under the harness's scratch directory, hvc-oci as its
        /// runtime and hvc's paths as runtime flags (conmon passes no environment on).
        let podman: [String]
        static let image = "localhost/ocitest:2"
        /// Prints the body of the URL in argv[1], no proxies (static busybox's wget crashes on
        /// this host's NSS).
        static let fetch = "import sys, urllib.request; o = urllib.request.build_opener(urllib.request.ProxyHandler({})); sys.stdout.write(o.open(sys.argv[1], timeout=3).read().decode())"

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
            for applet in ["sh", "echo", "cat", "ls", "uname", "sleep", "id", "httpd", "tty", "ip", "wc"] {
                steps.append(["/bin/ln", "-s", "busybox", tree + "/bin/" + applet])
            }
            steps.append(["/bin/sh", "-c", "mkdir -p \(tree)/www && echo served-from-a-vm > \(tree)/www/index.html"])
            steps.append(["/bin/tar", "-C", tree, "-cf", base + "/tree.tar", "."])
            steps.append(podman + ["import", base + "/tree.tar", OCITests.image])
            for step in steps {
                let r = h.execute(step)
                guard r.status == 0 else { throw HarnessError(message: "\(step.joined(separator: " ")): \(r.stderr)") }
            }
        }

        func run(_ arguments: [String]) -> Harness.Result3 { h.execute(podman + arguments, timeout: 180) }

        /// An executable that runs hvc-oci with this harness's hvc paths: what containerd and
        /// dockerd are given as their runc (they pass no flags of a runtime's own).
        func runtimeWrapper(in directory: String) throws -> String {
            let runtime = URL(fileURLWithPath: Harness.binary).deletingLastPathComponent().appendingPathComponent("hvc-oci").path
            let path = directory + "/hvc-oci-wrapper"
            try """
                #!/bin/sh
                exec \(runtime) --hvc-root=\(h.root) --hvc-run-root=\(h.runRoot) --hvc-assets=\(Harness.assets) "$@"

                """.write(toFile: path, atomically: false, encoding: .utf8)
            chmod(path, 0o755)
            return path
        }

        /// A daemon of the test's own, its output in `log`; ended (TERM, then KILL) by the caller.
        func startDaemon(_ argv: [String], log: String) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: argv[0])
            process.arguments = Array(argv.dropFirst())
            FileManager.default.createFile(atPath: log, contents: nil)
            let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            process.standardOutput = output
            process.standardError = output
            try process.run()
            return process
        }

        func stopDaemon(_ process: Process) {
            process.terminate()
            if !Harness.eventually(30, { !process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
            _ = Harness.exitStatus(of: process)
        }

        @Test func podmanRunsInAGuestKernelWithExitCodes() throws {
            let r = run(["run", "--rm", "--network", "none", OCITests.image, "sh", "-c", "echo hi; uname -r"])
            #expect(r.status == 0, "\(r.stderr)")
            let lines = r.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first == "hi")
            let host = h.execute(["/bin/uname", "-r"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(lines.count == 2 && lines[1] != host && lines[1].hasSuffix("-hvc"), "\(lines) vs host \(host)")
            #expect(run(["run", "--rm", "--network", "none", OCITests.image, "sh", "-c", "exit 3"]).status == 3)
            // Nothing of hvc's is left: the container record, its state directory, its VM.
            let ociContainers = h.hvc(["ps", "-a", "-q"]).stdout.split(separator: "\n").map(String.init).filter { h.hvc(["inspect", $0]).stdout.contains("\"oci\"") }
            #expect(ociContainers.isEmpty, "\(ociContainers.map { h.hvc(["inspect", $0]).stdout })")
            let records = (try? FileManager.default.contentsOfDirectory(atPath: h.runRoot + "/oci")) ?? []
            #expect(records.isEmpty, "\(records)")
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

        @Test func execPauseUpdateAndTerminals() throws {
            let d = run(["run", "-d", "--network", "none", OCITests.image, "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.2; done"])
            try #require(d.status == 0, "\(d.stderr)")
            let id = d.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { _ = run(["rm", "-f", "-t", "0", id]) }
            let e = run(["exec", "-e", "FROM_EXEC=yes", id, "sh", "-c", "echo $FROM_EXEC; uname -r"])
            #expect(e.status == 0 && e.stdout.hasPrefix("yes\n") && e.stdout.contains("-hvc"), "\(e.stdout) \(e.stderr)")
            #expect(run(["exec", id, "sh", "-c", "exit 5"]).status == 5)
            #expect(run(["exec", id, "no-such-command"]).status == 127)
            // A terminal for exec and for run, under a pseudo-terminal of the test's (script).
            let shell = podman.map { "'\($0)'" }.joined(separator: " ")
            let tty = h.execute(["/usr/bin/script", "-qec", shell + " exec -it \(id) tty", "/dev/null"], timeout: 120)
            #expect(tty.stdout.contains("/dev/pts/"), "\(tty.stdout) \(tty.stderr)")
            let runTTY = h.execute(["/usr/bin/script", "-qec", shell + " run --rm -it --network none \(OCITests.image) sh -c 'tty; exit 4'", "/dev/null"], timeout: 120)
            #expect(runTTY.stdout.contains("/dev/pts/") && runTTY.status == 4, "\(runTTY.stdout) \(runTTY.stderr)")
            // pause stops the whole VM: its counter stands still until resume.
            #expect(run(["pause", id]).status == 0)
            #expect(run(["inspect", "--format", "{{.State.Status}}", id]).stdout == "paused\n")
            let before = run(["logs", id]).stdout.count
            Thread.sleep(forTimeInterval: 2)
            #expect(run(["logs", id]).stdout.count == before)
            #expect(run(["unpause", id]).status == 0)
            #expect(Harness.eventually(20) { run(["logs", id]).stdout.count > before })
            // update: the VM's CPU quota changes in its cgroup.
            #expect(run(["update", "--cpus", "0.5", id]).status == 0)
            let inspect = h.hvc(["inspect", id]).stdout
            let vm = try #require(inspect.firstMatch(of: /"id" : "([0-9a-f]{16})/)?.1)
            let quota = ["/sys/fs/cgroup/cpu/hvc/oci/\(vm)/cpu.cfs_quota_us", "/sys/fs/cgroup/hvc/oci/\(vm)/cpu.max"]
                .compactMap { try? String(contentsOfFile: $0, encoding: .utf8) }.first
            #expect(quota?.hasPrefix("50000") == true, "\(String(describing: quota))")
            #expect(run(["kill", id]).status == 0)
            #expect(Harness.eventually(30) { run(["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", id]).stdout == "exited 137\n" })
            #expect(run(["exec", id, "true"]).status != 0, "exec in a stopped container")
        }

        /// The bundle's rlimits, capability sets, no_new_privs and additional groups hold for
        /// the container's process inside the guest; podman's defaults differ from each.
        @Test func limitsCapabilitiesAndGroupsApplyInTheGuest() throws {
            let script = "ulimit -n; cat /proc/self/status; echo PidsMax: $(cat /sys/fs/cgroup/pids.max)"
            func facts(_ r: Harness.Result3) -> (files: String, fields: [String: String]) {
                let lines = r.stdout.split(separator: "\n").map(String.init)
                var fields: [String: String] = [:]
                for line in lines.dropFirst() {
                    let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                    if parts.count == 2 { fields[parts[0]] = parts[1] }
                }
                return (lines.first ?? "", fields)
            }
            let set = run(["run", "--rm", "--network", "none", "--ulimit", "nofile=1000:1000", "--cap-drop", "all", "--cap-add", "chown",
                           "--security-opt", "no-new-privileges", "--group-add", "44", "--pids-limit", "50", OCITests.image,
                           "sh", "-c", script])
            #expect(set.status == 0, "\(set.stderr)")
            let restricted = facts(set)
            #expect(restricted.files == "1000")
            #expect(restricted.fields["CapBnd"] == "0000000000000001" && restricted.fields["CapEff"] == "0000000000000001",
                    "\(restricted.fields)")
            #expect(restricted.fields["NoNewPrivs"] == "1" && restricted.fields["PidsMax"] == "50", "\(restricted.fields)")
            #expect(restricted.fields["Groups"]?.split(separator: " ").contains("44") == true, "\(restricted.fields)")
            let plain = facts(run(["run", "--rm", "--network", "none", OCITests.image, "sh", "-c", script]))
            // Annotations set the VM's shape: its memory and vCPUs, seen by the guest kernel.
            let shaped = run(["run", "--rm", "--network", "none", "--annotation", "io.hvc.memory=640m", "--annotation", "io.hvc.cpus=2",
                              OCITests.image, "sh", "-c", "cat /sys/devices/system/cpu/online; cat /proc/meminfo"])
            let memTotal = shaped.stdout.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
                .flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
            #expect(shaped.stdout.hasPrefix("0-1\n") && memTotal > 500_000 && memTotal <= 640 * 1024, "\(shaped.stdout.prefix(80)) \(shaped.stderr)")
            #expect(plain.files != "1000" && plain.fields["CapBnd"] != "0000000000000001" && plain.fields["NoNewPrivs"] == "0"
                    && plain.fields["PidsMax"] != "50", "\(plain)")
        }

        /// podman's own network (netavark's bridge) and port publishing: the VM's NIC takes over
        /// the container's veth, so the host reaches busybox httpd in the guest through -p.
        @Test func podmanNetworkAndPublishedPort() throws {
            let port = Harness.freePort()
            let d = run(["run", "-d", "-p", "\(port):80", OCITests.image, "httpd", "-f", "-p", "80", "-h", "/www"])
            try #require(d.status == 0, "\(d.stderr)")
            let id = d.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { _ = run(["rm", "-f", "-t", "0", id]) }
            var page = ""
            #expect(Harness.eventually(30) {
                page = h.execute(["/usr/bin/python3", "-c", Self.fetch, "http://127.0.0.1:\(port)/"], timeout: 10).stdout
                return page == "served-from-a-vm\n"
            }, "\(page)")
            // The address podman leased is the guest's own.
            let leased = run(["inspect", "--format", "{{.NetworkSettings.IPAddress}}", id]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let guest = run(["exec", id, "ip", "-4", "addr", "show", "eth0"]).stdout
            #expect(!leased.isEmpty && guest.contains("inet \(leased)/"), "\(leased) vs \(guest)")
        }

        /// containerd 1.6 through `ctr`, hvc-oci as its runc: an imported image, `run --rm` with
        /// the output and exit code, a detached task with an exec, ended by `ctr task kill`.
        @Test func containerdRunsTasksInVMs() throws {
            let base = h.root + "/../containerd-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: base) }
            try """
                version = 2
                root = "\(base)/root"
                state = "\(base)/state"
                disabled_plugins = ["io.containerd.grpc.v1.cri"]
                [grpc]
                  address = "\(base)/containerd.sock"

                """.write(toFile: base + "/config.toml", atomically: false, encoding: .utf8)
            let daemon = try startDaemon(["/usr/bin/containerd", "--config", base + "/config.toml"], log: base + "/log")
            defer { stopDaemon(daemon) }
            let namespace = "hvc-test-\(UUID().uuidString.prefix(8).lowercased())"
            let ctr = ["/usr/bin/ctr", "-a", base + "/containerd.sock", "-n", namespace]
            let runtime = try runtimeWrapper(in: base)
            try #require(Harness.eventually(30) { h.execute(ctr + ["version"]).status == 0 }, "containerd did not come up")
            try #require(run(["save", "-o", base + "/image.tar", OCITests.image]).status == 0)
            let imported = h.execute(ctr + ["image", "import", base + "/image.tar"], timeout: 120)
            try #require(imported.status == 0, "\(imported.stderr)")
            let r = h.execute(ctr + ["run", "--rm", "--runc-binary", runtime, OCITests.image, "t1", "sh", "-c", "echo hi; uname -r"], timeout: 180)
            #expect(r.status == 0 && r.stdout.hasPrefix("hi\n") && r.stdout.contains("-hvc"), "\(r.stdout) \(r.stderr)")
            #expect(h.execute(ctr + ["run", "--rm", "--runc-binary", runtime, OCITests.image, "t2", "sh", "-c", "exit 3"], timeout: 180).status == 3)
            let detached = h.execute(ctr + ["run", "-d", "--runc-binary", runtime, OCITests.image, "t3", "sleep", "1000"], timeout: 180)
            try #require(detached.status == 0, "\(detached.stderr)")
            #expect(Harness.eventually(30) { h.execute(ctr + ["task", "ls"]).stdout.contains("RUNNING") })
            let exec = h.execute(ctr + ["task", "exec", "--exec-id", "e1", "t3", "sh", "-c", "echo in-exec; exit 6"], timeout: 120)
            #expect(exec.stdout == "in-exec\n" && exec.status == 6, "\(exec.stdout) \(exec.stderr)")
            #expect(h.execute(ctr + ["task", "kill", "-s", "SIGKILL", "t3"]).status == 0)
            #expect(Harness.eventually(30) { h.execute(ctr + ["task", "ls"]).stdout.contains("STOPPED") })
            #expect(h.execute(ctr + ["task", "rm", "t3"]).status == 0)
            #expect(h.execute(ctr + ["container", "rm", "t3"]).status == 0)
            #expect(Harness.eventually { h.leftoverVMMs().isEmpty })
            try? FileManager.default.removeItem(atPath: "/run/containerd/runc/" + namespace)
        }

        /// dockerd with hvc-oci added as a runtime: `docker run --runtime hvc`.
        @Test func dockerRunsWithTheHvcRuntime() throws {
            let base = h.root + "/../docker-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: base) }
            let runtime = try runtimeWrapper(in: base)
            let daemon = try startDaemon(["/usr/sbin/dockerd", "--data-root", base + "/data", "--exec-root", base + "/exec",
                                          "-H", "unix://\(base)/docker.sock", "--pidfile", base + "/docker.pid",
                                          "--iptables=false", "--ip6tables=false", "--bridge=none", "--add-runtime", "hvc=" + runtime],
                                         log: base + "/log")
            defer {
                stopDaemon(daemon)
                // dockerd makes its data root a mount of its own and leaves it.
                _ = h.execute(["/bin/umount", "-R", base + "/data"])
            }
            let docker = ["/usr/bin/docker", "-H", "unix://\(base)/docker.sock"]
            try #require(Harness.eventually(60) { h.execute(docker + ["version"]).status == 0 }, "dockerd did not come up")
            try #require(run(["save", "-o", base + "/image.tar", OCITests.image]).status == 0)
            try #require(h.execute(docker + ["load", "-i", base + "/image.tar"], timeout: 120).status == 0)
            let r = h.execute(docker + ["run", "--runtime", "hvc", "--rm", "--network", "none", OCITests.image, "sh", "-c", "echo hi; uname -r"], timeout: 180)
            #expect(r.status == 0 && r.stdout.hasPrefix("hi\n") && r.stdout.contains("-hvc"), "\(r.stdout) \(r.stderr)")
            #expect(h.execute(docker + ["run", "--runtime", "hvc", "--rm", "--network", "none", OCITests.image, "sh", "-c", "exit 3"], timeout: 180).status == 3)
            #expect(Harness.eventually { h.leftoverVMMs().isEmpty })
        }

        /// The runtime spec's lifecycle and its error cases, hvc-oci driven directly on a bundle
        /// made here; the container's stdio (which create hands on) goes to a file.
        /// The bundle `runc spec` writes (ambient capabilities without inheritable ones, a
        /// read-only root) runs as under runc, and the container's root is the bundle's own: the
        /// container prepared on the base image's root moved onto it, the old root detached.
        @Test func runcSpecBundleRunsOnTheBundleRoot() throws {
            let base = h.root + "/../oci-spec-\(UUID().uuidString.prefix(8))"
            defer { try? FileManager.default.removeItem(atPath: base) }
            let rootfs = base + "/bundle/rootfs"
            var steps = [["/bin/mkdir", "-p", rootfs + "/bin"], ["/bin/cp", "/bin/busybox", rootfs + "/bin/busybox"],
                         ["/bin/sh", "-c", "echo bundle-root > \(rootfs)/marker"], ["/usr/sbin/runc", "spec", "--bundle", base + "/bundle"]]
            for applet in ["sh", "cat", "grep"] { steps.append(["/bin/ln", "-s", "busybox", rootfs + "/bin/" + applet]) }
            for step in steps { #expect(h.execute(step).status == 0, "\(step)") }
            let configPath = base + "/bundle/config.json"
            var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as? [String: Any])
            var process = try #require(config["process"] as? [String: Any])
            let capabilities = try #require(process["capabilities"] as? [String: Any])
            #expect(capabilities["ambient"] != nil && capabilities["inheritable"] == nil, "runc spec's default changed: \(capabilities)")
            process["terminal"] = false
            process["args"] = ["sh", "-c", "cat /marker; grep Cap /proc/self/status; cat /proc/self/mountinfo"]
            config["process"] = process
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
            let runtime = URL(fileURLWithPath: Harness.binary).deletingLastPathComponent().appendingPathComponent("hvc-oci").path
            let globals = ["--root", base + "/state", "--hvc-root", h.root, "--hvc-run-root", h.runRoot, "--hvc-assets", Harness.assets]
            let run = h.execute(["/bin/sh", "-c", "exec \"$@\" >>\(base)/stdio 2>&1 </dev/null", "sh", runtime] + globals
                                + ["run", "--bundle", base + "/bundle", "c2"], timeout: 180)
            #expect(run.status == 0, "\(run.stderr)")
            defer { _ = h.execute([runtime] + globals + ["delete", "--force", "c2"]) }
            #expect(Harness.eventually(30) { h.execute([runtime] + globals + ["state", "c2"]).stdout.contains("\"stopped\"") })
            let output = (try? String(contentsOfFile: base + "/stdio", encoding: .utf8)) ?? ""
            #expect(output.contains("bundle-root"), "\(output)")
            // As runc gives it: the spec's three capabilities, none of them ambient.
            #expect(output.contains("CapEff:\t0000000020000420") && output.contains("CapAmb:\t0000000000000000"), "\(output)")
            let roots = output.split(separator: "\n").filter { $0.split(separator: " ").dropFirst(4).first == "/" }
            #expect(roots.count == 1 && roots.first?.contains(" - 9p ") == true, "one root, the bundle's share: \(output)")
        }

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
