/// A local image name: `NAME[:TAG]`, with `latest` as the default tag.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var tag: String

    /// Parses and validates `text`; names are lowercase `[a-z0-9._/-]`, tags `[A-Za-z0-9._-]`.
    public init(parsing text: String) throws(HVCError) {
        let invalid = HVCError("invalid image reference \"\(text)\": use NAME[:TAG], e.g. busybox:latest")
        var name = Substring(text)
        var tag = "latest"
        if let colon = text.lastIndex(of: ":"), !text[colon...].contains("/") {
            name = text[..<colon]
            tag = String(text[text.index(after: colon)...])
        }
        let nameCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789._/-")
        let tagCharacters = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
        guard !name.isEmpty, name.count <= 255, name.allSatisfy(nameCharacters.contains),
              let first = name.first, first.isLetter || first.isNumber,
              !name.contains("//"), !name.hasSuffix("/"),
              !tag.isEmpty, tag.count <= 128, tag.allSatisfy(tagCharacters.contains), tag.first != "." && tag.first != "-"
        else { throw invalid }
        self.name = String(name)
        self.tag = tag
    }

    public var description: String { "\(name):\(tag)" }
}
