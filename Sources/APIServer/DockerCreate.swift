import Foundation
import OCI
import Runtime

/// `POST /containers/create`'s body (Docker's `Config` with its `HostConfig`) as hvc's own
/// create request. Docker clients send every field, most at their zero value; a field that is
/// set and that hvc does not carry out is refused by name, never dropped: a container that
/// runs otherwise than asked (privileged, on the host's network) is worse than none.
enum DockerCreate {
    /// The request for `body`, the container named `name` (the `name` query parameter).
    static func request(_ body: Data, name: String?) throws(HVCError) -> CreateContainerRequest {
        guard let object = try? JSONSerialization.jsonObject(with: body.isEmpty ? Data("{}".utf8) : body),
              let config = object as? [String: Any] else {
            throw HVCError(.invalid, "invalid JSON body: a container's Config object was expected")
        }
        let host = config["HostConfig"] as? [String: Any] ?? [:]
        try refuseUnsupported(config, host)
        guard let image = config["Image"] as? String, !image.isEmpty else {
            throw HVCError(.invalid, "Config.Image is missing: name the image to run")
        }
        var request = CreateContainerRequest(image: image)
        request.name = name.flatMap { $0.isEmpty ? nil : $0 }
        request.cmd = try strings(config["Cmd"], "Cmd")
        request.entrypoint = try strings(config["Entrypoint"], "Entrypoint")
        request.env = try strings(config["Env"], "Env")
        request.workdir = nonEmpty(config["WorkingDir"])
        request.user = nonEmpty(config["User"])
        request.hostname = nonEmpty(config["Hostname"])
        request.tty = config["Tty"] as? Bool
        request.autoRemove = host["AutoRemove"] as? Bool
        if let policy = host["RestartPolicy"] as? [String: Any], let name = nonEmpty(policy["Name"]), name != "no" {
            let count = (policy["MaximumRetryCount"] as? NSNumber)?.intValue ?? 0
            request.restart = name == "on-failure" && count > 0 ? "on-failure:\(count)" : name
        }
        if let check = config["Healthcheck"] as? [String: Any] {
            func nanoseconds(_ key: String) -> Int64? { (check[key] as? NSNumber)?.int64Value }
            request.healthcheck = Healthcheck(Test: try strings(check["Test"], "Healthcheck.Test"), Interval: nanoseconds("Interval"),
                                              Timeout: nanoseconds("Timeout"), Retries: (check["Retries"] as? NSNumber)?.intValue,
                                              StartPeriod: nanoseconds("StartPeriod"))
        }
        if let labels = config["Labels"] as? [String: Any], !labels.isEmpty {
            guard let strings = labels as? [String: String] else { throw HVCError(.invalid, "Labels must map strings to strings") }
            request.labels = strings
        }
        request.readOnly = host["ReadonlyRootfs"] as? Bool
        request.publishAll = host["PublishAllPorts"] as? Bool
        if let memory = (host["Memory"] as? NSNumber)?.int64Value, memory > 0 {
            guard memory >= 64 << 20 else { throw HVCError(.invalid, "HostConfig.Memory \(memory) is below hvc's 64 MiB guest minimum") }
            request.memory = "\(memory >> 20)m"
        }
        if let nano = (host["NanoCpus"] as? NSNumber)?.int64Value, nano > 0 {
            // A VM has whole CPUs: a fraction is rounded up.
            request.cpus = Int((nano + 999_999_999) / 1_000_000_000)
        }
        if let pids = (host["PidsLimit"] as? NSNumber)?.intValue, pids > 0 { request.pidsLimit = pids }
        if let mode = nonEmpty(host["NetworkMode"]), mode != "default" {
            request.networks = [mode]
        }
        if let endpoints = (config["NetworkingConfig"] as? [String: Any])?["EndpointsConfig"] as? [String: Any], !endpoints.isEmpty {
            guard endpoints.count == 1, let (network, value) = endpoints.first else {
                throw HVCError(.invalid, "NetworkingConfig.EndpointsConfig with \(endpoints.count) networks is not supported by hvc: a container joins one network")
            }
            let endpoint = value as? [String: Any] ?? [:]
            if let addresses = endpoint["IPAMConfig"] as? [String: Any], addresses.values.contains(where: { nonEmpty($0) != nil }) {
                throw HVCError(.invalid, "NetworkingConfig.EndpointsConfig.IPAMConfig is not supported by hvc: its network assigns addresses")
            }
            if request.networks == nil && network != "default" { request.networks = [network] }
            if let aliases = try strings(endpoint["Aliases"], "Aliases"), !aliases.isEmpty { request.networkAliases = aliases }
        }
        request.ports = try ports(host["PortBindings"])
        var mounts: [ContainerMount] = []
        for bind in try strings(host["Binds"], "HostConfig.Binds") ?? [] {
            mounts.append(try ContainerMount.parseVolumeFlag(bind))
        }
        if let tmpfs = host["Tmpfs"] as? [String: Any] {
            for (target, options) in tmpfs.sorted(by: { $0.key < $1.key }) {
                let text = (options as? String).flatMap { $0.isEmpty ? nil : $0 }
                mounts.append(try ContainerMount.parseTmpfsFlag(text.map { target + ":" + $0 } ?? target))
            }
        }
        // `Volumes` names paths that get a volume: a bind's target has one; the others get an anonymous volume.
        for target in ((config["Volumes"] as? [String: Any]) ?? [:]).keys.sorted() where !mounts.contains(where: { $0.target == target }) {
            mounts.append(try ContainerMount.parseVolumeFlag(target))
        }
        if !mounts.isEmpty { request.mounts = mounts }
        return request
    }

    /// `HostConfig.PortBindings` (`{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`) as `-p` texts.
    static func ports(_ value: Any?) throws(HVCError) -> [String]? {
        guard let bindings = value as? [String: Any], !bindings.isEmpty else { return nil }
        var result: [String] = []
        for (port, entries) in bindings.sorted(by: { $0.key < $1.key }) {
            let hosts = entries as? [[String: Any]] ?? []
            if hosts.isEmpty { result.append(port) }
            for host in hosts {
                let ip = (host["HostIp"] as? String) ?? "", hostPort = (host["HostPort"] as? String) ?? ""
                // `-p` forms: CONTAINERPORT (a free host port), HOSTPORT:..., IP:[HOSTPORT]:...
                if !ip.isEmpty {
                    result.append(ip + ":" + hostPort + ":" + port)
                } else {
                    result.append(hostPort.isEmpty ? port : hostPort + ":" + port)
                }
            }
        }
        return result
    }

    /// Refuses the fields hvc does not carry out when they are set, naming each.
    static func refuseUnsupported(_ config: [String: Any], _ host: [String: Any]) throws(HVCError) {
        func refuse(_ field: String, _ why: String) throws(HVCError) {
            throw HVCError(.invalid, "\(field) is not supported by hvc: \(why)")
        }
        if host["Privileged"] as? Bool == true { try refuse("HostConfig.Privileged", "a container has its own VM; nothing of the host is given to it") }
        if let mode = nonEmpty(host["NetworkMode"]), mode == "host" || mode.hasPrefix("container:") {
            try refuse("HostConfig.NetworkMode \(mode)", "each container has its own VM and network interface")
        }
        for field in ["PidMode", "IpcMode", "UsernsMode", "UTSMode", "CgroupnsMode"] {
            if let mode = nonEmpty(host[field]), mode != "private", mode != "shareable" {
                try refuse("HostConfig.\(field) \(mode)", "namespaces are the VM's own")
            }
        }
        for field in ["CapAdd", "Devices", "DeviceRequests", "SecurityOpt", "VolumesFrom", "Links", "ExtraHosts", "Dns", "DnsSearch", "Sysctls"] {
            if let list = host[field] as? [Any], !list.isEmpty { try refuse("HostConfig.\(field)", "not carried out yet") }
        }
        if let mounts = host["Mounts"] as? [Any], !mounts.isEmpty { try refuse("HostConfig.Mounts", "not carried out yet; use Binds") }
        // A volume made on first use is local; a block volume is made first, by name.
        if let driver = nonEmpty(host["VolumeDriver"]), driver != "local" {
            try refuse("HostConfig.VolumeDriver \(driver.prefix(32))", "make the volume first (docker volume create --driver \(driver.prefix(32)) NAME)")
        }
        if let log = host["LogConfig"] as? [String: Any], let type = nonEmpty(log["Type"]), type != "json-file" {
            try refuse("HostConfig.LogConfig.Type \(type)", "hvc keeps each container's log as json-file")
        }
        if let signal = nonEmpty(config["StopSignal"]) { try refuse("StopSignal \(signal)", "stop sends TERM, then KILL") }
    }

    static func strings(_ value: Any?, _ field: String) throws(HVCError) -> [String]? {
        guard let value, !(value is NSNull) else { return nil }
        if let text = value as? String { return [text] }
        guard let list = value as? [Any], let strings = list as? [String] else {
            throw HVCError(.invalid, "\(field) must be a list of strings")
        }
        return strings
    }

    static func nonEmpty(_ value: Any?) -> String? {
        (value as? String).flatMap { $0.isEmpty ? nil : $0 }
    }
}
