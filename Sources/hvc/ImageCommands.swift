import ArgumentParser
import Foundation
import Runtime

struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load an image from a docker-archive or oci-archive tar file (docker save, skopeo copy).")

    @OptionGroup var global: GlobalOptions
    @Option(name: [.customShort("i"), .customLong("input")], help: "The archive to read.")
    var input: String
    @Option(help: "Also name the image NAME[:TAG].")
    var tag: [String] = []

    func run() throws {
        try HVC.guarded {
            var tags: [ImageReference] = []
            for text in tag { tags.append(try ImageReference(parsing: text)) }
            let image = try global.runtime().images.load(archive: input, tags: tags)
            let names = image.references.isEmpty ? image.id : image.references.joined(separator: ", ")
            print("Loaded image: \(names)")
            return 0
        }
    }
}

struct Tag: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Give an image another name.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Image name or id.")
    var source: String
    @Argument(help: "New NAME[:TAG].")
    var target: String

    func run() throws {
        try HVC.guarded {
            try global.runtime().images.tag(source, as: try ImageReference(parsing: target))
            return 0
        }
    }
}

struct RemoveImage: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rmi", abstract: "Remove images (a name; the image once it has none).")

    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Remove even when a container uses it.")
    var force = false
    @Argument(help: "Images (name or id).")
    var images: [String]

    func run() throws {
        try HVC.guarded {
            let runtime = global.runtime()
            let inUse = Set(try runtime.containers.list().map(\.config.imageID))
            for image in images {
                for line in try runtime.images.remove(image, force: force, inUse: inUse) { print(line) }
            }
            return 0
        }
    }
}

struct ImageGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Manage images.",
        subcommands: [Images.self, ImageInspect.self, ImagePrune.self, RemoveImage.self, Load.self, Tag.self, Import.self])
}

struct ImageInspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show images as JSON.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Images (name or id).")
    var images: [String]

    func run() throws {
        try HVC.guarded {
            let store = global.runtime().images
            var found: [Image] = []
            for image in images { found.append(try store.resolve(image)) }
            print(try jsonText(found))
            return 0
        }
    }
}

struct ImagePrune: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove images with no name that no container uses.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try HVC.guarded {
            let runtime = global.runtime()
            let inUse = Set(try runtime.containers.list().map(\.config.imageID))
            for line in try runtime.images.prune(inUse: inUse) { print(line) }
            return 0
        }
    }
}
