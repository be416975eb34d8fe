import APIServer
import Foundation
import Testing

struct RouteTests {
    @Test(arguments: [
        ("GET", "/v1/version", Route.version),
        ("GET", "/v1/info", .info),
        ("GET", "/v1/containers", .listContainers),
        ("POST", "/v1/containers", .createContainer),
        ("GET", "/v1/containers/abc", .inspectContainer("abc")),
        ("DELETE", "/v1/containers/abc", .deleteContainer("abc")),
        ("POST", "/v1/containers/abc/start", .startContainer("abc")),
        ("POST", "/v1/containers/abc/stop", .stopContainer("abc")),
        ("POST", "/v1/containers/abc/kill", .killContainer("abc")),
        ("POST", "/v1/containers/abc/wait", .waitContainer("abc")),
        ("GET", "/v1/containers/abc/logs", .containerLogs("abc")),
        ("GET", "/v1/images", .listImages),
        ("POST", "/v1/images/pull", .pullImage),
        ("POST", "/v1/images/load", .loadImage),
        ("DELETE", "/v1/images/busybox:latest", .deleteImage("busybox:latest")),
        ("GET", "/v1/networks", .listNetworks),
        ("POST", "/v1/networks", .createNetwork),
        ("POST", "/v1/networks/prune", .pruneNetworks),
        ("GET", "/v1/networks/front", .inspectNetwork("front")),
        ("DELETE", "/v1/networks/front", .deleteNetwork("front")),
    ])
    func routes(_ method: String, _ path: String, _ route: Route) {
        #expect(Route(method: method, path: path) == route)
    }

    @Test(arguments: [("GET", "/"), ("GET", "/v2/version"), ("PUT", "/v1/containers"), ("GET", "/v1/containers//start"),
                      ("POST", "/v1/containers/abc/explode"), ("GET", "/v1"), ("DELETE", "/v1/images")])
    func unknownRoutes(_ method: String, _ path: String) {
        #expect(Route(method: method, path: path) == nil)
    }
}

struct TenantTests {
    let config: TenantConfig = {
        var config = TenantConfig()
        config.adminGroups = [27]
        config.tenants["acme"] = .init(uids: [1001, 1002], gids: [], maxContainers: 2, maxMemoryMiB: 1024)
        config.tenants["globex"] = .init(uids: [], gids: [3000])
        return config
    }()

    @Test func rootAndAdminGroupsAreAdmins() {
        #expect(config.caller(uid: 0, gid: 0).isAdmin)
        #expect(config.caller(uid: 5000, gid: 27).isAdmin)
    }

    @Test func mappedUsersAndGroupsGetTheirTenant() {
        let acme = config.caller(uid: 1002, gid: 100)
        #expect(acme.tenant == "acme" && !acme.isAdmin)
        #expect(acme.maxContainers == 2 && acme.maxMemoryMiB == 1024)
        #expect(config.caller(uid: 7, gid: 3000).tenant == "globex")
    }

    @Test func networkLimitsAndHostAccessComeFromTheFile() throws {
        let file = #"{"defaultMaxNetworks": 2, "tenants": {"web": {"uids": [1500], "maxNetworks": 4, "hostAccess": true}, "db": {"uids": [1600]}}}"#
        let config = try JSONDecoder().decode(TenantConfig.self, from: Data(file.utf8))
        let web = config.caller(uid: 1500, gid: 1500), db = config.caller(uid: 1600, gid: 1600)
        #expect(web.maxNetworks == 4 && web.hostAccess)
        #expect(db.maxNetworks == nil && !db.hostAccess, "tenants reach the host's services only when the file says so")
        #expect(config.caller(uid: 4000, gid: 4000).maxNetworks == 2)
        #expect(config.caller(uid: 0, gid: 0).hostAccess)
    }

    @Test func unmappedUsersAreTenantsOfTheirOwn() {
        let caller = config.caller(uid: 4242, gid: 4242)
        #expect(caller.tenant == "uid-4242" && !caller.isAdmin)
    }

    @Test func ownership() {
        let acme = config.caller(uid: 1001, gid: 1)
        #expect(acme.owns("acme"))
        #expect(!acme.owns("globex"))
        #expect(config.caller(uid: 0, gid: 0).owns("globex"))
    }
}

struct TenantFileTests {
    @Test func everyKeyIsOptional() throws {
        let empty = try JSONDecoder().decode(TenantConfig.self, from: Data("{}".utf8))
        #expect(empty == TenantConfig())
        let partial = try JSONDecoder().decode(TenantConfig.self, from: Data(#"{"tenants": {"a": {"uids": [5]}}}"#.utf8))
        #expect(partial.tenants["a"]?.uids == [5])
        #expect(partial.tenants["a"]?.maxContainers == nil)
    }
}

/// A malformed tenants file stops hvcd with one line naming the place and the problem.
struct MalformedTenantFileTests {
    @Test(arguments: [
        ("{\"tenants\": ", "not valid JSON"),
        ("{\"tenants\": {\"a\": {\"uids\": \"x\"}}}", "tenants.a.uids: expected a list"),
        ("[]", "the top level: expected an object"),
        ("{\"defaultMaxContainers\": \"many\"}", "defaultMaxContainers: expected a number"),
    ])
    func malformedFilesAreExplained(_ text: String, _ problem: String) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tenants-\(UUID().uuidString).json").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect {
            _ = try TenantConfig.load(path: path)
        } throws: { error in
            "\(error)" == "tenant file \(path): \(problem) (see README, \"Tenants\")"
        }
    }
}

struct TenantNameTests {
    @Test(arguments: ["acme", "team-1", "a.b_c"])
    func valid(_ name: String) { #expect(TenantConfig.isValidName(name)) }

    @Test(arguments: ["", ".", "..", "a/b", "../x", "naïve", String(repeating: "x", count: 65)])
    func invalid(_ name: String) { #expect(!TenantConfig.isValidName(name)) }
}
