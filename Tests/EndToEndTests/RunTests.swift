import Foundation
import Testing

/// `hvc run` end to end: real micro-VMs, one at a time (the machine has two cores).
extension EndToEnd {
    @Suite struct RunTests {
        let h: Harness

        init() throws { h = try Harness.make() }

        func expectNothingLeft(sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(h.leftoverVMDirectories() == [], sourceLocation: sourceLocation)
            #expect(h.leftoverVMMs() == [], sourceLocation: sourceLocation)
            #expect(h.leftoverMounts() == [], sourceLocation: sourceLocation)
        }

        @Test func echoPrintsExactlyHello() {
            let r = h.hvc(["run", "--rm", "busybox", "echo", "hello"])
            #expect(r.status == 0)
            #expect(r.stdout == "hello\n")
            #expect(r.stderr == "")
            expectNothingLeft()
        }

        @Test func stdoutStderrAndExitCodeAreKeptApart() {
            let r = h.hvc(["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 42"])
            #expect(r.status == 42)
            #expect(r.stdout == "out\n")
            #expect(r.stderr == "err\n")
            expectNothingLeft()
        }

        @Test func interactiveStdinReachesTheCommand() {
            let r = h.hvc(["run", "--rm", "-i", "busybox", "cat"], stdin: "abc\n")
            #expect(r.status == 0)
            #expect(r.stdout == "abc\n")
        }

        @Test func withoutInteractiveStdinIsEmpty() {
            let r = h.hvc(["run", "--rm", "busybox", "cat"], stdin: "ignored\n")
            #expect(r.status == 0)
            #expect(r.stdout == "")
        }

        @Test func largeOutputArrivesWhole() {
            let r = h.hvc(["run", "--rm", "busybox", "sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x"])
            #expect(r.status == 0)
            #expect(r.stdout.count == 3_000_000)
            #expect(r.stdout.allSatisfy { $0 == "x" })
        }

        @Test func theGuestRunsOurKernelNotTheHosts() throws {
            let r = h.hvc(["run", "--rm", "busybox", "uname", "-r"])
            let expected = try String(contentsOfFile: Harness.assets + "/kernel-release", encoding: .utf8)
            #expect(r.status == 0)
            #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == expected.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) != Harness.hostKernelRelease)
        }

        @Test func eachRunIsAFreshVM() {
            let write = h.hvc(["run", "--rm", "busybox", "sh", "-c", "echo secret > /root/f && cat /root/f"])
            #expect(write.stdout == "secret\n")
            let read = h.hvc(["run", "--rm", "busybox", "cat", "/root/f"])
            #expect(read.status == 1)
            #expect(read.stdout == "")
            expectNothingLeft()
        }

        @Test func theCommandIsPID1OfItsOwnContainer() {
            let r = h.hvc(["run", "--rm", "--hostname", "box", "busybox", "sh", "-c", "echo $$; hostname; cat /etc/hostname; ps -o pid,comm"])
            let lines = r.stdout.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
            #expect(lines.prefix(3) == ["1", "box", "box"])
            // Only its own processes are visible: the shell (which execs ps last) as PID 1, none of
            // the guest's.
            #expect(lines.dropFirst(3).first == "PID COMMAND")
            #expect(lines.dropFirst(4) == ["1 ps"])
        }

        @Test func unknownImageIs125WithOneLineNamingIt() {
            let r = h.hvc(["run", "--rm", "no-such-image", "true"])
            #expect(r.status == 125)
            #expect(r.stderr.split(separator: "\n").count == 1)
            #expect(r.stderr.contains("no-such-image"))
            expectNothingLeft()
        }

        @Test func missingCommandIs127() {
            let r = h.hvc(["run", "--rm", "busybox", "no-such-command"])
            #expect(r.status == 127)
            #expect(r.stderr.contains("no-such-command"))
            expectNothingLeft()
        }

        @Test func nonExecutableCommandIs126() {
            let r = h.hvc(["run", "--rm", "busybox", "/etc/passwd"])
            #expect(r.status == 126)
            expectNothingLeft()
        }

        @Test func killedBySignalIs128PlusN() {
            // The command is PID 1 of its namespace, which ignores signals it has no handler for,
            // except SIGKILL from outside; a shell reports its own child's death the same way.
            let r = h.hvc(["run", "--rm", "busybox", "sh", "-c", "sh -c 'kill -TERM $$'; exit $?"])
            #expect(r.status == 143)
        }

        @Test func userWorkdirAndEnvironmentAreApplied() {
            let r = h.hvc(["run", "--rm", "-u", "nobody", "-w", "/tmp/work", "-e", "GREETING=hi", "busybox",
                           "sh", "-c", "id -u; id -g; pwd; echo $GREETING; echo $HOME"])
            #expect(r.status == 0)
            #expect(r.stdout == "65534\n65534\n/tmp/work\nhi\n/nonexistent\n")
        }

        @Test func unknownUserIsAClearError() {
            let r = h.hvc(["run", "--rm", "-u", "ghost", "busybox", "true"])
            #expect(r.status == 125)
            #expect(r.stderr.contains("ghost"))
            expectNothingLeft()
        }

        @Test(arguments: [["--memory", "12x"], ["--cpus", "0"], ["-e", "NOEQUALS"], ["--accel", "xen"]])
        func badFlagsAreRejectedBeforeAnyVM(_ flags: [String]) {
            let r = h.hvc(["run", "--rm"] + flags + ["busybox", "true"])
            // hvc's own failure (Docker's 125), one line naming the value, then the usage hint at most.
            #expect(r.status == 125, "\(r.status): \(r.stderr)")
            let first = r.stderr.split(separator: "\n").first.map(String.init) ?? ""
            #expect(first.hasPrefix("hvc: ") && first.contains(flags[1]), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count <= 2, "\(r.stderr)")
            expectNothingLeft()
        }

        @Test func memoryAndCPUsReachTheGuest() {
            let r = h.hvc(["run", "--rm", "--memory", "384m", "--cpus", "2", "busybox", "sh", "-c",
                           "nproc; grep MemTotal /proc/meminfo"])
            #expect(r.status == 0)
            let lines = r.stdout.split(separator: "\n")
            #expect(lines.first == "2")
            let kib = lines.last.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
            #expect((300_000...393_216).contains(kib))
        }

        @Test func terminalGivesAPTY() {
            // `script` gives hvc a terminal of its own, as a user's shell would.
            let r = h.execute(["/usr/bin/script", "-qec", "\(Harness.binary) run --rm -t busybox sh -c 'tty; stty size'", "/dev/null"],
                              stdin: "")
            #expect(r.status == 0)
            #expect(r.stdout.contains("/dev/pts/0"))
            // `script` without a terminal of its own gives its pty no size: hvc's default reaches the guest.
            #expect(r.stdout.contains("24 80"), "\(r.stdout.debugDescription)")
        }

        @Test func sigtermIsForwardedToTheCommand() throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Harness.binary)
            process.arguments = ["run", "--rm", "busybox", "sh", "-c", "trap 'echo got-term; exit 7' TERM; echo ready; sleep 60 & wait"]
            process.environment = h.environment
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            let ready = out.fileHandleForReading.availableData
            #expect(String(decoding: ready, as: UTF8.self) == "ready\n")
            process.terminate()
            process.waitUntilExit()
            let rest = out.fileHandleForReading.readDataToEndOfFile()
            #expect(process.terminationStatus == 7)
            #expect(String(decoding: rest, as: UTF8.self) == "got-term\n")
            expectNothingLeft()
        }

        @Test func sigkillOfHVCLeavesNoVMBehind() throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Harness.binary)
            process.arguments = ["run", "--rm", "busybox", "sh", "-c", "echo ready; sleep 60"]
            process.environment = h.environment
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            _ = out.fileHandleForReading.availableData
            #expect(h.leftoverVMMs().count == 1)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            // QEMU dies with its supervisor; the next hvc command removes what is left on disk.
            #expect(Harness.eventually { h.leftoverVMMs().isEmpty })
            _ = h.hvc(["images"])
            expectNothingLeft()
        }
    }
}
