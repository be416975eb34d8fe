// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "hvc",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "hvc", targets: ["hvc"]),
        .executable(name: "hvc-shim", targets: ["hvc-shim"]),
        .executable(name: "hvcd", targets: ["hvcd"]),
        .executable(name: "hvc-oci", targets: ["hvc-oci"]),
        .executable(name: "hvc-agent", targets: ["hvc-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.65.0"),
    ],
    targets: [
        // C: only what Swift cannot do safely (fork→exec with no Swift in between, ioctl macros).
        .target(name: "CLinux"),
        // Syscall layer: Errno, file descriptors, pipes, poll. No Foundation: the guest links it.
        .target(name: "HVCSystem", dependencies: ["CLinux"]),
        // Host↔guest wire protocol, shared by both sides. No Foundation.
        .target(name: "AgentProtocol"),
        // The guest's PID 1.
        .executableTarget(
            name: "hvc-agent",
            dependencies: ["AgentProtocol", "HVCSystem", "CLinux"],
            linkerSettings: [.unsafeFlags(["-static-executable"])]
        ),
        // The VMM jail's C half: namespaces, pivot_root, capabilities (libcap), seccomp (libseccomp).
        .target(name: "CJail", dependencies: ["CLinux"], linkerSettings: [.linkedLibrary("cap"), .linkedLibrary("seccomp")]),
        // Confinement of each VMM process: cgroups, identities, the seccomp policy, the jail plan.
        .target(name: "Jail", dependencies: ["CJail", "CLinux", "HVCSystem"]),
        // Image layers and archives through libarchive, confined by chroot.
        .target(name: "CLayer", linkerSettings: [.linkedLibrary("archive")]),
        // OCI and Docker image formats: digests, manifests, indexes, archive layouts.
        .target(name: "OCI", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // Pulls over HTTP: FoundationNetworking only where images are pulled (hvc, hvcd).
        .target(name: "Registry", dependencies: ["OCI"]),
        // The VirtualMachine protocol and its QEMU backend.
        .target(name: "VMM", dependencies: ["AgentProtocol", "HVCSystem", "CLinux", "Jail"]),
        // Containers, images, state on disk.
        .target(
            name: "Runtime",
            dependencies: ["VMM", "Jail", "OCI", "CLayer", "AgentProtocol", "HVCSystem", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .executableTarget(
            name: "hvc",
            dependencies: ["Runtime", "OCI", "Registry", "Jail", "VMM", "CLinux", "HVCSystem", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The HTTP/JSON API on a Unix socket, with tenants.
        .target(
            name: "APIServer",
            dependencies: [
                "Runtime", "OCI", "Registry", "CLinux", "HVCSystem", "VMM", "AgentProtocol",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(name: "hvcd", dependencies: ["APIServer", "Runtime", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // hvc's detached processes, one role each: container supervisors, template keepers,
        // pool members, the name server, OCI containers' processes.
        .executableTarget(name: "hvc-shim", dependencies: ["Runtime", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // runc's command line over hvc's VMs, for podman, containerd and Docker.
        .target(name: "OCICommandLine", dependencies: ["Runtime", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "hvc-oci", dependencies: ["OCICommandLine"]),
        .testTarget(name: "AgentProtocolTests", dependencies: ["AgentProtocol"]),
        .testTarget(name: "VMMTests", dependencies: ["VMM"]),
        .testTarget(name: "JailTests", dependencies: ["Jail"]),
        .testTarget(name: "OCITests", dependencies: ["OCI"]),
        .testTarget(name: "APIServerTests", dependencies: ["APIServer", "AgentProtocol", "CLinux", "HVCSystem", "VMM"]),
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime", "OCI", "VMM", "AgentProtocol", "HVCSystem"]),
        .testTarget(name: "OCICommandLineTests", dependencies: ["OCICommandLine", "Runtime"]),
        .testTarget(name: "ShimTests", dependencies: ["hvc-shim", "Runtime"]),
        .testTarget(name: "EndToEndTests", dependencies: ["Runtime"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
