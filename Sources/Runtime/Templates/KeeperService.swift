import CLinux
import Foundation
import HVCSystem

/// Starts template keepers for callers whose own process tree cannot hold one. hvc-oci runs
/// under a subreaper (conmon, containerd's shim), which adopts every process it leaves behind:
/// conmon waits for all of them before it ends, so a keeper started there leaves at once and the
/// next container loads its template again. hvcd serves this socket, and the keepers it starts
/// are its own children, outside any caller's tree: they stay for the next container.
///
/// The same holds for warm pools: the VM that takes a claimed one's place is started here when a
/// caller asks with `refill POOL KEY`.
///
/// One line each way: `keep KEY`, answered `ready` or the keeper's report line; `refill POOL KEY`,
/// answered `ok` before the VMs are started. Only root may ask (the socket is
/// root's, mode 0600, and the peer's uid is checked).
public enum KeeperService {
    public static func path(_ paths: RuntimePaths) -> String { paths.runRoot + "/keepers.sock" }

    /// Serves the socket on a thread of its own, one thread per request.
    public static func serve(runtime: Runtime) throws(HVCError) {
        let socket = path(runtime.paths)
        try makeDirectory(runtime.paths.runRoot, mode: 0o711)
        unlink(socket)
        let fd = hvc_unix_listen(socket, 64)
        guard fd >= 0 else { throw HVCError("keeper service \(socket): \(Errno.current)") }
        chmod(socket, 0o600)
        let listener = FileDescriptor(fd)
        Thread.detachNewThread {
            while let client = try? listener.accept() {
                Thread.detachNewThread { answer(client, runtime: runtime) }
            }
        }
    }

    private static func answer(_ client: FileDescriptor, runtime: Runtime) {
        var uid: uid_t = 0, gid: gid_t = 0, pid: pid_t = 0
        guard hvc_peer_credentials(client.raw, &uid, &gid, &pid) == 0, uid == 0 else { return }
        client.setReceiveTimeout(seconds: 5)
        let request = ((try? client.readLine(max: 128)) ?? nil).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let reply: String
        if request.hasPrefix("keep "), case let key = String(request.dropFirst(5)), TemplateStore.isKey(key) {
            let store = runtime.templates
            if store.load(key) == nil {
                reply = TemplateKeeper.StartError.failed("template \(key.prefix(12)) is missing").reportLine
            } else if TemplateKeeper.running(store: store, key: key) != nil {
                reply = TemplateKeeper.readyLine
            } else {
                do {
                    try TemplateKeeper.start(store: store, key: key, runtime: runtime)
                    reply = TemplateKeeper.readyLine
                } catch {
                    reply = error.reportLine
                }
            }
        } else if request.hasPrefix("refill "), case let words = request.split(separator: " "), words.count == 3,
                  Pool.isName(String(words[1])), TemplateStore.isKey(String(words[2])) {
            // Answered first: the claimer goes on with its container while the new VM starts.
            _ = try? client.writeAll(Array((refillingLine + "\n").utf8))
            client.close()
            runtime.refillPool(named: String(words[1]), templateKey: String(words[2]))
            return
        } else {
            reply = TemplateKeeper.StartError.failed("the keeper service takes `keep KEY` or `refill POOL KEY`").reportLine
        }
        _ = try? client.writeAll(Array((reply + "\n").utf8))
    }

    static let refillingLine = "ok"

    /// Asks the service to refill pool `pool` (of template `key`); nil when no service answers.
    static func requestRefill(pool: String, key: String, paths: RuntimePaths) -> Void? {
        let fd = hvc_unix_connect(path(paths))
        guard fd >= 0 else { return nil }
        let connection = FileDescriptor(fd)
        connection.setReceiveTimeout(seconds: 10)
        guard (try? connection.writeAll(Array("refill \(pool) \(key)\n".utf8))) != nil,
              let answer = (try? connection.readLine(max: 4096)) ?? nil,
              String(decoding: answer, as: UTF8.self) == refillingLine else { return nil }
        return ()
    }

    /// Asks the service for the keeper of `key`; nil when no service answers (the caller then
    /// starts the keeper itself).
    static func request(key: String, paths: RuntimePaths) -> Result<Void, TemplateKeeper.StartError>? {
        let fd = hvc_unix_connect(path(paths))
        guard fd >= 0 else { return nil }
        let connection = FileDescriptor(fd)
        // Loading a template's memory takes a second or two at most; a wedged service is no service.
        connection.setReceiveTimeout(seconds: 60)
        guard (try? connection.writeAll(Array("keep \(key)\n".utf8))) != nil else { return nil }
        guard let answer = (try? connection.readLine(max: 4096)) ?? nil else { return nil }
        let line = String(decoding: answer, as: UTF8.self)
        return line == TemplateKeeper.readyLine ? .success(()) : .failure(TemplateKeeper.StartError(reportLine: line.sanitizedGuestText))
    }
}
