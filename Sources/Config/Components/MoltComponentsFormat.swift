import PluginHost

/// molt's own components file, JSON or YAML:
///
///     version: 1            # optional; a file without it is version 1
///     components:
///       - { kind: state, name: statestore, plugin: redis-state, version: 1.2.0, metadata: {redisHost: "localhost:6379"}, pin: <sha256> }
///
/// `version`, `metadata` and `pin` are optional. Metadata values may be any scalar (stringified), or a
/// secret reference, `{secretKeyRef: {store: vault, name: redis, key: password}}` (`key` defaults to `name`).
/// A component's `secretStore` names the store of references that do not name one.
/// Only version 1 exists; a later version gets its own reader beside `readVersion1`.
enum MoltComponentsFormat {
    static let currentVersion = 1

    static func read(_ root: SourceNode) throws -> (components: [ComponentSpec], warnings: [ConfigWarning]) {
        var warnings: [ConfigWarning] = []
        let entries = try root.entries()
        for (key, value) in entries where !["version", "components"].contains(key) {
            warnings.append(ConfigWarning(origin: value.origin, keyPath: value.path, kind: .unknownKey,
                                          message: "unknown key '\(key)' (a components file has version and components)"))
        }
        let version = try root.child("version").map { try $0.int() } ?? 1
        switch version {
        case 1:
            let components = try readVersion1(root, warnings: &warnings)
            return (components, warnings)
        default:
            let node = try root.required("version", expected: "an integer")
            throw ConfigError(origin: node.origin, keyPath: "version",
                              message: "components file version \(version) is not supported (this molt reads versions 1...\(currentVersion))")
        }
    }

    private static let componentKeys: Set<String> = ["kind", "name", "plugin", "version", "metadata", "pin", "secretStore"]

    private static func readVersion1(_ root: SourceNode, warnings: inout [ConfigWarning]) throws -> [ComponentSpec] {
        guard let list = try root.child("components") else { return [] }
        return try list.items().map { item in
            for (key, value) in try item.entries() where !componentKeys.contains(key) {
                warnings.append(ConfigWarning(origin: value.origin, keyPath: value.path, kind: .unknownKey,
                                              message: "unknown component key '\(key)' (known: \(componentKeys.sorted().joined(separator: ", ")))"))
            }
            let kindNode = try item.required("kind", expected: "a string")
            let kindName = try kindNode.string()
            guard let kind = ComponentKind(rawValue: kindName) else {
                throw ConfigError(origin: kindNode.origin, keyPath: kindNode.path, expected: "one of \(ComponentKind.allCases.map(\.rawValue))",
                                  found: "'\(kindName)'", message: "unknown component kind '\(kindName)' (known: \(ComponentKind.allCases.map(\.rawValue)))")
            }
            var version = VersionRequirement.any
            if let node = try item.child("version") {
                let text = try node.scalarText(expected: "a semantic version string like 1.2.0")
                guard let parsed = SemanticVersion(text) else {
                    throw ConfigError.type(node.origin, node.path, expected: "a semantic version string like 1.2.0", found: "'\(text)'")
                }
                version = .exact(parsed)
            }
            var metadata: [String: String] = [:]
            var origins: [String: (origin: ConfigOrigin, path: String)] = [:]
            let secretStore = try item.child("secretStore")?.string()
            if let node = try item.child("metadata") {
                for (key, value) in try node.entries() {
                    if let secret = try SecretKeyRefNode.secretKeyRef(in: value) {
                        metadata[key] = try SecretKeyRefNode.reference(secret, store: secretStore).description
                    } else {
                        metadata[key] = try value.scalarText()
                        try SecretKeyRefNode.refuseLookalike(metadata[key]!, at: value)
                    }
                    origins[key] = (value.origin, value.path)
                }
            }
            var component = ComponentSpec(kind: kind, name: try item.required("name", expected: "a string").string(),
                                          plugin: try item.required("plugin", expected: "a string").string(),
                                          version: version, metadata: metadata, pin: try item.child("pin")?.string(), origin: item.origin)
            component.metadataOrigins = origins
            return component
        }
    }
}
