import Foundation
import Testing

/// `docs/isolation.md`: one row per attack of one tenant on another (or on the host), written by
/// the tests that make the attacks (`make isolation`), never by hand. Each test replaces its own
/// rows; the file keeps the rows of tests that did not run this time.
enum IsolationTable {
    static let path = Harness.repository + "/docs/isolation.md"

    /// The areas, in the table's order.
    static let areas = ["processes", "files", "network", "memory", "API", "resources", "guest faults", "VMM escape"]

    struct Row: Sendable {
        var area: String
        var attack: String
        var expected: String
        var observed: String
        /// The same attack with the boundary removed, and what it did: shows the check sees an escape.
        var control: String
        var held: Bool
        /// The test that makes the attack.
        var test: String

        var key: String { area + "|" + attack }

        func line() -> String {
            let cells = [area, attack, expected, observed, control, held ? "held" : "**NOT HELD**", "`\(test)`"]
            return "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }
                .joined(separator: " | ") + " |"
        }

        static func parse(_ line: Substring) -> Row? {
            var cells: [String] = []
            var cell = ""
            var escaped = false
            for character in line.dropFirst().dropLast() {
                if escaped { cell.append(character); escaped = false; continue }
                if character == "\\" { escaped = true; continue }
                if character == "|" { cells.append(cell.trimmingCharacters(in: .whitespaces)); cell = ""; continue }
                cell.append(character)
            }
            cells.append(cell.trimmingCharacters(in: .whitespaces))
            guard cells.count == 7, areas.contains(cells[0]) else { return nil }
            return Row(area: cells[0], attack: cells[1], expected: cells[2], observed: cells[3], control: cells[4],
                       held: cells[5] == "held", test: cells[6].trimmingCharacters(in: CharacterSet(charactersIn: "`")))
        }
    }

    private static let lock = NSLock()

    /// Records `rows` in the table (replacing rows of the same area and attack) and expects each held.
    static func record(_ rows: [Row], sourceLocation: SourceLocation = #_sourceLocation) {
        for row in rows {
            #expect(row.held, "\(row.area): \(row.attack): observed \(row.observed)", sourceLocation: sourceLocation)
        }
        lock.lock()
        defer { lock.unlock() }
        let existing = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var byKey: [String: Row] = [:]
        var order: [String] = []
        for line in existing.split(separator: "\n") where line.hasPrefix("| ") {
            if let row = Row.parse(line), byKey[row.key] == nil { byKey[row.key] = row; order.append(row.key) }
        }
        for row in rows {
            if byKey[row.key] == nil { order.append(row.key) }
            byKey[row.key] = row
        }
        let sorted = order.enumerated().sorted { a, b in
            let (x, y) = (byKey[a.element]!, byKey[b.element]!)
            let (i, j) = (areas.firstIndex(of: x.area)!, areas.firstIndex(of: y.area)!)
            return i != j ? i < j : a.offset < b.offset
        }.map { byKey[$0.element]! }
        let held = sorted.filter(\.held).count
        var text = """
            # Isolation: what one tenant's container or VMM can do to another's

            Written by the isolation suite (`make isolation`, part of `make test`); do not edit by hand.
            Each row is an attack made by a real container (or, for "VMM escape", by a program run in
            QEMU's place inside a real VM jail), what must happen, what happened, and a control: the same
            attack with the boundary removed, which shows that the check would see the attack succeed.
            A row is rewritten each time its test runs.

            \(held) of \(sorted.count) rows held.

            | Area | Attack | Expected | Observed | Control (boundary removed) | Result | Test |
            | --- | --- | --- | --- | --- | --- | --- |

            """
        text += sorted.map { $0.line() }.joined(separator: "\n") + "\n"
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try? text.write(toFile: path, atomically: true, encoding: .utf8)
    }
}
