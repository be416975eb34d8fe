import Foundation
import Testing

extension EndToEnd {
    /// Files between the host and running containers: `hvc cp` and `docker cp`, both ways; what
    /// comes out of a guest is hostile and stays inside the destination.
    @Suite(.serialized) struct CopyTests {
        let h: Harness

        init() throws { h = try Harness.make() }

        func text(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

        @Test func hvcCopiesBothWays() throws {
            let run = h.hvc(["run", "-d", "--name", "cp-box", "busybox", "sh", "-c",
                             "mkdir -p /data/sub; echo inside > /data/sub/f; ln -s f /data/sub/link; chmod 4755 /data/sub/f; exec sleep 300"])
            try #require(run.status == 0, "\(run.stderr)")
            defer { _ = h.hvc(["rm", "-f", "cp-box"]) }
            #expect(Harness.eventually { h.hvc(["exec", "cp-box", "test", "-L", "/data/sub/link"]).status == 0 })
            let out = Harness.scratch + "/cp-out-\(getpid())"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: out) }

            // A directory into a host directory; a file under a new name.
            let tree = h.hvc(["cp", "cp-box:/data", out])
            #expect(tree.status == 0, "\(tree.stderr)")
            #expect(text(out + "/data/sub/f") == "inside\n")
            #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: out + "/data/sub/link")) == "f")
            let mode = (try? FileManager.default.attributesOfItem(atPath: out + "/data/sub/f")[.posixPermissions] as? Int) ?? 0
            #expect(mode == 0o755, "set-ID bits came out of the guest: \(String(mode, radix: 8))")
            #expect(h.hvc(["cp", "cp-box:/data/sub/f", out + "/renamed"]).status == 0)
            #expect(text(out + "/renamed") == "inside\n")

            // Host to container: into a directory, and as a new name.
            try "from-the-host\n".write(toFile: out + "/host-file", atomically: true, encoding: .utf8)
            #expect(h.hvc(["cp", out + "/host-file", "cp-box:/tmp"]).status == 0)
            #expect(h.hvc(["exec", "cp-box", "cat", "/tmp/host-file"]).stdout == "from-the-host\n")
            #expect(h.hvc(["cp", out + "/host-file", "cp-box:/tmp/other-name"]).status == 0)
            #expect(h.hvc(["exec", "cp-box", "cat", "/tmp/other-name"]).stdout == "from-the-host\n")

            for (arguments, said) in [(["cp", "cp-box:/no/such", out], "no such file or directory in container cp-box"),
                                      (["cp", out + "/host-file", out + "/x"], "give CONTAINER:PATH as exactly one"),
                                      (["cp", out + "/host-file", "cp-box:/no/such/dir/f"], "is not a directory in container cp-box")] {
                let r = h.hvc(arguments)
                #expect(r.status != 0 && r.stderr.contains(said), "\(arguments): \(r.stderr)")
            }
        }

        /// A guest whose `tar` answers a crafted archive (a link out of the destination and a
        /// file through it, an absolute path, a `..` path; a device and set-ID bits) writes
        /// nothing outside the destination, and no device or set-ID file.
        @Test(arguments: ["link", "absolute", "dotdot", "device and set-ID"])
        func aHostileGuestsArchiveStaysInTheDestination(_ attack: String) throws {
            let out = Harness.scratch + "/cp-hostile-\(getpid())"
            let outside = Harness.scratch + "/cp-outside-\(getpid())"
            for path in [out, outside] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
            defer { for path in [out, outside] { try? FileManager.default.removeItem(atPath: path) } }
            let evil = out + "/evil.tar"
            let made = h.execute(["/usr/bin/python3", "-c", """
                import io, tarfile, sys
                attack, outside = sys.argv[2], sys.argv[3]
                t = tarfile.open(sys.argv[1], "w")
                def add(name, kind=tarfile.REGTYPE, data=b"", link=""):
                    info = tarfile.TarInfo(name); info.type = kind; info.linkname = link; info.size = len(data); info.mode = 0o6755
                    t.addfile(info, io.BytesIO(data) if data else None)
                add("loot", tarfile.DIRTYPE)
                if attack == "link":
                    add("loot/escape", tarfile.SYMTYPE, link=outside)
                    add("loot/escape/pwned", data=b"through-a-link\\n")
                elif attack == "absolute":
                    add(outside + "/absolute", data=b"absolute\\n")
                elif attack == "dotdot":
                    add("loot/../../../../../../../../" + outside.lstrip("/") + "/dotdot", data=b"dotdot\\n")
                else:
                    add("loot/device", tarfile.CHRTYPE)
                add("loot/kept", data=b"kept\\n")
                t.close()
                """, evil, attack, outside])
            try #require(made.status == 0, "\(made.stderr)")
            let run = h.hvc(["run", "-d", "--name", "cp-hostile", "busybox", "sleep", "300"])
            try #require(run.status == 0, "\(run.stderr)")
            defer { _ = h.hvc(["rm", "-f", "cp-hostile"]) }
            #expect(h.hvc(["cp", evil, "cp-hostile:/"]).status == 0)
            // Its tar now answers the crafted archive, whatever it is asked for.
            let fake = h.hvc(["exec", "cp-hostile", "sh", "-c", "mkdir /loot; rm /bin/tar; printf '#!/bin/sh\\ncat /evil.tar\\n' > /bin/tar; chmod 755 /bin/tar"])
            #expect(fake.status == 0, "\(fake.stderr)")
            try FileManager.default.removeItem(atPath: evil)
            let copied = h.hvc(["cp", "cp-hostile:/loot", out])
            print("hostile archive (\(attack)): hvc cp exit \(copied.status): \(copied.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
            // The crafted archive reached the host's extraction: refused there, or kept inside.
            let kept = out + "/loot/kept"
            #expect(copied.stderr.contains("copying /loot out of container cp-hostile") || FileManager.default.fileExists(atPath: kept),
                    "the attack did not run: \(copied.stderr)")
            let leaked = (try? FileManager.default.subpathsOfDirectory(atPath: outside)) ?? []
            #expect(leaked.isEmpty, "written outside the destination: \(leaked)")
            #expect(!FileManager.default.fileExists(atPath: out + "/loot/device"))
            if let mode = try? FileManager.default.attributesOfItem(atPath: kept)[.posixPermissions] as? Int {
                #expect(mode & 0o6000 == 0, "a set-ID file came out of the guest")
            }
            if attack == "device and set-ID" { #expect(copied.status == 0 && FileManager.default.fileExists(atPath: kept), "\(copied.stderr)") }
        }

        @Test func dockerCopiesBothWays() throws {
            try h.withDaemon(tenants: "{}") { daemon in
                let socket = (daemon.socket as NSString).deletingLastPathComponent + "/docker.sock"
                try #require(Harness.eventually(10) { FileManager.default.fileExists(atPath: socket) })
                func docker(_ arguments: [String]) -> Harness.Result3 {
                    h.execute(["/usr/bin/env", "DOCKER_HOST=unix://" + socket, "DOCKER_CONFIG=" + h.root + "/../docker-config-cp",
                               "/usr/bin/docker"] + arguments, timeout: 120)
                }
                let run = docker(["run", "-d", "--name", "dk-cp", "busybox", "sh", "-c", "mkdir -p /srv/site; echo page > /srv/site/index.html; exec sleep 300"])
                try #require(run.status == 0, "\(run.stderr)")
                defer { _ = h.hvc(["rm", "-f", "dk-cp"]) }
                #expect(Harness.eventually { docker(["exec", "dk-cp", "test", "-f", "/srv/site/index.html"]).status == 0 })
                let out = Harness.scratch + "/dk-cp-\(getpid())"
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(atPath: out) }
                let get = docker(["cp", "dk-cp:/srv/site", out + "/"])
                #expect(get.status == 0 && text(out + "/site/index.html") == "page\n", "\(get.stderr)")
                try FileManager.default.createDirectory(atPath: out + "/upload/inner", withIntermediateDirectories: true)
                try "uploaded\n".write(toFile: out + "/upload/inner/file", atomically: true, encoding: .utf8)
                let put = docker(["cp", out + "/upload", "dk-cp:/tmp/"])
                #expect(put.status == 0, "\(put.stderr)")
                #expect(docker(["exec", "dk-cp", "cat", "/tmp/upload/inner/file"]).stdout == "uploaded\n")
                let missing = docker(["cp", "dk-cp:/no/such", out])
                #expect(missing.status != 0 && missing.stderr.contains("No such container:path"), "\(missing.stderr)")
            }
        }
    }
}
