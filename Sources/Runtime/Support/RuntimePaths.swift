import Foundation

/// Where hvc keeps state and finds its guest assets.
public struct RuntimePaths: Sendable {
    /// Persistent state: images, containers, logs.
    public var root: String
    /// Volatile state: per-VM sockets and run directories.
    public var runRoot: String
    /// The guest kernel (`vmlinux`) and agent initramfs (`initramfs.cpio`).
    public var assets: String

    public init(root: String, runRoot: String, assets: String) {
        self.root = root
        self.runRoot = runRoot
        self.assets = assets
    }

    public static let defaultRoot = "/var/lib/hvc"
    public static let defaultRunRoot = "/run/hvc"

    /// The assets directory: `HVC_ASSETS`, else `share/hvc` beside the executable's `bin`
    /// (an installed layout), else `/usr/local/share/hvc`.
    public static func defaultAssets(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit = environment["HVC_ASSETS"], !explicit.isEmpty { return explicit }
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "hvc").resolvingSymlinksInPath()
        let installed = executable.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("share/hvc").path
        if FileManager.default.fileExists(atPath: installed + "/vmlinux") { return installed }
        return "/usr/local/share/hvc"
    }

    public var kernel: String { assets + "/vmlinux" }
    public var initramfs: String { assets + "/initramfs.cpio" }
    public var seccompPolicy: String { assets + "/seccomp/vmm.json" }
    public var identities: String { runRoot + "/uids" }
    public var images: String { root + "/images" }
    /// The VMMs' own `/usr` trees (`UsrTree`): beside the host's `/usr` on most hosts, so that
    /// they are hard links.
    public var vmmUsrTrees: String { root + "/vmm-usr" }
    public var containers: String { root + "/containers" }
    public var vms: String { runRoot + "/vms" }
}
