import AgentProtocol
import Foundation
import HVCSystem

/// What a pooled VM's host gives its warm-up: a small container root, shared as a bundle's root
/// is, that the guest sets a throwaway container up on and runs a program from (see the agent's
/// `Prewarm.warmUp`), so that a claim finds those paths translated. Shared for the warm-up only.
enum PoolRehearsal {
    /// Its entries' prefix: its root's entry is then `GuestMount.rehearsalRoot`.
    static let prefix = "warm-up-"

    /// Makes a small container root (the directories and files a container's set-up touches) in
    /// the VM's directory and shares it as `GuestMount.rehearsalRoot`; nil when it could not be.
    static func share(directory: VMDirectory, vmmPID: Int32, runtime: Runtime) -> String? {
        let root = directory.path + "/rehearsal"
        do {
            for name in ["", "/proc", "/sys", "/dev", "/tmp", "/etc"] { try makeDirectory(root + name, mode: 0o755) }
            try writeAtomically(root + "/etc/passwd", Data("root:x:0:0:root:/root:/bin/sh\n".utf8))
            try writeAtomically(root + "/etc/group", Data("root:x:0:\n".utf8))
            try writeAtomically(root + GuestMount.rehearsalCommand, Data(exitProgram))
            chmod(root + GuestMount.rehearsalCommand, 0o755)
            _ = try SharedFolders.share([], root: root, prefix: prefix, tenant: "hvc-pool", runtime: runtime,
                                        vmmPID: vmmPID, directory: directory)
        } catch {
            try? FileManager.default.removeItem(atPath: root)
            return nil
        }
        return root
    }

    /// A static x86-64 Linux program of one segment that exits 0: ELF header, program header,
    /// then `xor edi, edi; mov eax, 60 (exit); syscall`.
    static let exitProgram: [UInt8] = {
        func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
        let code: [UInt8] = [0x31, 0xff, 0xb8, 0x3c, 0x00, 0x00, 0x00, 0x0f, 0x05]
        let base: UInt64 = 0x40_0000, headers: UInt64 = 64 + 56, size = headers + UInt64(code.count)
        var elf: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        elf += bytes(UInt16(2)) + bytes(UInt16(0x3e)) + bytes(UInt32(1)) + bytes(base + headers) + bytes(UInt64(64)) + bytes(UInt64(0))
        elf += bytes(UInt32(0)) + bytes(UInt16(64)) + bytes(UInt16(56)) + bytes(UInt16(1)) + bytes(UInt16(0)) + bytes(UInt16(0))
            + bytes(UInt16(0))
        elf += bytes(UInt32(1)) + bytes(UInt32(5)) + bytes(UInt64(0)) + bytes(base) + bytes(base) + bytes(size) + bytes(size)
            + bytes(UInt64(0x1000))
        return elf + code
    }()

    /// Takes the rehearsal root back from the VM and removes it.
    static func remove(_ root: String, directory: VMDirectory, vmmPID: Int32) {
        SharedFolders.unshare(prefix: prefix, vmmPID: vmmPID, directory: directory)
        try? FileManager.default.removeItem(atPath: root)
    }
}
