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

    enum StartError: Error {
        /// The memory image does not match the template's digest.
        case corrupt(String)
        case failed(String)
    }

    /// The body of `hvc-shim --keep-template KEY`. Reports `ready` or one error line on
    /// stdout (the starter's pipe), then closes it.
    public static func run(store: TemplateStore, key: String) -> Never {
        func report(_ line: String) {
            var text = Array((line + "\n").utf8)
            _ = text.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
        }
        guard let template = store.load(key) else {
            report("failed: template \(key.prefix(12)) is missing")
            exit(1)
        }
        let memory = open(store.memoryPath(key), O_RDONLY | O_CLOEXEC)
        guard memory >= 0 else {
            report("corrupt: memory image: \(Errno.current)")
            exit(1)
        }
        let memfd = hvc_memfd(memfdName(key))
        let size = template.inputs.memoryMiB << 20
        guard memfd >= 0, ftruncate(memfd, off_t(size)) == 0 else {
            report("failed: memfd: \(Errno.current)")
            exit(1)
        }
        do {
            let copied = try MemoryImage.copy(from: memory, to: memfd, size: size)
            guard copied.digest == template.memoryDigest else {
                report("corrupt: memory image digest \(copied.digest) is not the template's \(template.memoryDigest)")
                exit(1)
            }
        } catch {
            report("corrupt: \(error.message)")
            exit(1)
        }
        close(memory)
        guard hvc_seal_contents(memfd) == 0 else {
            report("failed: seal: \(Errno.current)")
            exit(1)
        }
        do {
            try makeDirectory(store.runDirectory, mode: 0o700)
            try writeAtomically(store.keeperPath(key), Data("\(getpid()) \(memfd)\n".utf8))
        } catch {
            report("failed: \(error.message)")
            exit(1)
        }
        report("ready")
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        dup2(null, 1)
        dup2(null, 2)
        signal(SIGTERM, SIG_DFL)
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
        while store.load(key)?.created == template.created {
            let adopter = getppid()
            if adopter != parent && adopter != 1 { break }
            _ = sigtimedwait(&wake, nil, &interval)
        }
        if running(store: store, key: key)?.pid == getpid() { unlink(store.keeperPath(key)) }
        exit(0)
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

    /// Starts the keeper of `key` (through `hvc-shim`) and waits until its memory is loaded.
    static func start(store: TemplateStore, key: String, runtime: Runtime) throws(StartError) {
        let pipe: (read: FileDescriptor, write: FileDescriptor)
        do {
            pipe = try FileDescriptor.pipe()
        } catch {
            throw .failed("pipe: \(error)")
        }
        do {
            _ = try Shim.start(["--keep-template", key], paths: runtime.paths, output: pipe.write.raw)
        } catch {
            throw .failed("cannot start \(Shim.path()): \(error)")
        }
        pipe.write.close()
        var output: [UInt8] = []
        while output.count < 4096, let bytes = try? pipe.read.read(max: 4096), !bytes.isEmpty { output += bytes }
        let line = String(decoding: output, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        if line == "ready" { return }
        if line.hasPrefix("corrupt: ") { throw .corrupt(String(line.dropFirst(9))) }
        throw .failed(line.isEmpty ? "the template keeper exited without a word" : line.sanitizedGuestText)
    }

    /// Stops the keeper of `key`, if one runs.
    static func stop(store: TemplateStore, key: String) {
        guard let keeper = running(store: store, key: key) else { return }
        kill(keeper.pid, SIGTERM)
        _ = ProcessStamp(pid: keeper.pid, start: nil).awaitEnd(seconds: 1)
        unlink(store.keeperPath(key))
    }
}
