import ArgumentParser
import Foundation
import OCI
import Registry
import Runtime

struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load", abstract: "Load an image from a docker-archive or oci-archive tar file (docker save, skopeo copy).")

    @OptionGroup var global: GlobalOptions
    @Option(name: [.customShort("i"), .customLong("input")], help: "The archive to read.")
    var input: String
    @Option(help: "Also name the image NAME[:TAG].")
    var tag: [String] = []

    func run() throws {
        try HVC.guarded {
            try global.requireLocal("load")
            var tags: [ImageReference] = []
            for text in tag { tags.append(try ImageReference(name: text)) }
            let image = try global.runtime().images.load(archive: input, tags: tags)
            let names = image.references.isEmpty ? image.id : image.references.joined(separator: ", ")
            print("Loaded image: \(names)")
            return 0
        }
    }
}

struct Tag: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tag", abstract: "Give an image another name.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Image name or id.")
    var source: String
    @Argument(help: "New NAME[:TAG].")
    var target: String

    func run() throws {
        try HVC.guarded {
            try global.requireLocal("tag")
            try global.runtime().images.tag(source, as: try ImageReference(name: target))
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
            if let daemon = try global.daemon() {
                for image in images {
                    let data = try daemon.call("DELETE", "/v1/images/\(DaemonClient.escape(image))?force=\(force)")
                    for line in try daemon.decode(RemovedImages.self, data).removed { print(line) }
                }
                return 0
            }
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
        subcommands: [Images.self, ImageInspect.self, ImagePrune.self, RemoveImage.self, Pull.self, Load.self, Save.self, Tag.self, Import.self])
}

struct ImageInspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show images as JSON.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Images (name or id).")
    var images: [String]

    func run() throws {
        try HVC.guarded {
            try global.requireLocal("image inspect")
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
            try global.requireLocal("image prune")
            let runtime = global.runtime()
            let inUse = Set(try runtime.containers.list().map(\.config.imageID))
            for line in try runtime.images.prune(inUse: inUse) { print(line) }
            return 0
        }
    }
}

struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pull", abstract: "Pull an image from a registry (OCI distribution API).")

    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("tls-verify"), help: "Use HTTPS (true) or plain HTTP (false); loopback registries always use HTTP.")
    var tlsVerify = true
    @Flag(name: .shortAndLong, help: "No progress output.")
    var quiet = false
    @Argument(help: "[REGISTRY/]NAME[:TAG][@DIGEST]")
    var reference: String

    func run() throws {
        try HVC.guarded { try pull() }
    }

    private func pull() throws(HVCError) -> Int32 {
        if let daemon = try global.daemon() {
            if !tlsVerify { throw HVCError(.invalid, "--tls-verify=false is not available through hvcd yet") }
            let data = try daemon.call("POST", "/v1/images/pull", body: PullRequest(reference: reference))
            let result = try daemon.decode(PullResult.self, data)
            if !quiet { print("Pulled \(reference): \(result.downloadedBlobs) blobs downloaded") }
            print(result.id)
            return 0
        }
        let showProgress = !quiet && isatty(2) == 1
        let progress: (@Sendable (String) -> Void)?
        if showProgress {
            progress = { line in FileHandle.standardError.write(Data("\r\u{1b}[K\(line)".utf8)) }
        } else {
            progress = nil
        }
        let result = try global.runtime().images.pull(reference, plainHTTP: !tlsVerify, via: RegistryClient.connect, progress: progress)
        if showProgress { FileHandle.standardError.write(Data("\r\u{1b}[K".utf8)) }
        if !quiet {
            let name = result.image.references.first ?? result.image.id
            print("Pulled \(name): \(result.downloadedBlobs) blobs, \(result.downloadedBytes) bytes downloaded")
        }
        print(result.image.id)
        return 0
    }
}

struct Login: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "login", abstract: "Store credentials for a registry.")

    @OptionGroup var global: GlobalOptions
    @Option(name: .shortAndLong, help: "User name.")
    var username: String
    @Flag(help: "Read the password from stdin.")
    var passwordStdin = false
    @Argument(help: "Registry host[:port].")
    var registry: String

    func validate() throws {
        guard passwordStdin else { throw ValidationError("give the password on stdin with --password-stdin") }
    }

    func run() throws {
        try HVC.guarded {
            try global.requireLocal("login")
            let password = (readLine(strippingNewline: true) ?? "")
            guard !password.isEmpty else { throw HVCError(.invalid, "no password on stdin") }
            try global.runtime().images.login(registry: registry, user: username, password: password)
            print("Login stored for \(registry)")
            return 0
        }
    }
}

struct Save: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "save", abstract: "Write an image to an OCI archive (loadable by hvc load, skopeo, podman).")

    @OptionGroup var global: GlobalOptions
    @Option(name: .shortAndLong, help: "The archive to write.")
    var output: String
    @Argument(help: "Image name or id.")
    var image: String

    func run() throws {
        try HVC.guarded {
            try global.requireLocal("save")
            try global.runtime().images.save(image, to: output)
            return 0
        }
    }
}
