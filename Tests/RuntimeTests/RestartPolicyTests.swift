import AgentProtocol
import Foundation
import OCI
@testable import Runtime
import Testing

struct RestartPolicyTests {
    @Test(arguments: [
        ("no", RestartPolicy(name: .no)), ("always", RestartPolicy(name: .always)),
        ("unless-stopped", RestartPolicy(name: .unlessStopped)), ("on-failure", RestartPolicy(name: .onFailure)),
        ("on-failure:3", RestartPolicy(name: .onFailure, maximumRetries: 3)),
    ])
    func policiesParseAndPrintBack(_ text: String, _ policy: RestartPolicy) throws {
        #expect(try RestartPolicy.parse(text) == policy)
        #expect(policy.text == text)
    }

    @Test(arguments: ["sometimes", "always:3", "on-failure:-1", "on-failure:x", "", "ON-FAILURE"])
    func badPoliciesAreRefused(_ text: String) {
        #expect(throws: HVCError.self) { try RestartPolicy.parse(text) }
    }

    @Test func whichEndsRestart() {
        let bounded = RestartPolicy(name: .onFailure, maximumRetries: 2)
        #expect(bounded.restarts(after: 1, count: 0) && bounded.restarts(after: 137, count: 1))
        #expect(!bounded.restarts(after: 1, count: 2) && !bounded.restarts(after: 0, count: 0))
        #expect(RestartPolicy(name: .onFailure).restarts(after: 1, count: 1000))
        #expect(RestartPolicy(name: .always).restarts(after: 0, count: 1000))
        #expect(!RestartPolicy(name: .no).restarts(after: 1, count: 0))
    }

    @Test func thePauseDoublesToAMinute() {
        #expect(RestartPolicy.delay(quickRuns: 0) == 0.1 && RestartPolicy.delay(quickRuns: 1) == 0.1)
        #expect(RestartPolicy.delay(quickRuns: 2) == 0.2 && RestartPolicy.delay(quickRuns: 4) == 0.8)
        #expect(RestartPolicy.delay(quickRuns: 30) == 60)
    }
}

struct ContainerFilterTests {
    func record(labels: [String: String]?, status: ContainerStatus = .running, exitCode: Int32? = nil) -> ContainerRecord {
        var config = ContainerConfig(
            id: "ab" + String(repeating: "0", count: 62), name: "web-1", image: "busybox", imageID: "sha256:" + String(repeating: "e", count: 64),
            process: .init(ProcessSpec(arguments: ["sh"])), hostname: "h", memoryMiB: 64, cpus: 1, pidsLimit: 64, accelerator: .tcg,
            tenant: "default", created: Date(), autoRemove: false, logMaxBytes: 1 << 20, template: nil, network: "bridge", ports: nil)
        config.labels = labels
        var state = ContainerState()
        state.status = status
        state.exitCode = exitCode
        return ContainerRecord(config: config, state: state, logPath: "")
    }

    @Test func keysAreAllOfAndValuesOneOf() throws {
        let web = record(labels: ["tier": "web", "team": ""])
        func holds(_ texts: [String]) throws -> Bool { try ContainerFilter(parsing: texts).matches(web) }
        #expect(try holds([]))
        #expect(try holds(["label=tier=web"]) && holds(["label=team"]) && holds(["label=tier"]))
        #expect(try !holds(["label=tier=db"]) && !holds(["label=owner"]))
        #expect(try !holds(["label=tier=db", "label=tier=web"]) && holds(["label=tier=web", "label=team"]))
        #expect(try holds(["name=nope", "name=web"]))
        #expect(try !holds(["label=tier=web", "status=exited"]))
        #expect(try holds(["id=ab00", "name=web", "name=/web-1", "ancestor=busybox", "ancestor=sha256:eeee", "network=bridge"]))
        #expect(try !holds(["id=cd"]) && !holds(["ancestor=alpine"]) && !holds(["network=other"]))
        #expect(try ContainerFilter(parsing: ["exited=3"]).matches(record(labels: nil, status: .exited, exitCode: 3)))
        #expect(try !ContainerFilter(parsing: ["exited=3"]).matches(record(labels: nil, status: .exited, exitCode: 0)))
    }

    @Test(arguments: ["colour=red", "label", "exited=x", "id="])
    func badFiltersAreRefused(_ text: String) {
        #expect(throws: HVCError.self) { try ContainerFilter(parsing: [text]) }
    }
}

struct HealthcheckTests {
    @Test(arguments: [("30s", Int64(30_000_000_000)), ("1m30s", 90_000_000_000), ("500ms", 500_000_000), ("0", 0), ("1.5s", 1_500_000_000),
                      ("2h", 7_200_000_000_000), ("10us", 10_000)])
    func durationsParse(_ text: String, _ nanoseconds: Int64) throws {
        #expect(try Healthcheck.parseDuration(text) == nanoseconds)
    }

    @Test(arguments: ["", "30", "s", "3x", "1m30", "-1s"])
    func badDurationsAreRefused(_ text: String) {
        #expect(throws: HVCError.self) { try Healthcheck.parseDuration(text) }
    }

    @Test func testsBecomeCommandsAndFlagsGoOverTheImage() throws {
        #expect(Healthcheck(Test: ["CMD-SHELL", "curl -f localhost"]).command == ["/bin/sh", "-c", "curl -f localhost"])
        #expect(Healthcheck(Test: ["CMD", "/bin/check", "-q"]).command == ["/bin/check", "-q"])
        #expect(Healthcheck(Test: ["NONE"]).command == nil && Healthcheck().command == nil)
        let image = Healthcheck(Test: ["CMD", "/bin/check"], Interval: 5_000_000_000, Retries: 5)
        let flags = Healthcheck(Interval: 1_000_000_000, Timeout: 2_000_000_000)
        let merged = flags.overriding(image)
        #expect(merged.command == ["/bin/check"] && merged.interval == 1_000_000_000 && merged.timeout == 2_000_000_000 && merged.retries == 5)
        #expect(Healthcheck(Test: ["NONE"]).overriding(image).command == nil)
        #expect(Healthcheck().interval == Healthcheck.defaultInterval && Healthcheck().retries == 3)
        for bad in [Healthcheck(Test: ["SHELL", "x"]), Healthcheck(Test: ["CMD"]), Healthcheck(Interval: 5), Healthcheck(Retries: -1)] {
            #expect(throws: HVCError.self, "\(bad)") { try bad.validate() }
        }
        try Healthcheck(Test: ["CMD-SHELL", "true"], Interval: 1_000_000).validate()
    }

    @Test func retriesFailuresInARowMakeItUnhealthyAndASuccessHealthy() {
        var health = HealthState()
        func probe(_ code: Int32) -> HealthProbe { HealthProbe(start: Date(), end: Date(), exitCode: code, output: "") }
        health.record(probe(1), retries: 2, counts: false)
        #expect(health.status == .starting && health.failingStreak == 0)
        health.record(probe(1), retries: 2, counts: true)
        #expect(health.status == .starting && health.failingStreak == 1)
        health.record(probe(1), retries: 2, counts: true)
        #expect(health.status == .unhealthy && health.failingStreak == 2)
        health.record(probe(0), retries: 2, counts: true)
        #expect(health.status == .healthy && health.failingStreak == 0)
        for _ in 0..<10 { health.record(probe(0), retries: 2, counts: true) }
        #expect(health.log.count == HealthState.keptProbes)
    }
}
