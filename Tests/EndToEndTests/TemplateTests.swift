import Foundation
import Testing

/// VM templates: `hvc run` clones a booted VM of the image instead of booting one.
extension EndToEnd {
    @Suite struct TemplateTests {
        let h: Harness
        let scratch: String

        init() throws {
            h = try Harness.make()
            scratch = Harness.scratch + "/templates"
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        }

        func templates(_ harness: Harness? = nil) throws -> [[String: Any]] {
            let r = (harness ?? h).hvc(["template", "ls", "--format", "json"])
            #expect(r.status == 0, "\(r.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        }

        func keys(_ harness: Harness? = nil) throws -> Set<String> {
            Set(try templates(harness).compactMap { $0["key"] as? String })
        }

        func template(_ key: String) throws -> [String: Any] {
            try #require(try templates().first { $0["key"] as? String == key })
        }

        func exec(_ container: String, _ script: String) -> String {
            let r = h.hvc(["exec", container, "sh", "-c", script])
            #expect(r.status == 0, "\(script): \(r.stderr)")
            return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// The template a fresh default run of busybox clones.
        func busyboxKey() throws -> String {
            let r = h.hvc(["run", "-d", "busybox", "true"])
            #expect(r.status == 0, "\(r.stderr)")
            let id = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            _ = h.hvc(["wait", id])
            let key = try #require(try h.state(id)["template"] as? String)
            _ = h.hvc(["rm", id])
            return key
        }

        @Test func runsCloneTheImageTemplateUnlessToldNot() throws {
            let a = h.hvc(["run", "-d", "--name", "tpl-warm", "busybox", "sleep", "60"])
            #expect(a.status == 0, "\(a.stderr)")
            let key = try #require(try h.state("tpl-warm")["template"] as? String)
            #expect(try keys().contains(key))
            #expect(try template(key)["loaded"] as? Bool == true)
            let b = h.hvc(["run", "-d", "--name", "tpl-cold", "--no-template", "busybox", "sleep", "60"])
            #expect(b.status == 0, "\(b.stderr)")
            #expect(try h.state("tpl-cold")["template"] == nil)
            #expect(exec("tpl-cold", "echo cold") == "cold")
            #expect(h.hvc(["rm", "-f", "tpl-warm", "tpl-cold"]).status == 0)
        }

        @Test func clonesHaveTheirOwnRandomnessNamesClockAndFiles() throws {
            for name in ["clone-a", "clone-b"] {
                let r = h.hvc(["run", "-d", "--name", name, "busybox", "sleep", "120"])
                #expect(r.status == 0, "\(r.stderr)")
            }
            defer { _ = h.hvc(["rm", "-f", "clone-a", "clone-b"]) }
            let keyA = try h.state("clone-a")["template"] as? String
            let keyB = try h.state("clone-b")["template"] as? String
            #expect(keyA != nil && keyA == keyB)

            // Both VMMs map the one sealed memory object of their template.
            let memfd = "/memfd:hvc-template-" + (keyA ?? "").prefix(16)
            for name in ["clone-a", "clone-b"] {
                let vmm = try #require(try h.state(name)["vmmPID"] as? Int)
                let maps = (try? String(contentsOfFile: "/proc/\(vmm)/maps", encoding: .utf8)) ?? ""
                #expect(maps.contains(memfd), "\(name)'s QEMU does not map \(memfd)")
            }

            let random = "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'"
            let randomA = exec("clone-a", random), randomB = exec("clone-b", random)
            #expect(randomA.count == 64 && randomB.count == 64 && randomA != randomB)
            let hostA = exec("clone-a", "hostname"), hostB = exec("clone-b", "hostname")
            #expect(!hostA.isEmpty && hostA != hostB)
            let machineA = exec("clone-a", "cat /etc/machine-id"), machineB = exec("clone-b", "cat /etc/machine-id")
            #expect(machineA.count == 32 && machineA != machineB)
            let bootA = exec("clone-a", "cat /proc/sys/kernel/random/boot_id")
            #expect(bootA != exec("clone-b", "cat /proc/sys/kernel/random/boot_id"))

            for name in ["clone-a", "clone-b"] {
                let before = Date().timeIntervalSince1970
                let guest = Double(exec(name, "date +%s")) ?? 0
                let after = Date().timeIntervalSince1970
                #expect(guest >= before.rounded(.down) - 1 && guest <= after + 1, "guest clock \(guest), host \(before)...\(after)")
            }

            #expect(exec("clone-a", "echo secret > /tmp/mine; echo secret > /etc/mine; cat /tmp/mine") == "secret")
            let seen = h.hvc(["exec", "clone-b", "sh", "-c", "cat /tmp/mine /etc/mine"])
            #expect(seen.status != 0 && !seen.stdout.contains("secret"))
            let next = h.hvc(["run", "--rm", "busybox", "sh", "-c", "cat /tmp/mine /etc/mine"])
            #expect(next.status != 0 && !next.stdout.contains("secret"))
        }

        @Test func templateMemoryIsSealedAndItsFilesAreRootOnly() throws {
            // A clone writes 32 MB of guest memory first.
            let write = h.hvc(["run", "--rm", "busybox", "sh", "-c", "head -c 32000000 /dev/urandom > /tmp/big && echo done"])
            #expect(write.stdout == "done\n", "\(write.stderr)")
            let key = try busyboxKey()
            let directory = h.root + "/templates/" + key
            for file in ["", "/template.json", "/state", "/memory"] {
                var info = stat()
                #expect(stat(directory + file, &info) == 0)
                #expect(info.st_uid == 0 && info.st_mode & 0o077 == 0, "\(file) mode \(String(info.st_mode, radix: 8))")
            }

            let keeper = try String(contentsOfFile: h.runRoot + "/templates/\(key).keeper", encoding: .utf8)
                .split(whereSeparator: \.isWhitespace)
            let memory = "/proc/\(keeper[0])/fd/\(keeper[1])"
            // Even root, reopening it read-write, cannot change a byte or its size.
            let fd = open(memory, O_RDWR)
            #expect(fd >= 0)
            defer { close(fd) }
            var byte: UInt8 = 0xff
            #expect(pwrite(fd, &byte, 1, 4096) == -1 && errno == EPERM)
            #expect(ftruncate(fd, 4096) == -1 && errno == EPERM)
            #expect(mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED)

            // Its pages are still exactly those captured.
            let script = """
            import hashlib, sys
            h = hashlib.sha256(); zero = bytes(4096)
            with open(sys.argv[1], 'rb') as f:
                i = 0
                while True:
                    page = f.read(4096)
                    if not page: break
                    if page != zero: h.update(i.to_bytes(8, 'little')); h.update(page)
                    i += 1
            print('sha256:' + h.hexdigest())
            """
            let digest = h.execute(["/usr/bin/python3", "-c", script, memory]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let record = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/template.json"))) as? [String: Any])
            #expect(digest == record["memoryDigest"] as? String)
        }

        @Test func changingTheKernelTheAgentOrTheImageMakesANewTemplate() throws {
            let original = try busyboxKey()
            let assets = scratch + "/assets"
            try? FileManager.default.removeItem(atPath: assets)
            #expect(h.execute(["/bin/cp", "-a", Harness.assets, assets]).status == 0)
            var other = h
            other.extraEnvironment["HVC_ASSETS"] = assets

            func runAndKey(_ harness: Harness, image: String = "busybox") throws -> String {
                let r = harness.hvc(["run", "-d", image, "echo", "up"])
                #expect(r.status == 0, "\(r.stderr)")
                let id = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(harness.hvc(["wait", id]).stdout == "0\n")
                #expect(harness.hvc(["logs", id]).stdout == "up\n")
                let key = try #require(try h.state(id)["template"] as? String)
                _ = harness.hvc(["rm", id])
                return key
            }

            // The same bytes elsewhere are the same template.
            #expect(try runAndKey(other) == original)
            // Trailing zeros change the files' digests, not what they boot.
            let zeros = [UInt8](repeating: 0, count: 4096)
            let kernel = try #require(FileHandle(forWritingAtPath: assets + "/vmlinux"))
            kernel.seekToEndOfFile(); kernel.write(Data(zeros)); try kernel.close()
            let newKernel = try runAndKey(other)
            #expect(newKernel != original)
            let agent = try #require(FileHandle(forWritingAtPath: assets + "/initramfs.cpio"))
            agent.seekToEndOfFile(); agent.write(Data(zeros)); try agent.close()
            let newAgent = try runAndKey(other)
            #expect(newAgent != newKernel && newAgent != original)
            // The template it replaced (same image and shape) is gone.
            let afterAgent = try keys()
            #expect(!afterAgent.contains(newKernel))

            let archive = scratch + "/salted.tar"
            let made = h.execute(["/usr/bin/python3", ImageTests.fixtureScript, "layers", archive, "/tmp/hvc-outside", "template-test"])
            #expect(made.status == 0, "\(made.stderr)")
            #expect(h.hvc(["load", "-i", archive]).status == 0)
            let newImage = try runAndKey(h, image: "fixture:layers")
            #expect(newImage != original && newImage != newAgent)

            // With the original assets, prune removes the template of the changed ones only.
            let pruned = h.hvc(["template", "prune"])
            #expect(pruned.status == 0, "\(pruned.stderr)")
            #expect(pruned.stdout.split(separator: "\n").map(String.init).contains(newAgent))
            let left = try keys()
            #expect(!left.contains(newAgent) && left.contains(newImage))
            #expect(h.hvc(["rmi", "fixture:layers"]).status == 0)
            #expect(h.hvc(["template", "prune"]).stdout.contains(newImage))
        }

        @Test func aCorruptTemplateIsRebuiltNeverUsed() throws {
            let key = try busyboxKey()
            let directory = h.root + "/templates/" + key
            let created = try template(key)["created"] as? String

            // A flipped byte in the device state.
            let state = try #require(FileHandle(forUpdatingAtPath: directory + "/state"))
            state.seek(toFileOffset: 200)
            let old = state.readData(ofLength: 1)
            state.seek(toFileOffset: 200)
            state.write(Data([~(old.first ?? 0)]))
            try state.close()
            let r = h.hvc(["run", "--rm", "busybox", "echo", "fine"])
            #expect(r.stdout == "fine\n", "\(r.stderr)")
            let rebuilt = try template(key)["created"] as? String
            #expect(rebuilt != nil && rebuilt != created)

            // A changed page in the memory image, found when its keeper loads it.
            let keeper = try #require(try String(contentsOfFile: h.runRoot + "/templates/\(key).keeper", encoding: .utf8)
                .split(whereSeparator: \.isWhitespace).first.flatMap { Int32($0) })
            kill(keeper, SIGTERM)
            #expect(Harness.eventually { kill(keeper, 0) != 0 })
            let memory = try #require(FileHandle(forUpdatingAtPath: directory + "/memory"))
            memory.seek(toFileOffset: 4096 * 1000)
            memory.write(Data([0x5a]))
            try memory.close()
            let again = h.hvc(["run", "--rm", "busybox", "echo", "fine"])
            #expect(again.stdout == "fine\n", "\(again.stderr)")
            let rebuiltAgain = try template(key)["created"] as? String
            #expect(rebuiltAgain != rebuilt)
        }

        @Test func createListAndRemoveTemplates() throws {
            let made = h.hvc(["template", "create", "--memory", "128m", "busybox"])
            #expect(made.status == 0, "\(made.stderr)")
            let key = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let entry = try template(key)
            #expect(entry["memoryMiB"] as? Int == 128 && entry["loaded"] as? Bool == true)
            #expect((entry["residentBytes"] as? Int ?? 0) > 1 << 20)
            let table = h.hvc(["template", "ls"]).stdout
            #expect(table.hasPrefix("KEY") && table.contains(String(key.prefix(12))))

            let run = h.hvc(["run", "-d", "--memory", "128m", "busybox", "sleep", "60"])
            let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try h.state(id)["template"] as? String == key)

            let keepersBefore = h.templateKeepers().count
            let removed = h.hvc(["template", "rm", String(key.prefix(10))])
            #expect(removed.stdout == key + "\n", "\(removed.stderr)")
            #expect(!FileManager.default.fileExists(atPath: h.root + "/templates/" + key))
            #expect(Harness.eventually { h.templateKeepers().count == keepersBefore - 1 })
            // A running clone keeps its memory.
            #expect(exec(id, "echo alive") == "alive")
            _ = h.hvc(["rm", "-f", id])

            let missing = h.hvc(["template", "rm", "0000000000"])
            #expect(missing.status == 125)
            #expect(missing.stderr.split(separator: "\n").count == 1 && missing.stderr.contains("no template"))
            let bad = h.hvc(["template", "create", "no-such-image"])
            #expect(bad.status == 125 && bad.stderr.contains("unknown image"))
        }
    }
}
