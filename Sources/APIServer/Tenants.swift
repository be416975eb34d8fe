import Foundation
import Runtime

/// Who may do what through the API: read from a JSON file (`--tenants`).
///
///     {"adminGroups": [27], "tenants": {"acme": {"uids": [1001], "gids": [], "maxContainers": 10, "maxMemoryMiB": 4096}}}
///
/// Root and members of `adminGroups` are admins and see everything. A uid mapped to no tenant is
/// a tenant of its own, `uid-<uid>`, as rootless Podman gives each user their own containers.
public struct TenantConfig: Codable, Equatable, Sendable {
    public struct Tenant: Codable, Equatable, Sendable {
        public var uids: [UInt32] = []
        public var gids: [UInt32] = []
        public var maxContainers: Int?
        public var maxMemoryMiB: Int?
        public var maxNetworks: Int?
        /// Whether the tenant's networks may reach the host's own addresses (default: no).
        public var hostAccess: Bool?
        /// Host folders the tenant may bind-mount, with what is beneath them (default: none).
        public var bindRoots: [String]?
        /// Whether the tenant may run nested containers (`--nested`; default: no).
        public var nested: Bool?

        public init(uids: [UInt32] = [], gids: [UInt32] = [], maxContainers: Int? = nil, maxMemoryMiB: Int? = nil,
                    maxNetworks: Int? = nil, hostAccess: Bool? = nil, bindRoots: [String]? = nil, nested: Bool? = nil) {
            self.uids = uids
            self.gids = gids
            self.maxContainers = maxContainers
            self.maxMemoryMiB = maxMemoryMiB
            self.maxNetworks = maxNetworks
            self.hostAccess = hostAccess
            self.bindRoots = bindRoots
            self.nested = nested
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            uids = try c.decodeIfPresent([UInt32].self, forKey: .uids) ?? []
            gids = try c.decodeIfPresent([UInt32].self, forKey: .gids) ?? []
            maxContainers = try c.decodeIfPresent(Int.self, forKey: .maxContainers)
            maxMemoryMiB = try c.decodeIfPresent(Int.self, forKey: .maxMemoryMiB)
            maxNetworks = try c.decodeIfPresent(Int.self, forKey: .maxNetworks)
            hostAccess = try c.decodeIfPresent(Bool.self, forKey: .hostAccess)
            bindRoots = try c.decodeIfPresent([String].self, forKey: .bindRoots)
            nested = try c.decodeIfPresent(Bool.self, forKey: .nested)
        }
    }

    public var adminGroups: [UInt32] = []
    public var tenants: [String: Tenant] = [:]
    /// Limits for tenants the file does not name.
    public var defaultMaxContainers: Int?
    public var defaultMaxMemoryMiB: Int?
    public var defaultMaxNetworks: Int?

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        adminGroups = try c.decodeIfPresent([UInt32].self, forKey: .adminGroups) ?? []
        tenants = try c.decodeIfPresent([String: Tenant].self, forKey: .tenants) ?? [:]
        defaultMaxContainers = try c.decodeIfPresent(Int.self, forKey: .defaultMaxContainers)
        defaultMaxMemoryMiB = try c.decodeIfPresent(Int.self, forKey: .defaultMaxMemoryMiB)
        defaultMaxNetworks = try c.decodeIfPresent(Int.self, forKey: .defaultMaxNetworks)
    }

    public static func load(path: String?) throws -> TenantConfig {
        guard let path else { return TenantConfig() }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HVCError(.runtime, "tenant file \(path) is missing")
        }
        let config: TenantConfig
        do {
            config = try JSONDecoder().decode(TenantConfig.self, from: data)
        } catch let error as DecodingError {
            throw HVCError(.runtime, "tenant file \(path): \(TenantConfig.explain(error)) (see README, \"Tenants\")")
        }
        // Tenant names become cgroup directory names: keep them to one plain path component.
        for name in config.tenants.keys where !TenantConfig.isValidName(name) {
            throw HVCError(.runtime, "tenant name \"\(name)\" in \(path): use letters, digits, _ . - (not . or ..)")
        }
        for (name, tenant) in config.tenants {
            for root in tenant.bindRoots ?? [] where !root.hasPrefix("/") || root.split(separator: "/").contains("..") || root == "/" {
                throw HVCError(.runtime, "bind root \"\(root)\" of tenant \(name) in \(path): give an absolute folder other than /, without ..")
            }
        }
        return config
    }

    /// A decoding error as one short line: where in the file, and what was wrong there.
    static func explain(_ error: DecodingError) -> String {
        func place(_ context: DecodingError.Context) -> String {
            context.codingPath.isEmpty ? "the top level" : context.codingPath.map(\.stringValue).joined(separator: ".")
        }
        func kind(_ type: Any.Type) -> String {
            let name = "\(type)"
            if name.hasPrefix("Array") { return "a list" }
            if name.hasPrefix("Dictionary") { return "an object" }
            if name == "String" { return "a string" }
            if name == "Bool" { return "true or false" }
            return "a number"
        }
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty: return "not valid JSON"
        case .dataCorrupted(let context): return "\(place(context)): an invalid value"
        case .typeMismatch(let type, let context): return "\(place(context)): expected \(kind(type))"
        case .valueNotFound(let type, let context): return "\(place(context)): expected \(kind(type)), found null"
        case .keyNotFound(let key, let context): return "\(place(context)): \(key.stringValue) is missing"
        @unknown default: return "\(error)"
        }
    }

    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name != "." && name != ".." &&
            name.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_.-".unicodeScalars.contains($0)) }
    }

    /// The caller a connection's peer credentials make.
    public func caller(uid: UInt32, gid: UInt32) -> Caller {
        if uid == 0 || adminGroups.contains(gid) {
            return Caller(uid: uid, tenant: uid == 0 ? "default" : "uid-\(uid)", isAdmin: true, limits: (nil, nil))
        }
        for (name, tenant) in tenants.sorted(by: { $0.key < $1.key }) where tenant.uids.contains(uid) || tenant.gids.contains(gid) {
            var caller = Caller(uid: uid, tenant: name, isAdmin: false, limits: (tenant.maxContainers, tenant.maxMemoryMiB))
            caller.maxNetworks = tenant.maxNetworks
            caller.hostAccess = tenant.hostAccess ?? false
            caller.bindRoots = tenant.bindRoots ?? []
            caller.mayNest = tenant.nested ?? false
            return caller
        }
        var caller = Caller(uid: uid, tenant: "uid-\(uid)", isAdmin: false, limits: (defaultMaxContainers, defaultMaxMemoryMiB))
        caller.maxNetworks = defaultMaxNetworks
        caller.bindRoots = []
        return caller
    }
}

/// The identity behind one API request.
public struct Caller: Sendable, Equatable {
    public var uid: UInt32
    public var tenant: String
    public var isAdmin: Bool
    public var maxContainers: Int?
    public var maxMemoryMiB: Int?
    public var maxNetworks: Int?
    /// Whether the caller's networks may reach the host's own addresses.
    public var hostAccess: Bool
    /// Host folders the caller may bind-mount; nil: any (admins).
    public var bindRoots: [String]?
    /// Whether the caller may run nested containers (admins may).
    public var mayNest: Bool

    public init(uid: UInt32, tenant: String, isAdmin: Bool, limits: (Int?, Int?)) {
        self.uid = uid
        self.tenant = tenant
        self.isAdmin = isAdmin
        self.maxContainers = limits.0
        self.maxMemoryMiB = limits.1
        self.hostAccess = isAdmin
        self.mayNest = isAdmin
    }

    /// Whether this caller may see a container of `tenant`.
    public func owns(_ tenant: String) -> Bool { isAdmin || tenant == self.tenant }
}
