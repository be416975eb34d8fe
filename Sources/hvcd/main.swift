import APIServer
import Foundation
import Runtime

// hvcd: the API daemon. Usage: hvcd [--socket PATH] [--root DIR] [--run-root DIR] [--assets DIR] [--tenants FILE]
var options: [String: String] = [:]
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    guard argument.hasPrefix("--"), let value = arguments.popFirst() else {
        FileHandle.standardError.write(Data("usage: hvcd [--socket PATH] [--root DIR] [--run-root DIR] [--assets DIR] [--tenants FILE]\n".utf8))
        exit(2)
    }
    options[String(argument.dropFirst(2))] = value
}
let environment = ProcessInfo.processInfo.environment
let paths = RuntimePaths(
    root: options["root"] ?? environment["HVC_ROOT"] ?? RuntimePaths.defaultRoot,
    runRoot: options["run-root"] ?? environment["HVC_RUN_ROOT"] ?? RuntimePaths.defaultRunRoot,
    assets: options["assets"] ?? RuntimePaths.defaultAssets())
let socket = options["socket"] ?? paths.runRoot + "/hvc.sock"
let tenants: TenantConfig
do {
    tenants = try TenantConfig.load(path: options["tenants"])
} catch {
    FileHandle.standardError.write(Data("hvcd: tenants: \(error)\n".utf8))
    exit(1)
}
signal(SIGPIPE, SIG_IGN)
let handler = Handler(runtime: Runtime(paths: paths), tenants: tenants)
let server = Server(handler: handler)
do {
    try StreamBridge(handler: handler).run(socketPath: socket + ".streams")
} catch {
    FileHandle.standardError.write(Data("hvcd: \(socket).streams: \(error)\n".utf8))
    exit(1)
}
// SIGTERM and SIGINT stop the daemon, not the containers: their supervisors keep them running.
let signals = [SIGTERM, SIGINT].map { number -> DispatchSourceSignal in
    signal(number, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: number)
    source.setEventHandler { server.shutdown(); exit(0) }
    source.resume()
    return source
}
do {
    try server.run(socketPath: socket)
} catch {
    FileHandle.standardError.write(Data("hvcd: \(socket): \(error)\n".utf8))
    exit(1)
}
_ = signals
