import AgentProtocol
import Testing

/// What a guest may send once its session has begun: its own kinds, about processes the host started.
struct GuestRulesTests {
    /// The host started processes 1 to 3.
    let started: Range<UInt32> = 1..<4

    @Test(arguments: [
        Frame(process: 1, .started(pid: 1)),
        Frame(process: 1, .stdout(Array("out".utf8))),
        Frame(process: 3, .stderr([])),
        Frame(process: 2, .exited(.exited(0))),
        Frame(process: 3, .startFailed(.notFound, "nope")),
        Frame(process: 1, .oomKilled),
        Frame(.failure("cannot set up the network")),
    ])
    func whatAGuestSendsAboutItsProcessesIsAccepted(_ frame: Frame) {
        #expect(frame.guestViolation(started: started) == nil)
    }

    @Test func reportsOnAProcessNeverStartedAreViolations() {
        #expect(Frame(process: 7, .exited(.exited(0))).guestViolation(started: started)
            == "it sent `exited` for process 7, which the host never started")
        #expect(Frame(process: 4, .stdout([1])).guestViolation(started: started)
            == "it sent `stdout` for process 4, which the host never started")
        #expect(Frame(process: 0, .started(pid: 5)).guestViolation(started: started) != nil)
    }

    @Test func hostMessagesAndRepeatedGreetingsAreViolations() {
        let hello = Frame(.hello(Hello(entropy: [], unixTimeNanoseconds: 0, hostname: "h")))
        #expect(hello.guestViolation(started: started) == "it sent `hello`, which only the host sends")
        #expect(Frame(process: 1, .start(ProcessSpec(arguments: ["sh"]))).guestViolation(started: started) != nil)
        #expect(Frame(.shutdown).guestViolation(started: started) == "it sent `shutdown`, which only the host sends")
        #expect(Frame(.attach(stdin: true)).guestViolation(started: started) != nil)
        #expect(Frame(.ready(Ready(agentStartNanoseconds: 1, readyNanoseconds: 2))).guestViolation(started: started)
            == "it sent `ready` after the session began")
        #expect(Frame(.warmedUp).guestViolation(started: started) != nil)
    }
}
