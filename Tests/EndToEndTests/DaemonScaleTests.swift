import Foundation
import Testing

extension EndToEnd {
    /// hvcd under many clients that wait: waits, log follows and event streams hold no thread
    /// and no poll, so the daemon keeps answering everyone else.
    @Suite struct DaemonScaleTests {
        let h: Harness
        static let client = Harness.repository + "/Tests/EndToEndTests/Fixtures/waiters.py"

        init() throws { h = try Harness.make() }

        @Test func aThousandWaitersAndTwoHundredFollowersLeaveTheDaemonAnswering() throws {
            let directory = h.root + "/../scale-\(UUID().uuidString.prefix(8))"
            let (socket, daemon) = try h.startDaemon(directory, tenants: "{}")
            defer { daemon.terminate(); daemon.waitUntilExit() }
            var ids: [String] = []
            defer { if !ids.isEmpty { _ = h.hvc(["rm", "-f"] + ids) } }
            for n in 0..<4 {
                let run = h.hvc(["run", "-d", "--network", "none", "--name", "scale-\(n)-\(UUID().uuidString.prefix(6))", "busybox",
                                 "sh", "-c", "while true; do echo tick; sleep 1; done"])
                try #require(run.status == 0, "\(run.stderr)")
                ids.append(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            let r = h.execute(["/usr/bin/python3", DaemonScaleTests.client, socket, "\(daemon.processIdentifier)", "1000", "200"] + ids,
                              timeout: 300)
            try #require(r.status == 0, "\(r.stderr)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout)")
            print("daemon scale: \(r.stdout)")
            #expect(report["opened"] as? Int == 1200)
            #expect(report["waiters"] as? Int == 1000)
            #expect(report["logFollowers"] as? Int == 100)
            #expect(report["eventFollowers"] as? Int == 100)
            // Nothing answered before the containers stopped: the waits really waited.
            #expect(report["waitersAnsweredEarly"] as? Int == 0)
            let ps = try #require(report["psSeconds"] as? [Double])
            let create = try #require(report["createSeconds"] as? [Double])
            #expect(ps.count == 5 && ps.allSatisfy { $0 < 1 }, "ps took \(ps) s")
            #expect(create.count == 3 && create.allSatisfy { $0 < 1 }, "create took \(create) s")
            let before = try #require(report["threadsBefore"] as? Int)
            let during = try #require(report["threadsWithClients"] as? Int)
            // A thread per waiter would add a thousand; the watch adds one.
            #expect(before > 0 && during <= before + 4, "hvcd threads: \(before) before, \(during) with 1200 clients")
            #expect(report["stopStatus"] as? [Int] == [200, 200, 200, 200])
            #expect(report["waitsWrong"] as? Int == 0)
            #expect(report["logsWithoutOutput"] as? Int == 0)
            #expect(report["logsUnended"] as? Int == 0)
            #expect(report["eventStreamsMissingDie"] as? Int == 0)
        }
    }
}
