import Foundation

/// The files the dynamic loader maps for some ELF objects: each object, the interpreter it names
/// and, transitively, every library it needs, found where the loader inside a VMM's jail looks.
/// The jail has no `/etc`, so no `ld.so.cache`: the loader searches the asking object's
/// `DT_RPATH` (without `DT_RUNPATH`) and the executable's, then its `DT_RUNPATH`, then the
/// system directories; so does this. A name an object already loaded answers to (its
/// `DT_SONAME`: libc names the loader so) is that object, as for the loader. Nothing is run:
/// the files are read, not loaded.
public enum LibraryClosure {
    /// glibc's system search path for a machine (`ld.so --help` on Debian's multiarch layout).
    public static func systemDirectories(machine: UInt16) -> [String] {
        let triplet = switch machine {
        case 62: "x86_64-linux-gnu"
        case 183: "aarch64-linux-gnu"
        default: "unknown-linux-gnu"
        }
        return ["/lib/" + triplet, "/usr/lib/" + triplet, "/lib", "/usr/lib"]
    }

    /// The paths the loader opens for `objects` (absolute paths), in a stable order, each once.
    /// `load` parses the ELF file at a path, or returns nil where there is no such file.
    public static func of(_ objects: [String], load: (String) throws -> ELFFile?) throws(JailError) -> [String] {
        var result: [String] = []
        var seen: Set<String> = []
        var loadedNames: Set<String> = []
        var queue: [(path: String, file: ELFFile, executable: Object)] = []
        func parse(_ path: String) throws(JailError) -> ELFFile? {
            do {
                return try load(path)
            } catch {
                throw .usrTree("\(path): \(error)")
            }
        }
        func add(_ path: String, _ file: ELFFile, executable: Object) {
            guard seen.insert(path).inserted else { return }
            if let soname = file.soname { loadedNames.insert(soname) }
            result.append(path)
            queue.append((path, file, executable))
        }
        for object in objects {
            guard object.hasPrefix("/") else { throw .usrTree("\(object): not an absolute path") }
            guard let file = try parse(object) else { throw .usrTree("\(object): no such file") }
            add(object, file, executable: Object(path: object, file: file))
            if let interpreter = file.interpreter {
                guard interpreter.hasPrefix("/"), let loader = try parse(interpreter) else {
                    throw .usrTree("\(object): its interpreter \(interpreter) is missing")
                }
                add(interpreter, loader, executable: Object(path: interpreter, file: loader))
            }
        }
        var next = 0
        while next < queue.count {
            let (path, file, executable) = queue[next]
            next += 1
            for name in file.needed where !loadedNames.contains(name) {
                guard let (found, library) = try find(name, for: path, file: file, executable: executable, parse: parse) else {
                    throw .usrTree("\(path) needs \(name), which the loader would not find")
                }
                add(found, library, executable: executable)
            }
        }
        return result
    }

    /// An ELF file and where it lies.
    struct Object {
        var path: String
        var file: ELFFile
    }

    /// Where the loader finds `name` for the object at `path`: the first candidate that is an
    /// ELF file of the object's machine. `$ORIGIN` in the executable's RPATH is the executable's
    /// directory.
    static func find(_ name: String, for path: String, file: ELFFile, executable: Object,
                     parse: (String) throws(JailError) -> ELFFile?) throws(JailError) -> (String, ELFFile)? {
        if name.contains("/") {
            guard name.hasPrefix("/") else { return nil }
            return try parse(name).map { (name, $0) }
        }
        let origin = (path as NSString).deletingLastPathComponent
        var directories: [String] = []
        if file.runpath.isEmpty {
            directories += file.rpath.compactMap { expand($0, origin: origin) }
            if executable.path != path {
                let executableOrigin = (executable.path as NSString).deletingLastPathComponent
                directories += executable.file.rpath.compactMap { expand($0, origin: executableOrigin) }
            }
        }
        directories += file.runpath.compactMap { expand($0, origin: origin) }
        directories += systemDirectories(machine: file.machine)
        for directory in directories {
            let candidate = (directory.hasSuffix("/") ? directory : directory + "/") + name
            // A file of another machine or class (a 32-bit library of the same name) is skipped,
            // as the loader skips it.
            let library: ELFFile?
            do {
                library = try parse(candidate)
            } catch {
                continue
            }
            if let library, library.machine == file.machine { return (candidate, library) }
        }
        return nil
    }

    /// A search-path entry with `$ORIGIN` replaced; nil for other tokens (`$LIB`, `$PLATFORM`),
    /// whose expansion this does not know, and for relative entries.
    public static func expand(_ entry: String, origin: String) -> String? {
        let expanded = entry.replacingOccurrences(of: "${ORIGIN}", with: origin).replacingOccurrences(of: "$ORIGIN", with: origin)
        guard expanded.hasPrefix("/"), !expanded.contains("$") else { return nil }
        return expanded
    }
}
