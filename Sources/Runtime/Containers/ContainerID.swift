import Foundation

/// Container ids: 64 lowercase hex characters, like Docker's.
public enum ContainerID {
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// Docker's default hostname: the first 12 characters of the id.
    public static func shortForm(_ id: String) -> String { String(id.prefix(12)) }

    static let adjectives = ["brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
                             "nimble", "proud", "quiet", "rapid", "sharp", "tidy", "vivid", "witty", "young", "zesty"]
    static let nouns = ["otter", "falcon", "badger", "heron", "lynx", "marten", "newt", "owl", "panda", "quokka",
                        "raven", "seal", "tapir", "urchin", "vole", "walrus", "yak", "zebra", "bison", "crane"]

    /// A Docker-style `adjective_noun_NNNN` name.
    public static func randomName() -> String {
        "\(adjectives.randomElement() ?? "quiet")_\(nouns.randomElement() ?? "otter")_\(Int.random(in: 1000...9999))"
    }

    /// Names as Docker takes them: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 128 characters.
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.count <= 128,
              first.properties.isASCIIHexDigit || ("a"..."z").contains(first) || ("A"..."Z").contains(first) || ("0"..."9").contains(first)
        else { return false }
        return name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0)
        }
    }
}

/// Cryptographically random bytes from the kernel.
func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}
