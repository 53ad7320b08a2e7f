// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "vae-cluster",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "vae", targets: ["vae"]),
        .executable(name: "vae-bench", targets: ["vae-bench"]),
        .executable(name: "vae-coordinator", targets: ["vae-coordinator"]),
        .executable(name: "vae-worker", targets: ["vae-worker"]),
        .library(name: "VAECore", targets: ["VAECore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // Already a dependency of Hummingbird; named for its graceful shutdown.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // Event protocol buffers of TensorBoard's files; scripts/generate-protos.sh makes the code.
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        // Already a dependency of Hummingbird; named because MetricsServer imports NIOCore.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
    ],
    targets: [
        // C libraries, found through pkg-config; apt names the Debian packages that provide them.
        .systemLibrary(
            name: "CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]),
        .systemLibrary(
            name: "CZeroMQ", pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"]), .brew(["zeromq"])]),
        .systemLibrary(
            name: "CPNG", pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"]), .brew(["libpng"])]),
        .systemLibrary(
            name: "CCairo", pkgConfig: "cairo",
            providers: [.apt(["libcairo2-dev"]), .brew(["cairo"])]),
        .systemLibrary(
            name: "CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),

        // The numeric core: parameters, layers, objectives, optimizers, RNG, evaluation. No I/O.
        .target(name: "VAECore", dependencies: ["CBLAS"]),
        // zlib's CRC-32 over buffers of any size: checkpoints, WORK messages, dataset fingerprints.
        .target(name: "Checksums", dependencies: ["CZlib"]),
        // Datasets: IDX/npy/CSV readers, preprocessing, minibatch filling.
        .target(name: "VAEData", dependencies: ["VAECore", "Checksums", "CZlib"]),
        // What Linux counts about a TCP connection (bytes received), for the ZeroMQ module.
        .target(name: "CTCPInfo"),
        // The thin libzmq wrapper: context, socket, message, poller, monitor, and the guard that
        // bounds what a peer can make libzmq buffer. Knows bytes, not VAEs.
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ", "CTCPInfo"]),
        // Memory shared between processes of one host: sealed memfd regions, the abstract Unix
        // sockets that hand them over, sequence tags. Knows bytes, not VAEs or rings.
        .target(name: "CSharedMemory"),
        .target(name: "SharedMemory", dependencies: ["CSharedMemory"]),
        // CURVE key files: a key pair as NAME.key (secret, mode 0600) and NAME.pub, allowlists of
        // public keys. Its own module so that `vae keygen` needs only this and ZeroMQ.
        .target(name: "CurveKeyFiles", dependencies: ["ZeroMQ"]),
        // Protocol messages: fixed little-endian headers and float/byte payloads, validated on
        // decode. Knows frames and float buffers, not VAEs or sockets.
        .target(name: "WireProtocol", dependencies: ["Checksums"]),
        // Coordinator and worker logic as state machines: events in, directives out, no I/O.
        .target(name: "Coordination", dependencies: ["WireProtocol", "Collectives"]),
        .target(name: "Collectives"),
        // PNG images (libpng), image grids, and charts drawn with cairo (titles, axes, legends):
        // knows pixels and series of numbers, not VAEs.
        .target(name: "Pictures", dependencies: ["CPNG", "CCairo"]),
        // safetensors reader/writer with atomic writes; knows tensors, not VAEs.
        .target(name: "Checkpoint", dependencies: ["Checksums"]),
        // TensorBoard event files: records, CRC32C, Event protobufs. Writes and reads scalars and
        // PNG images; knows neither VAEs, pixels nor the network. Proto/ holds the .proto that
        // Generated/ is made from (scripts/generate-protos.sh).
        .target(
            name: "TensorBoard",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Proto"]),
        // Single-process training and evaluation runs, checkpoints of a model, run outputs (with
        // their TensorBoard file) and their pictures. No command-line parsing.
        .target(
            name: "VAETraining",
            dependencies: [
                "VAECore", "VAEData", "Checkpoint", "Pictures", "TensorBoard",
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The command-line layer shared by the executables (ArgumentParser): the option groups of
        // training, output and logging, progress on standard output, the shell form of a command.
        .target(
            name: "VAECommandLine",
            dependencies: [
                "VAETraining", "VAECore", "VAEData",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The loops that drive the state machines with ZeroMQ sockets and the numeric core.
        .target(
            name: "ClusterRuntime",
            dependencies: [
                "ZeroMQ", "SharedMemory", "WireProtocol", "Coordination", "Collectives", "VAETraining", "VAECore", "VAEData",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]),
        // Serves a Prometheus registry's metrics over HTTP (Hummingbird). Knows neither VAEs nor
        // ZeroMQ: the coordinator records through swift-metrics, this module exposes them.
        .target(
            name: "MetricsServer",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "vae-coordinator",
            dependencies: [
                "ClusterRuntime", "Collectives", "Coordination", "CurveKeyFiles", "VAETraining", "VAECommandLine", "MetricsServer",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "vae-worker",
            dependencies: [
                "ClusterRuntime", "Coordination", "CurveKeyFiles", "VAECommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "vae",
            dependencies: [
                "VAETraining", "VAECommandLine", "CurveKeyFiles", "Pictures", "VAECore", "VAEData",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Micro-benchmarks: sgemm speed, the training step, IWAE evaluation, transport, filling.
        .executableTarget(
            name: "vae-bench",
            dependencies: [
                "VAECore", "VAEData", "ZeroMQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/vae-bench"),

        // Fixtures shared by test targets: small datasets on disk, child processes.
        .target(name: "TestSupport", dependencies: ["VAECore", "ClusterRuntime"], path: "Tests/TestSupport"),
        .testTarget(name: "VAECoreTests", dependencies: ["VAECore"]),
        .testTarget(name: "VAEDataTests", dependencies: ["VAEData", "VAECore", "CZlib"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "Checksums", "TestSupport"]),
        .testTarget(name: "PicturesTests", dependencies: ["Pictures"]),
        .testTarget(name: "TensorBoardTests", dependencies: ["TensorBoard", "TestSupport"]),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "SharedMemoryTests", dependencies: ["SharedMemory"]),
        .testTarget(name: "WireProtocolTests", dependencies: ["WireProtocol", "Checksums"]),
        .testTarget(name: "CoordinationTests", dependencies: ["Coordination", "WireProtocol", "Collectives"]),
        .testTarget(
            name: "ClusterRuntimeTests",
            dependencies: ["ClusterRuntime", "Coordination", "Collectives", "WireProtocol", "ZeroMQ", "SharedMemory", "VAETraining", "VAEData",
                           "VAECore", "TestSupport", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "MetricsTests",
            dependencies: ["MetricsServer", "ClusterRuntime", "TestSupport",
                           .product(name: "Prometheus", package: "swift-prometheus"),
                           .product(name: "CoreMetrics", package: "swift-metrics"),
                           .product(name: "MetricsTestKit", package: "swift-metrics"),
                           .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["ClusterRuntime", "CurveKeyFiles", "VAETraining", "VAECommandLine", "VAECore", "VAEData",
                           "WireProtocol", "ZeroMQ", "TestSupport"]),
        .testTarget(
            name: "VAETrainingTests",
            dependencies: ["VAETraining", "VAECommandLine", "TestSupport", "Pictures", "Checkpoint", "VAECore", "VAEData",
                           .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "CollectivesTests", dependencies: ["Collectives"]),
        .testTarget(name: "VAECommandLineTests", dependencies: ["VAECommandLine", "VAETraining", "VAECore"]),
    ]
)

// Strict settings for every Swift target.
for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .swiftLanguageMode(.v6),
        .enableUpcomingFeature("ExistentialAny"),
    ]
}
