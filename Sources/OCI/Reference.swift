/// A registry image reference, Docker style: `[registry/]repository[:tag][@digest]`.
/// `busybox` means `docker.io/library/busybox:latest`.
public struct RegistryReference: Equatable, Sendable, CustomStringConvertible {
    public var registry: String
    public var repository: String
    public var tag: String?
    public var digest: Digest?

    public static let defaultRegistry = "docker.io"

    public init(parsing text: String) throws(OCIError) {
        let invalid = OCIError.invalid("invalid image reference \"\(text.prefix(200))\": use [REGISTRY/]NAME[:TAG][@sha256:DIGEST]")
        guard !text.isEmpty, text.count <= 512 else { throw invalid }
        var rest = Substring(text)
        if let at = rest.firstIndex(of: "@") {
            digest = try Digest(parsing: String(rest[rest.index(after: at)...]))
            rest = rest[..<at]
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let first = components[0]
        if components.count > 1 && (first.contains(".") || first.contains(":") || first == "localhost") {
            registry = first
            components.removeFirst()
        } else {
            registry = RegistryReference.defaultRegistry
        }
        if let last = components.last, let colon = last.lastIndex(of: ":") {
            tag = String(last[last.index(after: colon)...])
            components[components.count - 1] = String(last[..<colon])
        }
        if registry == RegistryReference.defaultRegistry && components.count == 1 { components.insert("library", at: 0) }
        repository = components.joined(separator: "/")
        let nameCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789._-/")
        let tagCharacters = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
        guard components.allSatisfy({ !$0.isEmpty }), repository.allSatisfy(nameCharacters.contains),
              tag.map({ !$0.isEmpty && $0.count <= 128 && $0.allSatisfy(tagCharacters.contains) }) ?? true
        else { throw invalid }
        if tag == nil && digest == nil { tag = "latest" }
    }

    /// What to ask the registry for: the digest if given, else the tag.
    public var manifestReference: String { digest?.description ?? tag ?? "latest" }

    /// The registry's API host: Docker Hub's is not its name.
    public var apiHost: String { registry == "docker.io" ? "registry-1.docker.io" : registry }

    /// Loopback registries speak plain HTTP, as Docker assumes.
    public var isLoopback: Bool {
        let host = registry.split(separator: ":").first.map(String.init) ?? registry
        return host == "localhost" || host == "127.0.0.1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// The local name: `busybox:1.36` for Docker Hub's library, else `registry/repository:tag`.
    public var localName: String {
        var name = registry == RegistryReference.defaultRegistry ? repository : registry + "/" + repository
        if name.hasPrefix("library/") { name.removeFirst("library/".count) }
        return name.lowercased() + ":" + (tag ?? "latest")
    }

    public var description: String {
        registry + "/" + repository + (tag.map { ":" + $0 } ?? "") + (digest.map { "@" + $0.description } ?? "")
    }
}
