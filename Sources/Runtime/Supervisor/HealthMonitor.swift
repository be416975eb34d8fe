import AgentProtocol
import Foundation
import HVCSystem
import OCI
import Synchronization
import VMM

/// Runs a container's health check while its command runs: every interval, the test as an
/// exec through the supervisor's own control socket (as `hvc exec` runs one), its result in
/// the container's state.
final class HealthMonitor: Sendable {
    let config: ContainerConfig
    let check: Healthcheck
    let command: [String]
    let store: ContainerStore
    let controlSocket: String
    private let stopped = Mutex(false)
    private let done = DispatchSemaphore(value: 0)

    init?(config: ContainerConfig, store: ContainerStore, controlSocket: String) {
        guard let check = config.healthcheck, let command = check.command else { return nil }
        self.config = config
        self.check = check
        self.command = command
        self.store = store
        self.controlSocket = controlSocket
    }

    func start() {
        _ = try? store.update(config.id) { $0.health = HealthState() }
        let began = Date()
        Thread.detachNewThread { [self] in
            defer { done.signal() }
            while pause(seconds: Double(check.interval) / 1e9) {
                let probe = probe()
                let counts = Date().timeIntervalSince(began) >= Double(check.startPeriod) / 1e9
                guard !isStopped else { return }
                _ = try? store.update(config.id) { state in
                    var health = state.health ?? HealthState()
                    health.record(probe, retries: check.retries, counts: counts)
                    state.health = health
                }
            }
        }
    }

    /// Ends the checks (the command has exited); waits for a probe under way.
    func stop() {
        stopped.withLock { $0 = true }
        _ = done.wait(timeout: .now() + Double(check.timeout) / 1e9 + 2)
    }

    private var isStopped: Bool { stopped.withLock { $0 } }

    /// Sleeps `seconds` unless stopped first; false when stopped.
    private func pause(seconds: Double) -> Bool {
        let until = Date().addingTimeInterval(seconds)
        while Date() < until {
            if isStopped { return false }
            usleep(UInt32(min(100_000, max(1000, until.timeIntervalSinceNow * 1e6))))
        }
        return !isStopped
    }

    /// One run of the test, bounded by its timeout.
    private func probe() -> HealthProbe {
        let start = Date()
        var output: [UInt8] = []
        func ended(_ code: Int32, _ text: String? = nil) -> HealthProbe {
            // The guest's text, its lines kept.
            let bytes = text.map { Array($0.utf8) } ?? output
            let shown = String(decoding: bytes.prefix(HealthProbe.maxOutput), as: UTF8.self)
                .split(separator: "\n", omittingEmptySubsequences: false).map { String($0).sanitizedGuestText }.joined(separator: "\n")
            return HealthProbe(start: start, end: Date(), exitCode: code, output: shown)
        }
        guard let channel = try? FrameChannel.connect(path: controlSocket) else {
            return ended(-1, "the container's supervisor could not be reached")
        }
        defer { channel.shutdown() }
        var spec = config.process.spec()
        spec.arguments = command
        spec.terminal = false
        let ending = ContainerProcess.run(over: channel, spec: spec, seconds: Double(check.timeout) / 1e9) { _, bytes in
            if output.count < HealthProbe.maxOutput { output += bytes }
            return true
        }
        switch ending {
        case .exited(let code): return ended(code)
        case .notStarted(let why), .lost(let why): return ended(-1, why)
        case .timedOut: return ended(-1, "Health check exceeded timeout (\(Double(check.timeout) / 1e9)s)")
        }
    }
}
