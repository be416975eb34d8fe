import AgentProtocol
import Foundation
import HVCSystem
import Synchronization

/// A container's place on its network while its VM runs: the host ports it publishes (held
/// first, so that a taken port fails the start at once), its attachment (CNI in the VM's
/// namespace, then the TAP redirect; made while the VM starts), and what the guest is told.
final class ContainerNetworkSide: Sendable {
    let config: ContainerConfig
    let runtime: Runtime
    /// The network, resolved once for the run; nil without one.
    let network: Network?
    private let side = Mutex(Side())

    struct Side {
        var ports: PortReservation?
        var attachment: NetworkAttachment?
        /// Set while the attachment is being made in the background.
        var pending: DispatchSemaphore?
        var failure: HVCError?
    }

    /// Resolves the container's network (by name, among its tenant's) and holds its ports.
    init(config: ContainerConfig, runtime: Runtime) throws(HVCError) {
        self.config = config
        self.runtime = runtime
        guard let name = config.network else {
            network = nil
            return
        }
        network = try runtime.networks.resolve(name, tenant: config.tenant)
        let ports = try PortReservation.reserve(config.ports ?? [])
        side.withLock { $0.ports = ports }
    }

    /// Joins the VM to the network in `netns`; in the background when `inBackground`, joined
    /// by `guestSetup`.
    func attach(netns: String?, directory: VMDirectory, inBackground: Bool) throws(HVCError) {
        guard let record = network else { return }
        guard let netns else { throw HVCError("the VM has no network namespace") }
        let ports = side.withLock { $0.ports?.ports ?? [] }
        let work: @Sendable () -> Void = { [self] in
            let outcome: Result<NetworkAttachment, HVCError>
            do throws(HVCError) {
                let store = runtime.containers
                let names = NetworkMembers(runtime: runtime, network: record)
                // A lease is live when its container is a member, or (not yet one) has not exited.
                runtime.networks.releaseStaleLeases(record) { id in
                    id == config.id || FileManager.default.fileExists(atPath: names.memberFile(id))
                        || (try? store.load(id)).map { $0.state.status != .exited } ?? false
                }
                let plan = NetworkAttachmentPlan(containerID: config.id, network: record, netns: netns,
                                                 ipamDirectory: runtime.networks.ipamDirectory, ports: ports)
                try writeAtomically(directory.networkAttachmentPlan, try JSONEncoder.hvc.encode(plan))
                var attachment = try NetworkAttachment.attach(
                    record, containerID: config.id, netns: netns, ipamDirectory: runtime.networks.ipamDirectory, ports: ports)
                attachment.memberFile = names.memberFile(config.id)
                try writeAtomically(directory.networkAttachment, try JSONEncoder.hvc.encode(attachment))
                let aliases = (config.networkAliases ?? []).map { " " + $0 }.joined()
                try names.join(config.id, line: "\(attachment.endpoint.address)\t\(config.name) \(ContainerID.shortForm(config.id))" + aliases)
                NameServer.ensureRunning(runtime)
                outcome = .success(attachment)
            } catch {
                outcome = .failure(error)
            }
            side.withLock { side in
                switch outcome {
                case .success(let attachment): side.attachment = attachment
                case .failure(let error): side.failure = error
                }
                side.pending?.signal()
            }
        }
        if inBackground {
            side.withLock { $0.pending = DispatchSemaphore(value: 0) }
            Thread.detachNewThread(work)
        } else {
            work()
        }
    }

    /// Waits for the attachment and records the container's address. Returns what the guest
    /// needs to know: its interface and name servers.
    func guestSetup(timing: RunTiming) throws(HVCError) -> (GuestInterface, nameservers: [String])? {
        if let joined = config.joinedInterface {
            // The caller's own configuration: its resolv.conf is among the bundle's mounts.
            try joined.join()
            let nic = joined.guestInterface
            return (GuestInterface(mac: nic.mac, address: nic.address, prefix: nic.prefix, gateway: nic.gateway, mtu: nic.mtu), [])
        }
        guard let record = network else { return nil }
        awaitAttachment()
        let (attachment, failure) = side.withLock { ($0.attachment, $0.failure) }
        if let failure { throw failure }
        guard let attachment, let mac = MACAddress(attachment.endpoint.mac) else { throw HVCError("network \(record.name): no address") }
        timing.mark("network")
        try runtime.containers.update(config.id) { $0.endpoint = attachment.endpoint }
        let endpoint = attachment.endpoint
        let interface = GuestInterface(mac: mac.bytes, address: endpoint.address.value, prefix: UInt8(endpoint.prefix),
                                       gateway: endpoint.gateway.value, mtu: UInt16(attachment.network.mtu))
        // The network's name server first; the host's after it answer what it refuses (the
        // resolver uses three at most).
        let upstream = attachment.network.isInternal ? [] : HostResolvers.nameservers()
        return (interface, Array(([endpoint.gateway.description] + upstream).prefix(3)))
    }

    /// Undoes the attachment and lets the ports go; the VMM is gone, its namespace not yet.
    /// Returns whether there was an attachment.
    @discardableResult
    func detach(directory: VMDirectory?) -> Bool {
        awaitAttachment()
        let taken = side.withLock { side in
            defer { side = Side() }
            return side
        }
        if let attachment = taken.attachment {
            attachment.detach(namespaceGoes: true)
            if let directory { unlink(directory.networkAttachment) }
        }
        if let directory { unlink(directory.networkAttachmentPlan) }
        taken.ports?.release()
        return taken.attachment != nil
    }

    /// Waits for a background attachment to finish, if one is under way.
    private func awaitAttachment() {
        guard let pending = side.withLock({ $0.pending }) else { return }
        pending.wait()
        side.withLock { $0.pending = nil }
    }
}
