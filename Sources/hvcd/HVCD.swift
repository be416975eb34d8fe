import APIServer
import ArgumentParser
import Foundation
import Runtime

/// `hvcd`: the API daemon.
@main
struct HVCD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hvcd",
        abstract: "Serve hvc's HTTP/JSON API on a Unix socket, with tenants.",
        discussion: "SIGTERM and SIGINT stop the daemon, not the containers: their supervisors keep them running.")

    @Option(help: "The socket (default: <run-root>/hvc.sock); process streams on <socket>.streams.")
    var socket: String?

    @Option(help: "The Docker Engine API's socket (default: docker.sock beside the socket); '' serves none.")
    var dockerSocket: String?

    @Option(help: "Persistent state directory; $HVC_ROOT when not given.")
    var root = ProcessInfo.processInfo.environment["HVC_ROOT"] ?? RuntimePaths.defaultRoot

    @Option(help: "Volatile state directory; $HVC_RUN_ROOT when not given.")
    var runRoot = ProcessInfo.processInfo.environment["HVC_RUN_ROOT"] ?? RuntimePaths.defaultRunRoot

    @Option(help: "Directory with the guest kernel and agent initramfs (default: $HVC_ASSETS or share/hvc).")
    var assets: String?

    @Option(help: "The tenants file (uids and gids to tenants, quotas, admin groups).")
    var tenants: String?

    /// Parses the command line and runs the daemon. A bad command line exits 2 with one line;
    /// a daemon that cannot start exits 1.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            guard exitCode(for: error) == .validationFailure else { exit(withError: error) }
            let line = message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            FileHandle.standardError.write(Data("hvcd: \(line) (see hvcd --help)\n".utf8))
            Foundation.exit(2)
        }
    }

    func run() throws {
        let paths = RuntimePaths(root: root, runRoot: runRoot, assets: assets ?? RuntimePaths.defaultAssets())
        let socket = socket ?? paths.runRoot + "/hvc.sock"
        let tenantConfig: TenantConfig
        do {
            tenantConfig = try TenantConfig.load(path: tenants)
        } catch {
            fail("tenants: \(error)")
        }
        signal(SIGPIPE, SIG_IGN)
        let runtime = Runtime(paths: paths)
        let handler = Handler(runtime: runtime, tenants: tenantConfig)
        do {
            try KeeperService.serve(runtime: runtime)
        } catch {
            fail("\(error.message)")
        }
        let server = Server(service: handler)
        let dockerPath = dockerSocket ?? (socket as NSString).deletingLastPathComponent + "/docker.sock"
        if !dockerPath.isEmpty {
            let docker = Server(service: DockerHandler(handler: handler))
            Thread.detachNewThread {
                do {
                    try docker.run(socketPath: dockerPath)
                } catch {
                    FileHandle.standardError.write(Data("hvcd: \(dockerPath): \(error)\n".utf8))
                    Foundation.exit(1)
                }
            }
        }
        do {
            try StreamBridge(handler: handler).run(socketPath: socket + ".streams")
        } catch {
            fail("\(socket).streams: \(error)")
        }
        // SIGTERM and SIGINT stop the daemon, not the containers: their supervisors keep them running.
        let signals = [SIGTERM, SIGINT].map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { server.shutdown(); Foundation.exit(0) }
            source.resume()
            return source
        }
        withExtendedLifetime(signals) {
            do {
                try server.run(socketPath: socket)
            } catch {
                fail("\(socket): \(error)")
            }
        }
    }

    /// Ends the daemon with one line.
    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("hvcd: \(message)\n".utf8))
        Foundation.exit(1)
    }
}
