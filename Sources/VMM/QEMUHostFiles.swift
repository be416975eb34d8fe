import Foundation
import Jail

/// What a QEMU binary opens of the host for hvc's VMs besides the libraries it links: the TCG
/// accelerator module it loads at start, and the microvm machine's firmware (qboot). QEMU finds
/// both relative to its binary's directory, `<bin>/../lib/<triplet>/qemu` and `<bin>/../share/qemu`.
/// This is the census of `strace -f -e trace=%file` of the jailed VMMs across cold boots,
/// template captures and clones, shared folders, networks and `--nested`; under KVM QEMU loads
/// no accelerator module.
public enum QEMUHostFiles {
    static let modules = ["lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so"]
    static let firmware = ["share/qemu/qboot.rom"]

    /// The tree contents for VMMs run as `binaries`: each binary, and each one's modules and
    /// firmware where it has them (a QEMU built without modules has none; a stand-in has none).
    public static func treeContents(for binaries: [String]) -> UsrTree.Contents {
        var objects: [String] = [], files: [String] = []
        for binary in binaries {
            objects.append(binary)
            let prefix = ((binary as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
            objects += modules.map { prefix + "/" + $0 }.filter { FileManager.default.fileExists(atPath: $0) }
            files += firmware.map { prefix + "/" + $0 }.filter { FileManager.default.fileExists(atPath: $0) }
        }
        return UsrTree.Contents(objects: objects, files: files)
    }
}
