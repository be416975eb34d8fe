import Foundation
import Testing

extension EndToEnd {
    /// `hvc pull` from a registry this test starts on 127.0.0.1 (Debian's docker-registry),
    /// holding an image pushed there by skopeo.
    @Suite struct PullTests {
        let h: Harness

        init() throws { h = try Harness.make() }

        @Test func pullsFromALoopbackRegistryAndOnlyOnce() throws {
            let directory = h.root + "/../registry-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let (address, registry) = try h.startRegistry(directory)
            defer { registry.terminate(); registry.waitUntilExit() }
            // A salt makes this image's last layer and config new to the store; its lower layers
            // may already be there from other tests, and are then not downloaded again.
            let salt = try h.pushSaltedImage(to: address, as: "pulled:v1", staging: directory)

            let first = h.hvc(["pull", "\(address)/pulled:v1"])
            #expect(first.status == 0, "\(first.stderr)")
            // "Pulled NAME: N blobs, M bytes downloaded"
            let downloaded = first.stdout.components(separatedBy: ": ").dropFirst().first?.split(separator: " ").first.flatMap { Int($0) } ?? 0
            #expect((2...4).contains(downloaded), "\(first.stdout)")
            let run = h.hvc(["run", "--rm", "\(address)/pulled:v1", "cat", "/etc/added", "/etc/salt"])
            #expect(run.stdout == "added\n" + salt)
            let second = h.hvc(["pull", "\(address)/pulled:v1"])
            #expect(second.status == 0)
            #expect(second.stdout.contains("0 blobs, 0 bytes downloaded"))

            // Through hvcd, with progress streamed as JSON lines, then the result.
            _ = try h.pushSaltedImage(to: address, as: "pulled:v2", staging: directory)
            let (socket, daemon) = try h.startDaemon(directory + "/daemon", tenants: "{}")
            defer { daemon.terminate(); daemon.waitUntilExit() }
            let progress = h.execute(["/usr/bin/python3", Harness.repository + "/Tests/EndToEndTests/Fixtures/api_client.py", socket,
                                      Harness.repository + "/Specs/api.yaml", "pull-progress", "\(address)/pulled:v2"])
            #expect(progress.status == 0, "\(progress.stderr)")
            #expect(progress.stdout.hasPrefix("sha256:"))

            let missing = h.hvc(["pull", "\(address)/no-such-image:v1"])
            #expect(missing.status == 125)
            #expect(missing.stderr.split(separator: "\n").count == 1)
            #expect(missing.stderr.contains("404"))
        }
    }
}
