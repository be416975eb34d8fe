import Foundation
import Runtime

// hvc-shim: supervises one detached container for its whole life, or (with --keep-template)
// holds a template's sealed memory for its clones.
// Usage: hvc-shim --root DIR --run-root DIR --assets DIR [--await-attach 1] CONTAINER_ID
//        hvc-shim --root DIR --run-root DIR --assets DIR --keep-template KEY
//        hvc-shim --root DIR --run-root DIR --assets DIR --pool-member POOL
//        hvc-shim --root DIR --run-root DIR --assets DIR --name-server 1
//        hvc-shim --root DIR --run-root DIR --assets DIR --oci-init STATE_DIR [--console-socket PATH]
//                 [--netns PATH] [--cgroup PATH] CONTAINER_ID
//        hvc-shim --root DIR --run-root DIR --assets DIR --oci-exec EXEC_FILE [--console-socket PATH] CONTAINER_ID
var options: [String: String] = [:]
var positional: [String] = []
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    if argument.hasPrefix("--"), let value = arguments.popFirst() {
        options[String(argument.dropFirst(2))] = value
    } else {
        positional.append(argument)
    }
}
let service = options["keep-template"] != nil || options["pool-member"] != nil || options["name-server"] != nil
guard positional.count == (service ? 0 : 1), let root = options["root"], let runRoot = options["run-root"], let assets = options["assets"] else {
    FileHandle.standardError.write(Data("usage: hvc-shim --root DIR --run-root DIR --assets DIR CONTAINER_ID\n".utf8))
    exit(2)
}
signal(SIGPIPE, SIG_IGN)
let runtime = Runtime(paths: RuntimePaths(root: root, runRoot: runRoot, assets: assets))
if let key = options["keep-template"] {
    TemplateKeeper.run(store: runtime.templates, key: key)
}
if options["name-server"] != nil {
    NameServer.run(runtime: runtime)
}
if let pool = options["pool-member"] {
    PoolMember.run(runtime: runtime, poolName: pool)
}
if let execFile = options["oci-exec"] {
    OCIContainers.runExec(runtime: runtime, execFile: execFile, container: positional[0], consoleSocket: options["console-socket"])
}
if let state = options["oci-init"] {
    OCIContainers.runInit(runtime: runtime, stateDirectory: state, container: positional[0], consoleSocket: options["console-socket"],
                          networkNamespace: options["netns"], cgroup: options["cgroup"])
}
do {
    let record = try runtime.containers.resolve(positional[0])
    exit(Supervisor(config: record.config, runtime: runtime, awaitsAttach: options["await-attach"] == "1").run())
} catch {
    FileHandle.standardError.write(Data("hvc-shim: \(error.message)\n".utf8))
    exit(125)
}
