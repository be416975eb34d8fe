import AgentProtocol
import Foundation
import HVCSystem
@testable import Runtime
import Synchronization
import Testing
import VMM

/// The supervisor against a stand-in VM: a socket pair whose far end a scripted agent answers,
/// so that routing, deadlines and teardown are tested without QEMU.
@Suite(.serialized) struct SupervisorTests {
    /// A VM that is only its agent channel: killing it closes the guest's end.
    final class StandInVM: VirtualMachine, @unchecked Sendable {
        // @unchecked: `guest` is set once before use; `kills` is atomic enough under the lock.
        let configuration = VMConfiguration(kernel: "", initramfs: "", rootDisk: "", memoryMiB: 64, cpus: 1, accelerator: .tcg,
                                            agentSocket: "", qmpSocket: "", consoleLog: "")
        let pid = getpid()
        let guest: FrameChannel
        let kills = Mutex(0)

        init(guest: FrameChannel) { self.guest = guest }

        func connectAgent(timeoutSeconds: Double) throws(VMError) -> FrameChannel { throw .agentUnavailable("stand-in") }
        func stop() throws(VMError) { kill() }
        func kill() {
            kills.withLock { $0 += 1 }
            guest.shutdown()
        }
        func waitForExit(timeoutSeconds: Double) -> Bool { true }
        func captureState(to state: Int32, bootTimeoutSeconds: Double) throws(VMError) {}
        func restoreState(from state: Int32) throws(VMError) {}
        func jailMoved(to hostRoot: String) {}
        var killCount: Int { kills.withLock { $0 } }
    }

    /// Provides the stand-in: no confinement, a fresh directory, the host end of the pair.
    struct StandInProvider: VMProvider {
        let vm: StandInVM
        let host: FrameChannel

        func launch(in directory: VMDirectory, timing: RunTiming?, adopt: (LaunchedVM) throws(HVCError) -> Void) throws(HVCError) -> LaunchedVM {
            let launched = LaunchedVM(vm: vm, confinement: nil)
            try adopt(launched)
            return launched
        }
        func connect(_ launched: LaunchedVM, in directory: VMDirectory) throws(HVCError) -> AgentLink {
            AgentLink(channel: host, greeting: .awaited)
        }
    }

    /// A private store with one created container.
    struct Fixture {
        let base: String
        let runtime: Runtime
        let config: ContainerConfig
        let vm: StandInVM
        let guest: FrameChannel
        let provider: StandInProvider

        init() throws {
            // The supervisor runs in this process: a write to a client that hung up must fail
            // with EPIPE, as in hvc-shim, not end the test process.
            signal(SIGPIPE, SIG_IGN)
            base = FileManager.default.temporaryDirectory.appendingPathComponent("hvc-supervisor-\(UUID().uuidString.prefix(8))").path
            runtime = Runtime(paths: RuntimePaths(root: base + "/root", runRoot: base + "/run", assets: base + "/assets"))
            let id = ContainerID.generate()
            config = ContainerConfig(
                id: id, name: "c-" + id.prefix(8), image: "busybox", imageID: String(repeating: "0", count: 64),
                process: .init(ProcessSpec(arguments: ["sh"])), hostname: "h", memoryMiB: 64, cpus: 1, pidsLimit: 64,
                accelerator: .tcg, tenant: "default", created: Date(), autoRemove: false, logMaxBytes: 1 << 20, template: false,
                network: nil, ports: nil)
            _ = try runtime.containers.create(config)
            let (host, guest) = try FrameChannel.pair()
            self.guest = guest
            vm = StandInVM(guest: guest)
            provider = StandInProvider(vm: vm, host: host)
        }

        func supervisor(answerSeconds: Int = 30) -> Supervisor {
            Supervisor(config: config, runtime: runtime, provider: provider, attached: nil, keepStdinOpen: false,
                       terminalSize: (24, 80), timing: false, answerSeconds: answerSeconds)
        }

        /// Runs the supervisor on a thread of its own; the result once it returns.
        func runInBackground(_ supervisor: Supervisor) -> (DispatchSemaphore, ExitBox) {
            let done = DispatchSemaphore(value: 0)
            let code = ExitBox()
            Thread.detachNewThread {
                let result = supervisor.run()
                code.value.withLock { $0 = result }
                done.signal()
            }
            return (done, code)
        }

        var state: ContainerState? { try? runtime.containers.resolve(config.id).state }
        var controlSocket: String { VMDirectory.path(in: runtime.paths.vms, id: config.id) + "/control.sock" }

        func remove() { try? FileManager.default.removeItem(atPath: base) }

        /// The agent's side of a boot: `ready`, then the command's `start` taken.
        func sayReadyAndTakeStart() throws {
            try guest.send(Frame(.ready(Ready(agentStartNanoseconds: 1, readyNanoseconds: 2))))
            _ = try #require(SupervisorTests.expect(guest, SupervisorTests.isStart))
        }

        /// The same, and the command reported started.
        func readyAndStartCommand() throws {
            try sayReadyAndTakeStart()
            try guest.send(Frame(process: 1, .started(pid: 7)))
        }
    }

    /// Reads guest-bound frames until `match` holds for one; nil when the channel ends first.
    static func expect(_ channel: FrameChannel, _ match: (Frame) -> Bool) -> Frame? {
        channel.setReceiveTimeout(seconds: 20)
        while let frame = try? channel.receive() {
            if match(frame) { return frame }
        }
        return nil
    }

    static func isStart(_ frame: Frame) -> Bool { if case .start = frame.message { true } else { false } }

    @Test func theCommandsOutputGoesToTheLogAndItsExitIsRecorded() throws {
        let f = try Fixture()
        defer { f.remove() }
        let (done, code) = f.runInBackground(f.supervisor())
        try f.guest.send(Frame(.ready(Ready(agentStartNanoseconds: 1, readyNanoseconds: 2))))
        let hello = SupervisorTests.expect(f.guest) { if case .hello = $0.message { true } else { false } }
        #expect(hello != nil)
        let start = try #require(SupervisorTests.expect(f.guest, SupervisorTests.isStart))
        #expect(start.process == 1)
        try f.guest.send(Frame(process: 1, .started(pid: 7)))
        #expect(Eventually.holds { f.state?.status == .running })
        try f.guest.send(Frame(process: 1, .stdout(Array("hello\n".utf8))))
        try f.guest.send(Frame(process: 1, .exited(.exited(3))))
        #expect(done.wait(timeout: .now() + 20) == .success)
        #expect(code.value.withLock { $0 } == 3)
        #expect(f.state?.status == .exited)
        #expect(f.state?.exitCode == 3)
        #expect(f.state?.error == nil)
        let log = ContainerLogReader(path: f.runtime.containers.logPath(f.config.id)).read().entries.map(\.log).joined()
        #expect(log == "hello\n")
        // Teardown: the VM killed, its directory gone.
        #expect(f.vm.killCount >= 1)
        #expect(!FileManager.default.fileExists(atPath: VMDirectory.path(in: f.runtime.paths.vms, id: f.config.id)))
    }

    @Test func anExecIsRoutedToItsClientUnderTheClientsOwnNumber() throws {
        let f = try Fixture()
        defer { f.remove() }
        let (done, code) = f.runInBackground(f.supervisor())
        try f.readyAndStartCommand()
        #expect(Eventually.holds { f.state?.status == .running && FileManager.default.fileExists(atPath: f.controlSocket) })

        let client = try FrameChannel.connect(path: f.controlSocket)
        try client.send(Frame(process: 5, .start(ProcessSpec(arguments: ["echo", "hi"]))))
        let exec = try #require(SupervisorTests.expect(f.guest, SupervisorTests.isStart))
        #expect(exec.process == 2, "the supervisor numbers guest processes itself")
        try f.guest.send(Frame(process: exec.process, .started(pid: 8)))
        try f.guest.send(Frame(process: exec.process, .stdout(Array("hi\n".utf8))))
        try f.guest.send(Frame(process: exec.process, .exited(.exited(0))))
        client.setReceiveTimeout(seconds: 20)
        var seen: [Frame] = []
        while let frame = try? client.receive() {
            seen.append(frame)
            if case .exited = frame.message { break }
        }
        #expect(seen.map(\.process) == [5, 5, 5])
        #expect(seen.map(\.message) == [.started(pid: 8), .stdout(Array("hi\n".utf8)), .exited(.exited(0))])
        // The exec's output is not the container's log.
        try f.guest.send(Frame(process: 1, .exited(.exited(0))))
        #expect(done.wait(timeout: .now() + 20) == .success)
        #expect(code.value.withLock { $0 } == 0)
        let log = ContainerLogReader(path: f.runtime.containers.logPath(f.config.id)).read().entries
        #expect(log.isEmpty)
    }

    @Test func aPodMemberEndsWhenItsRelayHangsUpButAnExecDoesNot() throws {
        let f = try Fixture()
        defer { f.remove() }
        let (done, _) = f.runInBackground(f.supervisor())
        try f.readyAndStartCommand()
        #expect(Eventually.holds { f.state?.status == .running && FileManager.default.fileExists(atPath: f.controlSocket) })
        var spec = ProcessSpec(arguments: ["sleep", "1000"])
        spec.member = PodMember(name: "web", rootShare: "web+root")
        let member = try FrameChannel.connect(path: f.controlSocket)
        try member.send(Frame(process: 1, .start(spec)))
        let started = try #require(SupervisorTests.expect(f.guest, SupervisorTests.isStart))
        try f.guest.send(Frame(process: started.process, .started(pid: 9)))
        let exec = try FrameChannel.connect(path: f.controlSocket)
        try exec.send(Frame(process: 1, .start(ProcessSpec(arguments: ["sleep", "1000"]))))
        let execStart = try #require(SupervisorTests.expect(f.guest, SupervisorTests.isStart))
        try f.guest.send(Frame(process: execStart.process, .started(pid: 10)))
        #expect(SupervisorTests.expect(exec) { $0.message == .started(pid: 10) } != nil)
        #expect(SupervisorTests.expect(member) { $0.message == .started(pid: 9) } != nil)
        exec.shutdown()
        member.shutdown()
        let kill = try #require(SupervisorTests.expect(f.guest) { frame in
            if case .signal = frame.message { return true }
            return false
        })
        #expect(kill.process == started.process && kill.message == .signal(SIGKILL), "the member, not the exec: \(kill)")
        try f.guest.send(Frame(process: 1, .exited(.exited(0))))
        #expect(done.wait(timeout: .now() + 20) == .success)
    }

    @Test func aStartTheGuestNeverAnswersEndsTheContainerAtTheDeadline() throws {
        let f = try Fixture()
        defer { f.remove() }
        let began = Date()
        let (done, code) = f.runInBackground(f.supervisor(answerSeconds: 1))
        try f.sayReadyAndTakeStart()
        // Silence: no `started`.
        #expect(done.wait(timeout: .now() + 20) == .success)
        #expect(Date().timeIntervalSince(began) >= 1)
        #expect(code.value.withLock { $0 } == 125)
        #expect(f.state?.error == "the guest agent did not answer `start` within 1 s")
        #expect(f.vm.killCount >= 1)
    }

    @Test func aGuestThatBreaksTheProtocolEndsOnlyItsOwnContainer() throws {
        let f = try Fixture()
        defer { f.remove() }
        let (done, code) = f.runInBackground(f.supervisor())
        try f.readyAndStartCommand()
        // Output for a process nobody started.
        try f.guest.send(Frame(process: 99, .stdout(Array("x".utf8))))
        #expect(done.wait(timeout: .now() + 20) == .success)
        #expect(code.value.withLock { $0 } == 125)
        #expect(f.state?.error?.hasPrefix("the guest agent broke the protocol: ") == true, "\(f.state?.error ?? "")")
        #expect(f.vm.killCount >= 1)
        #expect(!FileManager.default.fileExists(atPath: f.controlSocket))
    }

    @Test func aShutdownFromAClientEndsTheContainerAsKilled() throws {
        let f = try Fixture()
        defer { f.remove() }
        let (done, code) = f.runInBackground(f.supervisor())
        try f.readyAndStartCommand()
        #expect(Eventually.holds { FileManager.default.fileExists(atPath: f.controlSocket) })
        let client = try FrameChannel.connect(path: f.controlSocket)
        try client.send(Frame(.shutdown))
        #expect(done.wait(timeout: .now() + 20) == .success)
        #expect(code.value.withLock { $0 } == 137)
        #expect(f.state?.error == nil)
    }

    @Test func aGuestThatNeverSaysReadyFailsTheStartWithTheReason() throws {
        let f = try Fixture()
        defer { f.remove() }
        let (done, code) = f.runInBackground(f.supervisor(answerSeconds: 1))
        // The stand-in's first frame is not `ready`.
        try f.guest.send(Frame(process: 1, .started(pid: 1)))
        #expect(done.wait(timeout: .now() + 20) == .success)
        #expect(code.value.withLock { $0 } == 125)
        #expect(f.state?.error?.hasPrefix("guest agent did not start with `ready`") == true, "\(f.state?.error ?? "")")
    }
}

/// The supervisor's exit code, set from its thread.
final class ExitBox: Sendable {
    let value = Mutex<Int32?>(nil)
}

/// Polls a condition for a test (at most `seconds`).
enum Eventually {
    static func holds(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return condition()
    }
}
