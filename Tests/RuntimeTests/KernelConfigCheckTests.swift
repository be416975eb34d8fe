import Foundation
import Testing

/// The kernel build's guard: every option our fragment sets must survive `olddefconfig`.
struct KernelConfigCheckTests {
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("rootfs/kernel/check-config.sh").path

    func check(fragment: String, config: String) throws -> (status: Int32, output: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kcheck-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try fragment.write(to: dir.appendingPathComponent("frag"), atomically: true, encoding: .utf8)
        try config.write(to: dir.appendingPathComponent("config"), atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [KernelConfigCheckTests.script, dir.appendingPathComponent("frag").path, dir.appendingPathComponent("config").path]
        let pipe = Pipe()
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    @Test func acceptsAConfigWithEveryOption() throws {
        let result = try check(
            fragment: "# comment\nCONFIG_VIRTIO=y\nCONFIG_PCI=n\nCONFIG_NR_CPUS=16\n",
            config: "CONFIG_VIRTIO=y\n# CONFIG_PCI is not set\nCONFIG_NR_CPUS=16\n")
        #expect(result.status == 0)
    }

    @Test func reportsADroppedOption() throws {
        let result = try check(fragment: "CONFIG_EROFS_FS=y\n", config: "# CONFIG_EROFS_FS is not set\n")
        #expect(result.status != 0)
        #expect(result.output.contains("CONFIG_EROFS_FS=y missing"))
    }

    @Test func reportsAnOptionThatShouldBeOff() throws {
        let result = try check(fragment: "CONFIG_MODULES=n\n", config: "CONFIG_MODULES=y\n")
        #expect(result.status != 0)
        #expect(result.output.contains("CONFIG_MODULES should be off"))
    }

    @Test(arguments: ["hvc.config", "nesting.config"])
    func theShippedFragmentsPassAgainstThemselves(name: String) throws {
        let fragmentPath = URL(fileURLWithPath: KernelConfigCheckTests.script).deletingLastPathComponent()
            .appendingPathComponent(name).path
        let fragment = try String(contentsOfFile: fragmentPath, encoding: .utf8)
        let config = fragment.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.hasSuffix("=n") }.joined(separator: "\n")
        #expect(try check(fragment: fragment, config: config).status == 0)
    }
}
