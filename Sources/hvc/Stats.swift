import ArgumentParser
import Foundation
import Runtime

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Show what running containers' VMs use: CPU, memory, network and block I/O, processes.")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print one sample (over a second) and exit.")
    var noStream = false
    @Option(help: "Output format: table or json.")
    var format = OutputFormat.table
    @Argument(help: "Containers (name, id or id prefix); default: every running one.")
    var containers: [String] = []

    func run() throws {
        try HVC.guarded {
            let service = try global.containers()
            let names = containers.isEmpty ? try service.list().filter { $0.state.status == .running }.map(\.id) : containers
            var earlier: [String: ContainerStats] = [:]
            for name in names { earlier[name] = try service.stats(name) }
            repeat {
                Thread.sleep(forTimeInterval: 1)
                var rows = [["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]]
                var samples: [[String: String]] = []
                for name in names {
                    let now = try service.stats(name)
                    let cpu = earlier[name].map { now.cpuPercent(since: $0) } ?? 0
                    earlier[name] = now
                    let used = now.memoryBytes - min(now.inactiveFileBytes, now.memoryBytes)
                    let memoryPercent = now.memoryLimitBytes > 0 ? Double(used) / Double(now.memoryLimitBytes) * 100 : 0
                    let row = [String(now.id.prefix(12)), now.name, String(format: "%.2f%%", cpu),
                               Stats.size(used) + " / " + Stats.size(now.memoryLimitBytes), String(format: "%.2f%%", memoryPercent),
                               Stats.size(now.networkReceivedBytes) + " / " + Stats.size(now.networkSentBytes),
                               Stats.size(now.blockReadBytes) + " / " + Stats.size(now.blockWrittenBytes), "\(now.pids)"]
                    rows.append(row)
                    samples.append(Dictionary(uniqueKeysWithValues: zip(["id", "name", "cpu", "memory", "memoryPercent", "network", "block", "pids"], row)))
                }
                if format == .json {
                    print(try jsonText(samples))
                } else {
                    printTable(rows)
                }
            } while !noStream
            return 0
        }
    }

    /// Docker's sizes: `1.5MiB`, `512kB`-style, in binary units.
    static func size(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes)B" : String(format: "%.4g", value) + units[unit]
    }
}
