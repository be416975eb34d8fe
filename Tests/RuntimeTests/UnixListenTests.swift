import CLinux
import Foundation
import Glibc
import Testing

/// `hvc_unix_listen`: the path is a listening socket when it appears, never a file a client is
/// refused at, and an existing path is not taken over.
struct UnixListenTests {
    @Test func thePathAppearsListeningAndAnExistingOneIsRefused() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/hvc-listen-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/control.sock"
        let listener = hvc_unix_listen(path, 4)
        try #require(listener >= 0, "listen: \(errno)")
        defer { close(listener) }
        let client = hvc_unix_connect(path)
        #expect(client >= 0, "connect: \(errno)")
        if client >= 0 { close(client) }
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
