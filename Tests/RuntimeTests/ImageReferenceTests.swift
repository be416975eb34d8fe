import Runtime
import Testing

struct ImageReferenceTests {
    @Test(arguments: [
        ("busybox", "busybox:latest"),
        ("busybox:1.36", "busybox:1.36"),
        ("library/alpine:3.19", "library/alpine:3.19"),
        ("my-app_x.y", "my-app_x.y:latest"),
    ])
    func parses(_ text: String, _ expected: String) throws {
        #expect(try ImageReference(parsing: text).description == expected)
    }

    @Test(arguments: ["", ":tag", "Busybox", "busy box", "a//b", "a/", "name:", "name:-x", "../etc", "x:y:z"])
    func rejects(_ text: String) {
        #expect(throws: HVCError.self) { try ImageReference(parsing: text) }
    }
}
