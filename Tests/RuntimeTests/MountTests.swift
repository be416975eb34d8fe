import Foundation
import Runtime
import Testing

/// `-v`, `--mount` and `--tmpfs` as Docker reads them, and the checks on what they name.
struct MountParsingTests {
    @Test func volumeFlagForms() throws {
        let bind = try ContainerMount.parseVolumeFlag("/srv/app/:/app:ro")
        #expect(bind.type == .bind && bind.source == "/srv/app/" && bind.target == "/app" && bind.readOnly)
        let named = try ContainerMount.parseVolumeFlag("data:/var/lib//db/")
        #expect(named.type == .volume && named.source == "data" && named.target == "/var/lib/db" && !named.readOnly)
        let anonymous = try ContainerMount.parseVolumeFlag("/cache")
        #expect(anonymous.type == .volume && anonymous.source.isEmpty && anonymous.anonymous == true)
        #expect(try ContainerMount.parseVolumeFlag("/a:/b:ro,rw").readOnly == false)
    }

    @Test(arguments: [
        ("relative:/x", nil), ("./dir:/x", "invalid volume name"), ("../up:/x", "invalid volume name"), ("a/b:/x", "invalid volume name"),
        ("/a/../etc:/x", "has .."), ("/a:x", "not absolute"), ("/a:/x/../y", ". or .."), ("/a:/", "cannot mount on /"),
        ("/a:/proc", "/proc"), ("/a:/sys/kernel", "/proc, /sys"), ("/a:/dev", "/dev"), ("/a:/dev/pts", "/dev"),
        ("/a:/x:z", "unknown option"), (":/x", "source is empty"), ("/a:/b:ro:x", "use HOSTDIR"),
    ] as [(String, String?)])
    func badVolumeFlags(_ text: String, _ message: String?) {
        do {
            let mount = try ContainerMount.parseVolumeFlag(text)
            // A plain name is a volume, not an error.
            #expect(message == nil && mount.type == .volume, "\(text) was accepted")
        } catch {
            #expect(message != nil && error.message.contains(message!), "\(text): \(error.message)")
            #expect(error.kind == .invalid)
        }
    }

    @Test func mountFlagForms() throws {
        let bind = try ContainerMount.parseMountFlag("type=bind,src=/h,dst=/c,readonly")
        #expect(bind == ContainerMount(type: .bind, source: "/h", target: "/c", readOnly: true))
        let volume = try ContainerMount.parseMountFlag("source=v1,target=/v,readonly=false")
        #expect(volume.type == .volume && volume.source == "v1" && !volume.readOnly)
        let tmpfs = try ContainerMount.parseMountFlag("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=700")
        #expect(tmpfs.tmpfsSize == 1 << 20 && tmpfs.tmpfsMode == 0o700)
        #expect(throws: HVCError.self) { try ContainerMount.parseMountFlag("type=bind,target=/c") }
        #expect(throws: HVCError.self) { try ContainerMount.parseMountFlag("type=tmpfs,source=x,target=/c") }
        #expect(throws: HVCError.self) { try ContainerMount.parseMountFlag("type=volume,source=v,target=/c,tmpfs-size=1m") }
        #expect(throws: HVCError.self) { try ContainerMount.parseMountFlag("type=bind,source=/h,target=/c,propagation=shared") }
        #expect(throws: HVCError.self) { try ContainerMount.parseMountFlag("type=tmpfs,target=/c,tmpfs-mode=9999") }
    }

    @Test func tmpfsFlagForms() throws {
        let t = try ContainerMount.parseTmpfsFlag("/run:size=64m,mode=755")
        #expect(t.type == .tmpfs && t.target == "/run" && t.tmpfsSize == 64 << 20 && t.tmpfsMode == 0o755)
        #expect(throws: HVCError.self) { try ContainerMount.parseTmpfsFlag("/run:exec") }
        #expect(throws: HVCError.self) { try ContainerMount.parseTmpfsFlag("run") }
    }

    @Test func apiMountsAreCheckedAndWithinIsTheServers() throws {
        var sent = ContainerMount(type: .bind, source: "/srv", target: "/x/")
        sent.within = "/"
        let checked = try sent.checked()
        #expect(checked.within == nil && checked.target == "/x")
        #expect(throws: HVCError.self) { try ContainerMount(type: .tmpfs, source: "/etc", target: "/x").checked() }
        #expect(throws: HVCError.self) { try ContainerMount(type: .volume, source: "a/../b", target: "/x").checked() }
        let decoded = try JSONDecoder().decode(ContainerMount.self, from: Data(#"{"type": "tmpfs", "target": "/t"}"#.utf8))
        #expect(decoded.source.isEmpty && !decoded.readOnly)
    }

    @Test func runOptionsRefuseTwoMountsOnOneTarget() throws {
        var options = RunOptions(image: "x")
        options.mounts = [try ContainerMount.parseVolumeFlag("a:/d"), try ContainerMount.parseTmpfsFlag("/d")]
        #expect(throws: HVCError.self) { try options.validate() }
    }
}

/// Named volumes on disk: made once, refused while used, gone with their files.
struct VolumeStoreTests {
    let root = "/tmp/hvc-volume-test-\(getpid())-\(UUID().uuidString.prefix(8))"
    var store: VolumeStore { VolumeStore(paths: RuntimePaths(root: root, runRoot: root + "/run", assets: root + "/assets")) }

    @Test func createListRemove() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let volume = try store.create("data", tenant: "t1")
        #expect(FileManager.default.fileExists(atPath: volume.mountpoint))
        #expect(throws: HVCError.self) { try store.create("data", tenant: "t1") }
        #expect(try store.create("data", tenant: "t1", exclusive: false).mountpoint == volume.mountpoint)
        _ = try store.create("data", tenant: "t2")
        #expect(store.list(tenant: "t1").map(\.name) == ["data"])
        #expect(store.list(tenant: nil).map(\.tenant) == ["t1", "t2"])
        try "x".write(toFile: volume.mountpoint + "/f", atomically: false, encoding: .utf8)
        #expect(throws: HVCError.self) { try store.remove(volume) { ["user"] } }
        #expect(FileManager.default.fileExists(atPath: volume.mountpoint + "/f"))
        try store.remove(volume) { [] }
        #expect(store.list(tenant: "t1").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: volume.mountpoint))
        #expect(throws: HVCError.self) { try store.resolve("data", tenant: "t1") }
        #expect(throws: HVCError.self) { try store.create("..", tenant: "t1") }
        #expect(throws: HVCError.self) { try store.create("a/b", tenant: "t1") }
    }
}

/// Block volumes: the driver's options checked before anything is made; the image sparse and
/// formatted, gone with the volume.
struct BlockVolumeTests {
    let root = "/tmp/hvc-block-test-\(getpid())-\(UUID().uuidString.prefix(8))"
    var manager: VolumeManager {
        VolumeManager(runtime: Runtime(paths: RuntimePaths(root: root, runRoot: root + "/run", assets: root + "/assets")), tenant: "t1")
    }

    func request(_ name: String, _ driver: VolumeDriver?, _ options: [String: String]?) -> CreateVolumeRequest {
        var request = CreateVolumeRequest(name: name)
        request.driver = driver
        request.options = options
        return request
    }

    @Test(arguments: [
        (VolumeDriver.block, ["size": "1k"], "too small"), (.block, ["size": "lots"], "invalid block volume size"),
        (.block, ["size": "20000g"], "too large"), (.block, ["colour": "red"], "unknown option \"colour\""),
        (.local, ["size": "1g"], "takes no options"),
    ] as [(VolumeDriver, [String: String], String)])
    func badOptionsAreRefusedAndNothingIsMade(_ driver: VolumeDriver, _ options: [String: String], _ message: String) {
        defer { try? FileManager.default.removeItem(atPath: root) }
        do {
            _ = try manager.create(request("v", driver, options))
            Issue.record("\(driver) \(options) was accepted")
        } catch {
            #expect(error.kind == .invalid && error.message.contains(message), "\(error.message)")
        }
        #expect(manager.list().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: root + "/volumes/t1/v"))
    }

    @Test func blockVolumeIsASparseExt4Image() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let volume = try manager.create(request("fast", .block, ["size": "64m"]))
        #expect(volume.driver == .block && volume.sizeBytes == 64 << 20 && volume.mountpoint.hasSuffix("/fast/disk.ext4"))
        var info = stat()
        #expect(stat(volume.mountpoint, &info) == 0)
        #expect(info.st_size == 64 << 20)
        #expect(Int(info.st_blocks) * 512 < 16 << 20, "not sparse: \(info.st_blocks) blocks")
        // ext4's magic, 0xEF53 at byte 1080 (the superblock at 1024, s_magic at 56).
        let image = try FileHandle(forReadingFrom: URL(fileURLWithPath: volume.mountpoint))
        defer { try? image.close() }
        try image.seek(toOffset: 1080)
        #expect(try image.read(upToCount: 2) == Data([0x53, 0xEF]))
        #expect(manager.list().map(\.driver) == [.block])
        try manager.remove("fast")
        #expect(!FileManager.default.fileExists(atPath: volume.mountpoint))
        // The default size when none is given.
        #expect(try manager.create(request("plain", .block, nil)).sizeBytes == 10 << 30)
    }
}
