import AgentProtocol
import CLinux
import Glibc
import HVCSystem

// hvc-agent: PID 1 of every hvc guest, started by the pre-init once /proc and /dev exist.
if CommandLine.arguments.dropFirst().first == Prewarm.warmUpExitArgument { exit(0) }
let agentStart = monotonicNanoseconds()

func bootFailure(_ message: String) -> Never {
    // Nobody may be listening yet: the console is the only place this can go.
    let line = Array("hvc-agent: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    hvc_reboot()
    exit(1)
}

let port: FileDescriptor
do {
    try Boot.mountSystem()
    GuestNetwork.prepareAtBoot()
    let cmdline = Boot.commandLine()
    try Boot.mountRoot(device: "/dev/" + (cmdline["hvc.root"] ?? "vda"), type: cmdline["hvc.rootfstype"] ?? "erofs")
    if cmdline["hvc.prewarm"] == "1" { Prewarm.run() }
    port = try Boot.openPort()
} catch {
    bootFailure("\(error)")
}

let agent: Agent
do {
    agent = try Agent(port: port)
} catch {
    bootFailure("signalfd: \(error)")
}
agent.send(Frame(.ready(Ready(agentStartNanoseconds: agentStart, readyNanoseconds: monotonicNanoseconds()))))
agent.run()
