// swift-tools-version: 6.0
import PackageDescription

// PluginKit: molt's Swift SDK for plugin authors, and the plugin ABI header it implements. A package
// of its own with no dependencies, so a plugin package resolves nothing but this directory; molt's
// root package depends on it by path (the host links PluginABI only, never PluginKit).
let package = Package(
    name: "PluginKit",
    platforms: [.macOS(.v15)],  // Synchronization.Mutex
    products: [
        // The C ABI (header-only): the contract between the host and every plugin.
        .library(name: "PluginABI", targets: ["PluginABI"]),
        // One product per capability module, so a plugin links (and exports the symbols of) exactly
        // the capabilities it has.
        .library(name: "PluginKit", targets: ["PluginKit"]),
        .library(name: "PluginKitLock", targets: ["PluginKitLock"]),
        .library(name: "PluginKitState", targets: ["PluginKitState"]),
        .library(name: "PluginKitStateTransact", targets: ["PluginKitStateTransact"]),
        .library(name: "PluginKitInPlace", targets: ["PluginKitInPlace"]),
        .library(name: "PluginKitStateTransfer", targets: ["PluginKitStateTransfer"]),
        .library(name: "PluginKitOperations", targets: ["PluginKitOperations"]),
    ],
    targets: [
        // The ABI: a header-only C target (plus compile-time layout checks).
        .target(name: "PluginABI", path: "Sources/PluginABI"),
        // Each capability module's `public @_cdecl` functions become the plugin's exports (the host
        // detects capabilities by symbol presence). No Foundation anywhere: plugins use the shared runtime.
        .target(name: "PluginKitEntry", path: "Sources/Entry"),
        .target(name: "PluginKit", dependencies: ["PluginABI", "PluginKitEntry"], path: "Sources/Core"),
        .target(name: "PluginKitLock", dependencies: ["PluginKit", "PluginABI"], path: "Sources/Lock"),
        .target(name: "PluginKitState", dependencies: ["PluginKit", "PluginABI"], path: "Sources/State"),
        .target(
            name: "PluginKitStateTransact",
            dependencies: ["PluginKitState", "PluginKit", "PluginABI"],
            path: "Sources/StateTransact"
        ),
        .target(name: "PluginKitInPlace", dependencies: ["PluginKit", "PluginABI"], path: "Sources/InPlace"),
        .target(
            name: "PluginKitStateTransfer",
            dependencies: ["PluginKit", "PluginABI"],
            path: "Sources/StateTransfer"
        ),
        // Declared operations (ABI 1.2) from Swift methods, and kind "binding".
        .target(name: "PluginKitOperations", dependencies: ["PluginKit", "PluginABI"], path: "Sources/Operations"),
        .testTarget(
            name: "PluginKitTests",
            dependencies: ["PluginKit", "PluginKitStateTransfer", "PluginKitOperations"],
            path: "Tests/PluginKitTests"
        ),
    ]
)
