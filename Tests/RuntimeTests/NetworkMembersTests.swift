import Foundation
@testable import Runtime
import Testing

/// The sweep of network member files: a member whose VM directory is gone leaves, and so does a
/// member file a killed writer left half-written.
struct NetworkMembersTests {
    @Test func membersOfGoneVMsAndHalfWrittenFilesAreSwept() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("hvc-members-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let paths = RuntimePaths(root: base + "/root", runRoot: base + "/run", assets: base + "/assets")
        let network = paths.runRoot + "/networks/" + String(repeating: "a", count: 64)
        try FileManager.default.createDirectory(atPath: network, withIntermediateDirectories: true)
        let live = String(repeating: "1", count: 64), gone = String(repeating: "2", count: 64), torn = String(repeating: "3", count: 64)
        try FileManager.default.createDirectory(atPath: VMDirectory.path(in: paths.vms, id: live), withIntermediateDirectories: true)
        for file in [live, live + ".tmp-41", gone, torn + ".tmp-42", "unrelated"] {
            try Data("x".utf8).write(to: URL(fileURLWithPath: network + "/" + file))
        }
        NetworkMembers.sweep(paths)
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: network))
        #expect(left == [live, live + ".tmp-41", "unrelated"])
    }
}
