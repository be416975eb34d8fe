import Foundation
import Testing
import Jail
import VMM

struct QEMUHostFilesTests {
    static let qemu = "/usr/bin/qemu-system-x86_64"

    @Test func debiansQEMUBringsItsTCGModuleAndFirmware() throws {
        try #require(FileManager.default.fileExists(atPath: Self.qemu))
        let contents = QEMUHostFiles.treeContents(for: [Self.qemu])
        #expect(contents.objects == [Self.qemu, "/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so"])
        #expect(contents.files == ["/usr/share/qemu/qboot.rom"])
    }

    /// A stand-in has no modules or firmware beside it; the QEMU it becomes brings its own.
    @Test func aStandInBringsItselfAndTheQEMUItBecomes() throws {
        try #require(FileManager.default.fileExists(atPath: Self.qemu))
        let standIn = "/usr/local/libexec/hvc-stand-in/vmm"
        let contents = QEMUHostFiles.treeContents(for: [standIn, Self.qemu])
        #expect(contents.objects == [Self.qemu, "/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so", standIn])
        #expect(contents.files == ["/usr/share/qemu/qboot.rom"])
        #expect(contents.key != QEMUHostFiles.treeContents(for: [Self.qemu]).key)
    }
}
