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

    static func claim(_ record: ContainerRecord, runtime: Runtime, attached: Bool, keepStdinOpen: Bool,
                      rows: UInt16, columns: UInt16) -> Claimed? {
        let config = record.config
        guard config.startsFromTemplate, config.network != nil, !runtime.pools.list().isEmpty,
              let image = try? runtime.images.resolve(config.imageID),
              let inputs = try? runtime.templates.inputs(
                runtime: runtime, shape: VMShape(image: image, memoryMiB: config.memoryMiB, cpus: config.cpus,
                                                 accelerator: config.accelerator, networkInterface: true,
                                                 nested: config.nested ?? false)) else { return nil }
        let key = inputs.key
        defer {
            runtime.refillPool(imageID: config.imageID, memoryMiB: config.memoryMiB, cpus: config.cpus,
                               accelerator: config.accelerator, nested: config.nested ?? false, templateKey: key)
        }
        let request = PoolClaimRequest(container: record.id, attached: attached, keepStdinOpen: keepStdinOpen,
                                       rows: rows, columns: columns)
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
