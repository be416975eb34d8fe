import Foundation
import Runtime
import Testing

/// Warm pools: clones started ahead that `run` and `start` hand containers to.
extension EndToEnd {
    @Suite struct PoolTests {
        let h: Harness

        init() throws { h = try Harness.make() }

        func pools() throws -> [[String: Any]] {
            let r = h.hvc(["pool", "ls", "--format", "json"])
            #expect(r.status == 0, "\(r.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        }

        func waiting() throws -> Int {
            try pools().first { $0["image"] as? String == "busybox" }?["waiting"] as? Int ?? 0
        }

        func supervisorPID(_ container: String) throws -> Int32? {
            let r = h.hvc(["inspect", container])
            let array = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
            return ((array.first?["state"] as? [String: Any])?["supervisorPID"] as? Int).map(Int32.init)
        }

        func members() -> [Int32] { h.shims(.poolMember) }

        @Test func containersTakePooledVMsAndThePoolRefills() throws {
            let set = h.hvc(["pool", "set", "busybox", "2"])
            #expect(set.status == 0, "\(set.stderr)")
            defer {
                _ = h.hvc(["pool", "set", "busybox", "0"])
                #expect(Harness.eventually(15) { members().isEmpty })
            }
            #expect(try waiting() == 2)
            let entry = try #require(try pools().first)
            // Two idle clones of a 256 MiB guest, QEMU and supervisor included, cost far less than 2 x 256 MiB.
            let pss = entry["pssBytes"] as? Int ?? 0
            #expect(pss > 0 && pss < 2 * 256 << 20, "pool PSS \(pss)")

            // Detached: the supervisor is a VM that waited in the pool.
            let before = h.poolMembers()
            let run = h.hvc(["run", "-d", "--name", "pooled", "busybox", "sleep", "60"])
            #expect(run.status == 0, "\(run.stderr)")
            let supervisor = try supervisorPID("pooled")
            #expect(supervisor.map { before.contains($0) } == true, "supervisor \(String(describing: supervisor)) not in \(before)")
            let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let exec = h.hvc(["exec", "pooled", "sh", "-c", "hostname; echo ok"])
            #expect(exec.stdout == String(id.prefix(12)) + "\nok\n", "\(exec.stderr)")
            #expect(h.hvc(["rm", "-f", "pooled"]).status == 0)

            // Attached, with stdin, stdout, stderr and the exit code, through a pooled VM.
            #expect(Harness.eventually(30) { (try? waiting()) == 2 })
            let attached = h.hvc(["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo err >&2; exit 3"], stdin: "from stdin\n")
            #expect(attached.status == 3)
            #expect(attached.stdout == "from stdin\n")
            #expect(attached.stderr == "err\n")
            // Each claim is replaced.
            #expect(Harness.eventually(30) { (try? waiting()) == 2 })

            // A container of another shape boots its own VM; the pool is left alone.
            let other = h.hvc(["run", "-d", "--name", "unpooled", "--memory", "128m", "busybox", "sleep", "60"])
            #expect(other.status == 0, "\(other.stderr)")
            let otherSupervisor = try supervisorPID("unpooled")
            #expect(otherSupervisor.map { !h.poolMembers().contains($0) && !before.contains($0) } == true)
            #expect(try waiting() == 2)
            _ = h.hvc(["rm", "-f", "unpooled"])
        }

        @Test func poolSizesAreChecked() {
            let big = h.hvc(["pool", "set", "busybox", "33"])
            #expect(big.status != 0 && big.stderr.contains("between 0 and 32"))
            let unknown = h.hvc(["pool", "set", "no-such-image", "1"])
            #expect(unknown.status == 125 && unknown.stderr.contains("unknown image"))
        }
    }
}
