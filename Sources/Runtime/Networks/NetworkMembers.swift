import Foundation

/// The members of a network, for its name server: files under `<run-root>/networks/<network
/// id>/`, one per attached container holding its hosts line (`ADDRESS NAME SHORTID`), written
/// once it has its address and removed when it is detached (by its supervisor or a sweep).
struct NetworkMembers: Sendable {
    let directory: String

    init(runtime: Runtime, network: Network) {
        directory = runtime.paths.runRoot + "/networks/" + network.id
    }

    private init(directory: String) {
        self.directory = directory
    }

    func memberFile(_ containerID: String) -> String { directory + "/" + containerID }

    /// Records a container as a member with its hosts line.
    func join(_ containerID: String, line: String) throws(HVCError) {
        try makeDirectory(directory, mode: 0o700)
        try writeAtomically(memberFile(containerID), Data(line.utf8))
    }

    /// The members' ids and hosts lines.
    func members() -> [(id: String, line: String)] {
        memberIDs().compactMap { id in (try? String(contentsOfFile: memberFile(id), encoding: .utf8)).map { (id, $0) } }
    }

    /// Whether the network has no member (its directory listed, no file read).
    var isEmpty: Bool { memberIDs().isEmpty }

    /// Removes the files of members whose VM is gone: a supervisor removes its file before its
    /// VM's directory, and a sweep of that directory removes it too, so a file outliving the
    /// directory was left by a process killed between the two.
    static func sweep(_ paths: RuntimePaths) {
        let root = paths.runRoot + "/networks"
        for network in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] {
            let members = NetworkMembers(directory: root + "/" + network)
            for (id, file) in members.memberFiles() where !FileManager.default.fileExists(atPath: VMDirectory.path(in: paths.vms, id: id)) {
                unlink(members.directory + "/" + file)
            }
        }
    }

    private func memberIDs() -> [String] {
        memberFiles().filter { $0.id == $0.file }.map(\.id)
    }

    /// Each member file with its container's id: the file itself, or the half-written copy of it
    /// (`writeAtomically`'s `<id>.tmp-PID`) that a writer killed before its rename left.
    private func memberFiles() -> [(id: String, file: String)] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).compactMap { file in
            let id = String(file.prefix(64))
            guard id.count == 64, id.allSatisfy(\.isHexDigit), file == id || file.hasPrefix(id + ".tmp-") else { return nil }
            return (id, file)
        }
    }
}

/// The name servers a container on a network uses after its network's own: the host's, as
/// Docker does, without the loopback ones a container cannot reach (systemd-resolved's upstream
/// list instead of its stub), else Google's public servers.
enum HostResolvers {
    static func nameservers() -> [String] {
        for file in ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            let servers = text.split(separator: "\n").compactMap { line -> String? in
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard fields.count >= 2, fields[0] == "nameserver", let address = IPv4Address(fields[1]),
                      address.value >> 24 != 127 else { return nil }
                return address.description
            }
            if !servers.isEmpty { return servers }
        }
        return ["8.8.8.8", "8.8.4.4"]
    }
}
