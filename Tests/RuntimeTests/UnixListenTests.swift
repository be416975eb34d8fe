import CLinux
import Foundation
import Glibc
import Synchronization
import Testing

/// `hvc_unix_listen`: its path, once there, is a listening socket (a client that waits for the
/// path, as `hvc start` and hvcd's attach do, is never refused), and an existing path is not
/// taken over.
struct UnixListenTests {
    final class Watch: Sendable {
        /// Odd while the main thread closes and unlinks a listener; even otherwise.
        let phase = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let connected = Atomic<Int>(0)
        let refused = Atomic<Int>(0)
    }

    @Test func aClientThatFindsThePathIsNeverRefused() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/hvc-listen-race-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/control.sock"
        let watch = Watch()
        let watcher = Thread {
            while !watch.stop.load(ordering: .acquiring) {
                let before = watch.phase.load(ordering: .acquiring)
                let client = hvc_unix_connect(path)
                let error = errno
                let after = watch.phase.load(ordering: .acquiring)
                if client >= 0 {
                    close(client)
                    watch.connected.add(1, ordering: .relaxed)
                } else if error == ECONNREFUSED && before == after && before % 2 == 0 {
                    watch.refused.add(1, ordering: .relaxed)
                }
            }
        }
        watcher.start()
        for _ in 0..<2000 {
            let listener = hvc_unix_listen(path, 4)
            try #require(listener >= 0, "listen: \(errno)")
            watch.phase.add(1, ordering: .sequentiallyConsistent)
            close(listener)
            unlink(path)
            watch.phase.add(1, ordering: .sequentiallyConsistent)
        }
        watch.stop.store(true, ordering: .releasing)
        while !watcher.isFinished { usleep(1000) }
        #expect(watch.connected.load(ordering: .relaxed) > 0, "the watcher never met a listening socket: it watched nothing")
        #expect(watch.refused.load(ordering: .relaxed) == 0, "a client found the path before it listened")
    }

    @Test func anExistingPathIsRefusedAndNoStagedNameIsLeft() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/hvc-listen-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/control.sock"
        let listener = hvc_unix_listen(path, 4)
        try #require(listener >= 0, "listen: \(errno)")
        defer { close(listener) }
        var status = stat()
        #expect(stat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFSOCK && status.st_mode & 0o777 == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["control.sock"], "a staged name is left")

        #expect(hvc_unix_listen(path, 4) == -1 && errno == EADDRINUSE)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["control.sock"])
        let stillServed = hvc_unix_connect(path)
        #expect(stillServed >= 0, "the first listener lost its path")
        if stillServed >= 0 { close(stillServed) }
    }
}
