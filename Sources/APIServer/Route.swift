/// Every API request, parsed from method and path in one table.
public enum Route: Equatable, Sendable {
    case version
    case info
    case listContainers
    case createContainer
    case inspectContainer(String)
    case startContainer(String)
    case stopContainer(String)
    case restartContainer(String)
    case containerStats(String)
    case killContainer(String)
    case waitContainer(String)
    case deleteContainer(String)
    case containerLogs(String)
    case listImages
    case pullImage
    case loadImage
    case deleteImage(String)
    case events
    case listNetworks
    case createNetwork
    case pruneNetworks
    case inspectNetwork(String)
    case deleteNetwork(String)
    case listVolumes
    case createVolume
    case pruneVolumes
    case inspectVolume(String)
    case deleteVolume(String)

    /// The route for `method` and `path` (query string excluded), or nil.
    public init?(method: String, path: String) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        guard parts.first == "v1", parts.allSatisfy({ !$0.isEmpty && $0.count <= 256 }) else { return nil }
        let p = Array(parts.dropFirst())
        let id = p.count > 1 ? p[1] : ""
        switch (method, p.count, p.first ?? "", p.count > 2 ? p[2] : "") {
        case ("GET", 1, "version", _): self = .version
        case ("GET", 1, "info", _): self = .info
        case ("GET", 1, "containers", _): self = .listContainers
        case ("POST", 1, "containers", _): self = .createContainer
        case ("GET", 2, "containers", _): self = .inspectContainer(id)
        case ("DELETE", 2, "containers", _): self = .deleteContainer(id)
        case ("POST", 3, "containers", "start"): self = .startContainer(id)
        case ("POST", 3, "containers", "stop"): self = .stopContainer(id)
        case ("POST", 3, "containers", "restart"): self = .restartContainer(id)
        case ("GET", 3, "containers", "stats"): self = .containerStats(id)
        case ("POST", 3, "containers", "kill"): self = .killContainer(id)
        case ("POST", 3, "containers", "wait"): self = .waitContainer(id)
        case ("GET", 3, "containers", "logs"): self = .containerLogs(id)
        case ("GET", 1, "images", _): self = .listImages
        case ("POST", 2, "images", _) where id == "pull": self = .pullImage
        case ("POST", 2, "images", _) where id == "load": self = .loadImage
        case ("DELETE", 2, "images", _): self = .deleteImage(id)
        case ("GET", 1, "events", _): self = .events
        case ("GET", 1, "networks", _): self = .listNetworks
        case ("POST", 1, "networks", _): self = .createNetwork
        case ("POST", 2, "networks", _) where id == "prune": self = .pruneNetworks
        case ("GET", 2, "networks", _): self = .inspectNetwork(id)
        case ("DELETE", 2, "networks", _): self = .deleteNetwork(id)
        case ("GET", 1, "volumes", _): self = .listVolumes
        case ("POST", 1, "volumes", _): self = .createVolume
        case ("POST", 2, "volumes", _) where id == "prune": self = .pruneVolumes
        case ("GET", 2, "volumes", _): self = .inspectVolume(id)
        case ("DELETE", 2, "volumes", _): self = .deleteVolume(id)
        default: return nil
        }
    }

    /// Requests whose body is an archive rather than JSON, and may be large.
    public var takesLargeBody: Bool { self == .loadImage }
}
