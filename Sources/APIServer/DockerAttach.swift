import AgentProtocol
import Foundation
import HVCSystem
import Runtime
import VMM

/// Docker's attach and exec: the connection is taken over (`Hijack`) and relayed to the
/// container's supervisor (`DockerRelay`).
extension DockerHandler {
    static let streamType = "application/vnd.docker.raw-stream"

    /// `POST /containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1`. To a container that
    /// is not running (the docker CLI attaches before it starts) it waits for `start`, which
    /// then holds the command until this client has attached; with `logs=1`, the log so far first.
    func attach(_ record: ContainerRecord, query: [String: String]) throws -> Response {
        let relay: @Sendable (FrameChannel, FileDescriptor) -> DockerRelay = { channel, client in
            DockerRelay(channel: channel, client: client, terminal: record.config.process.terminal, stdin: Handler.flag(query, "stdin"),
                        stdout: Handler.flag(query, "stdout"), stderr: Handler.flag(query, "stderr"))
        }
        let replay = Handler.flag(query, "logs") ? try logs(record, query: ["stdout": query["stdout"] ?? "", "stderr": query["stderr"] ?? ""]).body : Data()
        let waiter = record.state.status != .running ? sessions.awaitStart(record.id) : nil
        let (sessions, manager) = (self.sessions, self.manager)
        return Response.hijacked(contentType: DockerHandler.streamType) { client in
            if let waiter {
                defer { sessions.forgetStart(record.id, waiter) }
                // The start's own answer carries a failure.
                guard case .success = waiter.wait(whileConnected: client, seconds: 3600) else { return }
            }
            guard let channel = try? FrameChannel.connect(path: manager.controlSocketPath(record)) else { return }
            defer { channel.shutdown() }
            try? client.writeAll(replay)
            let relay = relay(channel, client)
            guard (try? channel.send(Frame(.attach(stdin: relay.stdin)))) != nil else { return }
            sessions.open(record.id, channel: channel)
            defer { sessions.close(record.id) }
            _ = relay.run()
        }
    }

    /// `POST /containers/{id}/exec`: an exec instance of the running container, run by `start`.
    func createExec(_ record: ContainerRecord, body: Data) throws -> Response {
        guard record.state.status == .running else { throw HVCError(.conflict, "Container \(record.id) is not running") }
        guard let config = try? JSONSerialization.jsonObject(with: body.isEmpty ? Data("{}".utf8) : body) as? [String: Any] else {
            throw HVCError(.invalid, "invalid JSON body: an exec's config object was expected")
        }
        if config["Privileged"] as? Bool == true {
            throw HVCError(.invalid, "Privileged is not supported by hvc: a container has its own VM; nothing of the host is given to it")
        }
        guard let command = try DockerCreate.strings(config["Cmd"], "Cmd"), !command.isEmpty else {
            throw HVCError(.invalid, "Cmd is missing: name the command to run")
        }
        let spec = ContainerManager.execSpec(record, arguments: command, environment: try DockerCreate.strings(config["Env"], "Env") ?? [],
                                             workingDirectory: DockerCreate.nonEmpty(config["WorkingDir"]),
                                             user: DockerCreate.nonEmpty(config["User"]), terminal: config["Tty"] as? Bool ?? false)
        let exec = DockerExec(container: record.id, tenant: record.config.tenant, spec: spec, stdin: config["AttachStdin"] as? Bool ?? false,
                              stdout: config["AttachStdout"] as? Bool ?? false, stderr: config["AttachStderr"] as? Bool ?? false)
        sessions.add(exec)
        return try DockerHandler.json(["Id": exec.id], status: 201)
    }

    /// `POST /exec/{id}/start`: runs the exec once; its stdio on the taken-over connection, or
    /// nowhere with `Detach`. Its exit code is recorded before the connection ends, for the
    /// client's inspect.
    func startExec(_ exec: DockerExec, body: Data, caller: Caller) throws -> Response {
        let options = (try? JSONSerialization.jsonObject(with: body.isEmpty ? Data("{}".utf8) : body)) as? [String: Any] ?? [:]
        let record = try handler.container(exec.container, caller)
        let channel = try manager.controlChannel(record)
        guard exec.begin() else { throw HVCError(.conflict, "exec \(exec.id.prefix(12)) has already run: create another") }
        let sessions = self.sessions
        let run: @Sendable (FileDescriptor?) -> Void = { client in
            defer { channel.shutdown() }
            do {
                try channel.send(Frame(process: DockerRelay.process, .start(exec.spec)))
                if !exec.attachStdin || client == nil { try channel.send(Frame(process: DockerRelay.process, .closeStdin)) }
            } catch {
                exec.ended(125)
                return
            }
            sessions.open("exec " + exec.id, channel: channel)
            defer { sessions.close("exec " + exec.id) }
            let relay = DockerRelay(channel: channel, client: client, terminal: exec.spec.terminal, stdin: exec.attachStdin,
                                    stdout: exec.attachStdout, stderr: exec.attachStderr)
            exec.ended(relay.run(started: exec.started))
        }
        if options["Detach"] as? Bool == true {
            Thread.detachNewThread { run(nil) }
            return Response(status: 200)
        }
        return Response.hijacked(contentType: DockerHandler.streamType) { client in run(client) }
    }

    /// The exec instance `id`, when the caller owns its container's tenant.
    func exec(_ id: String, _ caller: Caller) throws -> DockerExec {
        guard let exec = sessions.exec(id), caller.owns(exec.tenant) else { throw HVCError(.notFound, "No such exec instance: \(id.prefix(64))") }
        return exec
    }

    /// A resize's `h` and `w`.
    static func size(_ query: [String: String]) throws -> (rows: UInt16, columns: UInt16) {
        guard let rows = query["h"].flatMap({ UInt16($0) }), let columns = query["w"].flatMap({ UInt16($0) }) else {
            throw HVCError(.invalid, "resize needs h and w, each a number of 0 to 65535")
        }
        return (rows, columns)
    }
}
