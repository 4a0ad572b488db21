import PluginHost

/// The limits of components. The engine checks them on every apply, batch and bootstrap, so every
/// entry point gets them (Control, Lifecycle, component files, the file and etcd agents, a restored
/// snapshot); the component file readers check them too, to name the file and line. Over a limit the
/// apply fails as `invalid-definition` before any plugin is loaded or started, with a message naming
/// the component, the size seen and the limit; the running components are untouched.
public enum ComponentLimits {
    /// Most components one molt runs (the default of `EngineSettings.maxComponents`). Each holds a
    /// plugin instance (its memory, often a thread) and is listed, persisted and reported whole on
    /// every change; a sidecar serves a handful, so 1024 only stops a runaway control plane or agent.
    public static let maxComponents = 1024

    /// Most metadata entries of one component. Dapr's largest components document under 100 metadata
    /// fields. (The 4096 config keys a plugin may declare, `PluginLoader`, bound what a binary
    /// describes, not what one component sets.)
    public static let maxMetadataEntries = 1024

    /// Longest metadata key, in UTF-8 bytes. Keys are identifiers like `redisHost`.
    public static let maxMetadataKeyBytes = 256

    /// Longest metadata value, in UTF-8 bytes: room for inline PEM certificates and keys (a chain is a
    /// few KiB). The plugin message buffer holds a message quoting a whole value of this size
    /// (`PluginHostLimits.messageCapacity`), so a plugin refusing one can still name its key.
    public static let maxMetadataValueBytes = 64 << 10

    /// Most metadata bytes of one component, keys and values together: 1 MiB, below etcd's default
    /// 1.5 MiB request limit, so a component at the limit still fits one etcd key.
    public static let maxMetadataBytes = 1 << 20

    /// Refuses a definition whose metadata breaks a limit (the first problem found, in the order above).
    public static func check(_ definition: ComponentDefinition) throws(ConfigProblem) {
        if let problem = metadataProblem(definition.config, of: definition.key) { throw ConfigProblem(problem) }
    }

    /// Why `metadata` of component `key` breaks a limit, or nil when it breaks none. When several keys
    /// break one, the bytewise smallest is named, so the message does not depend on hashing.
    public static func metadataProblem(_ metadata: [String: String], of key: ComponentKey) -> String? {
        if metadata.count > maxMetadataEntries {
            return "\(key) has \(metadata.count) metadata entries, over the limit of \(maxMetadataEntries)"
        }
        var totalBytes = 0
        var overlongKeyName: String?
        var oversizedValue: (name: String, bytes: Int)?
        for (name, value) in metadata {
            let nameBytes = name.utf8.count, valueBytes = value.utf8.count
            totalBytes += nameBytes + valueBytes
            if nameBytes > maxMetadataKeyBytes, overlongKeyName.map({ name < $0 }) ?? true { overlongKeyName = name }
            if valueBytes > maxMetadataValueBytes, oversizedValue.map({ name < $0.name }) ?? true { oversizedValue = (name, valueBytes) }
        }
        if let name = overlongKeyName {
            return "metadata key '\(messageExcerpt(name))' of \(key) is \(name.utf8.count) bytes, over the limit of \(maxMetadataKeyBytes) bytes"
        }
        if let (name, bytes) = oversizedValue {
            return "the value of metadata key '\(name)' of \(key) is \(bytes) bytes, over the limit of \(maxMetadataValueBytes) bytes"
        }
        if totalBytes > maxMetadataBytes {
            return "the metadata of \(key) is \(totalBytes) bytes (keys and values), over the limit of \(maxMetadataBytes) bytes"
        }
        return nil
    }

    /// Why adding the `adding` components to `serving` ones breaks `limit`, or nil.
    static func countProblem(serving: Int, adding: [ComponentKey], limit: Int) -> String? {
        guard !adding.isEmpty, serving + adding.count > limit else { return nil }
        let what = adding.count == 1 ? "adding \(adding[0])" : "adding \(adding.count) components (\(adding.sorted()[0]), …)"
        return "\(what) would make \(serving + adding.count) components, over the limit of \(limit); remove components first"
    }
}
