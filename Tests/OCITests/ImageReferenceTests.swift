import OCI
import Testing

struct ImageReferenceTests {
    @Test(arguments: [
        ("busybox", "busybox:latest"),
        ("busybox:1.36", "busybox:1.36"),
        ("library/alpine:3.19", "alpine:3.19"),
        ("docker.io/library/busybox:1", "busybox:1"),
        ("docker.io/user/app", "user/app:latest"),
        ("my-app_x.y", "my-app_x.y:latest"),
        ("127.0.0.1:5000/fixture:v1", "127.0.0.1:5000/fixture:v1"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost/barsimg:t", "localhost/barsimg:t"),
        ("registry.example.com/team/app:1", "registry.example.com/team/app:1"),
    ])
    func namesAsStored(_ text: String, _ expected: String) throws {
        #expect(try ImageReference(parsing: text).description == expected)
    }

    @Test func shortNamesHaveNoHost() throws {
        #expect(try ImageReference(parsing: "app:1").isShort)
        #expect(try !ImageReference(parsing: "localhost/app:1").isShort)
    }

    @Test(arguments: ["", ":tag", "Busybox", "busy box", "a//b", "a/", "name:", "name:-x", "../etc", "x:y:z", "host:port/x",
                      "a/../b", "127.0.0.1:/x", "x@sha256:zz", "-x", "a/.b"])
    func rejects(_ text: String) {
        #expect(throws: OCIError.self) { try ImageReference(parsing: text) }
    }
}
