import Foundation

/// A registry's manifests and blobs, as a pull reads them (`RegistryClient`, in its own module,
/// over HTTP).
public protocol RegistryFetching {
    /// The manifest (or index) `ref` names, its bytes checked against `ref` when it is a digest.
    func manifest(_ ref: String) throws(OCIError) -> (data: Data, mediaType: String, digest: Digest)
    /// Downloads `descriptor`'s blob to `path`, checked against its digest; the bytes fetched.
    func download(_ descriptor: Descriptor, to path: String, progress: (Int64, Int64) -> Void) throws(OCIError) -> Int64
}

/// Makes the fetcher for one pull: the reference, its registry's credentials, and whether to
/// use plain HTTP.
public typealias RegistryConnecting = @Sendable (RegistryReference, (String, String)?, Bool) -> any RegistryFetching
