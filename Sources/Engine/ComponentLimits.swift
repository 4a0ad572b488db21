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

    /// Longest component name, and longest dot-separated label in it (Dapr's rule for component names,
    /// Kubernetes' DNS-1123 subdomain: names also become file names, metric labels and etcd keys).
    public static let maxNameBytes = 253
    public static let maxNameLabelBytes = 63

    /// Refuses a definition whose name or metadata breaks a limit (the first problem found, in the order above).
    public static func check(_ definition: ComponentDefinition) throws(ConfigProblem) {
        if let problem = nameProblem(definition.key.name) { throw ConfigProblem(problem) }
        if let problem = metadataProblem(definition.config, of: definition.key) { throw ConfigProblem(problem) }
    }

    /// Why `name` is not a valid component name, or nil: lowercase RFC 1123 labels (a–z, 0–9 and '-',
    /// starting and ending with a letter or digit, at most 63 characters) joined by '.', at most 253 in all.
    public static func nameProblem(_ name: String) -> String? {
        let rule = "a component name is lowercase RFC 1123 labels (a-z, 0-9 and '-', starting and ending with a letter or digit, "
            + "at most \(maxNameLabelBytes) characters each) joined by '.', at most \(maxNameBytes) characters"
        if name.isEmpty { return "component name is empty: \(rule)" }
        let shown = "'\(messageExcerpt(name))'"
        if name.utf8.count > maxNameBytes { return "component name \(shown) is \(name.utf8.count) characters: \(rule)" }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            let bytes = Array(label.utf8)
            let valid = !bytes.isEmpty && bytes.count <= maxNameLabelBytes
                && bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
                && bytes.first != 0x2D && bytes.last != 0x2D
            if !valid { return "component name \(shown) is invalid: \(rule)" }
        }
        return nil
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
