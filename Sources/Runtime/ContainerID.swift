import Foundation

/// Container ids: 64 lowercase hex characters, like Docker's.
public enum ContainerID {
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// Docker's default hostname: the first 12 characters of the id.
    public static func shortForm(_ id: String) -> String { String(id.prefix(12)) }
}

/// Cryptographically random bytes from the kernel.
func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}
