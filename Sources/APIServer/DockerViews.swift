import Foundation
import Runtime

/// hvc's records in the shapes of the Docker Engine API: what `docker ps`, `inspect` and
/// `images` read.
enum DockerViews {
    static func imageID(_ id: String) -> String { id.hasPrefix("sha256:") ? id : "sha256:" + id }

    /// RFC 3339 with fractional seconds, in UTC; made once (log timestamps use it per entry).
    static let timeFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    static func time(_ date: Date?) -> String {
        guard let date else { return "0001-01-01T00:00:00Z" }
        return timeFormat.format(date)
    }

    /// `docker ps`'s STATUS: `Created`, `Up 3 minutes`, `Exited (0) 5 seconds ago`.
    static func status(_ record: ContainerRecord, now: Date = Date()) -> String {
        switch record.state.status {
        case .created: return "Created"
        case .running: return "Up " + duration(now.timeIntervalSince(record.state.started ?? now)) + record.state.healthSuffix
        case .exited:
            let code = record.state.exitCode.map(String.init) ?? "-1"
            if record.state.restarting == true {
                return "Restarting (\(code)) " + duration(now.timeIntervalSince(record.state.finished ?? now)) + " ago"
            }
            return "Exited (\(code)) " + duration(now.timeIntervalSince(record.state.finished ?? now)) + " ago"
        }
    }

    /// Docker's rounding: `Less than a second`, `5 seconds`, `About a minute`, `3 minutes`, `2 hours`, `4 days`.
    static func duration(_ seconds: TimeInterval) -> String {
        let s = Int(max(0, seconds))
        switch s {
        case 0: return "Less than a second"
        case 1: return "1 second"
        case 2..<60: return "\(s) seconds"
        case 60..<120: return "About a minute"
        case 120..<3600: return "\(s / 60) minutes"
        case 3600..<7200: return "About an hour"
        case 7200..<172_800: return "\(s / 3600) hours"
        default: return "\(s / 86400) days"
        }
    }

    static func ports(_ record: ContainerRecord) -> [[String: Any]] {
        let mappings = record.state.endpoint?.ports ?? (record.state.status == .running ? record.config.ports ?? [] : [])
        return mappings.map { port in
            var entry: [String: Any] = ["PrivatePort": Int(port.containerPort), "Type": port.protocol.rawValue]
            if port.hostPort != 0 {
                entry["PublicPort"] = Int(port.hostPort)
                entry["IP"] = port.hostIP?.description ?? "0.0.0.0"
            }
            return entry
        }
    }

    static func networks(_ record: ContainerRecord) -> [String: Any] {
        guard let network = record.config.network else { return [:] }
        // Docker gives each container its short id as an alias; hvc's name server answers it too.
        var entry: [String: Any] = ["NetworkID": record.state.endpoint?.networkID ?? "", "IPAddress": "", "Gateway": "",
                                    "IPPrefixLen": 0, "MacAddress": "",
                                    "Aliases": [ContainerID.shortForm(record.id)] + (record.config.networkAliases ?? [])]
        if let endpoint = record.state.endpoint {
            entry["IPAddress"] = endpoint.address.description
            entry["Gateway"] = endpoint.gateway.description
            entry["IPPrefixLen"] = endpoint.prefix
            entry["MacAddress"] = endpoint.mac
        }
        return [network: entry]
    }

    /// An entry of `GET /containers/json`.
    static func summary(_ record: ContainerRecord) -> [String: Any] {
        [
            "Id": record.id, "Names": ["/" + record.name], "Image": record.config.image,
            "ImageID": imageID(record.config.imageID),
            "Command": record.config.process.arguments.joined(separator: " "),
            "Created": Int(record.config.created.timeIntervalSince1970),
            "State": record.state.restarting == true ? "restarting" : record.state.status.rawValue, "Status": status(record),
            "Ports": ports(record), "Labels": record.config.labels ?? [:],
            "HostConfig": ["NetworkMode": record.config.network ?? "none"],
            "NetworkSettings": ["Networks": networks(record)],
            "Mounts": mounts(record),
        ]
    }

    static func mounts(_ record: ContainerRecord) -> [[String: Any]] {
        (record.config.mounts ?? []).map { mount in
            ["Type": mount.type.rawValue, "Source": mount.source, "Destination": mount.target,
             "RW": !mount.readOnly, "Mode": mount.readOnly ? "ro" : "", "Propagation": ""]
        }
    }

    /// `GET /containers/{id}/json`.
    static func inspect(_ record: ContainerRecord) -> [String: Any] {
        let config = record.config, state = record.state
        let arguments = config.process.arguments
        let running = state.status == .running
        var portMap: [String: Any] = [:]
        for port in state.endpoint?.ports ?? config.ports ?? [] {
            let key = "\(port.containerPort)/\(port.protocol.rawValue)"
            if port.hostPort == 0 {
                portMap[key] = NSNull()
            } else {
                portMap[key] = [["HostIp": port.hostIP?.description ?? "0.0.0.0", "HostPort": "\(port.hostPort)"]]
            }
        }
        var bindings: [String: Any] = [:]
        for port in config.ports ?? [] {
            bindings["\(port.containerPort)/\(port.protocol.rawValue)"] =
                [["HostIp": port.hostIP?.description ?? "", "HostPort": port.hostPort == 0 ? "" : "\(port.hostPort)"]]
        }
        return [
            "Id": record.id, "Name": "/" + record.name, "Created": time(config.created),
            "Path": arguments.first ?? "", "Args": Array(arguments.dropFirst()),
            "State": [
                "Status": state.restarting == true ? "restarting" : state.status.rawValue, "Running": running, "Paused": false,
                "Restarting": state.restarting == true,
                "OOMKilled": state.oomKilled, "Dead": false, "Pid": running ? Int(state.vmmPID ?? 0) : 0,
                "ExitCode": Int(state.exitCode ?? 0), "Error": state.error ?? "",
                "StartedAt": time(state.started), "FinishedAt": time(state.finished),
                "Health": state.health.map { health in
                    ["Status": health.status.rawValue, "FailingStreak": health.failingStreak,
                     "Log": health.log.map { ["Start": time($0.start), "End": time($0.end), "ExitCode": Int($0.exitCode), "Output": $0.output] }] as [String: Any]
                } as Any? ?? NSNull(),
            ] as [String: Any],
            "Image": imageID(config.imageID), "LogPath": record.logPath, "RestartCount": state.restartCount ?? 0,
            "Driver": "hvc", "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
            "HostConfig": [
                "NetworkMode": config.network ?? "none", "AutoRemove": config.autoRemove,
                "Memory": config.memoryMiB << 20, "NanoCpus": config.cpus * 1_000_000_000,
                "PidsLimit": config.pidsLimit, "ReadonlyRootfs": config.readOnlyRoot ?? false,
                "PortBindings": bindings, "RestartPolicy": ["Name": config.restartPolicy?.name.rawValue ?? "no",
                                                        "MaximumRetryCount": config.restartPolicy?.maximumRetries ?? 0] as [String: Any],
                "LogConfig": ["Type": "json-file", "Config": [String: String]()] as [String: Any],
                "Runtime": "hvc", "Isolation": "",
            ] as [String: Any],
            "Config": [
                "Hostname": config.hostname, "User": config.process.user, "Env": config.process.environment,
                "Cmd": arguments, "Image": config.image, "WorkingDir": config.process.workingDirectory,
                "Entrypoint": NSNull(), "Tty": config.process.terminal, "OpenStdin": false,
                "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
                "Labels": config.labels ?? [:], "Volumes": NSNull(),
                "Healthcheck": config.healthcheck.map { check in
                    ["Test": check.Test ?? [], "Interval": check.Interval ?? 0, "Timeout": check.Timeout ?? 0,
                     "Retries": check.Retries ?? 0, "StartPeriod": check.StartPeriod ?? 0] as [String: Any]
                } as Any? ?? NSNull(),
            ] as [String: Any],
            "NetworkSettings": [
                "IPAddress": state.endpoint?.address.description ?? "", "Gateway": state.endpoint?.gateway.description ?? "",
                "IPPrefixLen": state.endpoint?.prefix ?? 0, "MacAddress": state.endpoint?.mac ?? "",
                "Ports": portMap, "Networks": networks(record),
            ] as [String: Any],
            "Mounts": mounts(record),
        ]
    }

    /// `GET /networks/{id}` (and, with no members, an entry of `GET /networks`).
    static func network(_ network: Network, members: [NetworkDetails.Member]) -> [String: Any] {
        var containers: [String: Any] = [:]
        for member in members {
            containers[member.id] = ["Name": member.name, "EndpointID": member.id, "MacAddress": member.mac ?? "",
                                     "IPv4Address": member.address ?? "", "IPv6Address": ""]
        }
        return [
            "Name": network.name, "Id": network.id, "Created": time(network.created), "Scope": "local", "Driver": "bridge",
            "EnableIPv6": false, "Internal": network.isInternal, "Attachable": false, "Ingress": false, "ConfigOnly": false,
            "ConfigFrom": ["Network": ""],
            "IPAM": ["Driver": "default", "Options": [String: String](),
                     "Config": [["Subnet": network.subnet.description, "Gateway": network.subnet.gateway.description]]] as [String: Any],
            "Containers": containers, "Options": [String: String](), "Labels": network.labels ?? [:],
        ]
    }

    /// A volume as `GET /volumes/{name}` shows it.
    static func volume(_ volume: Volume) -> [String: Any] {
        ["Name": volume.name, "Driver": (volume.driver ?? .local).rawValue, "Mountpoint": volume.mountpoint, "CreatedAt": time(volume.created),
         "Labels": volume.labels ?? [:], "Scope": "local", "Options": volume.sizeBytes.map { ["size": String($0)] } ?? [String: String]()]
    }

    /// An entry of `GET /images/json`, and (with more) `GET /images/{name}/json`.
    static func image(_ image: Image) -> [String: Any] {
        [
            "Id": imageID(image.id), "ParentId": "", "RepoTags": image.references, "RepoDigests": [String](),
            "Created": Int(image.created.timeIntervalSince1970), "Size": image.size, "VirtualSize": image.size,
            "SharedSize": -1, "Labels": [String: String](), "Containers": -1,
        ]
    }

    static func inspectImage(_ image: Image) -> [String: Any] {
        let config = image.config
        var exposed: [String: Any] = [:]
        for port in config.exposedPorts ?? [] { exposed[port] = [String: String]() }
        return [
            "Id": imageID(image.id), "RepoTags": image.references, "RepoDigests": [String](), "Parent": "",
            "Created": time(image.created), "Size": image.size, "VirtualSize": image.size,
            "Os": "linux", "Architecture": "amd64", "Author": "", "Comment": "",
            "Config": [
                "Cmd": config.cmd as Any? ?? NSNull(), "Entrypoint": config.entrypoint as Any? ?? NSNull(),
                "Env": config.env ?? [], "WorkingDir": config.workingDir ?? "", "User": config.user ?? "",
                "ExposedPorts": exposed, "Labels": [String: String](),
            ] as [String: Any],
            "RootFS": ["Type": "layers", "Layers": [String]()] as [String: Any],
        ]
    }
}
