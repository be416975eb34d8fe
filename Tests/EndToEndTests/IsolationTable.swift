import Foundation
import Synchronization
import Testing

/// `docs/isolation.md`: one row per attack of one tenant on another (or on the host), written
/// whole by one test run (`make isolation`, part of `make test`), never by hand: the first row
/// a run records starts the file afresh, headed by the commit and the date, so that it holds
/// only what this run showed. `Tests/isolation-check.py` (run by `make test` and `make
/// isolation`) then fails the run if a row is not held, or if its rows differ from the
/// committed file's (area, attack, expected, result: what a run proves, without its timings).
///
/// A row shows three facts of this run: the attack was made (evidence: the attacker's own
/// line, a count above zero), its outcome was the expected one (the exact denial, not any
/// failure), and the control (the same attack with the boundary removed) succeeded. A row
/// missing any of them is "not shown", which fails the suite like a row not held.
///
/// The broken variant (`HVC_ISOLATION_MUTANT=attacks`, `make mutants`) makes every attack
/// through `attack(_:disabled:)` do nothing instead, and writes its rows to
/// `.build/isolation-mutant.md`; `Tests/isolation-check.py --mutant` then requires every row of
/// the table to have gone red there: a row that holds without its attack proves nothing.
enum IsolationTable {
    /// Set in the broken variant: every attack is disabled, and every row must fail.
    static let attacksDisabled = ProcessInfo.processInfo.environment["HVC_ISOLATION_MUTANT"] == "attacks"

    static let path = Harness.repository + (attacksDisabled ? "/.build/isolation-mutant.md" : "/docs/isolation.md")

    /// Makes the attack; in the broken variant, `disabled` (what the test does instead, e.g.
    /// nothing, or the same container without its attack) and not the attack.
    static func attack<T>(_ attack: @autoclosure () throws -> T, disabled: @autoclosure () throws -> T) rethrows -> T {
        try attacksDisabled ? disabled() : attack()
    }

    /// The areas, in the table's order.
    static let areas = ["processes", "files", "network", "memory", "API", "resources", "guest faults", "VMM escape"]

    struct Row: Sendable {
        var area: String
        var attack: String
        var expected: String
        /// What shows the attack was made in this run; nil: it was not.
        var attempted: String?
        var observed: String
        /// The outcome is the expected one.
        var outcomeHeld: Bool
        /// The same attack with the boundary removed, and what it did.
        var control: String
        /// The control reached what the attack could not, in this run.
        var controlShown: Bool
        /// The test that makes the attack.
        var test: String

        enum Result: String {
            case held
            case notHeld = "**NOT HELD**"
            case notShown = "**NOT SHOWN**"
        }

        var result: Result {
            guard attempted != nil, controlShown else { return .notShown }
            return outcomeHeld ? .held : .notHeld
        }

        func line() -> String {
            let cells = [area, attack, expected, attempted ?? "not attempted", observed, control, result.rawValue, "`\(test)`"]
            return "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }
                .joined(separator: " | ") + " |"
        }
    }

    /// This run's rows, in the order they were recorded.
    private static let recorded = Mutex<[Row]>([])

    /// Records `rows` and expects each held; rewrites the table with every row of this run.
    static func record(_ rows: [Row], sourceLocation: SourceLocation = #_sourceLocation) {
        for row in rows {
            if attacksDisabled {
                #expect(row.result != .held, "\(row.area): \(row.attack): held with its attack disabled", sourceLocation: sourceLocation)
            } else {
                #expect(row.result == .held,
                        "\(row.area): \(row.attack): \(row.result.rawValue): attempted \(row.attempted ?? "no"), observed \(row.observed), control \(row.control)",
                        sourceLocation: sourceLocation)
            }
        }
        let all = recorded.withLock { recorded in
            recorded += rows
            return recorded
        }
        write(all, sourceLocation: sourceLocation)
    }

    /// The commit the tests run from, and whether the sources differ from it.
    static let revision: String = {
        let head = Harness.run(["/usr/bin/git", "-C", Harness.repository, "rev-parse", "--short=12", "HEAD"])
        let changes = Harness.run(["/usr/bin/git", "-C", Harness.repository, "status", "--porcelain", "--", "Sources", "Tests", "rootfs", "Specs"])
        let commit = head.trimmingCharacters(in: .whitespacesAndNewlines)
        return (commit.isEmpty ? "unknown" : commit) + (changes.isEmpty ? "" : " with uncommitted changes")
    }()

    static let started: String = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withSpaceBetweenDateAndTime]
        return formatter.string(from: Date()) + " UTC"
    }()

    private static func write(_ rows: [Row], sourceLocation: SourceLocation) {
        // By area, then by test, then in the order each test recorded them: the same order every run.
        let sorted = rows.enumerated().sorted { a, b in
            let (x, y) = (a.element, b.element)
            let (i, j) = (areas.firstIndex(of: x.area) ?? areas.count, areas.firstIndex(of: y.area) ?? areas.count)
            if i != j { return i < j }
            if x.test != y.test { return x.test < y.test }
            return a.offset < b.offset
        }.map(\.element)
        let held = sorted.filter { $0.result == .held }.count
        var text = """
            # Isolation: what one tenant's container or VMM can do to another's\(attacksDisabled ? " (broken variant: every attack disabled)" : "")

            Written by one run of the isolation suite (`make isolation`, part of `make test`) at commit
            \(revision), \(started); do not edit by hand. Each row is an attack made by a real container
            (or, for "VMM escape", by a program run in QEMU's place inside a real VM jail): what must
            happen, what shows the attack was made in this run, what happened, and a control: the same
            attack with the boundary removed, which shows that the check would see the attack succeed.
            A row without its attempt or its control is "not shown" and fails the run.

            \(held) of \(sorted.count) rows held.

            | Area | Attack | Expected | Attempted | Observed | Control (boundary removed) | Result | Test |
            | --- | --- | --- | --- | --- | --- | --- | --- |

            """
        text += sorted.map { $0.line() }.joined(separator: "\n") + "\n"
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            Issue.record("cannot write \(path): \(error)", sourceLocation: sourceLocation)
        }
    }
}
