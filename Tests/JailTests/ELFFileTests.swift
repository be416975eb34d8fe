import Foundation
import Jail
import Testing

/// A small ELF64 file built byte by byte: header, program headers (PT_INTERP, one PT_LOAD
/// covering the file at `base`, PT_DYNAMIC), the interpreter, a string table, the dynamic section.
struct SyntheticELF {
    var machine: UInt16 = 62
    var interpreter: String?
    var needed: [String] = []
    var soname: String?
    var rpath: String?
    var runpath: String?
    static let base: UInt64 = 0x40_0000

    /// Offsets of parts a test may damage.
    private(set) var layout: (programHeaders: Int, interpreter: Int, strings: Int, dynamic: Int) = (64, 0, 0, 0)

    mutating func bytes() -> [UInt8] {
        var strings: [UInt8] = [0]
        func add(_ text: String) -> UInt64 {
            let offset = UInt64(strings.count)
            strings += Array(text.utf8) + [0]
            return offset
        }
        var dynamic: [(UInt64, UInt64)] = needed.map { (1, add($0)) }
        if let soname { dynamic.append((14, add(soname))) }
        if let rpath { dynamic.append((15, add(rpath))) }
        if let runpath { dynamic.append((29, add(runpath))) }
        let headers = 3
        let interpreterBytes: [UInt8] = interpreter.map { Array($0.utf8) + [0] } ?? []
        let interpreterOffset = 64 + headers * 56
        let stringsOffset = interpreterOffset + interpreterBytes.count
        let dynamicOffset = stringsOffset + strings.count
        dynamic += [(5, SyntheticELF.base + UInt64(stringsOffset)), (10, UInt64(strings.count)), (0, 0)]
        let total = dynamicOffset + dynamic.count * 16
        layout = (64, interpreterOffset, stringsOffset, dynamicOffset)

        var file = [UInt8](repeating: 0, count: total)
        func put(_ value: UInt64, at offset: Int, size: Int) {
            for i in 0..<size { file[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
        file.replaceSubrange(0..<4, with: [0x7f, 0x45, 0x4c, 0x46])
        file[4] = 2; file[5] = 1; file[6] = 1
        put(3, at: 16, size: 2)
        put(UInt64(machine), at: 18, size: 2)
        put(64, at: 32, size: 8)
        put(64, at: 52, size: 2)
        put(56, at: 54, size: 2)
        put(UInt64(headers), at: 56, size: 2)
        func header(_ index: Int, type: UInt64, offset: Int, size: Int, address: UInt64) {
            let at = 64 + index * 56
            put(type, at: at, size: 4)
            put(UInt64(offset), at: at + 8, size: 8)
            put(address, at: at + 16, size: 8)
            put(UInt64(size), at: at + 32, size: 8)
            put(UInt64(size), at: at + 40, size: 8)
        }
        header(0, type: interpreter == nil ? 0 : 3, offset: interpreterOffset, size: interpreterBytes.count,
               address: SyntheticELF.base + UInt64(interpreterOffset))
        header(1, type: 1, offset: 0, size: total, address: SyntheticELF.base)
        header(2, type: 2, offset: dynamicOffset, size: dynamic.count * 16, address: SyntheticELF.base + UInt64(dynamicOffset))
        file.replaceSubrange(interpreterOffset..<stringsOffset, with: interpreterBytes)
        file.replaceSubrange(stringsOffset..<dynamicOffset, with: strings)
        for (i, entry) in dynamic.enumerated() {
            put(entry.0, at: dynamicOffset + i * 16, size: 8)
            put(entry.1, at: dynamicOffset + i * 16 + 8, size: 8)
        }
        return file
    }

    static func parse(_ bytes: [UInt8]) throws -> ELFFile {
        try ELFFile.parse { offset, count in
            guard offset < UInt64(bytes.count) else { return [] }
            return Array(bytes[Int(offset)..<min(bytes.count, Int(offset) + count)])
        }
    }
}

struct ELFFileTests {
    @Test func readsTheInterpreterLibrariesAndSearchPaths() throws {
        var elf = SyntheticELF(interpreter: "/lib64/ld-linux-x86-64.so.2", needed: ["libz.so.1", "libc.so.6"],
                               soname: "libvmm.so.1", rpath: "/opt/a:/opt/b", runpath: "$ORIGIN/../lib")
        let file = try SyntheticELF.parse(elf.bytes())
        #expect(file == ELFFile(machine: 62, interpreter: "/lib64/ld-linux-x86-64.so.2", needed: ["libz.so.1", "libc.so.6"],
                                soname: "libvmm.so.1", rpath: ["/opt/a", "/opt/b"], runpath: ["$ORIGIN/../lib"]))
    }

    @Test func aLibraryHasNoInterpreterAndAStaticBinaryNoLibraries() throws {
        var library = SyntheticELF(needed: ["libc.so.6"])
        #expect(try SyntheticELF.parse(library.bytes()) == ELFFile(machine: 62, needed: ["libc.so.6"]))
        var plain = SyntheticELF(machine: 183)
        #expect(try SyntheticELF.parse(plain.bytes()) == ELFFile(machine: 183))
    }

    /// Ways to damage a file, each with the error it must give.
    enum Damage: String, CaseIterable, Sendable {
        case magic, class32, bigEndian, shortHeader, programHeadersPastTheEnd, tinyProgramHeaderSize,
             hugeProgramHeaderSize, tooManyProgramHeaders, dynamicPastTheEnd, stringTableOutside, namePastStrings,
             interpreterWithoutNUL

        func apply(_ b: inout [UInt8], _ elf: SyntheticELF) {
            let dynamicHeader = 64 + 2 * 56
            switch self {
            case .magic: b[1] = 0x46
            case .class32: b[4] = 1
            case .bigEndian: b[5] = 2
            case .shortHeader: b.removeSubrange(40...)
            case .programHeadersPastTheEnd: b[32] = 0xf0; b[33] = 0xff
            case .tinyProgramHeaderSize: b[54] = 8
            case .hugeProgramHeaderSize: b[55] = 0xff
            case .tooManyProgramHeaders: b[56] = 0xff; b[57] = 0xff
            case .dynamicPastTheEnd: b[dynamicHeader + 8] = 0xff; b[dynamicHeader + 9] = 0xff
            // DT_STRTAB is the second dynamic entry: its address moved far past every segment.
            case .stringTableOutside: b[elf.layout.dynamic + 16 + 8 + 3] = 0x7f
            case .namePastStrings: b[elf.layout.dynamic + 8] = 0xf0
            case .interpreterWithoutNUL: b[elf.layout.strings - 1] = 0x41
            }
        }

        var expected: ELFFile.ParseError {
            switch self {
            case .magic: .notELF
            case .class32: .unsupported("not 64-bit")
            case .bigEndian: .unsupported("not little-endian")
            case .shortHeader: .malformed("short header")
            case .programHeadersPastTheEnd: .malformed("program headers past the end")
            case .tinyProgramHeaderSize: .malformed("program header size 8")
            case .hugeProgramHeaderSize: .malformed("program header size 65336")
            case .tooManyProgramHeaders: .unsupported("65535 program headers")
            case .dynamicPastTheEnd: .malformed("dynamic section past the end")
            case .stringTableOutside: .malformed("string table outside the loaded segments")
            case .namePastStrings: .malformed("string at 240")
            case .interpreterWithoutNUL: .malformed("interpreter")
            }
        }
    }

    /// Damaged files are errors, never crashes or reads out of bounds.
    @Test(arguments: Damage.allCases)
    func damagedFilesAreErrors(_ damage: Damage) throws {
        var elf = SyntheticELF(interpreter: "/lib64/ld-linux-x86-64.so.2", needed: ["libc.so.6"])
        var bytes = elf.bytes()
        damage.apply(&bytes, elf)
        #expect(throws: damage.expected) { try SyntheticELF.parse(bytes) }
    }

    /// Every prefix of a real file is an error or a parse, never a crash.
    @Test func truncatedFilesNeverCrash() throws {
        var elf = SyntheticELF(interpreter: "/lib64/ld-linux-x86-64.so.2", needed: ["libz.so.1", "libc.so.6"], runpath: "/x")
        let bytes = elf.bytes()
        for length in 0..<bytes.count {
            _ = try? SyntheticELF.parse(Array(bytes.prefix(length)))
        }
    }

    @Test func readsDebiansQEMU() throws {
        let qemu = "/usr/bin/qemu-system-x86_64"
        try #require(FileManager.default.fileExists(atPath: qemu))
        let file = try ELFFile.read(path: qemu)
        #expect(file.machine == 62)
        #expect(file.interpreter == "/lib64/ld-linux-x86-64.so.2")
        #expect(file.needed.contains("libc.so.6") && file.needed.contains("libglib-2.0.so.0"), "\(file.needed)")
    }
}
