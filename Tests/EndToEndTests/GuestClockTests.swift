import Foundation
import Testing

extension EndToEnd {
    /// Guest time: a precise clocksource in every guest (cold or cloned), fine steps, and a wall
    /// clock that agrees with the host's after a clone's restore and after minutes idle.
    @Suite struct GuestClockTests {
        let h: Harness
        static let image = "clocktest:1"

        init() throws {
            h = try Harness.make()
            if !h.hvc(["images"]).stdout.contains("clocktest") {
                try GuestClockTests.makeImage(h)
            }
        }

        /// busybox and the clock reader (built here, static) in an image of their own.
        static func makeImage(_ h: Harness) throws {
            let tree = h.root + "/../clocktree-\(UUID().uuidString.prefix(8))"
            defer { try? FileManager.default.removeItem(atPath: tree) }
            let steps: [[String]] = [
                ["/bin/mkdir", "-p", tree + "/bin", tree + "/proc", tree + "/sys", tree + "/dev", tree + "/tmp", tree + "/etc"],
                ["/bin/cp", "/bin/busybox", tree + "/bin/busybox"],
                ["/bin/ln", "-s", "busybox", tree + "/bin/sh"],
                ["/bin/ln", "-s", "busybox", tree + "/bin/cat"],
                ["/bin/ln", "-s", "busybox", tree + "/bin/sleep"],
                ["/usr/bin/gcc", "-static", "-O2", "-o", tree + "/bin/clockstep", Harness.repository + "/Tests/EndToEndTests/Fixtures/clockstep.c"],
            ]
            for step in steps {
                let r = h.execute(step)
                guard r.status == 0 else { throw HarnessError(message: "\(step.joined(separator: " ")): \(r.stderr)") }
            }
            let r = h.hvc(["import", "--cmd", "sh", "--env", "PATH=/bin", tree, image])
            guard r.status == 0 else { throw HarnessError(message: "import: \(r.stderr)") }
        }

        static func nanoseconds() -> Int64 {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
        }

        /// The guest's wall clock against the host's read before and after it: within 50 ms.
        func expectWallClockAgrees(_ arguments: [String], _ what: String) {
            let before = GuestClockTests.nanoseconds()
            let r = h.hvc(arguments)
            let after = GuestClockTests.nanoseconds()
            let guest = Int64(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            #expect(r.status == 0, "\(what): \(r.stderr)")
            #expect(guest >= before - 50_000_000 && guest <= after + 50_000_000,
                    "\(what): guest \(guest), host \(before)...\(after) (\(Double(guest - before) / 1e6) ms after the first)")
        }

        @Test(arguments: [[String](), ["--no-template"]])
        func theClockIsPreciseColdAndCloned(_ flags: [String]) throws {
            let r = h.hvc(["run", "--rm"] + flags + [GuestClockTests.image, "sh", "-c",
                           "cat /sys/devices/system/clocksource/clocksource0/current_clocksource; clockstep"])
            try #require(r.status == 0, "\(r.stderr)")
            let lines = r.stdout.split(separator: "\n").map(String.init)
            try #require(lines.count == 2, "\(r.stdout)")
            #expect(!lines[0].contains("jiffies"), "clocksource \(lines[0])")
            let fields = Dictionary(uniqueKeysWithValues: lines[1].split(separator: " ").compactMap { field -> (String, Int)? in
                let parts = field.split(separator: "=")
                guard parts.count == 2, let value = Int(parts[1]) else { return nil }
                return (String(parts[0]), value)
            })
            let median = try #require(fields["median_ns"], "\(lines[1])")
            #expect(median > 0 && median <= 1000, "CLOCK_MONOTONIC steps by \(median) ns (median of 20000 reads)")
        }

        @Test func aClonesWallClockIsTheHostsAfterRestore() {
            // A clone restores a VM captured earlier: its clock must be set, not the template's.
            expectWallClockAgrees(["run", "--rm", GuestClockTests.image, "clockstep", "realtime"], "clone")
        }

        @Test func theWallClockHoldsAfterFiveMinutesIdle() throws {
            let run = h.hvc(["run", "-d", "--name", "clock-idle", GuestClockTests.image, "sleep", "100000"])
            try #require(run.status == 0, "\(run.stderr)")
            defer { _ = h.hvc(["rm", "-f", "clock-idle"]) }
            expectWallClockAgrees(["exec", "clock-idle", "clockstep", "realtime"], "at start")
            sleep(300)
            expectWallClockAgrees(["exec", "clock-idle", "clockstep", "realtime"], "after 5 minutes idle")
        }
    }
}
