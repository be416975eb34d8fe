/// A local image name: `[HOST[:PORT]/]NAME[:TAG]`, with `latest` as the default tag. Images
/// pulled from a registry other than Docker Hub keep its host in their name.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var tag: String

    /// Parses and validates `text`: path components are lowercase `[a-z0-9._-]` starting with a
    /// letter or digit, a host is `[a-z0-9.-]` with an optional numeric port, tags `[A-Za-z0-9._-]`.
    public init(parsing text: String) throws(HVCError) {
        let invalid = HVCError(.invalid, "invalid image reference \"\(text.prefix(200))\": use NAME[:TAG], e.g. busybox:latest")
        var name = Substring(text)
        var tag = "latest"
        if let colon = text.lastIndex(of: ":"), !text[colon...].contains("/") {
            name = text[..<colon]
            tag = String(text[text.index(after: colon)...])
        }
        var components = name.split(separator: "/", omittingEmptySubsequences: false)
        let hostCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789.-")
        if components.count > 1, components[0].contains(":") || components[0].contains(".") || components[0] == "localhost" {
            let host = components.removeFirst().split(separator: ":", omittingEmptySubsequences: false)
            guard host.count <= 2, let first = host[0].first, first.isLetter || first.isNumber,
                  !host[0].contains(".."), host[0].allSatisfy(hostCharacters.contains),
                  host.count == 1 || (!host[1].isEmpty && host[1].allSatisfy(\.isNumber))
            else { throw invalid }
        }
        let pathCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789._-")
        let tagCharacters = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
        guard !components.isEmpty, name.count <= 255,
              components.allSatisfy({ component in
                  guard let first = component.first, first.isLetter || first.isNumber else { return false }
                  return component.allSatisfy(pathCharacters.contains)
              }),
              !tag.isEmpty, tag.count <= 128, tag.allSatisfy(tagCharacters.contains), tag.first != "." && tag.first != "-"
        else { throw invalid }
        self.name = String(name)
        self.tag = tag
    }

    public var description: String { "\(name):\(tag)" }
}
