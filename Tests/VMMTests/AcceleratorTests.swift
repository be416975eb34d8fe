import Testing
import VMM

struct AcceleratorTests {
    @Test(arguments: [
        (HostVirtualization(cpuFlags: ["vmx"], kvmDeviceUsable: true, kvmIsPVM: false), Accelerator.kvm),
        (HostVirtualization(cpuFlags: ["svm"], kvmDeviceUsable: true, kvmIsPVM: false), .kvm),
        (HostVirtualization(cpuFlags: ["vmx"], kvmDeviceUsable: false, kvmIsPVM: false), .tcg),
        (HostVirtualization(cpuFlags: [], kvmDeviceUsable: true, kvmIsPVM: true), .tcg),
        (HostVirtualization(cpuFlags: ["vmx"], kvmDeviceUsable: true, kvmIsPVM: true), .tcg),
        (HostVirtualization(cpuFlags: ["sse2"], kvmDeviceUsable: true, kvmIsPVM: false), .tcg),
    ])
    func chooses(_ host: HostVirtualization, _ expected: Accelerator) {
        #expect(AcceleratorChoice.choose(host: host).accelerator == expected)
    }

    @Test func nestingIsEmulatedUnderTCGAndTheHostsUnderKVM() {
        var host = HostVirtualization(cpuFlags: ["vmx"], kvmDeviceUsable: true, kvmIsPVM: false)
        #expect(Nesting.choose(accelerator: .tcg, host: host) == .emulatedSVM)
        #expect(!Nesting.choose(accelerator: .kvm, host: host).isAvailable, "no kvm module loaded")
        host.kvmNesting = .init(enabled: false, module: "kvm_intel")
        let off = Nesting.choose(accelerator: .kvm, host: host)
        #expect(!off.isAvailable && off.description.contains("nested=1"))
        host.kvmNesting = .init(enabled: true, module: "kvm_intel")
        #expect(Nesting.choose(accelerator: .kvm, host: host) == .hardware(module: "kvm_intel"))
    }

    @Test func requestWins() {
        let host = HostVirtualization(cpuFlags: [], kvmDeviceUsable: false, kvmIsPVM: false)
        #expect(AcceleratorChoice.choose(host: host, requested: .kvm) == AcceleratorChoice(accelerator: .kvm, reason: "requested"))
    }

    @Test func pvmReasonSaysSo() {
        let host = HostVirtualization(cpuFlags: [], kvmDeviceUsable: true, kvmIsPVM: true)
        #expect(AcceleratorChoice.choose(host: host).reason.contains("PVM"))
    }

    @Test func cpuFlagsComeFromTheFlagsLine() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme vmx sse2\nbugs\t\t: spectre\n"
        #expect(HostVirtualization.cpuFlags(fromCPUInfo: text) == ["fpu", "vme", "vmx", "sse2"])
        #expect(HostVirtualization.cpuFlags(fromCPUInfo: "") == [])
    }
}
