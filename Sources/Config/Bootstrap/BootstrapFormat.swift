/// One released outer format of the bootstrap settings: its key paths and its deprecated renames.
/// Each source (file, environment, command line) declares its version (file `version`,
/// `MOLT_CONFIG_VERSION`, `--config-version`) and is converted by that version's rules.
///
/// Adding version 2: define `static let version2` with its own key paths mapped onto the inner
/// settings (and its renames), add it to `released`, make it `current`, and add
/// `Tests/ConfigTests/Fixtures/bootstrap/v2.yaml`. Version 1 stays forever, so old files keep loading.
struct BootstrapFormat: Sendable {
    let version: Int
    /// Key path in this version → the inner setting it sets.
    let keys: [String: BootstrapSetting]
    /// Deprecated key path → the key path (of this version) that replaced it. The old spelling still
    /// works, with a DEPRECATED warning; in the environment and on the command line too
    /// (`MOLT_PLUGINS_DIR`, `--plugins-dir`).
    let renamed: [String: String]

    static let version1 = BootstrapFormat(
        version: 1,
        keys: Dictionary(uniqueKeysWithValues: BootstrapSetting.allCases.map { ($0.rawValue, $0) }),
        renamed: ["pluginsDir": "pluginsDirectory"])

    static let released: [Int: BootstrapFormat] = [1: version1]
    static let current = version1
    /// The version of a source that declares none. Always 1, never "the newest": a file written
    /// before versions existed must keep its meaning when version 2 appears.
    static let unversioned = 1

    static func released(_ version: Int, origin: ConfigOrigin, keyPath: String) throws -> BootstrapFormat {
        guard let format = released[version] else {
            throw ConfigError(origin: origin, keyPath: keyPath, expected: "one of \(released.keys.sorted())", found: "\(version)",
                              message: "configuration version \(version) is not supported (this molt reads versions \(released.keys.sorted()))")
        }
        return format
    }

    /// The current key path of `setting` in this version; nil when this version has no such setting.
    func keyPath(of setting: BootstrapSetting) -> String? {
        keys.first { $0.value == setting }?.key
    }

    /// What a key path means in this version: its setting, and for a deprecated spelling the key path
    /// that replaced it.
    func resolve(_ keyPath: String) -> (setting: BootstrapSetting, replacement: String?)? {
        if let setting = keys[keyPath] { return (setting, nil) }
        if let replacement = renamed[keyPath], let setting = keys[replacement] { return (setting, replacement) }
        return nil
    }

    /// Every spelling of every setting in this version, deprecated ones included.
    var allKeyPaths: [String] { Array(keys.keys) + Array(renamed.keys) }
}

/// What a bootstrap file holds, converted by its version's rules: one value per inner setting,
/// with the key path it was written under (maybe a deprecated one) and where.
struct BootstrapFileContents {
    struct Entry {
        var keyPath: String
        var origin: ConfigOrigin
        var value: SettingValue
        var isDeprecatedSpelling: Bool
    }

    var format: BootstrapFormat
    var entries: [BootstrapSetting: Entry] = [:]
    var warnings: [ConfigWarning] = []

    /// Validates the whole document: unknown keys warn, deprecated spellings warn, a value of the wrong
    /// type is an error naming the file, the key path and the expected type.
    init(root: SourceNode) throws {
        var declaredVersion = BootstrapFormat.unversioned
        if let versionNode = try root.child("version") {
            declaredVersion = try versionNode.int()
            format = try BootstrapFormat.released(declaredVersion, origin: versionNode.origin, keyPath: "version")
        } else {
            format = try BootstrapFormat.released(declaredVersion, origin: root.origin, keyPath: "version")
        }
        try read(root, isRoot: true)
    }

    private mutating func read(_ mapping: SourceNode, isRoot: Bool) throws {
        let knownPaths = format.allKeyPaths
        for (key, node) in try mapping.entries() {
            if isRoot && key == "version" { continue }
            let keyPath = node.path
            if let (setting, replacement) = format.resolve(keyPath) {
                let value = try Self.value(of: node, as: setting.valueType)
                if let replacement {
                    warnings.append(ConfigWarning(origin: node.origin, keyPath: keyPath, kind: .deprecated,
                                                  message: "'\(keyPath)' is renamed '\(replacement)'; it still works, but write '\(replacement)'"))
                }
                if let existing = entries[setting] {
                    // The current spelling wins over a deprecated one, whatever their order.
                    let (kept, dropped) = existing.isDeprecatedSpelling && replacement == nil ? (keyPath, existing.keyPath) : (existing.keyPath, keyPath)
                    warnings.append(ConfigWarning(origin: node.origin, keyPath: dropped, kind: .deprecated,
                                                  message: "'\(dropped)' is ignored: '\(kept)' is also given"))
                    if kept == existing.keyPath { continue }
                }
                entries[setting] = Entry(keyPath: keyPath, origin: node.origin, value: value, isDeprecatedSpelling: replacement != nil)
            } else if knownPaths.contains(where: { $0.hasPrefix(keyPath + ".") }) {
                try read(node, isRoot: false)
            } else {
                warnings.append(ConfigWarning(origin: node.origin, keyPath: keyPath, kind: .unknownKey,
                                              message: "unknown key '\(keyPath)' in a version \(format.version) configuration"))
            }
        }
    }

    static func value(of node: SourceNode, as type: BootstrapSetting.ValueType) throws -> SettingValue {
        switch type {
        case .string: return .string(try node.string())
        case .int: return .int(try node.int())
        case .bool: return .bool(try node.bool())
        case .strings: return .strings(try node.stringList())
        case .secretScopes: return .secretScopes(try SecretScopesSetting.parse(node))
        }
    }
}
