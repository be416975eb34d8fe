/// An image name, Docker style: `[HOST[:PORT]/]PATH[:TAG][@DIGEST]`. The one parser of image
/// names: the local store's names, registry pulls and archive tags all go through it.
///
/// Path components are lowercase `[a-z0-9._-]` starting with a letter or digit; a host is
/// `[a-z0-9.-]` with an optional numeric port and is recognised, as Docker does, by a `.` or
/// `:` or by being `localhost`; tags are `[A-Za-z0-9._-]`, not starting with `.` or `-`.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    /// The registry host (and port), when the name carries one.
    public var host: String?
    /// The repository path, without the host.
    public var path: String
    public var tag: String?
    public var digest: Digest?

    public static let dockerHub = "docker.io"

    public init(parsing text: String) throws(OCIError) {
        let invalid = OCIError.invalid("invalid image reference \"\(text.prefix(200))\": use [REGISTRY/]NAME[:TAG][@sha256:DIGEST], e.g. busybox:latest")
        guard !text.isEmpty, text.count <= 512 else { throw invalid }
        var rest = Substring(text)
        if let at = rest.firstIndex(of: "@") {
            guard let digest = try? Digest(parsing: String(rest[rest.index(after: at)...])) else { throw invalid }
            self.digest = digest
            rest = rest[..<at]
        }
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            tag = String(rest[rest.index(after: colon)...])
            rest = rest[..<colon]
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false)
        if components.count > 1, components[0].contains(":") || components[0].contains(".") || components[0] == "localhost" {
            let host = components.removeFirst()
            guard ImageReference.isValidHost(host) else { throw invalid }
            self.host = String(host)
        }
        path = components.joined(separator: "/")
        let pathCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789._-")
        let tagCharacters = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
        guard !components.isEmpty, path.count <= 255,
              components.allSatisfy({ component in
                  guard let first = component.first, first.isLetter || first.isNumber else { return false }
                  return component.allSatisfy(pathCharacters.contains)
              }),
              tag.map({ !$0.isEmpty && $0.count <= 128 && $0.allSatisfy(tagCharacters.contains) && $0.first != "." && $0.first != "-" }) ?? true
        else { throw invalid }
    }

    static func isValidHost(_ host: Substring) -> Bool {
        let hostCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789.-")
        let parts = host.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let first = parts[0].first, first.isLetter || first.isNumber,
              !parts[0].contains(".."), parts[0].allSatisfy(hostCharacters.contains)
        else { return false }
        return parts.count == 1 || (!parts[1].isEmpty && parts[1].count <= 5 && parts[1].allSatisfy(\.isNumber))
    }

    /// The name the local store keys the image by: `[HOST/]PATH:TAG`, with Docker Hub's host and
    /// its `library/` left out (`docker.io/library/busybox` is `busybox:latest`); every other
    /// host, `localhost` included, stays part of the name, as podman keeps it.
    public var description: String {
        var name = path
        if let host, host != ImageReference.dockerHub { name = host + "/" + path }
        if host == nil || host == ImageReference.dockerHub, name.hasPrefix("library/") { name.removeFirst("library/".count) }
        return name + ":" + (tag ?? "latest")
    }

    /// Whether the name has no registry host: such a short name may also find an image stored
    /// under a host (`app` finds `localhost/app`).
    public var isShort: Bool { host == nil }
}

/// A reference as a registry is asked for it: `busybox` means `docker.io/library/busybox:latest`.
public struct RegistryReference: Equatable, Sendable, CustomStringConvertible {
    public var registry: String
    public var repository: String
    public var tag: String?
    public var digest: Digest?

    public static let defaultRegistry = ImageReference.dockerHub

    public init(parsing text: String) throws(OCIError) {
        let name = try ImageReference(parsing: text)
        registry = name.host ?? RegistryReference.defaultRegistry
        repository = registry == RegistryReference.defaultRegistry && !name.path.contains("/") ? "library/" + name.path : name.path
        digest = name.digest
        tag = name.tag ?? (name.digest == nil ? "latest" : nil)
        local = name
    }

    private var local: ImageReference

    /// What to ask the registry for: the digest if given, else the tag.
    public var manifestReference: String { digest?.description ?? tag ?? "latest" }

    /// The registry's API host: Docker Hub's is not its name.
    public var apiHost: String { registry == "docker.io" ? "registry-1.docker.io" : registry }

    /// Loopback registries speak plain HTTP, as Docker assumes.
    public var isLoopback: Bool {
        let host = registry.split(separator: ":").first.map(String.init) ?? registry
        return host == "localhost" || host == "127.0.0.1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// The name the pulled image gets in the local store.
    public var localName: String { local.description }

    public var description: String {
        registry + "/" + repository + (tag.map { ":" + $0 } ?? "") + (digest.map { "@" + $0.description } ?? "")
    }
}
