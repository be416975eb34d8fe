/// The one error users see: a kind and a one-line message. The kind decides, in one table, the
/// CLI's exit code, the API's HTTP status and its error `code` (Docker's conventions: 125 for
/// hvc's own failures, 126/127 for a command that cannot run).
public struct HVCError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        /// hvc itself failed: the VM would not start, a file could not be written.
        case runtime
        /// The request itself is wrong: a malformed value, a bad name, a missing command.
        case invalid
        /// The caller may not do this (another tenant's object, an admin-only action).
        case forbidden
        /// The caller's tenant is over one of its quotas.
        case quota
        /// No such object (container, image, route).
        case notFound
        /// A clash with existing state (a name in use, an image in use, a state that forbids it).
        case conflict
        /// A request body or preamble over its limit.
        case tooLarge
        /// The command exists but cannot be executed.
        case cannotExecute
        /// The command was not found.
        case commandNotFound
    }

    public var kind: Kind
    /// One line: what failed, and its cause's own words after a colon.
    public var message: String
    /// What hvc's failure came from (a system call's `Errno`, the VMM's `VMError`, a decoder's
    /// error), for callers that tell causes apart; its text is already in `message`.
    public var underlying: (any Error)?

    public init(_ message: String) {
        self.init(.runtime, message)
    }

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// `context: cause` + `detail` (e.g. what the VMM's logs say), keeping `cause`.
    public init(_ context: String, cause: any Error, detail: String = "") {
        self.init(.runtime, context, cause: cause, detail: detail)
    }

    public init(_ kind: Kind, _ context: String, cause: any Error, detail: String = "") {
        self.kind = kind
        self.message = (context.isEmpty ? "\(cause)" : "\(context): \(cause)") + detail
        self.underlying = cause
    }

    /// `message` as given (the cause described in words of the caller's choosing), keeping `cause`.
    public init(_ message: String, describing cause: any Error) {
        self.init(.runtime, message)
        underlying = cause
    }

    /// The cause's own words, keeping the cause.
    public init(cause: any Error, detail: String = "") {
        self.init(.runtime, "", cause: cause, detail: detail)
    }

    /// The process exit code for this error.
    public var exitCode: Int32 { kind.exitCode }

    public var description: String { message }
}

extension HVCError.Kind {
    /// The table: exit code, HTTP status, API code.
    private var mapping: (exitCode: Int32, httpStatus: Int, apiCode: String) {
        switch self {
        case .runtime: (125, 500, "runtime")
        case .invalid: (125, 400, "bad_request")
        case .forbidden: (125, 403, "forbidden")
        case .quota: (125, 403, "quota")
        case .notFound: (125, 404, "not_found")
        case .conflict: (125, 409, "conflict")
        case .tooLarge: (125, 413, "too_large")
        case .cannotExecute: (126, 400, "command_not_executable")
        case .commandNotFound: (127, 400, "command_not_found")
        }
    }

    /// What a CLI process exits with.
    public var exitCode: Int32 { mapping.exitCode }
    /// The API's HTTP status.
    public var httpStatus: Int { mapping.httpStatus }
    /// The API's machine-readable `code`.
    public var apiCode: String { mapping.apiCode }

    /// The kind an API error `code` stands for (what the daemon's client reads back).
    public init?(apiCode: String) {
        guard let kind = Self.allCases.first(where: { $0.apiCode == apiCode }) else { return nil }
        self = kind
    }

    /// The kind of failure a container's command reported by exiting with `code` before it ran.
    public init(startFailureCode code: Int32) {
        self = switch code {
        case Self.commandNotFound.exitCode: .commandNotFound
        case Self.cannotExecute.exitCode: .cannotExecute
        default: .runtime
        }
    }
}

extension String {
    /// Text from a guest, made safe to print on a terminal or store: control characters (escape
    /// sequences included) become `?`, and the length is bounded.
    public var sanitizedGuestText: String {
        let cleaned = unicodeScalars.prefix(1000).map { scalar -> String in
            scalar.properties.generalCategory == .control ? "?" : String(scalar)
        }
        return cleaned.joined()
    }
}
