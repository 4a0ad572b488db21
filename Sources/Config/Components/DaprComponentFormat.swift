import PluginHost

/// Which molt plugin serves a Dapr component type: the one table shared by the Dapr and Layotto readers.
public enum ComponentTypeTable {
    /// Dapr `spec.type` → molt plugin, where the names differ. Any other `state.X` or `lock.X` is served
    /// by a plugin named `X`.
    public static let pluginsByDaprType: [String: String] = [
        "state.redis": "redis-state",
        "lock.in-memory": "memorylock",
        "secretstores.local.file": "local-file",
        "secretstores.local.env": "local-env",
        "configuration.etcd": "etcd-config",
        "pubsub.in-memory": "in-memory-pubsub",
        "pubsub.redis": "redis-streams",
    ]

    /// The kind and plugin for a Dapr type such as `state.redis` or `bindings.ratelimit` (an output binding: a plugin
    /// of kind binding, whose declared operations apps call through InvokeBinding); nil when the building
    /// block is not one molt serves (crypto, middleware, …) or the type has no name after the dot.
    public static func plugin(forDaprType type: String) -> (kind: ComponentKind, plugin: String)? {
        guard let dot = type.firstIndex(of: "."),
              let kind = ComponentKind.allCases.first(where: { $0.daprBuildingBlock == type[..<dot] }) else { return nil }
        let name = String(type[type.index(after: dot)...])
        guard !name.isEmpty else { return nil }
        return (kind, pluginsByDaprType[type] ?? name)
    }
}

/// Dapr Component YAML, unchanged from a Dapr deployment: one or more documents per file.
///
///     apiVersion: dapr.io/v1alpha1
///     kind: Component
///     metadata: { name: statestore }
///     spec:
///       type: state.redis
///       version: v1
///       metadata:
///         - { name: redisHost, value: "localhost:6379" }
///
/// `kind: Subscription` documents are read as `SubscriptionSpec`s (`DaprSubscriptionFormat`). Documents of other
/// kinds (Configuration, Resiliency, …) and other building blocks (crypto.*, …) are
/// skipped with a warning. A metadata item's `secretKeyRef` ({name, key}; key defaults to name) becomes a
/// `SecretReference` to the store named by `auth.secretStore`, resolved when the component is applied.
enum DaprComponentFormat {
    static let apiVersion = "dapr.io/v1alpha1"

    /// Whether a document looks like a Kubernetes-style Dapr resource.
    static func recognizes(_ document: SourceNode) -> Bool {
        guard let entries = try? document.entries() else { return false }
        return entries.contains { $0.key == "apiVersion" } && entries.contains { $0.key == "kind" }
    }

    static func read(_ documents: [SourceNode]) throws -> (components: [ComponentSpec], subscriptions: [SubscriptionSpec], warnings: [ConfigWarning]) {
        var components: [ComponentSpec] = []
        var subscriptions: [SubscriptionSpec] = []
        var warnings: [ConfigWarning] = []
        for document in documents {
            if try document.child("kind")?.string() == "Subscription" {
                subscriptions.append(try DaprSubscriptionFormat.read(document, warnings: &warnings))
            } else if let component = try readDocument(document, warnings: &warnings) {
                components.append(component)
            }
        }
        return (components, subscriptions, warnings)
    }

    private static let topLevelKeys: Set<String> = ["apiVersion", "kind", "metadata", "spec", "scopes", "auth"]
    private static let objectMetadataKeys: Set<String> = ["name", "namespace", "labels", "annotations"]
    private static let specKeys: Set<String> = ["type", "version", "metadata", "ignoreErrors", "initTimeout"]

    private static func readDocument(_ document: SourceNode, warnings: inout [ConfigWarning]) throws -> ComponentSpec? {
        let kind = try document.required("kind", expected: "a string").string()
        guard kind == "Component" else {
            warnings.append(ConfigWarning(origin: document.origin, keyPath: "kind", kind: .ignored,
                                          message: "Dapr \(kind) documents are not read by molt; skipped"))
            return nil
        }
        let apiVersionNode = try document.required("apiVersion", expected: "a string")
        let apiVersion = try apiVersionNode.string()
        guard apiVersion == Self.apiVersion else {
            throw ConfigError(origin: apiVersionNode.origin, keyPath: "apiVersion", expected: "'\(Self.apiVersion)'", found: "'\(apiVersion)'",
                              message: "unsupported apiVersion '\(apiVersion)' (molt reads \(Self.apiVersion))")
        }
        for (key, value) in try document.entries() where !topLevelKeys.contains(key) {
            warnings.append(ConfigWarning(origin: value.origin, keyPath: value.path, kind: .unknownKey, message: "unknown key '\(key)'"))
        }
        let objectMetadata = try document.required("metadata", expected: "a mapping")
        for (key, value) in try objectMetadata.entries() where !objectMetadataKeys.contains(key) {
            warnings.append(ConfigWarning(origin: value.origin, keyPath: value.path, kind: .unknownKey, message: "unknown key '\(key)'"))
        }
        let name = try objectMetadata.required("name", expected: "a string").string()
        if let scopes = try document.child("scopes") {
            warnings.append(ConfigWarning(origin: scopes.origin, keyPath: scopes.path, kind: .ignored,
                                          message: "scopes are ignored: a molt sidecar serves one app, and every component is visible to it"))
        }
        var secretStore: String?
        if let auth = try document.child("auth") {
            for (key, value) in try auth.entries() where key != "secretStore" {
                warnings.append(ConfigWarning(origin: value.origin, keyPath: value.path, kind: .unknownKey, message: "unknown key '\(key)'"))
            }
            secretStore = try auth.child("secretStore")?.string()
        }

        let spec = try document.required("spec", expected: "a mapping")
        for (key, value) in try spec.entries() where !specKeys.contains(key) {
            warnings.append(ConfigWarning(origin: value.origin, keyPath: value.path, kind: .unknownKey, message: "unknown key '\(key)'"))
        }
        let typeNode = try spec.required("type", expected: "a string such as state.redis")
        let type = try typeNode.string()
        guard let (componentKind, plugin) = ComponentTypeTable.plugin(forDaprType: type) else {
            warnings.append(ConfigWarning(origin: typeNode.origin, keyPath: typeNode.path, kind: .ignored,
                                          message: "component '\(name)' of type '\(type)' skipped: molt serves \(ComponentKind.allCases.map { "\($0.daprBuildingBlock).*" }.joined(separator: ", ")) components"))
            return nil
        }
        var version = VersionRequirement.any
        if let node = try spec.child("version") {
            let text = try node.scalarText(expected: "a version such as v1")
            guard text.hasPrefix("v"), let major = Int(text.dropFirst()), major >= 0 else {
                throw ConfigError.type(node.origin, node.path, expected: "a version such as v1", found: "'\(text)'")
            }
            version = .major(major)
        }
        if let node = try spec.child("ignoreErrors"), try node.bool() {
            warnings.append(ConfigWarning(origin: node.origin, keyPath: node.path, kind: .ignored,
                                          message: "ignoreErrors is ignored: a component that fails to start keeps molt not ready"))
        }
        if let node = try spec.child("initTimeout") {
            warnings.append(ConfigWarning(origin: node.origin, keyPath: node.path, kind: .ignored,
                                          message: "initTimeout is ignored: molt's readinessTimeoutMs bounds every component's start"))
        }

        var metadata: [String: String] = [:]
        var origins: [String: (origin: ConfigOrigin, path: String)] = [:]
        for item in try spec.child("metadata")?.items() ?? [] {
            for (key, value) in try item.entries() where !["name", "value", "secretKeyRef"].contains(key) {
                warnings.append(ConfigWarning(origin: value.origin, keyPath: value.path, kind: .unknownKey, message: "unknown key '\(key)'"))
            }
            let itemName = try item.required("name", expected: "a string").string()
            if metadata[itemName] != nil {
                warnings.append(ConfigWarning(origin: item.origin, keyPath: item.path, kind: .ignored,
                                              message: "metadata '\(itemName)' is given again; the last value wins"))
            }
            if let secret = try item.child("secretKeyRef") {
                if let value = try item.child("value") {
                    throw ConfigError(origin: value.origin, keyPath: value.path,
                                      message: "metadata '\(itemName)' has both a value and a secretKeyRef; give one")
                }
                guard let secretStore else {
                    throw ConfigError(origin: secret.origin, keyPath: secret.path,
                                      message: "secretKeyRef for '\(itemName)' needs auth.secretStore: the secret store component to read it from")
                }
                metadata[itemName] = try SecretKeyRefNode.reference(secret, store: secretStore).description
            } else {
                let value = try item.child("value")?.scalarText() ?? ""
                try SecretKeyRefNode.refuseLookalike(value, at: item.child("value") ?? item)
                metadata[itemName] = value
            }
            origins[itemName] = (item.origin, item.path)
        }
        var component = ComponentSpec(kind: componentKind, name: name, plugin: plugin, version: version, metadata: metadata, origin: document.origin)
        component.metadataOrigins = origins
        return component
    }
}
