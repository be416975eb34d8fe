import Runtime
import Testing

struct ImageReferenceTests {
    @Test(arguments: [
        ("busybox", "busybox:latest"),
        ("busybox:1.36", "busybox:1.36"),
        ("library/alpine:3.19", "library/alpine:3.19"),
        ("my-app_x.y", "my-app_x.y:latest"),
        ("127.0.0.1:5000/fixture:v1", "127.0.0.1:5000/fixture:v1"),
        ("localhost/app", "localhost/app:latest"),
        ("registry.example.com/team/app:1", "registry.example.com/team/app:1"),
    ])
    func parses(_ text: String, _ expected: String) throws {
        #expect(try ImageReference(parsing: text).description == expected)
    }

    @Test(arguments: ["", ":tag", "Busybox", "busy box", "a//b", "a/", "name:", "name:-x", "../etc", "x:y:z", "host:port/x", "a/../b", "127.0.0.1:/x"])
    func rejects(_ text: String) {
        #expect(throws: HVCError.self) { try ImageReference(parsing: text) }
    }
}
