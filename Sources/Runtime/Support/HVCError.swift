/// The one error users see: a message and the exit code it maps to (Docker's conventions).
public struct HVCError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// hvc itself failed: the VM would not start, a file could not be written.
        case runtime
        /// The request itself is wrong: a malformed value, a bad name, a missing command.
        case invalid
        /// The command exists but cannot be executed.
        case cannotExecute
        /// The command was not found.
        case commandNotFound
        /// No such object (container, image).
        case notFound
        /// A clash with existing state (a name in use, an image in use).
        case conflict
    }

    public var kind: Kind
    public var message: String

    public init(_ message: String) {
        self.init(.runtime, message)
    }

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The process exit code for this error.
    public var exitCode: Int32 {
        switch kind {
        case .runtime, .invalid, .notFound, .conflict: 125
        case .cannotExecute: 126
        case .commandNotFound: 127
        }
    }

    public var description: String { message }
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
