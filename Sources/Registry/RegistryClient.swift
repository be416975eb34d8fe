import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import OCI

/// A client of the OCI distribution API: manifests and blobs, with bearer-token and basic auth.
/// A module of its own: FoundationNetworking brings libcurl and some thirty libraries with it,
/// which would cost every process that loads them (supervisors, hvc-oci) ~7 ms at start.
public final class RegistryClient: RegistryFetching, @unchecked Sendable {
    /// Connects `ImageStore.pull` to registries over HTTP(S).
    public static let connect: RegistryConnecting = { RegistryClient(reference: $0, credentials: $1, plainHTTP: $2) }

    // @unchecked: used from one thread at a time (a pull); `token` is only touched by it.
    public let reference: RegistryReference
    let credentials: (user: String, password: String)?
    let insecure: Bool
    private var token: String?
    private let session: URLSession

    public init(reference: RegistryReference, credentials: (String, String)?, plainHTTP: Bool) {
        self.reference = reference
        self.credentials = credentials.map { (user: $0.0, password: $0.1) }
        self.insecure = plainHTTP || reference.isLoopback
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 60
        session = URLSession(configuration: configuration)
    }

    var base: String { (insecure ? "http://" : "https://") + reference.apiHost + "/v2/" + reference.repository }

    static let manifestTypes = (MediaTypes.index + MediaTypes.manifest).joined(separator: ", ")

    /// The manifest (or index) `ref` names, its bytes checked against `ref` when it is a digest.
    public func manifest(_ ref: String) throws(OCIError) -> (data: Data, mediaType: String, digest: Digest) {
        let (data, response) = try fetch(base + "/manifests/" + ref, accept: RegistryClient.manifestTypes, limit: 4 << 20)
        let digest = Digest.of(data: data)
        if ref.hasPrefix("sha256:"), digest.description != ref {
            throw .digestMismatch(what: "manifest", expected: ref, actual: digest.description)
        }
        var type = response.value(forHTTPHeaderField: "Content-Type") ?? ""
        if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let declared = object["mediaType"] as? String {
            type = declared
        } else if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], object["manifests"] != nil {
            type = MediaTypes.index[0]
        }
        return (data, type, digest)
    }

    /// Downloads a blob to `path`, resuming a `path.partial` left by an interrupted pull, and
    /// verifies it. Returns the bytes transferred.
    @discardableResult
    public func download(_ descriptor: Descriptor, to path: String, progress: (Int64, Int64) -> Void) throws(OCIError) -> Int64 {
        let partial = path + ".partial"
        var offset: Int64 = 0
        if let attributes = try? FileManager.default.attributesOfItem(atPath: partial), let size = attributes[.size] as? Int64,
           size < descriptor.size {
            offset = size
        } else {
            FileManager.default.createFile(atPath: partial, contents: nil)
        }
        guard let handle = FileHandle(forWritingAtPath: partial) else { throw .missing(partial) }
        _ = try? handle.seekToEnd()
        let url = base + "/blobs/" + descriptor.digest.description
        var transferred: Int64 = 0
        let chunk: Int64 = 8 << 20
        while offset < descriptor.size {
            let end = min(offset + chunk, descriptor.size) - 1
            let (data, response) = try fetch(url, accept: "*/*", limit: Int(chunk), range: (offset, end))
            var slice = data
            if response.statusCode == 200 {
                // No range support: the whole blob came back.
                if offset > 0 { try? handle.truncate(atOffset: 0) }
                slice = data
                offset = 0
            }
            handle.write(slice)
            offset += Int64(slice.count)
            transferred += Int64(slice.count)
            progress(offset, descriptor.size)
            if slice.isEmpty { break }
        }
        try? handle.close()
        let (digest, size) = try Digest.of(file: partial)
        guard digest == descriptor.digest, size == descriptor.size else {
            try? FileManager.default.removeItem(atPath: partial)
            throw .digestMismatch(what: "blob", expected: descriptor.digest.description, actual: digest.description)
        }
        guard rename(partial, path) == 0 else { throw .invalid("rename \(partial): \(String(cString: strerror(errno)))") }
        return transferred
    }

    // MARK: HTTP

    private func fetch(_ url: String, accept: String, limit: Int, range: (Int64, Int64)? = nil) throws(OCIError) -> (Data, HTTPURLResponse) {
        for attempt in 0..<2 {
            guard let target = URL(string: url) else { throw .invalid("bad URL \(url)") }
            var request = URLRequest(url: target)
            request.setValue(accept, forHTTPHeaderField: "Accept")
            if let range { request.setValue("bytes=\(range.0)-\(range.1)", forHTTPHeaderField: "Range") }
            if let token {
                request.setValue("Bearer " + token, forHTTPHeaderField: "Authorization")
            } else if let credentials {
                let basic = Data("\(credentials.user):\(credentials.password)".utf8).base64EncodedString()
                request.setValue("Basic " + basic, forHTTPHeaderField: "Authorization")
            }
            let (data, response) = try send(request)
            if response.statusCode == 401 && attempt == 0,
               let challenge = response.value(forHTTPHeaderField: "WWW-Authenticate") {
                try authenticate(challenge)
                continue
            }
            guard (200..<300).contains(response.statusCode) else {
                let body = String(decoding: data.prefix(200), as: UTF8.self).replacingOccurrences(of: "\n", with: " ")
                throw .invalid("\(reference.apiHost) answered \(response.statusCode) for \(url): \(body)")
            }
            guard data.count <= limit else { throw .invalid("\(url): answer larger than \(limit) bytes") }
            return (data, response)
        }
        throw .invalid("\(reference.apiHost): authentication failed")
    }

    private func send(_ request: URLRequest) throws(OCIError) -> (Data, HTTPURLResponse) {
        let semaphore = DispatchSemaphore(value: 0)
        let box = ResponseBox()
        let task = session.dataTask(with: request) { data, response, error in
            box.set(data, response as? HTTPURLResponse, error)
            semaphore.signal()
        }
        task.resume()
        semaphore.wait()
        let (data, response, error) = box.get()
        if let error { throw .invalid("\(reference.apiHost): \(error.localizedDescription)") }
        guard let response else { throw .invalid("\(reference.apiHost): no HTTP response") }
        return (data ?? Data(), response)
    }

    /// Answers a `WWW-Authenticate` challenge: Basic with the stored credentials, or Bearer by
    /// fetching a token from the realm it names.
    private func authenticate(_ challenge: String) throws(OCIError) {
        if challenge.lowercased().hasPrefix("basic") {
            guard credentials != nil else { throw .invalid("\(reference.registry) wants a login: run `hvc login \(reference.registry)`") }
            return
        }
        guard challenge.lowercased().hasPrefix("bearer") else { throw .unsupported("authentication scheme in \"\(challenge)\"") }
        var parameters: [String: String] = [:]
        for part in challenge.dropFirst(6).split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1)
            if pair.count == 2 {
                parameters[pair[0].trimmingCharacters(in: .whitespaces)] = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
            }
        }
        guard let realm = parameters["realm"], var components = URLComponents(string: realm) else {
            throw .invalid("bearer challenge without a realm")
        }
        var items = components.queryItems ?? []
        if let service = parameters["service"] { items.append(URLQueryItem(name: "service", value: service)) }
        items.append(URLQueryItem(name: "scope", value: parameters["scope"] ?? "repository:\(reference.repository):pull"))
        components.queryItems = items
        guard let url = components.url else { throw .invalid("bad token realm \(realm)") }
        var request = URLRequest(url: url)
        if let credentials {
            let basic = Data("\(credentials.user):\(credentials.password)".utf8).base64EncodedString()
            request.setValue("Basic " + basic, forHTTPHeaderField: "Authorization")
        }
        let (data, response) = try send(request)
        guard response.statusCode == 200,
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let value = (object["token"] ?? object["access_token"]) as? String
        else { throw .invalid("\(realm) gave no token (\(response.statusCode))") }
        token = value
    }
}

final class ResponseBox: @unchecked Sendable {
    // @unchecked: written once by the session's callback before a semaphore signal.
    private var value: (Data?, HTTPURLResponse?, Error?) = (nil, nil, nil)
    func set(_ data: Data?, _ response: HTTPURLResponse?, _ error: Error?) { value = (data, response, error) }
    func get() -> (Data?, HTTPURLResponse?, Error?) { value }
}
