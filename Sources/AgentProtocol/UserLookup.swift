/// A resolved user: what `setuid`, `setgid` and `setgroups` take, plus `HOME`.
public struct Identity: Equatable, Sendable {
    public var uid: UInt32
    public var gid: UInt32
    public var groups: [UInt32]
    public var home: String

    public init(uid: UInt32, gid: UInt32, groups: [UInt32] = [], home: String = "/") {
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.home = home
    }
}

/// Resolves Docker-style `--user` values (`name`, `uid`, `name:group`, `uid:gid`) against an
/// image's `/etc/passwd` and `/etc/group`. Both files come from the image: malformed lines are
/// skipped, never trusted for more than their own fields.
public struct UserLookup: Sendable {
    struct Entry { var name: String; var id: UInt32; var gid: UInt32; var home: String; var members: [String] }

    private let users: [Entry]
    private let groups: [Entry]

    public init(passwd: String, group: String) {
        users = UserLookup.parse(passwd, minimumFields: 7) { f in
            guard let uid = UInt32(f[2]), let gid = UInt32(f[3]) else { return nil }
            return Entry(name: String(f[0]), id: uid, gid: gid, home: String(f[5]), members: [])
        }
        groups = UserLookup.parse(group, minimumFields: 4) { f in
            guard let gid = UInt32(f[2]) else { return nil }
            let members = f[3].split(separator: ",").map(String.init)
            return Entry(name: String(f[0]), id: gid, gid: gid, home: "", members: members)
        }
    }

    private static func parse(_ text: String, minimumFields: Int, _ make: ([Substring]) -> Entry?) -> [Entry] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            return fields.count >= minimumFields ? make(fields) : nil
        }
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unknownUser(String)
        case unknownGroup(String)
        case invalid(String)

        public var description: String {
            switch self {
            case .unknownUser(let u): "no user \"\(u)\" in the image's /etc/passwd"
            case .unknownGroup(let g): "no group \"\(g)\" in the image's /etc/group"
            case .invalid(let s): "invalid user \"\(s)\": use NAME, UID, NAME:GROUP or UID:GID"
            }
        }
    }

    /// Resolves `spec`; the empty string means root.
    public func resolve(_ spec: String) throws(Failure) -> Identity {
        if spec.isEmpty { return resolveUser("0") ?? Identity(uid: 0, gid: 0, home: "/root") }
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2, !parts[0].isEmpty, parts.allSatisfy({ !$0.isEmpty && $0.count <= 256 }) else {
            throw .invalid(spec)
        }
        var identity: Identity
        if let found = resolveUser(parts[0]) {
            identity = found
        } else if let uid = UInt32(parts[0]) {
            identity = Identity(uid: uid, gid: uid == 0 ? 0 : uid, home: "/")
        } else {
            throw .unknownUser(parts[0])
        }
        if parts.count == 2 {
            if let gid = UInt32(parts[1]) {
                identity.gid = gid
            } else if let group = groups.first(where: { $0.name == parts[1] }) {
                identity.gid = group.id
            } else {
                throw .unknownGroup(parts[1])
            }
            identity.groups = [identity.gid]
        }
        return identity
    }

    private func resolveUser(_ nameOrID: String) -> Identity? {
        let entry = users.first { $0.name == nameOrID } ?? UInt32(nameOrID).flatMap { id in users.first { $0.id == id } }
        guard let entry else { return nil }
        let supplementary = groups.filter { $0.members.contains(entry.name) }.map(\.id)
        var all = [entry.gid]
        for gid in supplementary where !all.contains(gid) { all.append(gid) }
        return Identity(uid: entry.id, gid: entry.gid, groups: all, home: entry.home.isEmpty ? "/" : entry.home)
    }
}
