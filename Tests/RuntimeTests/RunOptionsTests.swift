import AgentProtocol
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
}
