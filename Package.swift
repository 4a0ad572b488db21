// swift-tools-version: 6.2
import PackageDescription

// Layout: the C ABI header (PluginABI) is the contract. PluginHost loads and vets plugin binaries,
// Engine runs components and hot-reloads them, Host is the thin `molt` executable. PluginKit (a
// package of its own in PluginKit/, which also carries PluginABI) is the SDK Swift plugin authors
// link statically into their .so; the host never links it.
/// A product of the PluginKit package (PluginKit/): PluginABI, PluginKit, PluginKitLock, ...
func kit(_ product: String) -> Target.Dependency { .product(name: product, package: "PluginKit") }

let package = Package(
    name: "molt",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "molt", targets: ["Host"]),
        // Swift plugins built here (dynamic libraries; the Makefile stages them).
        .library(name: "SwiftTestLockV1", type: .dynamic, targets: ["SwiftTestLockV1"]),
        .library(name: "SwiftTestLockV2", type: .dynamic, targets: ["SwiftTestLockV2"]),
        .library(name: "MinimalSwiftLock", type: .dynamic, targets: ["MinimalSwiftLock"]),
        .library(name: "RedisState", type: .dynamic, targets: ["RedisState"]),
        .library(name: "TextTools", type: .dynamic, targets: ["TextTools"]),
        .executable(name: "molt-bench", targets: ["MoltBench"]),
    ],
    dependencies: [
        .package(path: "PluginKit"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: ["CommandLineArguments"]),
    ],
    targets: [
        // ---- Host side ----
        // libffi: declared operations (ABI 1.2) are called through call interfaces prepared at load.
        .systemLibrary(name: "CFFI", path: "Sources/CFFI", pkgConfig: "libffi", providers: [.apt(["libffi-dev"])]),
        .systemLibrary(name: "CYAML", path: "Sources/CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .target(
            name: "PluginHost",
            dependencies: [
                kit("PluginABI"), "CFFI",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/PluginHost"
        ),
        .target(
            name: "Engine",
            dependencies: ["PluginHost", kit("PluginABI"), .product(name: "Logging", package: "swift-log")],
            path: "Sources/Engine"
        ),
        // The running configuration on disk (the state directory): written before an apply is
        // acknowledged, restored at start.
        .target(
            name: "Persistence",
            dependencies: ["Engine", "PluginHost", .product(name: "Logging", package: "swift-log")],
            path: "Sources/Persistence"
        ),

        // Configuration layers (common < app < local): their merging, their application to the engine
        // (what the agents feed) and their persistence in the state directory.
        .target(
            name: "Layers",
            dependencies: ["Config", "Engine", "PluginHost", "Persistence", .product(name: "Logging", package: "swift-log")],
            path: "Sources/Layers"
        ),

        // ---- Configuration: versioned outer formats converted to one inner model ----
        .target(
            name: "Config",
            dependencies: [
                "Engine", "PluginHost", "EventRouting",
                .product(name: "Configuration", package: "swift-configuration"),
                "CYAML",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Config"
        ),

        // Agents: in-process services that push configuration through the same apply path as the APIs.
        .target(
            name: "Agents",
            dependencies: [
                "Config", "Engine", "PluginHost", "MoltProtos", "Layers",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/Agents"
        ),

        // ---- Serving: the network APIs around the engine ----
        // Generated code (scripts/generate-protos.sh, committed): Dapr's runtime API subset, Layotto's
        // Lifecycle API and molt's control API.
        .target(
            name: "MoltProtos",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ],
            path: "Sources/MoltProtos",
            exclude: ["protos"]
        ),
        // What every API shares: call metrics, error classification, tokens, listen addresses.
        .target(
            name: "ServingCore",
            dependencies: [
                "Engine", "PluginHost",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/Serving/Core"
        ),
        // The app API over gRPC (dapr.proto.runtime.v1.Dapr) and the control plane (Lifecycle + molt control).
        .target(
            name: "GRPCServing",
            dependencies: [
                "ServingCore", "MoltProtos", "AppCallback", "Engine", "PluginHost",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
            ],
            path: "Sources/Serving/GRPC"
        ),
        // The gRPC app channel: molt's client to an app served with --app-protocol grpc (Dapr's AppCallback).
        .target(
            name: "AppCallback",
            dependencies: [
                "ServingCore", "MoltProtos",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/Serving/AppCallback"
        ),
        // The app channel: molt's HTTP/1.1 client to the app on its app port (Dapr's app channel).
        .target(
            name: "AppChannel",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/Serving/AppChannel"
        ),
        // Subscription routing rules: the CEL subset Dapr's `routes.rules[].match` is written in (no dependencies,
        // no Foundation), read by Config (declarative subscriptions) and HTTPServing (programmatic ones, delivery).
        .target(name: "EventRouting", path: "Sources/Serving/Routing"),
        // The app API over HTTP (Dapr's /v1.0 paths) and the admin endpoints (health, /metrics).
        .target(
            name: "HTTPServing",
            dependencies: [
                "ServingCore", "AppChannel", "AppCallback", "MoltProtos", "Engine", "PluginHost", "EventRouting",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Sources/Serving/HTTP"
        ),
        .executableTarget(
            name: "Host",
            dependencies: [
                "PluginHost", "Engine", "ServingCore", "AppChannel", "AppCallback", "GRPCServing", "HTTPServing", "EventRouting", "MoltProtos", "Persistence", "Config", "Layers", "Agents",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Sources/Host"
        ),

        // ---- Swift plugins built with PluginKit (the package in PluginKit/) ----
        // The Swift test plugin: shared code, and two versions a few lines each.
        .target(
            name: "SwiftTestLockCore",
            dependencies: [kit("PluginKit"), kit("PluginKitLock"), kit("PluginKitInPlace"), kit("PluginKitStateTransfer")],
            path: "Tests/Fixtures/SwiftTestLock/Core"
        ),
        .target(
            name: "SwiftTestLockV1",
            dependencies: ["SwiftTestLockCore", kit("PluginKit")],
            path: "Tests/Fixtures/SwiftTestLock/V1"
        ),
        .target(
            name: "SwiftTestLockV2",
            dependencies: ["SwiftTestLockCore", kit("PluginKit")],
            path: "Tests/Fixtures/SwiftTestLock/V2"
        ),
        // The minimal example of the plugin author's guide.
        .target(
            name: "MinimalSwiftLock",
            dependencies: [kit("PluginKit"), kit("PluginKitLock")],
            path: "docs/examples/swift-minimal",
            exclude: ["README.md"]
        ),

        // The Redis state store plugin (Plugins/RedisState): hiredis as a system library.
        // No pkgConfig: Debian's hiredis.pc adds -D_FILE_OFFSET_BITS=64, which SwiftPM rejects with a warning;
        // the headers are in /usr/include/hiredis and the module map links -lhiredis.
        .systemLibrary(name: "CHiredis", path: "Plugins/RedisState/CHiredis", providers: [.apt(["libhiredis-dev"])]),
        .target(
            name: "RedisState",
            dependencies: [kit("PluginKit"), kit("PluginKitState"), kit("PluginKitStateTransact"), kit("PluginKitInPlace"), "CHiredis"],
            path: "Plugins/RedisState/Sources"
        ),
        // The text-tools binding (Plugins/TextTools): operations declared from Swift methods.
        .target(
            name: "TextTools",
            dependencies: [kit("PluginKit"), kit("PluginKitOperations")],
            path: "Plugins/TextTools/Sources"
        ),

        .executableTarget(
            name: "MoltBench",
            dependencies: [
                "Engine", "PluginHost", kit("PluginABI"), "CHiredis", "MoltProtos",
                .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "Logging", package: "swift-log"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Benchmarks/MoltBench"
        ),

        // ---- Tests ----
        .target(name: "MoltTestSupport", dependencies: ["PluginHost"], path: "Tests/Support"),
        .testTarget(
            name: "PluginHostTests",
            dependencies: ["PluginHost", kit("PluginABI"), "MoltTestSupport", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio")],
            path: "Tests/PluginHostTests"
        ),
        .testTarget(
            name: "EngineTests",
            dependencies: ["Engine", "PluginHost", kit("PluginABI"), "MoltTestSupport"],
            path: "Tests/EngineTests"
        ),
        .testTarget(
            name: "PersistenceTests",
            dependencies: ["Persistence", "Engine", "PluginHost", "MoltTestSupport"],
            path: "Tests/PersistenceTests"
        ),
        .testTarget(
            name: "AgentsTests",
            dependencies: ["Agents", "Layers", "Config", "Engine", "PluginHost", "Persistence", "MoltTestSupport"],
            path: "Tests/AgentsTests"
        ),
        .testTarget(
            name: "ConfigTests",
            dependencies: ["Config", "Engine", "PluginHost", "MoltTestSupport"],
            path: "Tests/ConfigTests",
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "ServingTests",
            dependencies: ["ServingCore", "AppChannel", "AppCallback", "EventRouting", "HTTPServing", "MoltProtos",
                           .product(name: "GRPCCore", package: "grpc-swift-2"), .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio")],
            path: "Tests/ServingTests"
        ),
        .testTarget(
            name: "RedisStateTests",
            dependencies: ["Engine", "PluginHost", "MoltTestSupport"],
            path: "Tests/RedisStateTests"
        ),
    ]
)
