import OCI
import Runtime
import Testing

struct HVCErrorTests {
    /// Docker's exit codes and the API's statuses, from the one table.
    @Test(arguments: [
        (HVCError.Kind.runtime, Int32(125), 500, "runtime"),
        (.invalid, 125, 400, "bad_request"),
        (.forbidden, 125, 403, "forbidden"),
        (.quota, 125, 403, "quota"),
        (.notFound, 125, 404, "not_found"),
        (.conflict, 125, 409, "conflict"),
        (.tooLarge, 125, 413, "too_large"),
        (.cannotExecute, 126, 400, "command_not_executable"),
        (.commandNotFound, 127, 400, "command_not_found"),
    ])
    func table(_ kind: HVCError.Kind, _ exitCode: Int32, _ status: Int, _ code: String) {
        #expect(kind.exitCode == exitCode)
        #expect(kind.httpStatus == status)
        #expect(kind.apiCode == code)
        #expect(HVCError.Kind(apiCode: code) == kind)
    }

    @Test func unknownAPICodeHasNoKind() {
        #expect(HVCError.Kind(apiCode: "teapot") == nil)
    }

    @Test(arguments: [(Int32(127), HVCError.Kind.commandNotFound), (126, .cannotExecute), (125, .runtime), (1, .runtime), (137, .runtime)])
    func startFailures(_ code: Int32, _ kind: HVCError.Kind) {
        #expect(HVCError.Kind(startFailureCode: code) == kind)
    }

    @Test func invalidNamesAreTheCallersFault() {
        #expect { try ImageReference(name: "Bad Name") } throws: { ($0 as? HVCError)?.kind == .invalid }
    }
}
