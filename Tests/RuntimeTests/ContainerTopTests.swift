@testable import Runtime
import Testing

struct ContainerTopTests {
    @Test func psOutputBecomesTitlesAndRowsWithoutTheListingProcess() throws {
        let output = """
            7
            PID   USER     TIME  COMMAND
                1 root      0:00 sleep 300
                5 nobody    0:01 sh -c while true; do sleep 1; done
                7 root      0:00 ps -ef

            """
        let top = try ContainerTop.parse(output)
        #expect(top.titles == ["PID", "USER", "TIME", "COMMAND"])
        #expect(top.processes == [["1", "root", "0:00", "sleep 300"],
                                  ["5", "nobody", "0:01", "sh -c while true; do sleep 1; done"]])
    }

    @Test func shortRowsArePaddedAndAMissingHeaderIsAnError() throws {
        #expect(try ContainerTop.parse("3\nPID COMMAND\n  9\n").processes == [["9", ""]])
        #expect(throws: HVCError.self) { try ContainerTop.parse("") }
        #expect(throws: HVCError.self) { try ContainerTop.parse("not a pid\nPID COMMAND\n") }
        #expect(throws: HVCError.self) { try ContainerTop.parse("4\n   \n") }
    }

    @Test func psArgumentsAreWordsAndBounded() throws {
        #expect(try ContainerTop.split(" -o  pid,args ") == ["-o", "pid,args"])
        #expect(throws: HVCError.self) { try ContainerTop.split(String(repeating: "a", count: 300)) }
        #expect(throws: HVCError.self) { try ContainerTop.split("-e\0") }
    }
}
