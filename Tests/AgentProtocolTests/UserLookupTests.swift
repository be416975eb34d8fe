import AgentProtocol
import Testing

struct UserLookupTests {
    let lookup = UserLookup(
        passwd: """
        root:x:0:0:root:/root:/bin/sh
        broken line
        www:x:33:33:www:/var/www:/bin/false
        nobody:x:65534:65534:nobody:/nonexistent:/bin/false
        bad:x:notanumber:1::/:/bin/sh
        """,
        group: """
        root:x:0:
        www:x:33:
        staff:x:50:www,other
        nogroup:x:65534:
        """)

    @Test(arguments: [
        ("", Identity(uid: 0, gid: 0, groups: [0], home: "/root")),
        ("root", Identity(uid: 0, gid: 0, groups: [0], home: "/root")),
        ("www", Identity(uid: 33, gid: 33, groups: [33, 50], home: "/var/www")),
        ("33", Identity(uid: 33, gid: 33, groups: [33, 50], home: "/var/www")),
        ("1234", Identity(uid: 1234, gid: 1234, groups: [], home: "/")),
        ("www:staff", Identity(uid: 33, gid: 50, groups: [50], home: "/var/www")),
        ("1000:1000", Identity(uid: 1000, gid: 1000, groups: [1000], home: "/")),
    ])
    func resolves(_ spec: String, _ expected: Identity) throws {
        #expect(try lookup.resolve(spec) == expected)
    }

    @Test(arguments: [
        ("ghost", UserLookup.Failure.unknownUser("ghost")),
        ("www:ghosts", .unknownGroup("ghosts")),
        ("a:b:c", .invalid("a:b:c")),
        (":0", .invalid(":0")),
        ("bad", .unknownUser("bad")),
    ])
    func rejects(_ spec: String, _ failure: UserLookup.Failure) {
        #expect(throws: failure) { try lookup.resolve(spec) }
    }
}
