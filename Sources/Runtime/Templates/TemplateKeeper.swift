import CLinux
import Foundation
import HVCSystem

/// The process that holds a template's memory for its clones: a memfd filled from the memory
/// image, checked against the template's digest, then sealed (no write, grow, shrink or new
/// seal, ever). A clone's VMM may reopen it read-write (QEMU does) and map it private, but
/// nobody can change the pages other clones see. The supervisor of each clone takes its own
/// descriptor through `/proc/<keeper>/fd/<n>`, checked by the memfd's name and seals.
///
/// It lives until its template directory is removed or replaced.
public enum TemplateKeeper {
    static func memfdName(_ key: String) -> String { "hvc-template-" + key.prefix(16) }

    /// Why a keeper could not hold a template's memory; its starter reads it back from the
    /// keeper's report line.
    public enum StartError: Error {
        /// The memory image does not match the template's digest.
        case corrupt(String)
        case failed(String)

        /// The line the keeper reports it with.
        public var reportLine: String {
            switch self {
            case .corrupt(let why): "corrupt: " + why
            case .failed(let why): "failed: " + why
            }
        }

        init(reportLine line: String) {
            self = line.hasPrefix("corrupt: ") ? .corrupt(String(line.dropFirst(9))) : .failed(line)
        }
    }

    /// The line a keeper reports once it holds the memory.
    public static let readyLine = "ready"

    /// A template's memory held by this process: a sealed memfd, open while this value lives.
    public struct Held {
        public let key: String
        public let template: Template
        let memory: FileDescriptor
    }

    /// Fills a sealed memfd from the memory image of `key`, checks it against the template's
    /// digest and records this process as its keeper.
    public static func hold(store: TemplateStore, key: String) throws(StartError) -> Held {
        guard let template = store.load(key) else { throw .failed("template \(key.prefix(12)) is missing") }
        let image: FileDescriptor
        do {
            image = try FileDescriptor.open(store.memoryPath(key), O_RDONLY)
        } catch {
            throw .corrupt("memory image: \(error)")
        }
        let memfd = hvc_memfd(memfdName(key))
        guard memfd >= 0 else { throw .failed("memfd: \(Errno.current)") }
        let memory = FileDescriptor(memfd)
        let size = template.inputs.memoryMiB << 20
        guard ftruncate(memory.raw, off_t(size)) == 0 else { throw .failed("memfd: \(Errno.current)") }
        let copied: (digest: String, dataBytes: Int)
        do {
            copied = try MemoryImage.copy(from: image.raw, to: memory.raw, size: size)
        } catch {
            throw .corrupt(error.message)
        }
        guard copied.digest == template.memoryDigest else {
            throw .corrupt("memory image digest \(copied.digest) is not the template's \(template.memoryDigest)")
        }
        guard hvc_seal_contents(memory.raw) == 0 else { throw .failed("seal: \(Errno.current)") }
        do {
            try makeDirectory(store.runDirectory, mode: 0o700)
            try writeAtomically(store.keeperPath(key), Data("\(getpid()) \(memory.raw)\n".utf8))
        } catch {
            throw .failed(error.message)
        }
        return Held(key: key, template: template, memory: memory)
    }

    /// Keeps `held` while its template stays the template of its key; then no longer names
    /// this process its keeper, and returns.
    public static func keep(_ held: Held, store: TemplateStore) {
        // An orphaned keeper normally goes to init and stays. Started under a subreaper (an OCI
        // caller such as conmon, which waits for every process it adopts before it ends) it
        // leaves when adopted: the next clone loads the template again (about 70 ms).
        let parent = getppid()
        var wake = sigset_t()
        sigemptyset(&wake)
        sigaddset(&wake, SIGUSR1)
        pthread_sigmask(SIG_BLOCK, &wake, nil)
        hvc_set_parent_death_signal(SIGUSR1)
        var interval = timespec(tv_sec: 2, tv_nsec: 0)
        while store.load(held.key)?.created == held.template.created {
            let adopter = getppid()
            if adopter != parent && adopter != 1 { break }
            _ = sigtimedwait(&wake, nil, &interval)
        }
        if running(store: store, key: held.key)?.pid == getpid() { unlink(store.keeperPath(held.key)) }
    }

    /// The pid and descriptor number of the live keeper of `key`.
    static func running(store: TemplateStore, key: String) -> (pid: Int32, fd: Int32)? {
        guard let text = try? String(contentsOfFile: store.keeperPath(key), encoding: .utf8) else { return nil }
        let parts = text.split(whereSeparator: \.isWhitespace)
        guard parts.count == 2, let pid = Int32(parts[0]), let fd = Int32(parts[1]), pid > 0, fd >= 0 else { return nil }
        let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")
        guard link == "/memfd:\(memfdName(key)) (deleted)" else { return nil }
        return (pid, fd)
    }

    /// A new read-only descriptor of the sealed memory of `key`, or nil when no keeper holds it.
    static func openMemory(store: TemplateStore, key: String, size: Int) -> FileDescriptor? {
        guard let keeper = running(store: store, key: key) else { return nil }
        let fd = open("/proc/\(keeper.pid)/fd/\(keeper.fd)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let descriptor = FileDescriptor(fd)
        var info = stat()
        guard hvc_contents_sealed(fd) == 1, fstat(fd, &info) == 0, Int(info.st_size) == size else { return nil }
        return descriptor
    }

    /// Has the keeper service (hvcd) start the keeper of `key` when one serves this state, so that
    /// it outlives the caller's process tree; else starts it here.
    static func startKept(store: TemplateStore, key: String, runtime: Runtime) throws(StartError) {
        if let served = KeeperService.request(key: key, paths: runtime.paths) {
            try served.get()
            return
        }
        try start(store: store, key: key, runtime: runtime)
    }

    /// Starts the keeper of `key` (through `hvc-shim`) and waits until its memory is loaded.
    static func start(store: TemplateStore, key: String, runtime: Runtime) throws(StartError) {
        let pipe: (read: FileDescriptor, write: FileDescriptor)
        do {
            pipe = try FileDescriptor.pipe()
        } catch {
            throw .failed("pipe: \(error)")
        }
        do {
            _ = try Shim.start(.keepTemplate(key: key), paths: runtime.paths, output: pipe.write.raw)
        } catch {
            throw .failed("cannot start \(Shim.path()): \(error)")
        }
        pipe.write.close()
        var output: [UInt8] = []
        while output.count < 4096, let bytes = try? pipe.read.read(max: 4096), !bytes.isEmpty { output += bytes }
        let line = String(decoding: output, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        if line == readyLine { return }
        guard !line.isEmpty else { throw .failed("the template keeper exited without a word") }
        throw StartError(reportLine: line.sanitizedGuestText)
    }

    /// Stops the keeper of `key`, if one runs.
    static func stop(store: TemplateStore, key: String) {
        guard let keeper = running(store: store, key: key) else { return }
        kill(keeper.pid, SIGTERM)
        _ = ProcessStamp(pid: keeper.pid, start: nil).awaitEnd(seconds: 1)
        unlink(store.keeperPath(key))
    }
}
