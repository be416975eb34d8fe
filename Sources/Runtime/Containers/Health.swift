import Foundation
import OCI

/// A container's health check, as Docker has it (`HEALTHCHECK` in the image, `--health-*`
/// flags over it): its supervisor runs the test in the container every interval; a run that
/// exits 0 makes it healthy, `retries` failures in a row (those in the start period aside)
/// unhealthy.
extension Healthcheck {
    public static let defaultInterval: Int64 = 30_000_000_000
    public static let defaultTimeout: Int64 = 30_000_000_000
    public static let defaultRetries = 3

    /// The command the test runs, or nil when there is none (`NONE`).
    public var command: [String]? {
        guard let test = Test, let kind = test.first else { return nil }
        switch kind {
        case "CMD": return test.count > 1 ? Array(test.dropFirst()) : nil
        case "CMD-SHELL": return test.count == 2 ? ["/bin/sh", "-c", test[1]] : nil
        default: return nil
        }
    }

    public var interval: Int64 { Interval.flatMap { $0 > 0 ? $0 : nil } ?? Healthcheck.defaultInterval }
    public var timeout: Int64 { Timeout.flatMap { $0 > 0 ? $0 : nil } ?? Healthcheck.defaultTimeout }
    public var retries: Int { Retries.flatMap { $0 > 0 ? $0 : nil } ?? Healthcheck.defaultRetries }
    public var startPeriod: Int64 { max(StartPeriod ?? 0, 0) }

    /// This check's set fields over `base`'s (a container's flags over its image's check).
    public func overriding(_ base: Healthcheck?) -> Healthcheck {
        var merged = base ?? Healthcheck()
        if let Test, !Test.isEmpty { merged.Test = Test }
        if let Interval, Interval != 0 { merged.Interval = Interval }
        if let Timeout, Timeout != 0 { merged.Timeout = Timeout }
        if let Retries, Retries != 0 { merged.Retries = Retries }
        if let StartPeriod, StartPeriod != 0 { merged.StartPeriod = StartPeriod }
        return merged
    }

    /// Checks what a caller gave: a test of a known kind, durations of a millisecond or more.
    public func validate() throws(HVCError) {
        if let Test, !Test.isEmpty {
            switch Test[0] {
            case "NONE": break
            case "CMD" where Test.count > 1, "CMD-SHELL" where Test.count == 2: break
            default:
                throw HVCError(.invalid, "healthcheck test \(Test.prefix(3)) is not [\"NONE\"], [\"CMD\", ARGS...] or [\"CMD-SHELL\", COMMAND]")
            }
        }
        for (name, value) in [("interval", Interval), ("timeout", Timeout), ("start period", StartPeriod)] {
            if let value, value != 0, value < 1_000_000 {
                throw HVCError(.invalid, "healthcheck \(name) \(value) ns is below a millisecond: give 1ms or more, or 0 for the default")
            }
        }
        if let Retries, Retries < 0 { throw HVCError(.invalid, "healthcheck retries \(Retries) is negative") }
    }

    /// A Go-style duration as `--health-interval` takes it (`30s`, `1m30s`, `500ms`), in nanoseconds.
    public static func parseDuration(_ text: String) throws(HVCError) -> Int64 {
        let units: [(String, Double)] = [("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        var rest = Substring(text)
        var total = 0.0
        guard !rest.isEmpty else { throw HVCError(.invalid, "duration is empty: give one like 30s, 1m30s or 500ms") }
        if rest == "0" { return 0 }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            rest = rest.dropFirst(number.count)
            let unit = units.filter { rest.hasPrefix($0.0) }.max { $0.0.count < $1.0.count }
            guard let value = Double(number), let unit else {
                throw HVCError(.invalid, "duration \"\(text.prefix(32))\" is not like 30s, 1m30s or 500ms")
            }
            rest = rest.dropFirst(unit.0.count)
            total += value * unit.1
        }
        guard total < 1e18 else { throw HVCError(.invalid, "duration \"\(text.prefix(32))\" is too long") }
        return Int64(total)
    }
}

/// How a container's health check has gone.
public struct HealthState: Codable, Equatable, Sendable {
    public enum Status: String, Codable, Sendable {
        case starting, healthy, unhealthy
    }

    public var status: Status
    public var failingStreak: Int
    /// The last probes, oldest first.
    public var log: [HealthProbe]

    public static let keptProbes = 5

    public init(status: Status = .starting, failingStreak: Int = 0, log: [HealthProbe] = []) {
        self.status = status
        self.failingStreak = failingStreak
        self.log = log
    }

    /// Records `probe`; `counts` is false in the start period, where a failure changes nothing.
    public mutating func record(_ probe: HealthProbe, retries: Int, counts: Bool) {
        log = Array((log + [probe]).suffix(HealthState.keptProbes))
        if probe.exitCode == 0 {
            status = .healthy
            failingStreak = 0
        } else if counts {
            failingStreak += 1
            if failingStreak >= retries { status = .unhealthy }
        }
    }
}

/// One run of a health check.
public struct HealthProbe: Codable, Equatable, Sendable {
    public var start: Date
    public var end: Date
    /// Its exit code; -1 when it could not run or ran past its timeout.
    public var exitCode: Int32
    /// Its output, at most `maxOutput` bytes.
    public var output: String

    public static let maxOutput = 4096

    public init(start: Date, end: Date, exitCode: Int32, output: String) {
        self.start = start
        self.end = end
        self.exitCode = exitCode
        self.output = output
    }
}

extension ContainerState {
    /// What `ps` adds to a running container's status: ` (healthy)`, ` (unhealthy)`,
    /// ` (health: starting)`, or nothing without a check.
    public var healthSuffix: String {
        switch health?.status {
        case nil: ""
        case .starting?: " (health: starting)"
        case let status?: " (\(status.rawValue))"
        }
    }
}
