import Foundation
import Jail
import Testing

struct LibraryClosureTests {
    static let loader = "/lib64/ld-linux-x86-64.so.2"
    static let system = "/lib/x86_64-linux-gnu/"

    /// The closure over an invented file system: path → ELF file.
    func closure(_ objects: [String], _ files: [String: ELFFile]) throws(JailError) -> [String] {
        try LibraryClosure.of(objects) { files[$0] }
    }

    @Test func anExecutableBringsItsLoaderAndEveryLibraryOnce() throws {
        let files: [String: ELFFile] = [
            "/usr/bin/vmm": ELFFile(machine: 62, interpreter: Self.loader, needed: ["libglib.so", "libc.so.6"]),
            Self.loader: ELFFile(machine: 62),
            Self.system + "libglib.so": ELFFile(machine: 62, needed: ["libpcre.so", "libc.so.6"]),
            Self.system + "libpcre.so": ELFFile(machine: 62, needed: ["libc.so.6"]),
            Self.system + "libc.so.6": ELFFile(machine: 62),
        ]
        #expect(try closure(["/usr/bin/vmm"], files) == [
            "/usr/bin/vmm", Self.loader, Self.system + "libglib.so", Self.system + "libc.so.6", Self.system + "libpcre.so",
        ])
    }

    /// libc names the loader it was made for: that is the loader already there, not a second one.
    @Test func aNameALoadedObjectAnswersToIsThatObject() throws {
        let files: [String: ELFFile] = [
            "/usr/bin/vmm": ELFFile(machine: 62, interpreter: Self.loader, needed: ["libc.so.6"]),
            Self.loader: ELFFile(machine: 62, soname: "ld-linux-x86-64.so.2"),
            Self.system + "libc.so.6": ELFFile(machine: 62, needed: ["ld-linux-x86-64.so.2"], soname: "libc.so.6"),
            Self.system + "ld-linux-x86-64.so.2": ELFFile(machine: 62, soname: "ld-linux-x86-64.so.2"),
        ]
        #expect(try closure(["/usr/bin/vmm"], files) == ["/usr/bin/vmm", Self.loader, Self.system + "libc.so.6"])
    }

    @Test func aStaticBinaryIsItself() throws {
        #expect(try closure(["/usr/local/bin/static"], ["/usr/local/bin/static": ELFFile(machine: 62)]) == ["/usr/local/bin/static"])
    }

    /// The search order of a loader without ld.so.cache: DT_RPATH (when there is no DT_RUNPATH),
    /// then DT_RUNPATH with $ORIGIN, then the system directories; a library of another machine
    /// is passed over.
    @Test func searchesAsTheLoaderInTheJail() throws {
        let files: [String: ELFFile] = [
            "/usr/bin/a": ELFFile(machine: 62, needed: ["libx.so"], rpath: ["/usr/rpath"], runpath: ["$ORIGIN/../lib/a"]),
            "/usr/bin/b": ELFFile(machine: 62, needed: ["libx.so"], rpath: ["/usr/rpath"]),
            "/usr/bin/c": ELFFile(machine: 62, needed: ["libx.so"], rpath: ["/usr/wrong-machine"]),
            "/usr/rpath/libx.so": ELFFile(machine: 62),
            "/usr/bin/../lib/a/libx.so": ELFFile(machine: 62),
            "/usr/wrong-machine/libx.so": ELFFile(machine: 3),
            Self.system + "libx.so": ELFFile(machine: 62),
        ]
        #expect(try closure(["/usr/bin/a"], files).last == "/usr/bin/../lib/a/libx.so")
        #expect(try closure(["/usr/bin/b"], files).last == "/usr/rpath/libx.so")
        #expect(try closure(["/usr/bin/c"], files).last == Self.system + "libx.so")
    }

    /// A library without a search path of its own is searched for in the executable's RPATH,
    /// whose `$ORIGIN` is the executable's directory, not the library's.
    @Test func theExecutablesOriginIsItsOwnDirectory() throws {
        let files: [String: ELFFile] = [
            "/opt/vmm/bin/vmm": ELFFile(machine: 62, needed: ["libouter.so"], rpath: ["$ORIGIN/../lib"]),
            "/opt/vmm/bin/../lib/libouter.so": ELFFile(machine: 62, needed: ["libinner.so"]),
            "/opt/vmm/bin/../lib/libinner.so": ELFFile(machine: 62),
        ]
        #expect(try closure(["/opt/vmm/bin/vmm"], files) == [
            "/opt/vmm/bin/vmm", "/opt/vmm/bin/../lib/libouter.so", "/opt/vmm/bin/../lib/libinner.so",
        ])
    }

    @Test func aLibraryTheLoaderWouldNotFindIsAnError() {
        let files = ["/usr/bin/vmm": ELFFile(machine: 62, needed: ["libmissing.so"])]
        #expect(throws: JailError.usrTree("/usr/bin/vmm needs libmissing.so, which the loader would not find")) {
            try closure(["/usr/bin/vmm"], files)
        }
        #expect(throws: JailError.usrTree("/usr/bin/gone: no such file")) { try closure(["/usr/bin/gone"], [:]) }
    }

    @Test func tokensItCannotExpandAreNotSearched() {
        #expect(LibraryClosure.expand("$ORIGIN/lib", origin: "/usr/bin") == "/usr/bin/lib")
        #expect(LibraryClosure.expand("${ORIGIN}/../lib", origin: "/usr/bin") == "/usr/bin/../lib")
        #expect(LibraryClosure.expand("/usr/$LIB", origin: "/usr/bin") == nil)
        #expect(LibraryClosure.expand("relative", origin: "/usr/bin") == nil)
    }

    /// On the real QEMU the closure is what `ldd` reports (the loader's own answer, with the
    /// host's ld.so.cache), but for the virtual vDSO.
    @Test func matchesLddOnDebiansQEMU() throws {
        let qemu = "/usr/bin/qemu-system-x86_64"
        try #require(FileManager.default.fileExists(atPath: qemu) && FileManager.default.fileExists(atPath: "/usr/bin/ldd"))
        let ldd = Process()
        ldd.executableURL = URL(fileURLWithPath: "/usr/bin/ldd")
        ldd.arguments = [qemu]
        let output = Pipe()
        ldd.standardOutput = output
        try ldd.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        ldd.waitUntilExit()
        // "\tname => /path (0x...)" or "\t/path (0x...)".
        let reported = Set(text.split(separator: "\n").compactMap { line -> String? in
            let path = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first { $0.hasPrefix("/") }
            return path.map(String.init)
        })
        let found = try LibraryClosure.of([qemu], load: { path in
            FileManager.default.fileExists(atPath: path) ? try ELFFile.read(path: path) : nil
        })
        #expect(Set(found) == reported.union([qemu]), "\(Set(found).symmetricDifference(reported.union([qemu])))")
    }
}
