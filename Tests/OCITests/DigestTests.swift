import Foundation
import OCI
import Testing

struct DigestTests {
    @Test func parsesSHA256() throws {
        let text = "sha256:" + String(repeating: "ab", count: 32)
        #expect(try Digest(parsing: text).description == text)
    }

    @Test(arguments: ["", "sha256:", "sha256:abc", "md5:" + String(repeating: "a", count: 64),
                      "sha256:" + String(repeating: "A", count: 64), "sha256:" + String(repeating: "a", count: 65),
                      "sha256:../../" + String(repeating: "a", count: 58)])
    func rejects(_ text: String) {
        #expect(throws: OCIError.self) { try Digest(parsing: text) }
    }

    @Test func digestOfData() {
        #expect(Digest.of(data: Data("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func selectsLinuxAMD64FromAnIndex() throws {
        let json = """
        {"schemaVersion": 2, "manifests": [
          {"digest": "sha256:\(String(repeating: "1", count: 64))", "size": 1, "platform": {"architecture": "arm64", "os": "linux"}},
          {"digest": "sha256:\(String(repeating: "2", count: 64))", "size": 2, "platform": {"architecture": "amd64", "os": "linux"}}
        ]}
        """
        let index = try JSONDecoder().decode(ImageIndex.self, from: Data(json.utf8))
        #expect(try MediaTypes.selectPlatform(index).size == 2)
    }

    @Test func refusesAnIndexWithoutAMD64() throws {
        let json = """
        {"schemaVersion": 2, "manifests": [
          {"digest": "sha256:\(String(repeating: "1", count: 64))", "size": 1, "platform": {"architecture": "arm64", "os": "linux"}}
        ]}
        """
        let index = try JSONDecoder().decode(ImageIndex.self, from: Data(json.utf8))
        #expect(throws: OCIError.self) { try MediaTypes.selectPlatform(index) }
    }

    @Test func manifestWithABadDigestDoesNotDecode() {
        let json = #"{"schemaVersion": 2, "config": {"digest": "sha256:xyz", "size": 1}, "layers": []}"#
        #expect(throws: (any Error).self) { try JSONDecoder().decode(ImageManifest.self, from: Data(json.utf8)) }
    }
}
