import PluginHost

/// Reads the `secretKeyRef` of a component file's metadata value, `{name: redis, key: password}` (Dapr's
/// fields; `key` defaults to `name`) and, in molt's format, an optional `store`, into a `SecretReference`.
enum SecretKeyRefNode {
    private static let fields: Set<String> = ["name", "key", "store"]

    /// The `secretKeyRef` mapping of a metadata value that is `{secretKeyRef: {...}}`; nil for a scalar.
    static func secretKeyRef(in value: SourceNode) throws -> SourceNode? {
        guard case .mapping = value.node else { return nil }
        let entries = try value.entries()
        guard entries.count == 1, entries[0].key == "secretKeyRef" else {
            throw value.typeError(expected: "a scalar, or {secretKeyRef: {store, name, key}}")
        }
        return entries[0].value
    }

    /// The reference `node` describes; `store` is the component's store, used when the node names none.
    static func reference(_ node: SourceNode, store: String?) throws -> SecretReference {
        for (key, value) in try node.entries() where !fields.contains(key) {
            throw ConfigError(origin: value.origin, keyPath: value.path, message: "unknown secretKeyRef field '\(key)' (known: key, name, store)")
        }
        let name = try node.required("name", expected: "the secret's name").scalarText()
        let key = try node.child("key")?.scalarText() ?? name
        guard let store = try node.child("store")?.string() ?? store, !store.isEmpty else {
            throw ConfigError(origin: node.origin, keyPath: node.path,
                              message: "secretKeyRef of secret '\(name)' names no secret store (give its store, or the component's secretStore)")
        }
        guard !name.isEmpty, !key.isEmpty else {
            throw ConfigError(origin: node.origin, keyPath: node.path, message: "secretKeyRef needs a non-empty name and key")
        }
        return SecretReference(store: store, name: name, key: key)
    }

    /// A plain value that would read as a reference is refused: references are written as secretKeyRef.
    static func refuseLookalike(_ value: String, at node: SourceNode) throws {
        guard SecretReference.looksLikeReference(value) else { return }
        do {
            _ = try SecretReference.parse(value)
        } catch {
            throw ConfigError(origin: node.origin, keyPath: node.path, message: "\(error.description) (or write the reference as secretKeyRef)")
        }
    }
}
