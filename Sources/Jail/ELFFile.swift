import Foundation
import HVCSystem

/// What the dynamic loader reads of an ELF file: its interpreter, the libraries it needs and
/// where it asks for them. 64-bit little-endian files only (x86-64, AArch64); every offset and
/// size taken from the file is checked against the bytes actually there, so a malformed file
/// is an error, never a crash.
public struct ELFFile: Equatable, Sendable {
    /// `e_machine`: a library is used only by objects of the same machine.
    public var machine: UInt16
    /// `PT_INTERP`: the dynamic loader an executable names; nil for a library or a static binary.
    public var interpreter: String?
    /// `DT_NEEDED`, in order.
    public var needed: [String]
    /// `DT_SONAME`: the name a library answers to once loaded.
    public var soname: String?
    /// `DT_RPATH`, split at `:` (searched only when there is no `DT_RUNPATH`).
    public var rpath: [String]
    /// `DT_RUNPATH`, split at `:`.
    public var runpath: [String]

    public init(machine: UInt16, interpreter: String? = nil, needed: [String] = [], soname: String? = nil,
                rpath: [String] = [], runpath: [String] = []) {
        self.machine = machine
        self.interpreter = interpreter
        self.needed = needed
        self.soname = soname
        self.rpath = rpath
        self.runpath = runpath
    }

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case notELF
        case unsupported(String)
        case malformed(String)

        public var description: String {
            switch self {
            case .notELF: "not an ELF file"
            case .unsupported(let what): "unsupported ELF: \(what)"
            case .malformed(let what): "malformed ELF: \(what)"
            }
        }
    }

    /// Bounds on what is read of one file: its program headers, dynamic section and string table.
    static let maxProgramHeaders = 4096
    static let maxDynamicBytes = 1 << 20
    static let maxStringTableBytes = 16 << 20

    /// Parses the file whose bytes `read(offset, count)` returns (fewer at its end).
    public static func parse(read: (UInt64, Int) throws -> [UInt8]) throws -> ELFFile {
        let header = try read(0, 64)
        guard header.count >= 16, header[0] == 0x7f, header[1] == 0x45, header[2] == 0x4c, header[3] == 0x46 else {
            throw ParseError.notELF
        }
        guard header[4] == 2 else { throw ParseError.unsupported("not 64-bit") }
        guard header[5] == 1 else { throw ParseError.unsupported("not little-endian") }
        guard header.count == 64 else { throw ParseError.malformed("short header") }
        let machine = header.uint16(at: 18)
        let programHeaderOffset = header.uint64(at: 32)
        let entrySize = Int(header.uint16(at: 54))
        let count = Int(header.uint16(at: 56))
        // 0xffff (PN_XNUM) puts the count in a section header: no loader-visible file uses it.
        guard count < maxProgramHeaders else { throw ParseError.unsupported("\(count) program headers") }
        guard count == 0 || (56...256).contains(entrySize) else { throw ParseError.malformed("program header size \(entrySize)") }
        let table = try read(programHeaderOffset, count * entrySize)
        guard table.count == count * entrySize else { throw ParseError.malformed("program headers past the end") }

        struct Segment { var offset: UInt64; var address: UInt64; var size: UInt64 }
        var loads: [Segment] = []
        var dynamic: Segment?
        var interpreterSegment: Segment?
        for index in 0..<count {
            let base = index * entrySize
            let segment = Segment(offset: table.uint64(at: base + 8), address: table.uint64(at: base + 16),
                                  size: table.uint64(at: base + 32))
            switch table.uint32(at: base) {
            case 1: loads.append(segment)                // PT_LOAD
            case 2: dynamic = segment                    // PT_DYNAMIC
            case 3: interpreterSegment = segment         // PT_INTERP
            default: break
            }
        }

        var file = ELFFile(machine: machine)
        if let segment = interpreterSegment {
            guard segment.size > 0, segment.size <= 4096 else { throw ParseError.malformed("interpreter of \(segment.size) bytes") }
            let bytes = try read(segment.offset, Int(segment.size))
            guard bytes.count == Int(segment.size), let path = bytes.cString(at: 0) else {
                throw ParseError.malformed("interpreter")
            }
            file.interpreter = path
        }
        guard let dynamic else { return file }
        guard dynamic.size <= UInt64(maxDynamicBytes) else { throw ParseError.malformed("dynamic section of \(dynamic.size) bytes") }
        let entries = try read(dynamic.offset, Int(dynamic.size))
        guard entries.count == Int(dynamic.size) else { throw ParseError.malformed("dynamic section past the end") }

        var needed: [UInt64] = []
        var soname: UInt64?, rpath: UInt64?, runpath: UInt64?, stringTable: UInt64?, stringTableSize: UInt64?
        var offset = 0
        while offset + 16 <= entries.count {
            let tag = entries.uint64(at: offset), value = entries.uint64(at: offset + 8)
            offset += 16
            switch tag {
            case 0: offset = entries.count                // DT_NULL
            case 1: needed.append(value)                  // DT_NEEDED
            case 5: stringTable = value                   // DT_STRTAB
            case 10: stringTableSize = value              // DT_STRSZ
            case 14: soname = value                       // DT_SONAME
            case 15: rpath = value                        // DT_RPATH
            case 29: runpath = value                      // DT_RUNPATH
            default: break
            }
        }
        if needed.isEmpty && soname == nil && rpath == nil && runpath == nil { return file }
        guard let stringTable, let stringTableSize else { throw ParseError.malformed("no string table") }
        guard stringTableSize <= UInt64(maxStringTableBytes) else { throw ParseError.malformed("string table of \(stringTableSize) bytes") }
        // DT_STRTAB is an address: the PT_LOAD segment holding it gives its place in the file.
        guard let load = loads.first(where: { stringTable >= $0.address && stringTable - $0.address < $0.size }),
              stringTableSize <= load.size - (stringTable - load.address) else {
            throw ParseError.malformed("string table outside the loaded segments")
        }
        let strings = try read(load.offset &+ (stringTable - load.address), Int(stringTableSize))
        guard strings.count == Int(stringTableSize) else { throw ParseError.malformed("string table past the end") }
        func string(_ offset: UInt64) throws -> String {
            guard offset < UInt64(strings.count), let text = strings.cString(at: Int(offset)) else {
                throw ParseError.malformed("string at \(offset)")
            }
            return text
        }
        file.needed = try needed.map(string)
        file.soname = try soname.map(string)
        file.rpath = try rpath.map { try string($0).split(separator: ":").map(String.init) } ?? []
        file.runpath = try runpath.map { try string($0).split(separator: ":").map(String.init) } ?? []
        return file
    }

    /// Parses the file at `path`, reading only its headers, dynamic section and string table.
    public static func read(path: String) throws -> ELFFile {
        let file = try FileDescriptor.open(path, O_RDONLY)
        return try parse { offset, count in
            guard offset <= UInt64(Int64.max) else { return [] }
            var buffer = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let n = try valueOrErrno {
                    buffer.withUnsafeMutableBytes { pread(file.raw, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
                }
                if n == 0 { break }
                done += n
            }
            return Array(buffer.prefix(done))
        }
    }
}

extension [UInt8] {
    /// Little-endian integers at an offset the caller has checked.
    func uint16(at offset: Int) -> UInt16 { UInt16(self[offset]) | UInt16(self[offset + 1]) << 8 }
    func uint32(at offset: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(self[offset + $1]) << (8 * $1) } }
    func uint64(at offset: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(self[offset + $1]) << (8 * $1) } }

    /// The NUL-terminated UTF-8 string at `offset`; nil if no NUL ends it.
    func cString(at offset: Int) -> String? {
        guard let end = self[offset...].firstIndex(of: 0) else { return nil }
        return String(decoding: self[offset..<end], as: UTF8.self)
    }
}
