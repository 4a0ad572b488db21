extension BootstrapConfig {
    /// This configuration as a config file of the current version (`version` first, then every setting
    /// that has a value, in a fixed order), for `molt config check`. Tokens are shown as `<redacted>`
    /// unless `redactingSecrets` is false.
    public func rendered(as syntax: ConfigSyntax = .yaml, redactingSecrets: Bool = true) -> String {
        let format = BootstrapFormat.current
        let entries: [(keyPath: String, value: SettingValue)] = settingValues.compactMap { setting, value in
            guard let keyPath = format.keyPath(of: setting) else { return nil }
            return (keyPath, redactingSecrets && setting.isSecret ? .string("<redacted>") : value)
        }
        return ConfigRenderer.render(version: format.version, entries: entries, as: syntax)
    }

    /// Rewrites a config file of any released version in the current version: the same settings
    /// (deprecated spellings replaced, unknown keys dropped — they are among the warnings), in the
    /// file's own syntax unless `syntax` is given. For `molt config migrate FILE`.
    public static func migrate(file: String, to syntax: ConfigSyntax? = nil) throws -> (text: String, warnings: [ConfigWarning]) {
        let (contents, fileSyntax) = try BootstrapFileContents.read(file: file)
        let format = BootstrapFormat.current
        let entries: [(keyPath: String, value: SettingValue)] = BootstrapSetting.allCases.compactMap { setting in
            guard let entry = contents.entries[setting], let keyPath = format.keyPath(of: setting) else { return nil }
            return (keyPath, entry.value)
        }
        return (ConfigRenderer.render(version: format.version, entries: entries, as: syntax ?? fileSyntax), contents.warnings)
    }
}

/// Writes dotted key paths as nested JSON or YAML, keeping the order given. Strings are always
/// double-quoted with JSON escapes, which YAML reads the same way, so no value changes type.
enum ConfigRenderer {
    private indirect enum Tree {
        case value(SettingValue)
        case mapping([(String, Tree)])
    }

    static func render(version: Int, entries: [(keyPath: String, value: SettingValue)], as syntax: ConfigSyntax) -> String {
        var root: [(String, Tree)] = [("version", .value(.int(version)))]
        for (keyPath, value) in entries {
            insert(value, at: keyPath.split(separator: ".").map(String.init)[...], into: &root)
        }
        var lines: [String] = []
        switch syntax {
        case .yaml: yaml(root, indent: "", into: &lines)
        case .json: lines = json(.mapping(root), indent: "")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func insert(_ value: SettingValue, at path: ArraySlice<String>, into mapping: inout [(String, Tree)]) {
        guard let head = path.first else { return }
        if path.count == 1 { mapping.append((head, .value(value))); return }
        var children: [(String, Tree)] = []
        if let index = mapping.firstIndex(where: { $0.0 == head }), case .mapping(let existing) = mapping[index].1 {
            children = existing
            mapping.remove(at: index)
            insert(value, at: path.dropFirst(), into: &children)
            mapping.insert((head, .mapping(children)), at: index)
        } else {
            insert(value, at: path.dropFirst(), into: &children)
            mapping.append((head, .mapping(children)))
        }
    }

    private static func scalar(_ value: SettingValue) -> String {
        switch value {
        case .string(let text): return quoted(text)
        case .int(let number): return "\(number)"
        case .bool(let flag): return "\(flag)"
        case .strings(let list): return "[" + list.map(quoted).joined(separator: ", ") + "]"
        case .secretScopes(let scopes): return SecretScopesSetting.json(scopes)
        }
    }

    private static func yaml(_ mapping: [(String, Tree)], indent: String, into lines: inout [String]) {
        for (key, tree) in mapping {
            switch tree {
            case .value(let value): lines.append("\(indent)\(key): \(scalar(value))")
            case .mapping(let children):
                lines.append("\(indent)\(key):")
                yaml(children, indent: indent + "  ", into: &lines)
            }
        }
    }

    private static func json(_ tree: Tree, indent: String) -> [String] {
        guard case .mapping(let children) = tree else { return [] }
        var lines = ["{"]
        for (index, (key, child)) in children.enumerated() {
            let comma = index == children.count - 1 ? "" : ","
            switch child {
            case .value(let value): lines.append("\(indent)  \(quoted(key)): \(scalar(value))\(comma)")
            case .mapping:
                var nested = json(child, indent: indent + "  ")
                nested[0] = "\(indent)  \(quoted(key)): {"
                nested[nested.count - 1] += comma
                lines += nested
            }
        }
        lines.append("\(indent)}")
        return lines
    }

    /// A JSON string literal (also a valid YAML double-quoted scalar).
    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
