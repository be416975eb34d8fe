import Foundation
import Runtime

/// Docker's networks and volumes, over the caller's own (names are per tenant; another
/// tenant's are "not found").
extension DockerHandler {
    func resource(_ route: DockerRoute, query: [String: String], body: Data, caller: Caller) throws -> Response {
        let networks = handler.networks(caller), volumes = handler.volumes(caller)
        switch route {
        case .listNetworks:
            let filters = try DockerHandler.resourceFilters(query["filters"], keys: ["name", "id", "label", "driver", "type"])
            return try DockerHandler.json(networks.list().filter { network in
                DockerHandler.matches(filters, name: network.name, id: network.id, labels: network.labels) { key, value in
                    key == "driver" ? value == "bridge" : value == (network.name == Network.defaultName ? "builtin" : "custom")
                }
            }.map { DockerViews.network($0, members: []) })
        case .inspectNetwork(let name):
            let network = try network(name, networks)
            return try DockerHandler.json(DockerViews.network(network, members: try networks.inspect(network.name).containers))
        case .createNetwork:
            let request = try DockerHandler.networkRequest(body)
            let network = try networks.create(request, mayAccessHost: caller.hostAccess, anySubnet: caller.isAdmin, maxNetworks: caller.maxNetworks)
            return try DockerHandler.json(["Id": network.id, "Warning": ""], status: 201)
        case .deleteNetwork(let name):
            try networks.remove(try network(name, networks).name)
            return DockerHandler.noContent
        case .pruneNetworks:
            return try DockerHandler.json(["NetworksDeleted": networks.prune()])
        case .changeNetworkMembers(let name):
            let network = try network(name, networks)
            throw HVCError(.invalid, "network connect and disconnect are not supported: a container's VM gets its networks (\(network.name) among them, with --network) when it is created")
        case .listVolumes:
            let filters = try DockerHandler.resourceFilters(query["filters"], keys: ["name", "label", "dangling", "driver"])
            return try DockerHandler.json(["Volumes": volumes.list().filter { volume in
                DockerHandler.matches(filters, name: volume.name, id: volume.name, labels: volume.labels) { key, value in
                    key == "driver" ? value == (volume.driver ?? .local).rawValue : (["true", "1"].contains(value) == (try? volumes.inspect(volume.name).containers.isEmpty))
                }
            }.map(DockerViews.volume), "Warnings": [String]()] as [String: Any])
        case .inspectVolume(let name):
            return try DockerHandler.json(DockerViews.volume(try volumes.inspect(name).volume))
        case .createVolume:
            let object = try DockerHandler.object(body, "a volume's config")
            var request = CreateVolumeRequest(name: DockerCreate.nonEmpty(object["Name"]) ?? DockerHandler.randomName())
            request.labels = try DockerHandler.labels(object["Labels"])
            if let driver = DockerCreate.nonEmpty(object["Driver"]) {
                guard let known = VolumeDriver(rawValue: driver) else {
                    throw HVCError(.invalid, "Driver \(driver.prefix(32)) is not supported by hvc: use local or block")
                }
                request.driver = known
            }
            if let options = object["DriverOpts"] as? [String: Any], !options.isEmpty {
                guard let strings = options as? [String: String] else { throw HVCError(.invalid, "DriverOpts must map strings to strings") }
                request.options = strings
            }
            // Docker answers an existing name with that volume.
            if let existing = try? volumes.inspect(request.name) { return try DockerHandler.json(DockerViews.volume(existing.volume), status: 201) }
            return try DockerHandler.json(DockerViews.volume(try volumes.create(request)), status: 201)
        case .deleteVolume(let name):
            try volumes.remove(name)
            return DockerHandler.noContent
        case .pruneVolumes:
            return try DockerHandler.json(["VolumesDeleted": volumes.prune(), "SpaceReclaimed": 0] as [String: Any])
        default:
            throw HVCError(.notFound, "no such route")
        }
    }

    /// A network of the caller's by name, id or id prefix.
    func network(_ text: String, _ networks: NetworkManager) throws -> Network {
        if let byName = try? networks.inspect(text) { return byName.network }
        let matches = networks.list().filter { !text.isEmpty && $0.id.hasPrefix(text) }
        guard matches.count == 1 else { throw HVCError(.notFound, "network \(text.prefix(64)) not found") }
        return matches[0]
    }

    /// `POST /networks/create`'s body as hvc's request; what hvc does not carry out is refused by name.
    static func networkRequest(_ body: Data) throws -> CreateNetworkRequest {
        let object = try DockerHandler.object(body, "a network's config")
        guard let name = DockerCreate.nonEmpty(object["Name"]) else { throw HVCError(.invalid, "Name is missing: name the network") }
        func refuse(_ field: String, _ why: String) throws -> Never { throw HVCError(.invalid, "\(field) is not supported by hvc: \(why)") }
        if let driver = DockerCreate.nonEmpty(object["Driver"]), driver != "bridge" { try refuse("Driver \(driver.prefix(32))", "networks are bridges") }
        if object["EnableIPv6"] as? Bool == true { try refuse("EnableIPv6", "networks are IPv4") }
        if object["Ingress"] as? Bool == true { try refuse("Ingress", "there is no swarm") }
        if let options = object["Options"] as? [String: Any], !options.isEmpty { try refuse("Options", "a network's bridge is hvc's") }
        var request = CreateNetworkRequest(name: name)
        request.internal = object["Internal"] as? Bool
        request.labels = try labels(object["Labels"])
        if let ipam = object["IPAM"] as? [String: Any] {
            if let driver = DockerCreate.nonEmpty(ipam["Driver"]), driver != "default" { try refuse("IPAM.Driver \(driver.prefix(32))", "hvc assigns addresses") }
            let configs = ipam["Config"] as? [[String: Any]] ?? []
            if configs.count > 1 { try refuse("IPAM.Config with \(configs.count) entries", "a network has one subnet") }
            if let config = configs.first {
                if DockerCreate.nonEmpty(config["IPRange"]) != nil { try refuse("IPAM.Config.IPRange", "the whole subnet is the range") }
                request.subnet = DockerCreate.nonEmpty(config["Subnet"])
                if let gateway = DockerCreate.nonEmpty(config["Gateway"]) {
                    guard let subnet = request.subnet.flatMap(IPv4Subnet.init), subnet.gateway.description == gateway else {
                        try refuse("IPAM.Config.Gateway \(gateway.prefix(32))", "the gateway is the subnet's first address")
                    }
                }
            }
        }
        return request
    }

    static func object(_ body: Data, _ what: String) throws -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: body.isEmpty ? Data("{}".utf8) : body) as? [String: Any] else {
            throw HVCError(.invalid, "invalid JSON body: \(what) was expected")
        }
        return object
    }

    static func labels(_ value: Any?) throws -> [String: String]? {
        guard let value, !(value is NSNull) else { return nil }
        guard let labels = value as? [String: String] else { throw HVCError(.invalid, "Labels must map strings to strings") }
        return try Labels.checked(labels)
    }

    /// A volume name as Docker makes one when none is given: 64 hex digits.
    static func randomName() -> String {
        (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    /// A list's `filters`: `{"label": {"a=b": true}}` or `{"label": ["a=b"]}`, by key.
    static func resourceFilters(_ text: String?, keys: [String]) throws -> [String: [String]] {
        guard let text, !text.isEmpty else { return [:] }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw HVCError(.invalid, "filters is not a JSON object of filters")
        }
        var result: [String: [String]] = [:]
        for (key, value) in object {
            guard keys.contains(key) else {
                throw HVCError(.invalid, "the \(key.prefix(32)) filter is not supported by hvc: use \(keys.joined(separator: ", "))")
            }
            result[key] = (value as? [String: Any]).map { Array($0.keys) } ?? (value as? [String]) ?? []
        }
        return result
    }

    /// Whether a network or volume passes every filter: `name` (a part), `id` (a prefix),
    /// `label` (`KEY` or `KEY=VALUE`); other keys by `other`.
    static func matches(_ filters: [String: [String]], name: String, id: String, labels: [String: String]?,
                        other: (String, String) -> Bool) -> Bool {
        // Every label must hold; other values of one key are alternatives (as Docker has them).
        filters.allSatisfy { key, values in
            let holds = { (value: String) -> Bool in
                switch key {
                case "name": return name.contains(value)
                case "id": return !value.isEmpty && id.hasPrefix(value)
                case "label":
                    let parts = value.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                    guard let label = labels?[parts[0]] else { return false }
                    return parts.count == 1 || label == parts[1]
                default: return other(key, value)
                }
            }
            return key == "label" ? values.allSatisfy(holds) : values.contains(where: holds)
        }
    }
}
