import ArgumentParser
import Foundation
import Runtime
import Synchronization

struct PS: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List containers.")

    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Show all containers (default: only running ones).")
    var all = false
    @Flag(name: .shortAndLong, help: "Only print container ids.")
    var quiet = false
    @Option(help: "Output format: table or json.")
    var format = OutputFormat.table
    @Option(name: [.customShort("f"), .customLong("filter")],
            help: "Show only containers that match: id=, name=, label=KEY[=VALUE], status=, ancestor=, exited=, network=, volume= (one key's values are alternatives).")
    var filter: [String] = []

    func run() throws {
        try HVC.guarded {
            let matching = try ContainerFilter(parsing: filter)
            let everything = try global.containers().list()
            let records = everything.filter { (all || $0.state.status == .running || matching.values["status"] != nil) && matching.matches($0) }
            if quiet {
                for record in records { print(String(record.id.prefix(12))) }
            } else if format == .json {
                print(try jsonText(records.map(ContainerSummary.init)))
            } else {
                var rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES", "TENANT"]]
                for record in records {
                    let summary = ContainerSummary(record)
                    var command = summary.command
                    if command.count > 22 { command = String(command.prefix(20)) + "…" }
                    rows.append([String(record.id.prefix(12)), record.config.image, "\"\(command)\"",
                                 age(record.config.created) + " ago", summary.status, summary.ports.joined(separator: ", "),
                                 record.name, record.config.tenant])
                }
                printTable(rows)
            }
            return 0
        }
    }
}

/// One line of `ps --format json`.
struct ContainerSummary: Codable {
    var id: String
    var name: String
    var image: String
    var command: String
    var created: Date
    var state: String
    var status: String
    var exitCode: Int32?
    var tenant: String
    var network: String?
    var address: String?
    /// `0.0.0.0:8080->80/tcp`, as Docker's `ps` shows them.
    var ports: [String]

    init(_ record: ContainerRecord) {
        id = record.id
        name = record.name
        image = record.config.image
        command = record.config.process.arguments.joined(separator: " ")
        created = record.config.created
        state = record.state.status.rawValue
        tenant = record.config.tenant
        exitCode = record.state.exitCode
        network = record.config.network
        address = record.state.endpoint.map { $0.address.description }
        ports = (record.state.endpoint?.ports ?? []).map {
            "\($0.hostIP?.description ?? "0.0.0.0"):\($0.hostPort)->\($0.containerPort)/\($0.protocol.rawValue)"
        }
        switch record.state.status {
        case .created: status = "Created"
        case .running: status = "Up " + age(record.state.started ?? record.config.created) + record.state.healthSuffix
        case .exited where record.state.restarting == true:
            status = "Restarting (\(record.state.exitCode ?? -1)) " + age(record.state.finished ?? record.config.created) + " ago"
        case .exited: status = "Exited (\(record.state.exitCode ?? -1)) " + age(record.state.finished ?? record.config.created) + " ago"
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show a container's configuration and state as JSON.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Containers (name, id or id prefix).")
    var containers: [String]

    func run() throws {
        try HVC.guarded {
            let service = try global.containers()
            var records: [ContainerRecord] = []
            for container in containers { records.append(try service.inspect(container)) }
            print(try jsonText(records))
            return 0
        }
    }
}

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print a container's output.")

    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Keep printing new output until the container exits.")
    var follow = false
    @Option(help: "Only the last N lines.")
    var tail: Int?
    @Flag(name: .shortAndLong, help: "Prefix each line with its time.")
    var timestamps = false
    @Argument(help: "Container (name, id or id prefix).")
    var container: String

    func validate() throws {
        if let tail, tail < 0 { throw ValidationError("--tail must not be negative") }
    }

    func run() throws {
        try HVC.guarded {
            if let daemon = try global.daemon() {
                if follow || timestamps { throw HVCError(.invalid, "logs -f and -t are not available through hvcd yet") }
                let query = tail.map { "?tail=\($0)" } ?? ""
                FileHandle.standardOutput.write(try daemon.call("GET", "/v1/containers/\(DaemonClient.escape(container))/logs\(query)"))
                return 0
            }
            let store = global.runtime().containers
            let record = try store.resolve(container)
            let reader = ContainerLogReader(path: record.logPath)
            var (entries, offset) = reader.read()
            if let tail { entries = Array(entries.suffix(tail)) }
            Logs.write(entries, timestamps: timestamps)
            guard follow else { return 0 }
            // New output each time the log is written, until the container has exited (its state,
            // read before the log, says so once all of its output is in the log) or is removed.
            let position = LogPosition(offset)
            let stamped = timestamps
            let watch = try ContainerWatch.of(store)
            var ended = false
            while !ended {
                let last = watch.wait(for: record.id, seconds: 3600) { current in
                    let more = position.offset.withLock { offset in
                        let more = reader.read(from: offset, includeRotated: false)
                        offset = more.next
                        return more.entries
                    }
                    Logs.write(more, timestamps: stamped)
                    return current.map { $0.state.status == .exited } ?? true
                }
                ended = last.map { $0.state.status == .exited } ?? true
            }
            return 0
        }
    }

    static func write(_ entries: [LogEntry], timestamps: Bool) {
        for entry in entries {
            let text = timestamps ? logTimestamp(entry.time) + " " + entry.log : entry.log
            let handle = entry.stream == "stderr" ? FileHandle.standardError : FileHandle.standardOutput
            handle.write(Data(text.utf8))
        }
    }
}

/// How far `logs -f` has read, shared with the watch's thread.
final class LogPosition: Sendable {
    let offset: Mutex<UInt64>
    init(_ offset: UInt64) { self.offset = Mutex(offset) }
}

/// `--format` of the listing verbs; any other value is refused by the parser.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

func jsonText<T: Encodable>(_ value: T) throws(HVCError) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    do {
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    } catch {
        throw HVCError("encode", cause: error)
    }
}

/// "5 seconds", "3 minutes", ... as Docker prints ages.
func age(_ date: Date) -> String {
    let seconds = max(0, Int(Date().timeIntervalSince(date)))
    switch seconds {
    case ..<60: return "\(seconds) second\(seconds == 1 ? "" : "s")"
    case ..<3600: return "\(seconds / 60) minute\(seconds / 60 == 1 ? "" : "s")"
    case ..<86400: return "\(seconds / 3600) hour\(seconds / 3600 == 1 ? "" : "s")"
    default: return "\(seconds / 86400) day\(seconds / 86400 == 1 ? "" : "s")"
    }
}
