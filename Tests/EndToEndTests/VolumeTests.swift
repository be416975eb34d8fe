import Foundation
import Testing

extension EndToEnd {
    /// Volumes: host folders and named volumes shared into the VM over 9P, with Docker's
    /// semantics (both ways, owners, read-only, symlinks inside), tenants kept to their own;
    /// block volumes mounted by the guest's kernel, one container's at a time.
    @Suite struct VolumeTests {
        let h: Harness

        init() throws { h = try Harness.make() }

        /// A fresh host folder, open to every uid (the container writes as others than root).
        func folder(_ name: String) throws -> String {
            let path = h.root + "/../\(name)-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            chmod(path, 0o777)
            return URL(fileURLWithPath: path).standardizedFileURL.path
        }

        func state(_ container: String) -> [String: Any] {
            let r = h.hvc(["inspect", container])
            let array = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [[String: Any]]
            return array?.first?["state"] as? [String: Any] ?? [:]
        }

        /// The effective capability set of the container's VMM, from the host's /proc.
        func vmmCapabilities(_ container: String) -> UInt64? {
            guard let pid = state(container)["vmmPID"] as? Int,
                  let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }) else { return nil }
            return UInt64(line.split(separator: "\t").last.map(String.init) ?? "", radix: 16)
        }

        @Test func hostFolderIsSharedBothWaysWithOwners() throws {
            let dir = try folder("bind")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try "before\n".write(toFile: dir + "/note", atomically: false, encoding: .utf8)
            let r = h.hvc(["run", "-d", "--name", "shared-rw", "-v", dir + ":/data", "busybox", "sleep", "300"])
            try #require(r.status == 0, "\(r.stderr)")
            defer { _ = h.hvc(["rm", "-f", "shared-rw"]) }
            #expect(state("shared-rw")["template"] as? String != nil, "not a templated start")
            // A host edit after start is read in the container.
            #expect(h.hvc(["exec", "shared-rw", "cat", "/data/note"]).stdout == "before\n")
            try "after\n".write(toFile: dir + "/note", atomically: false, encoding: .utf8)
            #expect(h.hvc(["exec", "shared-rw", "cat", "/data/note"]).stdout == "after\n")
            // A file the container writes as uid 1234 is the host's, owned by 1234.
            let w = h.hvc(["exec", "-u", "1234:4321", "shared-rw", "sh", "-c", "echo from-guest > /data/made && mkdir /data/sub"])
            #expect(w.status == 0, "\(w.stderr)")
            let made = try FileManager.default.attributesOfItem(atPath: dir + "/made")
            #expect((made[.ownerAccountID] as? NSNumber)?.intValue == 1234)
            #expect((made[.groupOwnerAccountID] as? NSNumber)?.intValue == 4321)
            #expect((try? String(contentsOfFile: dir + "/made", encoding: .utf8)) == "from-guest\n")
            let sub = try FileManager.default.attributesOfItem(atPath: dir + "/sub")
            #expect((sub[.ownerAccountID] as? NSNumber)?.intValue == 1234)
            // The guest may not plant set-ID files or device nodes in a host folder.
            let setid = h.hvc(["exec", "shared-rw", "sh", "-c", "chmod 4755 /data/made; mknod /data/disk b 8 0; ls -l /data"])
            #expect(setid.stdout.contains("-rw-r--r--") && !setid.stdout.contains("disk"), "\(setid.stdout)")
            let mode = (try FileManager.default.attributesOfItem(atPath: dir + "/made")[.posixPermissions] as? NSNumber)?.intValue ?? 0
            #expect(mode & 0o6000 == 0)
            // The VMM serving the folder holds the four file capabilities and no other.
            #expect(vmmCapabilities("shared-rw") == 0b11011)
            // Files of any size: the jail's file-size limit is not the folder's.
            let big = h.hvc(["exec", "shared-rw", "dd", "if=/dev/zero", "of=/data/big", "bs=1M", "count=80"])
            #expect(big.status == 0, "\(big.stderr)")
            #expect((try? FileManager.default.attributesOfItem(atPath: dir + "/big")[.size] as? NSNumber)??.intValue == 80 << 20)
        }

        @Test func readOnlyHoldsAgainstRootInTheGuest() throws {
            let dir = try folder("ro")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try "kept\n".write(toFile: dir + "/file", atomically: false, encoding: .utf8)
            let r = h.hvc(["run", "--rm", "--network", "none", "-v", dir + ":/data:ro", "busybox", "sh", "-c",
                           "echo a > /data/file; echo first=$?; mount -o remount,rw /data; echo remount=$?; "
                           + "echo b > /data/file; echo second=$?; touch /data/new; echo touch=$?; cat /data/file"])
            #expect(r.stdout.contains("first=1") && r.stdout.contains("second=1") && r.stdout.contains("touch=1"), "\(r.stdout)")
            #expect(r.stdout.hasSuffix("kept\n"), "\(r.stdout)")
            #expect((try? String(contentsOfFile: dir + "/file", encoding: .utf8)) == "kept\n")
            #expect(!FileManager.default.fileExists(atPath: dir + "/new"))
            // --mount and --read-only: the image's root refuses writes, tmpfs where programs write.
            let m = h.hvc(["run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/scratch:size=1m",
                           "--mount", "type=bind,source=\(dir),target=/data,readonly", "busybox", "sh", "-c",
                           "touch /etc/x; echo root=$?; touch /tmp/x /run/x /scratch/x && echo tmpfs-ok; touch /data/x; echo data=$?"])
            #expect(m.stdout == "root=1\ntmpfs-ok\ndata=1\n", "\(m.stdout) \(m.stderr)")
            // A VM without host folders has no capability.
            let plain = h.hvc(["run", "-d", "--name", "no-folders", "--network", "none", "busybox", "sleep", "300"])
            try #require(plain.status == 0, "\(plain.stderr)")
            defer { _ = h.hvc(["rm", "-f", "no-folders"]) }
            #expect(vmmCapabilities("no-folders") == 0)
        }

        @Test func symlinksResolveInsideTheGuest() throws {
            let dir = try folder("links")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let secret = dir + "-secret"
            try "host-secret-\(UUID().uuidString)\n".write(toFile: secret, atomically: false, encoding: .utf8)
            defer { unlink(secret) }
            symlink("/etc/shadow", dir + "/shadow")
            symlink(secret, dir + "/secret")
            symlink("../../../../../../../etc/shadow", dir + "/climb")
            let r = h.hvc(["run", "--rm", "--network", "none", "-v", dir + ":/data", "busybox", "sh", "-c",
                           "echo guest-shadow > /etc/shadow; cat /data/shadow; cat /data/climb; cat /data/secret; ls /data/.."])
            #expect(r.stdout.hasPrefix("guest-shadow\nguest-shadow\n"), "\(r.stdout)")
            #expect(!r.stdout.contains("root:") && !r.stdout.contains("host-secret"), "\(r.stdout)")
        }

        @Test func namedVolumesAreSharedAndKeptWhileUsed() throws {
            let name = "vol-\(UUID().uuidString.prefix(8).lowercased())"
            let a = h.hvc(["run", "-d", "--name", "vol-a", "-v", name + ":/v", "busybox", "sh", "-c", "echo from-a > /v/a; sleep 300"])
            try #require(a.status == 0, "\(a.stderr)")
            defer { _ = h.hvc(["rm", "-f", "vol-a", "vol-b"]) }
            let b = h.hvc(["run", "-d", "--name", "vol-b", "-v", name + ":/v", "busybox", "sleep", "300"])
            try #require(b.status == 0, "\(b.stderr)")
            #expect(Harness.eventually(20) { h.hvc(["exec", "vol-b", "cat", "/v/a"]).stdout == "from-a\n" })
            _ = h.hvc(["exec", "vol-b", "sh", "-c", "echo from-b > /v/b"])
            #expect(h.hvc(["exec", "vol-a", "cat", "/v/b"]).stdout == "from-b\n")
            #expect(h.hvc(["volume", "ls", "-q"]).stdout.split(separator: "\n").contains(Substring(name)))
            let inUse = h.hvc(["volume", "rm", name])
            #expect(inUse.status == 125 && inUse.stderr.contains("in use"), "\(inUse.stderr)")
            // Stopped, a container still holds its volumes, as Docker's do.
            _ = h.hvc(["stop", "-t", "1", "vol-a"])
            _ = h.hvc(["rm", "-f", "vol-b"])
            #expect(!h.hvc(["volume", "prune"]).stdout.contains(name))
            _ = h.hvc(["rm", "vol-a"])
            let pruned = h.hvc(["volume", "prune"])
            #expect(pruned.stdout.split(separator: "\n").contains(Substring(name)), "\(pruned.stdout)")
            #expect(!h.hvc(["volume", "ls", "-q"]).stdout.contains(name))
            #expect(!FileManager.default.fileExists(atPath: h.root + "/volumes/default/" + name))
            // The folders were mounts in the VMMs' own namespaces only; their jails' tmpfs went with them.
            let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
            #expect(!mounts.contains(h.runRoot + "/vms/") && !mounts.contains(h.root + "/volumes"), "\(mounts)")
        }

        @Test func imageVolumesAndPooledVMs() throws {
            let tree = h.root + "/../voltree-\(UUID().uuidString.prefix(8))"
            defer { try? FileManager.default.removeItem(atPath: tree) }
            for step in [["/bin/mkdir", "-p", tree + "/bin", tree + "/data"], ["/bin/cp", "/bin/busybox", tree + "/bin/busybox"],
                         ["/bin/ln", "-s", "busybox", tree + "/bin/sh"], ["/bin/ln", "-s", "busybox", tree + "/bin/cat"],
                         ["/bin/ln", "-s", "busybox", tree + "/bin/rm"]] {
                #expect(h.execute(step).status == 0)
            }
            try "seeded\n".write(toFile: tree + "/data/seed", atomically: false, encoding: .utf8)
            chown(tree + "/data/seed", 1234, 1234)
            #expect(h.hvc(["import", "--env", "PATH=/bin", "--volume", "/data", tree, "voltest:1"]).status == 0)
            let before = Set(h.hvc(["volume", "ls", "-q"]).stdout.split(separator: "\n"))
            let r = h.hvc(["run", "-d", "--name", "anon", "voltest:1", "sh", "-c", "echo kept > /data/f; sleep 300"])
            try #require(r.status == 0, "\(r.stderr)")
            let made = Set(h.hvc(["volume", "ls", "-q"]).stdout.split(separator: "\n")).subtracting(before)
            #expect(made.count == 1, "\(made)")
            let data = h.root + "/volumes/default/\(made.first ?? "none")/_data"
            #expect(Harness.eventually(20) { (try? String(contentsOfFile: data + "/f", encoding: .utf8)) == "kept\n" })
            // A new volume starts with the image's files at its target, owners kept, as Docker's.
            #expect((try? String(contentsOfFile: data + "/seed", encoding: .utf8)) == "seeded\n")
            #expect(((try? FileManager.default.attributesOfItem(atPath: data + "/seed"))?[.ownerAccountID] as? NSNumber)?.intValue == 1234)
            #expect(h.hvc(["rm", "-f", "-v", "anon"]).status == 0)
            // A volume with files of its own is not filled again.
            #expect(h.hvc(["run", "--rm", "--network", "none", "-v", "seeded-vol:/data", "voltest:1", "sh", "-c", "rm /data/seed; echo own > /data/own"]).status == 0)
            let again = h.hvc(["run", "--rm", "--network", "none", "-v", "seeded-vol:/data", "voltest:1", "sh", "-c", "cat /data/*"])
            #expect(again.stdout == "own\n", "\(again.stdout)")
            #expect(h.hvc(["volume", "rm", "seeded-vol"]).status == 0)
            #expect(Set(h.hvc(["volume", "ls", "-q"]).stdout.split(separator: "\n")) == before)

            // A VM waiting in a pool serves a run with a host folder.
            let dir = try folder("pooled")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try "pooled\n".write(toFile: dir + "/f", atomically: false, encoding: .utf8)
            #expect(h.hvc(["pool", "set", "busybox", "1"]).status == 0)
            defer { _ = h.hvc(["pool", "set", "busybox", "0"]) }
            #expect(Harness.eventually(60) { h.poolMembers().count == 1 })
            let waiting = h.poolMembers()
            let p = h.hvc(["run", "-d", "--name", "pooled-folder", "-v", dir + ":/data:ro", "busybox", "sleep", "300"])
            try #require(p.status == 0, "\(p.stderr)")
            defer { _ = h.hvc(["rm", "-f", "pooled-folder"]) }
            let supervisor = (state("pooled-folder")["supervisorPID"] as? Int).map(Int32.init) ?? 0
            #expect(waiting.contains(supervisor), "not a pooled VM")
            #expect(h.hvc(["exec", "pooled-folder", "cat", "/data/f"]).stdout == "pooled\n")
        }

        /// What debugfs (e2fsprogs, on the host) says of `path` in a block volume's image.
        func inImage(_ image: String, _ request: String) -> String {
            h.execute(["/usr/sbin/debugfs", "-R", request, image]).stdout
        }

        @Test func blockVolumesKeepWritesOwnersReadOnlyAndOneWriter() throws {
            let name = "blk-\(UUID().uuidString.prefix(8).lowercased())", other = name + "-etc"
            let created = h.hvc(["volume", "create", "--driver", "block", "--opt", "size=256m", name])
            try #require(created.status == 0, "\(created.stderr)")
            defer { _ = h.hvc(["rm", "-f", "blk-a"]); _ = h.hvc(["volume", "rm", name, other]) }
            let image = h.root + "/volumes/default/\(name)/disk.ext4"
            #expect(h.hvc(["volume", "ls"]).stdout.split(separator: "\n").contains { $0.hasPrefix("block") && $0.contains(name) })
            #expect(((try? FileManager.default.attributesOfItem(atPath: image))?[.size] as? NSNumber)?.intValue == 256 << 20)

            // The container's files, owners and all, are in the image once it has stopped.
            let a = h.hvc(["run", "-d", "--name", "blk-a", "-v", name + ":/v", "busybox", "sh", "-c",
                           "echo from-a > /v/a && chown 1234:4321 /v/a && for i in $(seq 300); do echo $i > /v/f$i; done; touch /v/done; sleep 300"])
            try #require(a.status == 0, "\(a.stderr)")
            #expect(state("blk-a")["template"] as? String != nil, "not a templated start")
            #expect(Harness.eventually(60) { h.hvc(["exec", "blk-a", "ls", "/v/done"]).status == 0 })
            #expect(h.hvc(["exec", "blk-a", "cat", "/v/f300"]).stdout == "300\n")
            // One running container at a time: a second is refused, with nothing left of it.
            let containers = h.hvc(["ps", "-a", "-q"]).stdout
            let second = h.hvc(["run", "--rm", "--network", "none", "-v", name + ":/v:ro", "busybox", "true"])
            #expect(second.status == 125 && second.stderr.contains("mounted by another running container")
                        && second.stderr.split(separator: "\n").count == 1, "\(second.status): \(second.stderr)")
            #expect(h.hvc(["ps", "-a", "-q"]).stdout == containers)
            #expect(h.hvc(["stop", "-t", "1", "blk-a"]).status == 0)
            let twice = h.hvc(["run", "--rm", "--network", "none", "-v", name + ":/a", "-v", name + ":/b", "busybox", "true"])
            #expect(twice.status == 125 && twice.stderr.contains("mounted twice") && twice.stderr.split(separator: "\n").count == 1,
                    "\(twice.status): \(twice.stderr)")
            #expect(h.hvc(["ps", "-a", "-q"]).stdout == containers)
            #expect(inImage(image, "cat /a") == "from-a\n")
            #expect(inImage(image, "cat /f300") == "300\n")
            let owner = inImage(image, "stat /a")
            #expect(owner.contains("User:  1234") && owner.contains("Group:  4321"), "\(owner)")

            // A host write made while no container runs it (here with debugfs; `mount -o loop`
            // does as well) is read by the next container; `:ro` holds against root in the guest.
            let source = h.root + "/../blk-host-\(UUID().uuidString.prefix(8))"
            try "from-host\n".write(toFile: source, atomically: false, encoding: .utf8)
            defer { unlink(source) }
            #expect(h.execute(["/usr/sbin/debugfs", "-w", "-R", "write \(source) host", image]).status == 0)
            let ro = h.hvc(["run", "--rm", "--network", "none", "-v", name + ":/v:ro", "busybox", "sh", "-c",
                            "cat /v/host /v/a; echo x > /v/a; echo write=$?; mount -o remount,rw /v; echo remount=$?; cat /v/a"])
            #expect(ro.stdout.hasPrefix("from-host\nfrom-a\nwrite=1\n") && ro.stdout.hasSuffix("from-a\n"), "\(ro.stdout) \(ro.stderr)")
            #expect(inImage(image, "cat /a") == "from-a\n")

            // A new block volume starts with the image's files at its target, as Docker fills one.
            #expect(h.hvc(["volume", "create", "-d", "block", other]).status == 0)
            let filled = h.hvc(["run", "--rm", "--network", "none", "-v", other + ":/etc", "busybox", "sh", "-c", "head -1 /etc/passwd"])
            #expect(filled.stdout.hasPrefix("root:"), "\(filled.stdout) \(filled.stderr)")
            #expect(inImage(h.root + "/volumes/default/\(other)/disk.ext4", "cat /passwd").hasPrefix("root:"))

            _ = h.hvc(["rm", "blk-a"])
            #expect(h.hvc(["volume", "rm", name, other]).status == 0)
            #expect(!FileManager.default.fileExists(atPath: image))
            let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
            #expect(!mounts.contains(h.root + "/volumes"), "\(mounts)")
        }

        @Test func badMountsAreRefusedAndNothingIsMade() throws {
            let dir = try folder("bad")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let containers = h.hvc(["ps", "-a", "-q"]).stdout
            let volumes = h.hvc(["volume", "ls", "-q"]).stdout
            let cases: [([String], String)] = [
                (["-v", dir + "/missing:/x"], "does not exist"),
                (["-v", dir + ":relative"], "not absolute"),
                (["-v", dir + ":/proc/sys"], "/proc"),
                (["-v", dir + ":/"], "cannot mount on /"),
                (["-v", "../up:/x"], "invalid volume name"),
                (["-v", "a/b:/x"], "invalid volume name"),
                (["-v", dir + ":/x:rx"], "unknown option"),
                (["-v", dir + ":/x", "-v", "n1:/x"], "two mounts on /x"),
                (["--mount", "type=bind,target=/x"], "needs source"),
                (["--mount", "type=nfs,source=a,target=/x"], "unknown type"),
                (["--tmpfs", "/x:size=lots"], "invalid tmpfs size"),
            ]
            for (flags, message) in cases {
                let r = h.hvc(["run", "--rm"] + flags + ["busybox", "true"])
                #expect(r.status == 125, "\(flags): \(r.status)")
                #expect(r.stderr.contains(message) && r.stderr.split(separator: "\n").count == 1, "\(flags): \(r.stderr)")
            }
            #expect(h.hvc(["ps", "-a", "-q"]).stdout == containers)
            #expect(h.hvc(["volume", "ls", "-q"]).stdout == volumes)
            #expect(h.hvc(["volume", "create", "bad/name"]).status == 125)
        }

        @Test func tenantsMountOnlyTheirRootsAndVolumes() throws {
            let allowed = try folder("allowed"), outside = try folder("outside")
            defer { [allowed, outside].forEach { try? FileManager.default.removeItem(atPath: $0) } }
            symlink(outside, allowed + "/escape")
            try "inside\n".write(toFile: allowed + "/f", atomically: false, encoding: .utf8)
            let tenants = #"{"tenants": {"vol-a": {"uids": [2401]}, "vol-b": {"uids": [2402], "bindRoots": ["\#(allowed)"]}}}"#
            try h.withDaemon(tenants: tenants) { daemon in try tenantsMount(daemon, allowed: allowed, outside: outside) }
        }

        func tenantsMount(_ daemon: Harness.Daemon, allowed: String, outside: String) throws {
            let tenant = daemon.hvc
            let socket = daemon.socket
            let api = h.execute(["/usr/bin/setpriv", "--reuid", "2401", "--regid", "2401", "--clear-groups", "/usr/bin/python3",
                                 Harness.repository + "/Tests/EndToEndTests/Fixtures/api_client.py", socket,
                                 Harness.repository + "/Specs/api.yaml", "bind-forbidden", allowed])
            #expect(api.status == 0 && api.stdout == "ok\n", "\(api.stderr)")
            // B mounts beneath its root, not outside it, nor out through a symlink in it.
            let inside = tenant(2402, ["run", "--rm", "--network", "none", "-v", allowed + ":/data", "busybox", "cat", "/data/f"])
            #expect(inside.stdout == "inside\n", "\(inside.stderr)")
            for path in [outside, allowed + "/escape", "/"] {
                let r = tenant(2402, ["run", "--rm", "--network", "none", "-v", path + ":/data", "busybox", "true"])
                #expect(r.status != 0 && r.stderr.contains("may not mount"), "\(path): \(r.stderr)")
            }
            // Volume names are per tenant: B neither sees A's nor reaches its files by name.
            #expect(tenant(2401, ["run", "--rm", "--network", "none", "-v", "common:/v", "busybox", "sh", "-c", "echo of-a > /v/f"]).status == 0)
            #expect(tenant(2401, ["volume", "ls", "-q"]).stdout == "common\n")
            #expect(tenant(2402, ["volume", "ls", "-q"]).stdout == "")
            #expect(tenant(2402, ["volume", "inspect", "common"]).status != 0)
            #expect(tenant(2402, ["volume", "rm", "common"]).status != 0)
            let b = tenant(2402, ["run", "--rm", "--network", "none", "-v", "common:/v", "busybox", "sh", "-c", "cat /v/f 2>&1; ls /v"])
            #expect(!b.stdout.contains("of-a"), "\(b.stdout)")
            #expect(tenant(2401, ["volume", "rm", "common"]).status == 0)
            #expect(tenant(2402, ["volume", "rm", "common"]).status == 0)
        }
    }
}
