import CLinux
import Foundation
import HVCSystem
import VMM

/// Hands a created container to a VM waiting in a warm pool of its template, if one waits.
enum PoolClaim {
    struct Claimed {
        /// The connection to the container's supervisor (the init process's stdio when attached).
        let channel: FrameChannel
        let supervisorPID: Int32
    }

    /// Who starts the VM that takes the claimed one's place.
    enum Refill {
        /// This process, or hvcd's keeper service where it serves this state.
        case here
        /// hvcd's keeper service only: a caller under a subreaper (conmon, containerd's shim)
        /// would have the new VM adopted by it, and the subreaper waits for all it adopts.
        case serviceOnly
    }

    /// - Parameter gated: the supervisor holds the command until the claimer sends `attach`
    ///   (hvc-oci's `start`); the claimer's leaving before then ends the VM.
    static func claim(_ record: ContainerRecord, runtime: Runtime, attached: Bool, keepStdinOpen: Bool,
                      rows: UInt16, columns: UInt16, gated: Bool = false, refill: Refill = .here) -> Claimed? {
        let config = record.config
        guard let pool = runtime.pools.list().first(where: { $0.fits(config) }), let image = try? runtime.images.resolve(config.imageID),
              let inputs = try? runtime.templates.inputs(runtime: runtime, shape: pool.shape(image)) else { return nil }
        let key = inputs.key
        defer {
            if KeeperService.requestRefill(pool: pool.name, key: key, paths: runtime.paths) == nil, refill == .here {
                runtime.refillPool(named: pool.name, templateKey: key)
            }
        }
        let request = PoolClaimRequest(container: record.id, attached: attached, keepStdinOpen: keepStdinOpen,
                                       rows: rows, columns: columns, gated: gated ? true : nil)
        guard let line = try? JSONEncoder().encode(request) else { return nil }
        for socket in runtime.pools.members(key) {
            let fd = hvc_unix_connect(socket)
            if fd < 0 {
                if Errno.current == .connectionRefused, runtime.pools.memberPID(socket) == nil { unlink(socket) }
                continue
            }
            let connection = FileDescriptor(fd)
            connection.setReceiveTimeout(seconds: 5)
            guard (try? connection.writeAll(Array(line) + [0x0a])) != nil,
                  let answer = try? connection.readLine(max: PoolMember.maxLine) ?? nil,
                  let reply = try? JSONDecoder().decode(PoolClaimReply.self, from: Data(answer)), reply.ok else { continue }
            connection.setReceiveTimeout(seconds: 0)
            return Claimed(channel: FrameChannel(socket: connection), supervisorPID: reply.pid)
        }
        return nil
    }
}
