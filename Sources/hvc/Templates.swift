import ArgumentParser
import Foundation
import Runtime
import VMM

struct TemplateGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template",
        abstract: "Manage VM templates: booted VMs that `hvc run` clones instead of booting.",
        subcommands: [TemplateCreate.self, TemplateList.self, TemplateRemove.self, TemplatePrune.self])
}

struct TemplateCreate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Make the template for an image and VM shape now, instead of on first use.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var shape: VMShapeOptions
    @Option(help: "`none` for the template of containers run with `--network none` (no network interface).")
    var network: String?
    @Argument(help: "Image name or id.")
    var image: String

    func validate() throws {
        if let network, network != "none" { throw ValidationError("--network takes only none: every other network is joined after the clone") }
    }

    func run() throws {
        try HVC.guarded {
            try global.requireLocal("template create")
            let runtime = global.runtime()
            try runtime.checkAssets()
            let resolved = try runtime.images.resolve(image)
            let accelerator = try runtime.chooseAccelerator(shape.accel).accelerator
            let vm = VMShape(image: resolved, memoryMiB: try shape.memoryMiB(), cpus: try shape.checkedCPUs(), accelerator: accelerator,
                             networkInterface: network == nil)
            let inputs = try runtime.templates.inputs(runtime: runtime, shape: vm)
            let template = try runtime.templates.ensure(runtime: runtime, shape: vm, reference: image, inputs: inputs)
            print(template.key)
            return 0
        }
    }
}

struct TemplateList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List templates.", aliases: ["list"])

    @OptionGroup var global: GlobalOptions
    @Option(help: "Output format: table or json.")
    var format = OutputFormat.table
    @Flag(name: .shortAndLong, help: "Only print template keys.")
    var quiet = false

    func run() throws {
        try HVC.guarded {
            try global.requireLocal("template ls")
            let store = global.runtime().templates
            let templates = store.list()
            if quiet {
                for template in templates { print(template.key) }
            } else if format == .json {
                print(try jsonText(templates.map { TemplateSummary($0, loaded: store.isLoaded($0.key)) }))
            } else {
                var rows = [["KEY", "IMAGE", "MEMORY", "CPUS", "ACCEL", "RESIDENT", "LOADED", "CREATED"]]
                for template in templates {
                    rows.append([
                        String(template.key.prefix(12)), template.image, "\(template.inputs.memoryMiB)MiB",
                        "\(template.inputs.cpus)", template.inputs.accelerator.rawValue,
                        formatSize(Int64(template.memoryDataBytes)), store.isLoaded(template.key) ? "yes" : "no",
                        age(template.created) + " ago",
                    ])
                }
                printTable(rows)
            }
            return 0
        }
    }
}

/// A template as `template ls --format json` shows it.
struct TemplateSummary: Encodable {
    var key: String
    var image: String
    var imageID: String
    var memoryMiB: Int
    var cpus: Int
    var accelerator: String
    /// Non-zero guest memory: what all clones of the template share.
    var residentBytes: Int
    /// Whether a keeper holds the template's sealed memory.
    var loaded: Bool
    var created: Date

    init(_ template: Template, loaded: Bool) {
        key = template.key
        image = template.image
        imageID = template.inputs.imageID
        memoryMiB = template.inputs.memoryMiB
        cpus = template.inputs.cpus
        accelerator = template.inputs.accelerator.rawValue
        residentBytes = template.memoryDataBytes
        self.loaded = loaded
        created = template.created
    }
}

struct TemplateRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove templates (running clones keep their memory).")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Remove every template.")
    var all = false
    @Argument(help: "Template keys or unique key prefixes.")
    var keys: [String] = []

    func validate() throws {
        guard all != !keys.isEmpty else { throw ValidationError("give template keys, or --all") }
    }

    func run() throws {
        try HVC.guarded {
            try global.requireLocal("template rm")
            let store = global.runtime().templates
            let targets = all ? store.list() : try keys.map { (key: String) throws(HVCError) in try store.resolve(key) }
            for template in targets {
                store.remove(template.key)
                print(template.key)
            }
            return 0
        }
    }
}

struct TemplatePrune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune", abstract: "Remove templates that no current run would use: their kernel, agent, QEMU, hvc or image changed.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try HVC.guarded {
            try global.requireLocal("template prune")
            let runtime = global.runtime()
            for template in runtime.templates.list() where !runtime.templates.isCurrent(template, runtime: runtime) {
                runtime.templates.remove(template.key)
                print(template.key)
            }
            return 0
        }
    }
}
