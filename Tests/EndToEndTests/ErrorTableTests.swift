import Foundation
import Runtime
import Testing

extension EndToEnd {
    /// Each kind of error, run locally and through hvcd: the same exit code (Docker's) and the
    /// same one-line message both ways.
    @Suite struct ErrorTableTests {
        let h: Harness

        init() throws { h = try Harness.make() }

        struct Case: Sendable, CustomStringConvertible {
            var arguments: [String]
            var exitCode: Int32
            /// A part of the one-line message.
            var names: String
            var description: String { arguments.joined(separator: " ") }
        }

        static let cases: [Case] = [
            Case(arguments: ["run", "--rm", "no-such-image:1", "true"], exitCode: 125, names: "unknown image"),
            Case(arguments: ["run", "-d", "busybox", "/no/such/cmd"], exitCode: 127, names: "/no/such/cmd"),
            Case(arguments: ["run", "--rm", "busybox", "/no/such/cmd"], exitCode: 127, names: "/no/such/cmd"),
            Case(arguments: ["run", "-d", "busybox", "/etc/passwd"], exitCode: 126, names: "/etc/passwd"),
            Case(arguments: ["run", "--cpus", "17", "busybox", "true"], exitCode: 125, names: "cpus 17"),
            Case(arguments: ["run", "--pids-limit", "3", "busybox", "true"], exitCode: 125, names: "pids limit 3"),
            Case(arguments: ["run", "--memory", "65g", "busybox", "true"], exitCode: 125, names: "memory 65g"),
            Case(arguments: ["run", "--no-such-flag", "busybox", "true"], exitCode: 125, names: "--no-such-flag"),
            Case(arguments: ["run", "--name", "bad/name", "busybox", "true"], exitCode: 125, names: "invalid container name"),
            Case(arguments: ["run", "--rm", "Bad Image", "true"], exitCode: 125, names: "invalid image reference"),
            Case(arguments: ["kill", "-s", "999", "err-busy"], exitCode: 125, names: "signal \"999\""),
            Case(arguments: ["stop", "--time=-1", "err-busy"], exitCode: 125, names: "stop timeout -1"),
            Case(arguments: ["inspect", "no-such-container"], exitCode: 125, names: "no such container"),
            Case(arguments: ["rm", "no-such-container"], exitCode: 125, names: "no such container"),
            Case(arguments: ["rm", "err-busy"], exitCode: 125, names: "is running"),
            Case(arguments: ["run", "-d", "--name", "err-busy", "busybox", "true"], exitCode: 125, names: "err-busy"),
            Case(arguments: ["exec", "err-stopped", "true"], exitCode: 125, names: "not running"),
            // Larger than this host: one CPU more than it has, 1 GiB more memory than its RAM.
            Case(arguments: ["run", "--rm", "--cpus", "\(min(16, HostCapacity.current.cpus + 1))", "busybox", "true"], exitCode: 125,
                 names: HostCapacity.current.cpus < 16 ? "more than this host's" : "out of range"),
            Case(arguments: ["run", "--rm", "--memory", "\(min(65536, HostCapacity.current.memoryMiB + 1024))m", "busybox", "true"],
                 exitCode: 125, names: HostCapacity.current.memoryMiB < 64512 ? "more than this host's" : "out of range"),
        ]

        @Test func everyErrorExitsAndReadsTheSameLocallyAndThroughHvcd() throws {
            let directory = h.root + "/../errors-\(UUID().uuidString.prefix(8))"
            let (socket, daemon) = try h.startDaemon(directory, tenants: #"{"defaultMaxContainers": 0}"#)
            defer { daemon.terminate(); daemon.waitUntilExit() }
            var remote = h
            remote.extraEnvironment["HVC_HOST"] = "unix://" + socket
            let before = Set(h.hvc(["ps", "-a", "-q"]).stdout.split(separator: "\n"))
            let busy = h.hvc(["run", "-d", "--name", "err-busy", "busybox", "sleep", "1000"])
            let stopped = h.hvc(["create", "--name", "err-stopped", "busybox", "true"])
            try #require(busy.status == 0 && stopped.status == 0, "\(busy.stderr)\(stopped.stderr)")
            defer {
                let all = h.hvc(["ps", "-a", "-q"]).stdout.split(separator: "\n").filter { !before.contains($0) }.map(String.init)
                _ = h.hvc(["rm", "-f"] + all)
            }
            for item in ErrorTableTests.cases {
                let local = h.hvc(item.arguments)
                let daemonRun = remote.hvc(item.arguments)
                let localLine = local.stderr.split(separator: "\n").first.map(String.init) ?? ""
                let daemonLine = daemonRun.stderr.split(separator: "\n").first.map(String.init) ?? ""
                #expect(local.status == item.exitCode, "\(item) locally: \(local.stderr)")
                #expect(daemonRun.status == item.exitCode, "\(item) through hvcd: \(daemonRun.stderr)")
                #expect(localLine == daemonLine, "\(item)")
                #expect(localLine.hasPrefix("hvc: ") && localLine.contains(item.names), "\(item): \(localLine)")
            }
            // Over quota exists only through hvcd: a tenant allowed no containers.
            let quota = h.execute(["/usr/bin/setpriv", "--reuid", "2301", "--regid", "2301", "--clear-groups", "/usr/bin/env",
                                   "HVC_HOST=unix://" + socket, Harness.binary, "create", "busybox", "true"])
            #expect(quota.status == 125 && quota.stderr.hasPrefix("hvc: tenant uid-2301 may have 0 containers"), "\(quota.stderr)")
        }

        /// Global options before the verb, as `docker -H ... ps` takes them.
        @Test func globalOptionsGoBeforeOrAfterTheVerb() throws {
            let directory = h.root + "/../globals-\(UUID().uuidString.prefix(8))"
            let (socket, daemon) = try h.startDaemon(directory, tenants: "{}")
            defer { daemon.terminate(); daemon.waitUntilExit() }
            for arguments in [["--host", "unix://" + socket, "ps", "-a"], ["-H", "unix://" + socket, "ps", "-a"],
                              ["ps", "-a", "--host", "unix://" + socket], ["--root", h.root, "--run-root", h.runRoot, "ps", "-a"],
                              ["--root=" + h.root, "image", "ls"], ["--host", "unix://" + socket, "image", "ls"]] {
                let r = h.hvc(arguments)
                #expect(r.status == 0, "\(arguments): \(r.stderr)")
            }
            let unreachable = h.hvc(["--host", "unix://" + directory + "/nothing.sock", "ps"])
            #expect(unreachable.status == 125 && unreachable.stderr.contains("cannot reach hvcd"), "\(unreachable.stderr)")
        }

        /// The name an archive gives an image runs as given, and a short name finds it.
        @Test func loadedNamesRunAsGiven() throws {
            let scratch = h.root + "/../names-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            let made = h.execute(["/usr/bin/python3", ImageTests.fixtureScript, "layers", scratch + "/layers.tar", "/tmp/hvc-outside"])
            try #require(made.status == 0, "\(made.stderr)")
            let copy = h.execute(["/usr/bin/skopeo", "copy", "oci-archive:\(scratch)/layers.tar",
                                  "docker-archive:\(scratch)/renamed.tar:localhost/barsimg:t"])
            try #require(copy.status == 0, "\(copy.stderr)")
            let load = h.hvc(["load", "-i", scratch + "/renamed.tar"])
            #expect(load.stdout == "Loaded image: localhost/barsimg:t\n", "\(load.stderr)")
            #expect(h.hvc(["images"]).stdout.contains("localhost/barsimg"))
            for name in ["localhost/barsimg:t", "barsimg:t"] {
                let r = h.hvc(["run", "--rm", name, "cat", "/etc/keep"])
                #expect(r.status == 0 && r.stdout == "keep\n", "\(name): \(r.stderr)")
            }
            #expect(h.hvc(["rmi", "localhost/barsimg:t"]).status == 0)
        }
    }
}
