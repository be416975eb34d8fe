import ArgumentParser
import Foundation
import Runtime
import VMM

struct PoolGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool",
        abstract: "Manage warm pools: clones of an image's template started ahead, for the fastest start.",
        subcommands: [PoolSet.self, PoolList.self])
}

struct PoolSet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set", abstract: "Keep N started VMs waiting for containers of an image and shape (0 removes the pool).")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var shape: VMShapeOptions
    @Argument(help: "Image name or id.")
    var image: String
    @Argument(help: "How many VMs wait (0 to \(PoolStore.largest)).")
    var size: Int
    @Flag(help: "The pool's VMs serve nested containers (hvc run --nested).")
    var nested = false
    @Option(help: ArgumentHelp("`default`: the VMs have a network interface, for containers on a network; `none`: they have none, for "
                               + "`--network none` containers and hvc-oci's bundles without an interface (image \(OCIContainers.baseImage)).",
                               valueName: "default|none"))
    var network = "default"

    func validate() throws {
        guard (0...PoolStore.largest).contains(size) else { throw ValidationError("the pool size must be between 0 and \(PoolStore.largest)") }
        guard network == "default" || network == "none" else {
            throw ValidationError("--network \(network): a pool's VMs have an interface (default) or none (none)")
        }
    }

    func run() throws {
        try HVC.guarded {
            try global.requireLocal("pool set")
            let runtime = global.runtime()
            let (pool, key, started) = try runtime.setPool(image: image, memoryMiB: try shape.memoryMiB(),
                                                           cpus: shape.cpus, size: size, accelerator: shape.accel, nested: nested,
                                                           networkInterface: network == "default")
            guard pool.size > 0 else { return 0 }
            // Return once the pool is filled, so that the next run finds it.
            let waiting = runtime.pools.awaitMembers(key, size: pool.size, started: started, seconds: 120)
            guard waiting >= pool.size else {
                throw HVCError("pool \(image): only \(waiting) of \(pool.size) VMs came up: see `hvc pool ls` and `hvc run` of the image for why")
            }
            return 0
        }
    }
}

struct PoolList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List warm pools and what their waiting VMs cost.", aliases: ["list"])

    @OptionGroup var global: GlobalOptions
    @Option(help: "Output format: table or json.")
    var format = OutputFormat.table

    func run() throws {
        try HVC.guarded {
            try global.requireLocal("pool ls")
            let runtime = global.runtime()
            let summaries = runtime.poolSummaries()
            if format == .json {
                print(try jsonText(summaries))
            } else {
                var rows = [["IMAGE", "MEMORY", "CPUS", "NETWORK", "SIZE", "WAITING", "PSS"]]
                for s in summaries {
                    rows.append([s.image, "\(s.memoryMiB)MiB", "\(s.cpus)", s.noNetwork == true ? "none" : "default", "\(s.size)", "\(s.waiting)",
                                 formatSize(Int64(s.pssBytes))])
                }
                printTable(rows)
            }
            return 0
        }
    }
}
