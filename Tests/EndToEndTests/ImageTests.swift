import Foundation
import Testing

extension EndToEnd {
    /// Images from files: `docker save` and OCI archives, made by skopeo and umoci or written by
    /// the fixture script, including hostile ones.
    @Suite struct ImageTests {
        let h: Harness
        let scratch: String

        init() throws {
            h = try Harness.make()
            scratch = h.root + "/../fixtures-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        }

        static let fixtureScript = Harness.repository + "/Tests/EndToEndTests/Fixtures/make-image.py"

        func fixture(_ scenario: String, outside: String = "/tmp/hvc-outside") -> String {
            let path = scratch + "/\(scenario).tar"
            let r = h.execute(["/usr/bin/python3", ImageTests.fixtureScript, scenario, path, outside])
            #expect(r.status == 0, "fixture \(scenario): \(r.stderr)")
            return path
        }

        func imageCount() -> Int {
            h.hvc(["images", "-q"]).stdout.split(separator: "\n").count
        }

        @Test func layersWhiteoutsAndOpaqueDirectoriesLoadExactly() {
            let archive = fixture("layers")
            let load = h.hvc(["load", "-i", archive])
            #expect(load.status == 0, "\(load.stderr)")
            #expect(load.stdout == "Loaded image: fixture:layers\n")
            let r = h.hvc(["run", "--rm", "fixture:layers", "sh", "-c",
                           "ls /etc; echo --; ls /opaque; echo --; cat /etc/hard; readlink /etc/soft; stat -c %h /etc/keep; echo $FROM_IMAGE; pwd"])
            #expect(r.status == 0)
            // /etc/remove was whited out, /opaque/lower hidden by the opaque directory; hostname,
            // hosts, machine-id and resolv.conf are the container's own.
            #expect(r.stdout == "added\nhard\nhostname\nhosts\nkeep\nmachine-id\nresolv.conf\nsoft\n--\nupper\n--\nkeep\n/etc/keep\n2\nyes\n/etc\n")
        }

        @Test func skopeoAndUmociImagesLoadInBothFormats() throws {
            let layout = scratch + "/layout"
            let bundle = scratch + "/bundle"
            let steps: [[String]] = [
                ["/usr/bin/umoci", "init", "--layout", layout],
                ["/usr/bin/umoci", "new", "--image", layout + ":t"],
                ["/usr/bin/umoci", "unpack", "--image", layout + ":t", bundle],
                ["/bin/sh", "-c", "mkdir -p \(bundle)/rootfs/bin \(bundle)/rootfs/etc && cp /bin/busybox \(bundle)/rootfs/bin/ && ln -s busybox \(bundle)/rootfs/bin/sh && ln -s busybox \(bundle)/rootfs/bin/ls && echo a > \(bundle)/rootfs/etc/a && echo b > \(bundle)/rootfs/etc/b"],
                ["/usr/bin/umoci", "repack", "--image", layout + ":t", bundle],
                ["/bin/sh", "-c", "rm \(bundle)/rootfs/etc/b && echo c > \(bundle)/rootfs/etc/c"],
                ["/usr/bin/umoci", "repack", "--image", layout + ":t", bundle],
                ["/usr/bin/umoci", "config", "--image", layout + ":t", "--config.cmd", "/bin/sh", "--config.env", "PATH=/bin"],
                ["/usr/bin/skopeo", "copy", "oci:\(layout):t", "docker-archive:\(scratch)/docker.tar:umoci-image:docker"],
                ["/usr/bin/skopeo", "copy", "oci:\(layout):t", "oci-archive:\(scratch)/oci.tar:umoci-image:oci"],
            ]
            for step in steps {
                let r = h.execute(step)
                try #require(r.status == 0, "\(step.joined(separator: " ")): \(r.stderr)")
            }
            #expect(h.hvc(["load", "-i", scratch + "/docker.tar"]).stdout == "Loaded image: umoci-image:docker\n")
            #expect(h.hvc(["load", "-i", scratch + "/oci.tar"]).stdout == "Loaded image: umoci-image:oci\n")
            for tag in ["docker", "oci"] {
                let r = h.hvc(["run", "--rm", "umoci-image:\(tag)", "ls", "/etc"])
                #expect(r.stdout == "a\nc\nhostname\nhosts\nmachine-id\nresolv.conf\n", "\(tag)")
            }
        }

        @Test func containersOfOneImageShareItsFilesystemButNotTheirWrites() throws {
            _ = h.hvc(["load", "-i", fixture("layers")])
            let first = h.hvc(["run", "-d", "--name", "share-a", "fixture:layers", "sh", "-c", "echo mine > /etc/written; sleep 1000"])
            let second = h.hvc(["run", "-d", "--name", "share-b", "fixture:layers", "sleep", "1000"])
            #expect(first.status == 0 && second.status == 0)
            defer { _ = h.hvc(["rm", "-f", "share-a", "share-b"]) }
            // One erofs file on disk, the same inode attached read-only to both VMs.
            let image = h.hvc(["image", "inspect", "fixture:layers"]).stdout
            let rootfs = try #require(((try JSONSerialization.jsonObject(with: Data(image.utf8)) as? [[String: Any]])?.first)?["rootfsPath"] as? String)
            var original = stat()
            #expect(stat(rootfs, &original) == 0)
            for name in ["share-a", "share-b"] {
                let r = h.hvc(["inspect", name])
                let record = try #require((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])?.first)
                let state = try #require(record["state"] as? [String: Any])
                let vmm = try #require(state["vmmPID"] as? Int)
                var attached = stat()
                #expect(stat("/proc/\(vmm)/root/rootfs.img", &attached) == 0)
                #expect(attached.st_ino == original.st_ino && attached.st_dev == original.st_dev, "\(name)")
            }
            let images = try FileManager.default.contentsOfDirectory(atPath: h.root + "/images").filter { $0.hasPrefix("sha256-") }
            #expect(Harness.eventually { h.hvc(["exec", "share-a", "cat", "/etc/written"]).stdout == "mine\n" })
            #expect(h.hvc(["exec", "share-b", "cat", "/etc/written"]).status != 0)
            _ = h.hvc(["rm", "-f", "share-a"])
            #expect(h.hvc(["run", "--rm", "fixture:layers", "cat", "/etc/written"]).status != 0)
            #expect(try FileManager.default.contentsOfDirectory(atPath: h.root + "/images").filter { $0.hasPrefix("sha256-") } == images)
        }

        @Test(arguments: ["dotdot", "absolute", "symlink-escape", "hardlink-escape", "bad-digest", "bad-size", "truncated"])
        func hostileArchivesAreRejected(_ scenario: String) throws {
            let outside = scratch + "/outside-\(scenario)"
            try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
            let archive = fixture(scenario, outside: outside)
            let before = imageCount()
            let r = h.hvc(["load", "-i", archive])
            #expect(r.status == 125)
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            #expect(imageCount() == before)
            #expect(try FileManager.default.contentsOfDirectory(atPath: outside) == [])
            #expect(!FileManager.default.fileExists(atPath: h.root + "/escaped"))
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: h.root + "/images").filter { $0.hasPrefix(".staging") }
            #expect(leftovers == [])
        }

        @Test func decompressionBombsStopAtTheLimit() {
            let archive = fixture("bomb")
            var limited = h
            limited.extraEnvironment["HVC_MAX_IMAGE_BYTES"] = "\(16 << 20)"
            let r = limited.hvc(["load", "-i", archive])
            #expect(r.status == 125)
            #expect(r.stderr.contains("exceeds the limit"))
        }

        @Test func savedImagesLoadAgainHereAndInSkopeo() throws {
            _ = h.hvc(["load", "-i", fixture("layers")])
            let saved = scratch + "/saved.tar"
            let save = h.hvc(["save", "-o", saved, "fixture:layers"])
            #expect(save.status == 0, "\(save.stderr)")
            // skopeo reads it as an OCI archive.
            let inspect = h.execute(["/usr/bin/skopeo", "inspect", "oci-archive:" + saved])
            #expect(inspect.status == 0, "\(inspect.stderr)")
            #expect(h.hvc(["rmi", "-f", "fixture:layers"]).status == 0)
            let again = h.hvc(["load", "-i", saved])
            #expect(again.stdout == "Loaded image: fixture:layers\n", "\(again.stderr)")
            #expect(h.hvc(["run", "--rm", "fixture:layers", "cat", "/etc/added"]).stdout == "added\n")
            let imported = h.hvc(["save", "-o", scratch + "/busybox.tar", "busybox"])
            #expect(imported.status == 125 && imported.stderr.contains("imported"))
        }

        @Test func tagRmiAndPrune() {
            _ = h.hvc(["load", "-i", fixture("layers")])
            #expect(h.hvc(["tag", "fixture:layers", "renamed:1"]).status == 0)
            #expect(h.hvc(["images"]).stdout.contains("renamed"))
            #expect(h.hvc(["rmi", "renamed:1"]).stdout == "untagged renamed:1\n")
            _ = h.hvc(["run", "-d", "--name", "user-of-image", "fixture:layers", "sleep", "1000"])
            let refused = h.hvc(["rmi", "fixture:layers"])
            #expect(refused.status == 125)
            #expect(refused.stderr.contains("used by a container"))
            _ = h.hvc(["rm", "-f", "user-of-image"])
            #expect(h.hvc(["rmi", "fixture:layers"]).status == 0)
            #expect(!h.hvc(["images"]).stdout.contains("fixture"))
            let inspect = h.hvc(["image", "inspect", "busybox"])
            #expect(inspect.status == 0 && inspect.stdout.contains("rootfsPath"))
            #expect(h.hvc(["image", "prune"]).status == 0)
        }

        @Test func unreadableOrForeignFilesAreClearErrors() {
            let missing = h.hvc(["load", "-i", scratch + "/nope.tar"])
            #expect(missing.status == 125 && missing.stderr.contains("nope.tar"))
            let notImage = scratch + "/plain.tar"
            _ = h.execute(["/bin/tar", "-cf", notImage, "-C", "/etc", "hostname"])
            let foreign = h.hvc(["load", "-i", notImage])
            #expect(foreign.status == 125 && foreign.stderr.contains("not an image archive"))
        }
    }
}
