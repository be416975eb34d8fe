import Foundation
import Testing

extension EndToEnd.OCITests {
    /// The parent pid of `pid` (0 once it is gone).
    static func parent(of pid: Int32) -> Int32 {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        guard let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? Int32(fields[1]) ?? 0 : 0
    }

    /// With hvcd serving the store, a template hvc-oci clones under podman is kept by hvcd, not
    /// by conmon (which waits for every process it adopts, so that a keeper under it must
    /// leave): one keeper serves run after run, outlives a caller killed outright, and its
    /// memory stays sealed.
    @Test func hvcdKeepsTemplatesForPodmanRuns() throws {
        for keeper in h.templateKeepers() { kill(keeper, SIGTERM) }
        #expect(Harness.eventually(10) { h.templateKeepers().isEmpty })
        try h.withDaemon(tenants: "{}") { _ in
            let hvcd = try #require(h.processes(named: "hvcd", matching: h.runRoot).first)
            let first = run(["run", "--rm", "--network", "none", Self.image, "sh", "-c", "exit 0"])
            #expect(first.status == 0, "\(first.stderr)")
            let keepers = h.templateKeepers()
            #expect(keepers.count == 1, "\(keepers)")
            let keeper = try #require(keepers.first)
            #expect(Self.parent(of: keeper) == hvcd, "hvcd's child, outside conmon's tree")
            let conmons = h.processes(named: "conmon", matching: h.runRoot).filter { Self.parent(of: $0) != 0 }
            #expect(conmons.isEmpty, "no conmon left waiting for a keeper: \(conmons)")

            // A caller killed outright while its container runs: the keeper stays and serves the next run.
            let name = "kept-\(UUID().uuidString.prefix(8).lowercased())"
            let script = """
                "$@" run --rm --network none --name \(name) \(Self.image) sleep 30 & caller=$!
                i=0; until "$@" ps --format '{{.Names}}' | grep -qx \(name); do i=$((i+1)); [ $i -gt 300 ] && exit 9; sleep 0.1; done
                kill -KILL $caller; wait $caller; exit 0
                """
            #expect(h.execute(["/bin/sh", "-c", script, "sh"] + podman, timeout: 120).status == 0, "the container never ran")
            #expect(run(["rm", "-f", "-t", "0", name]).status == 0)
            #expect(run(["run", "--rm", "--network", "none", Self.image, "sh", "-c", "exit 0"]).status == 0)
            #expect(h.templateKeepers() == [keeper], "the same keeper served the later run")
            let record = (try? String(contentsOfFile: "/proc/\(keeper)/cmdline", encoding: .utf8)) ?? ""
            #expect(record.contains("keep-template"))
            // F_GET_SEALS (1034) of its memfd: write, grow, shrink and seal itself all sealed.
            let fd = try #require(((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(keeper)/fd")) ?? []).first { entry in
                ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(keeper)/fd/\(entry)")) ?? "").hasPrefix("/memfd:hvc-template-")
            })
            let seals = h.execute(["/usr/bin/python3", "-c", "import fcntl, os; print(fcntl.fcntl(os.open('/proc/\(keeper)/fd/\(fd)', os.O_RDONLY), 1034))"])
            #expect(Int(seals.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).map { $0 & 0xf == 0xf } == true, "seals: \(seals.stdout) \(seals.stderr)")
        }
    }
}
