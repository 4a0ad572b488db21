// swift-tools-version: 6.0
import PackageDescription

// A Swift plugin in a package of its own, built in two versions from one source (see README.md).
// It depends on nothing but PluginKit. PluginKit is taken by path (SwiftPM cannot take a package
// from a subdirectory of a git repository): here molt's own PluginKit/ directory, or wherever
// MOLT_PLUGINKIT_PATH says. Keep that directory named PluginKit (the `package:` names below).
let pluginKitPath = Context.environment["MOLT_PLUGINKIT_PATH"] ?? "../../../PluginKit"

let package = Package(
    name: "ExampleLock",
    platforms: [.macOS(.v15)],
    products: [
        // One dynamic library per version; `make`-style staging names them <name>-<version>.so.
        .library(name: "ExampleLockV1", type: .dynamic, targets: ["ExampleLockV1"]),
        .library(name: "ExampleLockV2", type: .dynamic, targets: ["ExampleLockV2"]),
    ],
    dependencies: [
        .package(path: pluginKitPath),
    ],
    targets: [
        // The plugin's code, generic over what differs between versions.
        .target(
            name: "ExampleLock",
            dependencies: [
                .product(name: "PluginKit", package: "PluginKit"),
                .product(name: "PluginKitLock", package: "PluginKit"),
                .product(name: "PluginKitStateTransfer", package: "PluginKit"),
            ]
        ),
        // One thin target per version: its version number and the export line.
        .target(name: "ExampleLockV1", dependencies: ["ExampleLock", .product(name: "PluginKit", package: "PluginKit")]),
        .target(name: "ExampleLockV2", dependencies: ["ExampleLock", .product(name: "PluginKit", package: "PluginKit")]),
    ]
)
