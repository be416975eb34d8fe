import ArgumentParser
import Foundation
import OCI
import Runtime

struct Images: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "images", abstract: "List images.", aliases: ["ls"])

    @OptionGroup var global: GlobalOptions
    @Option(help: "Output format: table or json.")
    var format = OutputFormat.table
    @Flag(name: .shortAndLong, help: "Only print image ids.")
    var quiet = false

    func run() throws {
        try HVC.guarded {
            let images: [Image]
            if let daemon = try global.daemon() {
                images = try daemon.decode([Image].self, try daemon.call("GET", "/v1/images"))
            } else {
                images = try global.runtime().images.list()
            }
            if quiet {
                for image in images { print(image.id) }
            } else if format == .json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                encoder.dateEncodingStrategy = .iso8601
                print(String(decoding: try encoder.encode(images), as: UTF8.self))
            } else {
                var rows = [["REPOSITORY", "TAG", "IMAGE ID", "SIZE"]]
                for image in images {
                    let short = String(image.id.dropFirst("sha256:".count).prefix(12))
                    let references = image.references.isEmpty ? ["<none>:<none>"] : image.references
                    for reference in references {
                        let parts = reference.split(separator: ":", maxSplits: 1).map(String.init)
                        rows.append([parts[0], parts.count > 1 ? parts[1] : "", short, formatSize(image.size)])
                    }
                }
                printTable(rows)
            }
            return 0
        }
    }
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Make an image from a root filesystem directory.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Default command (repeat for arguments), e.g. --cmd sh.")
    var cmd: [String] = []
    @Option(help: "Environment of the image (KEY=VALUE).")
    var env: [String] = []
    @Option(help: "A port the image exposes (PORT[/tcp|udp]), published by `run -P`.")
    var expose: [String] = []
    @Option(help: "A path that gets an anonymous volume in every container (the image's VOLUME).")
    var volume: [String] = []
    @Argument(help: "Directory holding the root filesystem.")
    var directory: String
    @Argument(help: "NAME[:TAG] to store it under.")
    var reference: String

    func run() throws {
        try HVC.guarded {
            try global.requireLocal("import")
            let parsed = try ImageReference(name: reference)
            var exposed: [String] = []
            for port in expose {
                let mapping = try PortMapping.parse(port)
                guard mapping.hostPort == 0, mapping.hostIP == nil else {
                    throw HVCError(.invalid, "--expose \(port): give a container port only, e.g. 80/tcp")
                }
                exposed.append("\(mapping.containerPort)/\(mapping.protocol.rawValue)")
            }
            var volumes: [String] = []
            for path in volume { volumes.append(try ContainerMount.checkTarget(path)) }
            let config = ImageConfig(cmd: cmd.isEmpty ? nil : cmd, env: env.isEmpty ? nil : env,
                                     exposedPorts: exposed.isEmpty ? nil : exposed, volumes: volumes.isEmpty ? nil : volumes)
            let image = try global.runtime().images.importDirectory(directory, as: parsed, config: config)
            print(image.id)
            return 0
        }
    }
}

func formatSize(_ bytes: Int64) -> String {
    let units = ["B", "kB", "MB", "GB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1000 && unit < units.count - 1 {
        value /= 1000
        unit += 1
    }
    return unit == 0 ? "\(bytes)B" : String(format: "%.1f%@", value, units[unit])
}

func printTable(_ rows: [[String]]) {
    guard let header = rows.first else { return }
    var widths = header.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
    for row in rows {
        let cells = row.enumerated().map { i, cell in
            i == row.count - 1 ? cell : cell.padding(toLength: widths[i] + 3, withPad: " ", startingAt: 0)
        }
        print(cells.joined())
    }
}
