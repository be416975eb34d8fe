/// A Docker Engine API request, from method and path: versioned (`/v1.41/containers/json`) or
/// not. Only the routes hvc carries out are here; the server answers others with an error that
/// names them.
public enum DockerRoute: Equatable, Sendable {
    case ping
    case version
    case info
    case listContainers
    case createContainer
    case inspectContainer(String)
    case startContainer(String)
    case stopContainer(String)
    case restartContainer(String)
    case killContainer(String)
    case waitContainer(String)
    case deleteContainer(String)
    case containerLogs(String)
    case attachContainer(String)
    case containerStats(String)
    case topContainer(String)
    case statArchive(String)
    case getArchive(String)
    case putArchive(String)
    case resizeContainer(String)
    case createExec(String)
    case startExec(String)
    case resizeExec(String)
    case inspectExec(String)
    case listNetworks
    case inspectNetwork(String)
    case createNetwork
    case deleteNetwork(String)
    case pruneNetworks
    /// `connect` and `disconnect`: refused, a VM's interfaces are fixed when it boots.
    case changeNetworkMembers(String)
    case listVolumes
    case inspectVolume(String)
    case createVolume
    case deleteVolume(String)
    case pruneVolumes
    case events
    case listImages
    case pullImage
    case inspectImage(String)
    case tagImage(String)
    case deleteImage(String)
    case loadImage
    case saveImage(String)

    /// The newest API version served, and the oldest a client may ask for.
    public static let apiVersion = "1.41"
    public static let minimumAPIVersion = "1.12"

    /// The route for `method` and `path` (query string excluded), or nil.
    public init?(method: String, path: String) {
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        if let first = parts.first, DockerRoute.isVersion(first) { parts.removeFirst() }
        guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty && $0.count <= 256 }) else { return nil }
        let id = parts.count > 1 ? parts[1] : ""
        switch (method, parts.count, parts[0], parts.count > 2 ? parts[2] : "") {
        case ("GET", 1, "_ping", _), ("HEAD", 1, "_ping", _): self = .ping
        case ("GET", 1, "version", _): self = .version
        case ("GET", 1, "info", _): self = .info
        case ("GET", 2, "containers", _) where id == "json": self = .listContainers
        case ("POST", 2, "containers", _) where id == "create": self = .createContainer
        case ("GET", 3, "containers", "json"): self = .inspectContainer(id)
        case ("POST", 3, "containers", "start"): self = .startContainer(id)
        case ("POST", 3, "containers", "stop"): self = .stopContainer(id)
        case ("POST", 3, "containers", "restart"): self = .restartContainer(id)
        case ("POST", 3, "containers", "kill"): self = .killContainer(id)
        case ("POST", 3, "containers", "wait"): self = .waitContainer(id)
        case ("GET", 3, "containers", "logs"): self = .containerLogs(id)
        case ("POST", 3, "containers", "attach"): self = .attachContainer(id)
        case ("GET", 3, "containers", "stats"): self = .containerStats(id)
        case ("GET", 3, "containers", "top"): self = .topContainer(id)
        case ("HEAD", 3, "containers", "archive"): self = .statArchive(id)
        case ("GET", 3, "containers", "archive"): self = .getArchive(id)
        case ("PUT", 3, "containers", "archive"): self = .putArchive(id)
        case ("POST", 3, "containers", "resize"): self = .resizeContainer(id)
        case ("POST", 3, "containers", "exec"): self = .createExec(id)
        case ("POST", 3, "exec", "start"): self = .startExec(id)
        case ("POST", 3, "exec", "resize"): self = .resizeExec(id)
        case ("GET", 3, "exec", "json"): self = .inspectExec(id)
        case ("DELETE", 2, "containers", _): self = .deleteContainer(id)
        case ("GET", 1, "events", _): self = .events
        case ("GET", 1, "networks", _): self = .listNetworks
        case ("POST", 2, "networks", _) where id == "create": self = .createNetwork
        case ("POST", 2, "networks", _) where id == "prune": self = .pruneNetworks
        case ("GET", 2, "networks", _): self = .inspectNetwork(id)
        case ("DELETE", 2, "networks", _): self = .deleteNetwork(id)
        case ("POST", 3, "networks", "connect"), ("POST", 3, "networks", "disconnect"): self = .changeNetworkMembers(id)
        case ("GET", 1, "volumes", _): self = .listVolumes
        case ("POST", 2, "volumes", _) where id == "create": self = .createVolume
        case ("POST", 2, "volumes", _) where id == "prune": self = .pruneVolumes
        case ("GET", 2, "volumes", _): self = .inspectVolume(id)
        case ("DELETE", 2, "volumes", _): self = .deleteVolume(id)
        case ("GET", 2, "images", _) where id == "json": self = .listImages
        case ("POST", 2, "images", _) where id == "create": self = .pullImage
        case ("POST", 2, "images", _) where id == "load": self = .loadImage
        // `docker save` names its image in the query (`names=`).
        case ("GET", 2, "images", _) where id == "get": self = .saveImage("")
        // An image's name may hold slashes (`localhost:5000/team/app:1`).
        case ("GET", _, "images", _) where parts.count >= 3 && parts.last == "json":
            self = .inspectImage(parts.dropFirst().dropLast().joined(separator: "/"))
        case ("POST", _, "images", _) where parts.count >= 3 && parts.last == "tag":
            self = .tagImage(parts.dropFirst().dropLast().joined(separator: "/"))
        case ("GET", _, "images", _) where parts.count >= 3 && parts.last == "get":
            self = .saveImage(parts.dropFirst().dropLast().joined(separator: "/"))
        case ("DELETE", _, "images", _) where parts.count >= 2:
            self = .deleteImage(parts.dropFirst().joined(separator: "/"))
        default: return nil
        }
    }

    /// `v1.41` and the like.
    static func isVersion(_ part: String) -> Bool {
        guard part.hasPrefix("v") else { return false }
        let numbers = part.dropFirst().split(separator: ".", omittingEmptySubsequences: false)
        return numbers.count == 2 && numbers.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) }
    }
}
