import Foundation
import HVCSystem

/// Hands each VM its own unprivileged uid (and gid of the same number) from a range, claimed by
/// creating `<directory>/<uid>` exclusively; the file names the holder (`PID START OWNER`, see
/// `ProcessStamp`) so that claims of dead supervisors can be taken back.
public struct IdentityPool: Sendable {
    public let directory: String
    public let range: ClosedRange<UInt32>

    /// The default range: above what distributions give to users and subordinate ids of
    /// rootless containers (`/etc/subuid` commonly starts at 100000 with 65536 each).
    public static let defaultRange: ClosedRange<UInt32> = 2_000_000...2_065_535

    public init(directory: String, range: ClosedRange<UInt32> = IdentityPool.defaultRange) {
        self.directory = directory
        self.range = range
    }

    /// Parses `FIRST-LAST`, e.g. from `HVC_UID_RANGE`.
    public static func parseRange(_ text: String) throws(JailError) -> ClosedRange<UInt32> {
        let parts = text.split(separator: "-").map { UInt32($0) }
        guard parts.count == 2, let first = parts[0], let last = parts[1], first >= 1000, first <= last else {
            throw .identity("uid range \"\(text)\" must be FIRST-LAST with FIRST ≥ 1000")
        }
        return first...last
    }

    /// Claims a free uid for `owner` (the container id), starting from a slot derived from it.
    public func claim(owner: String) throws(JailError) -> UInt32 {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let size = UInt64(range.upperBound - range.lowerBound) + 1
        let start = UInt64(owner.utf8.reduce(UInt64(5381)) { ($0 &* 33) &+ UInt64($1) }) % size
        for step in 0..<min(size, 65536) {
            let uid = range.lowerBound + UInt32((start + step) % size)
            let path = "\(directory)/\(uid)"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd < 0 {
                if Errno.current == .exists, reclaimIfStale(path) { return try claim(owner: owner) }
                continue
            }
            let text = "\(ProcessStamp.current) \(owner)\n"
            _ = text.withCString { write(fd, $0, strlen($0)) }
            close(fd)
            return uid
        }
        throw .identity("no free uid in \(range.lowerBound)-\(range.upperBound)")
    }

    public func release(_ uid: UInt32) {
        unlink("\(directory)/\(uid)")
    }

    /// Takes back every claim whose holder is dead (a supervisor killed before it released its
    /// VM's uid; the VM died with it).
    public func reclaimStale() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where UInt32(name) != nil {
            _ = reclaimIfStale(directory + "/" + name)
        }
    }

    /// Seconds after which a claim that names no holder (its claimer killed between creating
    /// the file and writing it) is taken for abandoned.
    static let unnamedGrace: Double = 60

    /// Removes a claim whose holder is dead; true if it did.
    private func reclaimIfStale(_ path: String) -> Bool {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return false }
        if text.split(separator: " ").count == 3, let holder = ProcessStamp(parsing: text) {
            guard !holder.isAlive else { return false }
        } else {
            guard let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
                  Date().timeIntervalSince(modified) > IdentityPool.unnamedGrace else { return false }
        }
        return unlink(path) == 0
    }
}
