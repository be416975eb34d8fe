import Testing
import VMM

struct QMPClientTests {
    @Test func parsesReturnsAndEvents() throws {
        let reply = try QMPClient.parse(line: Array(#"{"return": {"status": "running", "running": true}}"#.utf8))
        #expect((reply["return"] as? [String: Any])?["status"] as? String == "running")
        let event = try QMPClient.parse(line: Array(#"{"event": "STOP", "timestamp": {"seconds": 1}}"#.utf8))
        #expect(event["event"] as? String == "STOP")
    }

    @Test(arguments: ["", "not json", "[1, 2]", "{\"unterminated\": "])
    func rejectsWhatIsNotAnObject(_ line: String) {
        #expect(throws: VMError.self) { try QMPClient.parse(line: Array(line.utf8)) }
    }
}
