import AgentProtocol
import Foundation
import Runtime
import Testing

struct RunOptionsTests {
    let config = ImageConfig(entrypoint: ["/entry"], cmd: ["serve", "--port", "80"],
                             env: ["PATH=/image/bin", "MODE=image"], workingDir: "/app", user: "www")

    @Test func imageDefaultsApplyWhenNothingIsGiven() throws {
        let spec = try RunOptions(image: "x").processSpec(config: config, hostname: "h")
        #expect(spec.arguments == ["/entry", "serve", "--port", "80"])
        #expect(spec.workingDirectory == "/app")
        #expect(spec.user == "www")
        #expect(spec.environment == ["HOSTNAME=h", "PATH=/image/bin", "MODE=image"])
    }

    @Test func commandReplacesCmdButKeepsEntrypoint() throws {
        var options = RunOptions(image: "x")
        options.command = ["debug"]
        #expect(try options.processSpec(config: config, hostname: "h").arguments == ["/entry", "debug"])
    }

    @Test func entrypointOverrideDropsCmd() throws {
        var options = RunOptions(image: "x")
        options.entrypoint = ["sh"]
        #expect(try options.processSpec(config: config, hostname: "h").arguments == ["sh"])
        options.command = ["-c", "true"]
        #expect(try options.processSpec(config: config, hostname: "h").arguments == ["sh", "-c", "true"])
    }

    @Test func flagsOverrideImageSettings() throws {
        var options = RunOptions(image: "x")
        options.environment = ["MODE=flag", "NEW=1"]
        options.workingDirectory = "/work"
        options.user = "0:0"
        options.terminal = true
        let spec = try options.processSpec(config: config, hostname: "h")
        #expect(spec.environment == ["HOSTNAME=h", "TERM=xterm", "PATH=/image/bin", "MODE=flag", "NEW=1"])
        #expect(spec.workingDirectory == "/work")
        #expect(spec.user == "0:0")
        #expect(spec.terminal)
    }

    @Test func noCommandAnywhereIsAnError() {
        #expect(throws: HVCError.self) { try RunOptions(image: "x").processSpec(config: ImageConfig(), hostname: "h") }
    }

    @Test func relativeWorkingDirectoryIsAnError() {
        var options = RunOptions(image: "x")
        options.workingDirectory = "relative"
        #expect(throws: HVCError.self) { try options.processSpec(config: config, hostname: "h") }
    }

    @Test(arguments: [("256m", 256), ("1g", 1024), ("1G", 1024), ("524288k", 512), ("134217728", 128), ("100MB", 100), ("64m", 64)])
    func parsesMemory(_ text: String, _ mib: Int) throws {
        #expect(try RunOptions.parseMemory(text) == mib)
    }

    @Test(arguments: ["", "m", "-5m", "12x", "1m", "100g", "nan"])
    func rejectsMemory(_ text: String) {
        #expect(throws: HVCError.self) { try RunOptions.parseMemory(text) }
    }

    @Test func guestTextIsMadeSafeForTerminals() {
        #expect("exec \u{1b}[2Jboom\n".sanitizedGuestText == "exec ?[2Jboom?")
        #expect(String(repeating: "x", count: 5000).sanitizedGuestText.count == 1000)
    }

    @Test func errorsMapToDockerExitCodes() {
        #expect(HVCError("x").exitCode == 125)
        #expect(HVCError(.cannotExecute, "x").exitCode == 126)
        #expect(HVCError(.commandNotFound, "x").exitCode == 127)
    }

    /// Every value a create request carries is checked in one place, locally and in hvcd.
    @Test(arguments: [
        (#"{"image": "x", "cpus": 17}"#, "cpus 17"),
        (#"{"image": "x", "cpus": 0}"#, "cpus 0"),
        (#"{"image": "x", "pidsLimit": 3}"#, "pids limit 3"),
        (#"{"image": "x", "memory": "65g"}"#, "memory 65g"),
        (#"{"image": "x", "logMaxSize": "1k"}"#, "log size 1k"),
        (#"{"image": "x", "accel": "hvf"}"#, "accelerator"),
    ])
    func badRequestsAreInvalid(_ json: String, _ named: String) throws {
        let request = try JSONDecoder().decode(CreateContainerRequest.self, from: Data(json.utf8))
        #expect { try request.runOptions() } throws: { error in
            guard let error = error as? HVCError else { return false }
            return error.kind == .invalid && error.message.contains(named)
        }
    }

    @Test func requestOptionsCarryOver() throws {
        var request = CreateContainerRequest(image: "x")
        request.cpus = 2
        request.memory = "512m"
        request.pidsLimit = 100
        request.autoRemove = true
        request.template = false
        let options = try request.runOptions()
        #expect(options.cpus == 2 && options.memoryMiB == 512 && options.pidsLimit == 100)
        #expect(options.remove && !options.template)
    }

    /// The writable layer lives in guest memory: at most the VM's memory.
    @Test func storageSizeIsBoundedByTheVMsMemory() throws {
        var request = CreateContainerRequest(image: "x")
        request.memory = "256m"
        request.storageSize = "64m"
        #expect(try request.runOptions().writableBytes == 64 << 20)
        request.storageSize = "300m"
        let tooLarge = #expect(throws: HVCError.self) { try request.runOptions() }
        #expect(tooLarge?.message.hasPrefix("storage size 300 MiB is more than the VM's memory (256 MiB)") == true)
        request.storageSize = "12x"
        #expect(throws: HVCError.self) { try request.runOptions() }
    }

    @Test(arguments: [("TERM", Int32(15)), ("sigkill", 9), ("HUP", 1), ("64", 64)])
    func parsesSignals(_ text: String, _ number: Int32) throws {
        #expect(try SignalName.parse(text) == number)
    }

    @Test(arguments: ["999", "0", "-1", "BOGUS", ""])
    func rejectsSignals(_ text: String) {
        #expect { try SignalName.parse(text) } throws: { ($0 as? HVCError)?.kind == .invalid }
    }

    @Test func aVMLargerThanTheHostIsRefused() throws {
        let host = HostCapacity(cpus: 2, memoryMiB: 1000)
        var options = RunOptions(image: "busybox")
        options.cpus = 2
        options.memoryMiB = 1000
        try options.validate(host: host)
        options.cpus = 3
        let tooMany = #expect(throws: HVCError.self) { try options.validate(host: host) }
        #expect(tooMany?.message == "cpus 3 is more than this host's 2 CPUs: give 1 to 2")
        options.cpus = 1
        options.memoryMiB = 1001
        #expect(throws: HVCError.self) { try options.validate(host: host) }
        #expect(HostCapacity.current.cpus >= 1 && HostCapacity.current.memoryMiB >= 64)
    }
}
