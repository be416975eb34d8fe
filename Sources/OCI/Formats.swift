import Foundation

/// An OCI content descriptor.
public struct Descriptor: Codable, Equatable, Sendable {
    public var mediaType: String?
    public var digest: Digest
    public var size: Int64
    public var annotations: [String: String]?
    public var platform: Platform?
}

public struct Platform: Codable, Equatable, Sendable {
    public var architecture: String
    public var os: String
    public var variant: String?
}

/// An OCI image index (or Docker manifest list).
public struct ImageIndex: Codable, Sendable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var manifests: [Descriptor]
}

/// An OCI image manifest (or Docker schema 2 manifest).
public struct ImageManifest: Codable, Sendable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var config: Descriptor
    public var layers: [Descriptor]
}

/// The image configuration blob: what runs, and the layers' uncompressed digests.
public struct ImageConfigFile: Codable, Sendable {
    public struct Config: Codable, Sendable {
        public var Entrypoint: [String]?
        public var Cmd: [String]?
        public var Env: [String]?
        public var WorkingDir: String?
        public var User: String?
        /// `{"80/tcp": {}}`: the ports `run -P` publishes.
        public var ExposedPorts: [String: EmptyObject]?
        /// `{"/data": {}}`: paths that get an anonymous volume.
        public var Volumes: [String: EmptyObject]?
        public var Healthcheck: OCI.Healthcheck?
    }

    /// A JSON `{}`, whatever it holds.
    public struct EmptyObject: Codable, Sendable {}

    public struct RootFS: Codable, Sendable {
        public var type: String
        public var diff_ids: [Digest]
    }

    public var architecture: String?
    public var os: String?
    public var config: Config?
    public var rootfs: RootFS
}

/// How to tell that a container works (Docker's `HEALTHCHECK`, in an image's config and a
/// container's): `Test` is `["NONE"]` (none), `["CMD", ARGS...]` or `["CMD-SHELL", COMMAND]`;
/// durations in nanoseconds, 0 for the default.
public struct Healthcheck: Codable, Equatable, Sendable {
    public var Test: [String]?
    public var Interval: Int64?
    public var Timeout: Int64?
    public var Retries: Int?
    public var StartPeriod: Int64?

    public init(Test: [String]? = nil, Interval: Int64? = nil, Timeout: Int64? = nil, Retries: Int? = nil, StartPeriod: Int64? = nil) {
        self.Test = Test
        self.Interval = Interval
        self.Timeout = Timeout
        self.Retries = Retries
        self.StartPeriod = StartPeriod
    }
}

/// One entry of a `docker save` archive's `manifest.json`.
public struct DockerArchiveEntry: Codable, Sendable {
    public var Config: String
    public var RepoTags: [String]?
    public var Layers: [String]
}

/// Media types and index selection.
public enum MediaTypes {
    public static let index = ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"]
    public static let manifest = ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"]

    /// The linux/amd64 entry of an index, or its only entry when it names no platform.
    public static func selectPlatform(_ index: ImageIndex) throws(OCIError) -> Descriptor {
        if let match = index.manifests.first(where: { $0.platform?.os == "linux" && $0.platform?.architecture == "amd64" }) {
            return match
        }
        let unnamed = index.manifests.filter { $0.platform == nil }
        if unnamed.count == 1 { return unnamed[0] }
        let offered = index.manifests.compactMap { $0.platform.map { "\($0.os)/\($0.architecture)" } }
        throw .unsupported("no linux/amd64 image in the index (it has: \(offered.joined(separator: ", ")))")
    }
}
