import Foundation
import Testing

extension EndToEnd {
    /// Every VMM runs jailed: what `/proc` says about a running container's QEMU.
    @Suite struct JailTests {
        let h: Harness

        init() throws { h = try Harness.make() }

        @Test func theVMMHasNoPrivilegesAndItsOwnNamespaces() throws {
            _ = h.hvc(["run", "-d", "--name", "jailed", "busybox", "sleep", "1000"])
            defer { _ = h.hvc(["rm", "-f", "jailed"]) }
            let pid = try h.vmmPID("jailed")
            let fields = try Harness.processStatus(pid)
            for cap in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
                #expect(fields[cap] == "0000000000000000", "\(cap)")
            }
            #expect(fields["NoNewPrivs"] == "1")
            #expect(fields["Seccomp"] == "2")
            let uids = fields["Uid"]?.split(separator: "\t") ?? []
            let gids = fields["Gid"]?.split(separator: "\t") ?? []
            #expect(uids.count == 4 && uids.allSatisfy { $0 != "0" })
            #expect(gids.count == 4 && gids.allSatisfy { $0 != "0" })
            for namespace in ["mnt", "pid", "net", "ipc", "uts"] {
                let theirs = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(namespace)")
                let ours = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/\(namespace)")
                #expect(theirs != ours, "\(namespace) namespace is the host's")
            }
            let root = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/root")
            #expect(!root.contains("etc"))
            #expect(!root.contains("home"))
            #expect(!FileManager.default.fileExists(atPath: "/proc/\(pid)/root/etc/shadow"))
            #expect(Set(root).isSubset(of: ["agent.sock", "qmp.sock", "console.log", "vmlinux", "initramfs.cpio",
                                            "rootfs.img", "usr", "lib", "lib64", "bin", "dev", "proc", "shares", "qemu.log"]))
            // The shared-folder directory is there, empty and read-only, for a VM without folders.
            #expect((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/root/shares")) == [])
        }

        @Test func theVMMCgroupHasTheLimitsAsked() throws {
            _ = h.hvc(["run", "-d", "--name", "limited", "--memory", "256m", "--cpus", "1", "--pids-limit", "64",
                       "busybox", "sleep", "1000"])
            defer { _ = h.hvc(["rm", "-f", "limited"]) }
            let pid = try h.vmmPID("limited")
            // Guest RAM plus the VMM overhead README states (160 MiB: TCG cache and QEMU's heap).
            let memory = try Harness.cgroupFile(pid, controller: "memory", v2File: "memory.max", v1File: "memory.limit_in_bytes")
            #expect(memory == "\((256 + 160) << 20)")
            #expect(try Harness.cgroupFile(pid, controller: "pids", v2File: "pids.max", v1File: "pids.max") == "64")
            let quota = try Harness.cgroupFile(pid, controller: "cpu", v2File: "cpu.max", v1File: "cpu.cfs_quota_us")
            #expect(quota == "100000" || quota == "100000 100000")
        }

        @Test func aMemoryHogIsStoppedAndOthersKeepRunning() throws {
            _ = h.hvc(["run", "-d", "--name", "bystander", "busybox", "sleep", "1000"])
            defer { _ = h.hvc(["rm", "-f", "bystander"]) }
            // Three buffers of 60 MiB, each allowed alone, together more than the guest's 128 MiB:
            // the guest's OOM killer must stop one.
            let dd = "dd if=/dev/zero of=/dev/null bs=60M count=1 2>/dev/null"
            let hog = h.hvc(["run", "--name", "hog", "--memory", "128m", "busybox", "sh", "-c",
                             IsolationTable.attack("\(dd) & a=$!; \(dd) & b=$!; \(dd) & c=$!; wait $a; x=$?; wait $b; y=$?; wait $c; echo $x $? $y",
                                                   disabled: "true")])
            #expect(hog.stdout.contains("137"))
            let state = h.hvc(["inspect", "hog"]).stdout
            #expect(state.contains("\"oomKilled\" : true"))
            let alive = h.hvc(["exec", "bystander", "echo", "alive"]).stdout == "alive\n"
            #expect(alive)
            // The same buffer alone, in a VM of the same size: it fits.
            let alone = h.hvc(["run", "--rm", "--memory", "128m", "busybox", "sh", "-c", "\(dd); echo $?"])
            let statuses = hog.stdout.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
            IsolationTable.record([.init(
                area: "resources", attack: "memory hog: three 60 MiB buffers in a 128 MiB VM, beside a neighbour",
                expected: "the guest's OOM killer ends one; the neighbour answers",
                attempted: statuses.count == 3 ? "the three buffers ran (their statuses: \(statuses.map(String.init).joined(separator: " ")))" : nil,
                observed: "\(hog.stdout.contains("137") ? "one ended by SIGKILL (137), oomKilled recorded" : "no OOM kill"); neighbour \(alive ? "answered" : "did not answer")",
                outcomeHeld: alive && statuses.contains(137) && state.contains("\"oomKilled\" : true"),
                control: "one buffer alone in the same VM size: \(alone.stdout == "0\n" ? "fits" : "failed (\(alone.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))")",
                controlShown: alone.stdout == "0\n", test: "JailTests.aMemoryHogIsStoppedAndOthersKeepRunning")])
            _ = h.hvc(["rm", "hog"])
        }

        /// The bomb's processes are guest processes: the test counts them inside the bomb's own
        /// guest (so it sees the bomb work), inside the neighbour's guest and on the host (where
        /// an escaped bomb would show), and asks the neighbour to answer meanwhile. The bomb is a
        /// tree of 1024 processes that stay (its leaves block on a FIFO), so that it is there to
        /// count; the neighbour's and the host's counts would grow by as many if it escaped.
        @Test func aForkBombStaysInsideItsVM() throws {
            _ = h.hvc(["run", "-d", "--name", "neighbour", "busybox", "sleep", "1000"])
            defer { _ = h.hvc(["rm", "-f", "neighbour"]) }
            // Shell builtins only: a glob counts the guest's /proc.
            let count = "set -- /proc/[0-9]*; echo $#"
            let before = Int(h.hvc(["exec", "neighbour", "sh", "-c", count]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            let hostProcesses = try FileManager.default.contentsOfDirectory(atPath: "/proc").filter { Int($0) != nil }.count
            let bomb = "mkfifo /tmp/hold; b() { if [ $1 -gt 0 ]; then b $(($1-1)) & b $(($1-1)) & wait; else read x < /tmp/hold; fi; }; "
                + "b 9 2>/dev/null & n=0; while [ $n -lt 1000 ]; do set -- /proc/[0-9]*; n=$#; done; echo bomb $n; read x < /tmp/hold"
            _ = h.hvc(["run", "-d", "--name", "bomb", "busybox", "sh", "-c", IsolationTable.attack(bomb, disabled: "echo bomb 0; exec sleep 1000")])
            defer { _ = h.hvc(["rm", "-f", "bomb"], timeout: 60) }
            var inBomb = 0
            #expect(Harness.eventually(120) {
                let log = h.hvc(["logs", "bomb"]).stdout
                inBomb = log.split(separator: " ").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
                return log.hasPrefix("bomb ")
            })
            #expect(inBomb >= 1000, "the bomb made only \(inBomb) processes in its guest")
            let during = try FileManager.default.contentsOfDirectory(atPath: "/proc").filter { Int($0) != nil }.count
            #expect(during < hostProcesses + 50, "host process count grew from \(hostProcesses) to \(during)")
            let neighbour = h.hvc(["exec", "neighbour", "sh", "-c", count], timeout: 60)
            let inNeighbour = Int(neighbour.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            #expect(before > 0 && inNeighbour > 0 && inNeighbour <= before + 2, "neighbour's guest: \(before) then \(inNeighbour) processes")
            IsolationTable.record([.init(
                area: "resources", attack: "fork bomb (a tree of 1024 processes) beside a neighbour",
                expected: "the processes stay in the bomb's guest; the neighbour answers",
                attempted: inBomb >= 1000 ? "the bomb's own guest counted \(inBomb) processes" : nil,
                observed: "neighbour's guest \(before) then \(inNeighbour) processes; host \(hostProcesses) then \(during)",
                outcomeHeld: inNeighbour > 0 && inNeighbour <= before + 2 && during < hostProcesses + 50,
                control: "the same count in the neighbour's guest sees its processes: \(before)",
                controlShown: before > 0, test: "JailTests.aForkBombStaysInsideItsVM")])
            #expect(h.hvc(["rm", "-f", "bomb"], timeout: 60).status == 0)
        }

        @Test func nothingOfAVMRemainsAfterRm() throws {
            _ = h.hvc(["run", "-d", "--name", "ephemeral", "busybox", "sleep", "1000"])
            let pid = try h.vmmPID("ephemeral")
            let cgroups = try Harness.cgroupPaths(pid).filter { $0.value.hasPrefix("/hvc/") }
            #expect(!cgroups.isEmpty)
            #expect(h.hvc(["rm", "-f", "ephemeral"]).status == 0)
            #expect(Harness.eventually { kill(pid, 0) != 0 })
            for (controller, path) in cgroups {
                let dir = controller.isEmpty ? "/sys/fs/cgroup\(path)" : "/sys/fs/cgroup/\(controller)\(path)"
                #expect(!FileManager.default.fileExists(atPath: dir), "\(dir) remains")
            }
            #expect(h.leftoverVMDirectories() == [])
            let claims = (try? FileManager.default.contentsOfDirectory(atPath: h.runRoot + "/uids")) ?? []
            #expect(claims == [])
            let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
            #expect(!mounts.contains(h.runRoot))
        }
    }
}
