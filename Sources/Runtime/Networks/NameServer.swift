import CJail
import CLinux
import Foundation
import HVCSystem

/// Containers find each other by name through a small DNS server on each network's gateway
/// address (`hvc-shim name-server`, one per state directory, started by the first container
/// that joins a network, gone a minute after the last leaves). It answers A queries for the
/// names and short ids of the network's members and refuses everything else, so that the
/// container's resolver asks the next name server in its `resolv.conf` (the host's). Asked,
/// not told: a container that starts wakes no other VM, whatever the size of its network.
///
/// What a query may hold is bounded here: one question, labels of at most 63 bytes, a name of
/// at most 255, no compression; anything else gets no answer. Members are read from
/// `NetworkMembers` for each query (small files under the run root).
public enum NameServer {
    static let port: UInt16 = 53
    /// Seconds without any member on any network before the server leaves.
    static let idleExit: Double = 60

    static func pidPath(_ runtime: Runtime) -> String { runtime.paths.runRoot + "/name-server.pid" }

    /// Starts the store's name server unless it runs.
    static func ensureRunning(_ runtime: Runtime) {
        if let text = try? String(contentsOfFile: pidPath(runtime), encoding: .utf8),
           let server = ProcessStamp(parsing: text), server.isAlive { return }
        _ = try? Shim.start(.nameServer, paths: runtime.paths)
    }

    /// The server's life: one instance per store (an exclusive lock), a socket per network
    /// gateway, the network list read again every second. Returns at once when another
    /// instance serves the store, else once no network has had a member for `idleExit`.
    /// It takes from this process every capability but binding low ports, and throws when it
    /// cannot (it then serves nothing).
    public static func serve(runtime: Runtime) throws(HVCError) {
        try? makeDirectory(runtime.paths.runRoot, mode: 0o711)
        let lock = open(runtime.paths.runRoot + "/name-server.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { return }
        defer { close(lock) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else { return }
        try? writeAtomically(pidPath(runtime), Data("\(ProcessStamp.current)\n".utf8))
        // It parses what guests send: of root's powers it keeps only binding port 53 (it stays
        // uid 0 to read the root-only member lists).
        guard hvc_keep_only_capability(10 /* CAP_NET_BIND_SERVICE */) == 0 else {
            throw HVCError("name server: cannot drop capabilities: \(Errno.current)")
        }
        var sockets: [String: (fd: FileDescriptor, network: Network)] = [:]
        var lastMember = Date()
        while true {
            let networks = runtime.networks.list(tenant: nil)
            let wanted = Set(networks.map(\.id))
            for (id, entry) in sockets where !wanted.contains(id) {
                entry.fd.close()
                sockets[id] = nil
            }
            for network in networks where sockets[network.id] == nil {
                // Fails until the network's bridge has its address: tried again next round.
                if case .success(let fd) = boundIPv4Socket(type: SOCK_DGRAM, nonBlocking: true, address: network.gateway, port: port) {
                    sockets[network.id] = (fd, network)
                }
            }
            if networks.contains(where: { !NetworkMembers(runtime: runtime, network: $0).isEmpty }) { lastMember = Date() }
            if Date().timeIntervalSince(lastMember) > idleExit {
                unlink(pidPath(runtime))
                return
            }
            let entries = Array(sockets.values)
            guard let events = try? poll(entries.map { ($0.fd.raw, PollEvents.readable) }, timeoutMilliseconds: 1000) else { continue }
            for (index, event) in events.enumerated() where event.contains(.readable) {
                serve(entries[index].fd, names: NetworkMembers(runtime: runtime, network: entries[index].network))
            }
        }
    }

    /// Answers the queries waiting on one network's socket.
    private static func serve(_ socket: FileDescriptor, names: NetworkMembers) {
        var buffer = [UInt8](repeating: 0, count: 512)
        for _ in 0..<64 {
            var peer = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let count = buffer.withUnsafeMutableBytes { bytes in
                withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(socket.raw, bytes.baseAddress, bytes.count, 0, $0, &length) }
                }
            }
            guard count > 0 else { return }
            guard let reply = answer(Array(buffer[0..<count]), lookup: { name in lookup(name, in: names) }) else { continue }
            _ = reply.withUnsafeBytes { bytes in
                withUnsafePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(socket.raw, bytes.baseAddress, bytes.count, 0, $0, length) }
                }
            }
        }
    }

    /// A member's address by its name or short id (ASCII case-insensitive), from its hosts line.
    static func lookup(_ name: String, in names: NetworkMembers) -> IPv4Address? {
        for member in names.members() {
            let fields = member.line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard fields.count >= 2, let address = IPv4Address(fields[0]) else { continue }
            if fields.dropFirst().contains(where: { $0.lowercased() == name }) { return address }
        }
        return nil
    }

    /// The reply to one DNS query, or nil for what is not a well-formed standard query.
    /// - A (or ANY) for a member: its address; AAAA or another type for a member: no data.
    /// - Any other name: REFUSED, so that the resolver moves on to the next server.
    public static func answer(_ query: [UInt8], lookup: (String) -> IPv4Address?) -> [UInt8]? {
        guard query.count >= 12, query.count <= 512 else { return nil }
        let flags = UInt16(query[2]) << 8 | UInt16(query[3])
        let questions = UInt16(query[4]) << 8 | UInt16(query[5])
        // A query (QR 0), standard (opcode 0), one question, no answers or authority (an EDNS
        // record after the question is left unread and out of the reply).
        guard flags & 0x8000 == 0, flags & 0x7800 == 0, questions == 1, query[6...9].allSatisfy({ $0 == 0 }) else { return nil }
        var offset = 12
        var labels: [String] = []
        var nameLength = 0
        while true {
            guard offset < query.count else { return nil }
            let length = Int(query[offset])
            offset += 1
            if length == 0 { break }
            guard length <= 63, offset + length <= query.count else { return nil }
            nameLength += length + 1
            guard nameLength <= 255 else { return nil }
            labels.append(String(decoding: query[offset..<offset + length], as: UTF8.self).lowercased())
            offset += length
        }
        guard offset + 4 <= query.count else { return nil }
        let type = UInt16(query[offset]) << 8 | UInt16(query[offset + 1])
        let questionEnd = offset + 4
        let address = labels.count == 1 ? lookup(labels[0]) : nil
        var reply = Array(query[0..<questionEnd])
        // QR, AA, the client's RD; RCODE 0 or REFUSED (5).
        let rd = UInt16(query[2] & 0x01)
        let rcode: UInt16 = address == nil ? 5 : 0
        let replyFlags: UInt16 = 0x8000 | 0x0400 | rd << 8 | rcode
        reply[2] = UInt8(replyFlags >> 8)
        reply[3] = UInt8(replyFlags & 0xff)
        reply[10] = 0
        reply[11] = 0
        if let address, type == 1 || type == 255 {
            reply[7] = 1
            reply += [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]
            reply += withUnsafeBytes(of: address.networkOrder) { Array($0) }
        }
        return reply
    }
}
