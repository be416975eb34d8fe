import ArgumentParser
import Foundation
import HVCSystem
import Runtime

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the API daemon (hvcd) in the foreground on a Unix socket.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "The socket (default: <run-root>/hvc.sock).")
    var socket: String?
    @Option(help: "The tenants file (uids and gids to tenants, quotas, admin groups).")
    var tenants: String?

    func run() throws {
        try HVC.guarded {
            try global.requireLocal("serve")
            let runtime = global.runtime()
            let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/usr/local/bin/hvc"
            let daemon = URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("hvcd").path
            guard FileManager.default.isExecutableFile(atPath: daemon) else {
                throw HVCError("\(daemon) is missing: install hvcd beside hvc (make install)")
            }
            var argv = [daemon, "--root", runtime.paths.root, "--run-root", runtime.paths.runRoot, "--assets", runtime.paths.assets]
            if let socket { argv += ["--socket", socket] }
            if let tenants { argv += ["--tenants", tenants] }
            withCStringArray(argv) { cArgv in
                cArgv.withMemoryRebound(to: UnsafeMutablePointer<CChar>?.self, capacity: argv.count + 1) { _ = execv(daemon, $0) }
            }
            throw HVCError("exec \(daemon): \(Errno.current)")
        }
    }
}
