import Testing
import VMM

struct QEMUCommandLineTests {
    func configuration(_ accelerator: Accelerator, socketDirectory: String = "/run/hvc/vms/abc") -> VMConfiguration {
        VMConfiguration(
            kernel: "/k/vmlinux", initramfs: "/k/initramfs.cpio", rootDisk: "/img/rootfs.erofs",
            memoryMiB: 256, cpus: 2, accelerator: accelerator,
            agentSocket: socketDirectory + "/agent.sock", qmpSocket: socketDirectory + "/qmp.sock",
            consoleLog: socketDirectory + "/console.log")
    }

    /// The value following `flag`, for each occurrence.
    func values(_ args: [String], _ flag: String) -> [String] {
        args.indices.filter { args[$0] == flag && $0 + 1 < args.count }.map { args[$0 + 1] }
    }

    @Test func aNestedVMsCPUShowsVirtualization() {
        var tcg = configuration(.tcg)
        tcg.nested = true
        #expect(values(QEMUCommandLine(tcg).arguments, "-cpu") == ["max,erms=off,fsrm=off"])
        var kvm = configuration(.kvm)
        kvm.nested = true
        #expect(values(QEMUCommandLine(kvm).arguments, "-cpu") == ["host"])
    }

    @Test func tcgMicroVM() {
        let args = QEMUCommandLine(configuration(.tcg)).arguments
        #expect(values(args, "-M") == ["microvm,x-option-roms=off,isa-serial=on,rtc=on,acpi=off"])
        #expect(values(args, "-accel") == ["tcg,tb-size=64"])
        #expect(values(args, "-sandbox") == ["on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"])
        // No SVM unless the VM is to nest: its kernel's KVM then finds no hardware. No
        // byte-wise string copies (ERMS, FSRM), which TCG runs a step per byte.
        #expect(values(args, "-cpu") == ["max,svm=off,erms=off,fsrm=off"])
        #expect(values(args, "-m") == ["256M"])
        #expect(values(args, "-smp") == ["2"])
        #expect(values(args, "-kernel") == ["/k/vmlinux"])
        #expect(args.contains("-no-reboot"))
        #expect(args.contains("-nodefaults"))
        #expect(values(args, "-drive") == ["id=root,file=/img/rootfs.erofs,format=raw,if=none,readonly=on"])
        #expect(values(args, "-device").contains("virtserialport,chardev=agent,name=hvc.agent,id=agent0"))
        #expect(values(args, "-object").isEmpty)
        #expect(!args.contains("-incoming") && !args.contains("-S"))
        #expect(values(args, "-chardev").contains("socket,id=agent,path=/run/hvc/vms/abc/agent.sock,server=on,wait=off"))
        #expect(values(args, "-qmp") == ["unix:/run/hvc/vms/abc/qmp.sock,server=on,wait=off"])
    }

    @Test func sharedFoldersAreOneNinePDeviceServedByQEMU() {
        #expect(!QEMUCommandLine(configuration(.tcg)).arguments.contains("-fsdev"))
        var c = configuration(.tcg)
        c.sharedFolders = "/shares"
        let args = QEMUCommandLine(c).arguments
        #expect(values(args, "-fsdev") == ["local,id=shares,path=/shares,security_model=passthrough,multidevs=remap"])
        #expect(values(args, "-device").contains("virtio-9p-device,fsdev=shares,mount_tag=hvc.shares"))
    }

    @Test func bytewiseCopiesShowQEMUsOwnMaxModelUnderTCGOnly() {
        var tcg = configuration(.tcg)
        tcg.bytewiseCopies = true
        #expect(values(QEMUCommandLine(tcg).arguments, "-cpu") == ["max,svm=off"])
        var kvm = configuration(.kvm)
        kvm.bytewiseCopies = true
        #expect(values(QEMUCommandLine(kvm).arguments, "-cpu") == ["host,vmx=off,svm=off"])
        #expect(QEMUCommandLine.cpuModel(accelerator: .tcg, nested: true, bytewiseCopies: true) == "max")
    }

    @Test func kvmUsesTheHostCPU() {
        let args = QEMUCommandLine(configuration(.kvm)).arguments
        #expect(values(args, "-accel") == ["kvm"])
        #expect(values(args, "-cpu") == ["host,vmx=off,svm=off"])
    }

    @Test func kernelParametersNameTheRootAndRebootByTripleFault() {
        let parameters = QEMUCommandLine(configuration(.tcg)).kernelParameters.split(separator: " ")
        #expect(parameters.contains("reboot=t"))
        #expect(parameters.contains("hvc.root=vda"))
        #expect(parameters.contains("hvc.rootfstype=erofs"))
    }

    @Test func commasInPathsAreEscaped() {
        let args = QEMUCommandLine(configuration(.tcg, socketDirectory: "/tmp/a,b")).arguments
        #expect(values(args, "-qmp") == ["unix:/tmp/a,,b/qmp.sock,server=on,wait=off"])
    }

    @Test func captureWritesRAMThroughToTheInheritedFileAndStartsPaused() {
        var config = configuration(.tcg)
        config.memory = .capture
        let args = QEMUCommandLine(config).arguments
        #expect(values(args, "-M") == ["microvm,x-option-roms=off,isa-serial=on,rtc=on,acpi=off,memory-backend=ram"])
        #expect(values(args, "-object") == ["memory-backend-file,id=ram,size=256M,mem-path=/proc/self/fd/3,share=on"])
        #expect(args.contains("-S"))
        #expect(values(args, "-kernel") == ["/k/vmlinux"])
        #expect(!args.contains("-incoming"))
    }

    @Test func cloneMapsTheTemplatePrivateAndWaitsForItsState() {
        var config = configuration(.tcg)
        config.memory = .clone
        let args = QEMUCommandLine(config).arguments
        #expect(values(args, "-object") == ["memory-backend-file,id=ram,size=256M,mem-path=/proc/self/fd/3,share=off"])
        #expect(values(args, "-incoming") == ["defer"])
        #expect(!args.contains("-S"))
        #expect(values(args, "-kernel").isEmpty && values(args, "-initrd").isEmpty && values(args, "-append").isEmpty)
        // Everything that shapes the machine is the same as the template's.
        var capture = configuration(.tcg)
        capture.memory = .capture
        let captureArgs = QEMUCommandLine(capture).arguments
        for flag in ["-M", "-m", "-smp", "-accel", "-cpu", "-device", "-drive"] {
            #expect(values(args, flag) == values(captureArgs, flag))
        }
    }
}
