import Crypto
import Foundation

/// A content digest, `sha256:` and 64 lowercase hex characters (the only algorithm accepted).
public struct Digest: Hashable, Codable, Sendable, CustomStringConvertible {
    public let hex: String

    public init(parsing text: String) throws(OCIError) {
        guard text.hasPrefix("sha256:") else { throw .invalid("digest \"\(text.prefix(80))\" is not sha256:<hex>") }
        let hex = String(text.dropFirst(7))
        guard hex.count == 64, hex.allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) }) else {
            throw .invalid("digest \"\(text.prefix(80))\" is not sha256:<64 hex>")
        }
        self.hex = hex
    }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do {
            self = try Digest(parsing: text)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public var description: String { "sha256:" + hex }

    /// The digest of a file's bytes, and its size.
    public static func of(file path: String) throws(OCIError) -> (digest: Digest, size: Int64) {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw .missing(path) }
        defer { try? handle.close() }
        var hasher = SHA256()
        var size: Int64 = 0
        while let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
            size += Int64(chunk.count)
        }
        let hex = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        return (try Digest(parsing: "sha256:" + hex), size)
    }

    public static func of(data: Data) -> Digest {
        let hex = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        return (try? Digest(parsing: "sha256:" + hex)) ?? Digest(unchecked: hex)
    }

    private init(unchecked hex: String) { self.hex = hex }
}

public enum OCIError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    case missing(String)
    case digestMismatch(what: String, expected: String, actual: String)
    case unsupported(String)

    public var description: String {
        switch self {
        case .invalid(let m): m
        case .missing(let what): "\(what) is missing from the image"
        case .digestMismatch(let what, let expected, let actual): "\(what) does not match its digest: expected \(expected), got \(actual)"
        case .unsupported(let m): m
        }
    }
}
