import ArgumentParser
import Foundation
import Runtime
import VMM

struct Copy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cp",
        abstract: "Copy files between a running container and the host: CONTAINER:PATH HOSTPATH, or HOSTPATH CONTAINER:PATH.",
        discussion: "The container's own tar and stat do its side (busybox's serve). Out of a container come files, directories and links, never set-ID bits or devices.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Source: CONTAINER:PATH or a host path.")
    var source: String
    @Argument(help: "Destination: a host path or CONTAINER:PATH.")
    var destination: String

    /// `CONTAINER:PATH`, as Docker tells it from a host path: a colon before any slash.
    static func containerPath(_ text: String) -> (container: String, path: String)? {
        guard let colon = text.firstIndex(of: ":"), !text[..<colon].contains("/"), colon != text.startIndex else { return nil }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    func run() throws {
        try HVC.guarded {
            let service = try global.containers()
            switch (Copy.containerPath(source), Copy.containerPath(destination)) {
            case (let from?, nil):
                let record = try service.inspect(from.container)
                _ = try ContainerFiles.copyOut(over: { () throws(HVCError) in try service.control(record) }, record, path: from.path, to: destination)
            case (nil, let to?):
                let record = try service.inspect(to.container)
                try ContainerFiles.copyIn(over: { () throws(HVCError) in try service.control(record) }, record, from: source, to: to.path)
            default:
                throw HVCError(.invalid, "hvc cp copies between a container and the host: give CONTAINER:PATH as exactly one of the two")
            }
            return 0
        }
    }
}
