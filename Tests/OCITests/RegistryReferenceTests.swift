import OCI
import Testing

struct RegistryReferenceTests {
    @Test(arguments: [
        ("busybox", "docker.io", "library/busybox", "latest", "busybox:latest"),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", "busybox:1.36"),
        ("user/app", "docker.io", "user/app", "latest", "user/app:latest"),
        ("127.0.0.1:5000/fixture:v1", "127.0.0.1:5000", "fixture", "v1", "127.0.0.1:5000/fixture:v1"),
        ("localhost/a/b", "localhost", "a/b", "latest", "localhost/a/b:latest"),
        ("quay.io/org/img:tag", "quay.io", "org/img", "tag", "quay.io/org/img:tag"),
    ])
    func parses(_ text: String, _ registry: String, _ repository: String, _ tag: String, _ local: String) throws {
        let reference = try RegistryReference(parsing: text)
        #expect(reference.registry == registry)
        #expect(reference.repository == repository)
        #expect(reference.tag == tag)
        #expect(reference.localName == local)
    }

    @Test func digestsAreKept() throws {
        let digest = "sha256:" + String(repeating: "a", count: 64)
        let reference = try RegistryReference(parsing: "busybox@" + digest)
        #expect(reference.manifestReference == digest)
        #expect(reference.tag == nil)
    }

    @Test(arguments: ["", "Busy", "a//b", "x:", "x@sha256:zz", "a/ b"])
    func rejects(_ text: String) {
        #expect(throws: OCIError.self) { try RegistryReference(parsing: text) }
    }

    @Test func loopbackUsesPlainHTTP() throws {
        #expect(try RegistryReference(parsing: "127.0.0.1:5000/x").isLoopback)
        #expect(try RegistryReference(parsing: "localhost:5000/x").isLoopback)
        #expect(try !RegistryReference(parsing: "quay.io/x").isLoopback)
        #expect(try RegistryReference(parsing: "busybox").apiHost == "registry-1.docker.io")
    }
}
