import Configuration
import FoundationEssentials

/// One source of bootstrap settings, converted by its own version's rules into a swift-configuration
/// provider keyed by inner setting keys: `ConfigReader` then applies the precedence.
struct SourceLayer: Sendable {
    enum Kind: Sendable { case arguments, environment, daprEnvironment, file, defaults }

    /// A setting this source gives: its spelling there (file key path, variable, option), where, and
    /// the raw text when the source is textual (for "found" in messages).
    struct Given: Sendable {
        var name: String
        var origin: ConfigOrigin
        var raw: String?
    }

    let kind: Kind
    let origin: ConfigOrigin
    let provider: any ConfigProvider
    let given: [BootstrapSetting: Given]
    /// `--config FILE`, from the arguments layer.
    var configFile: String?

    func name(of setting: BootstrapSetting) -> String { given[setting]?.name ?? setting.rawValue }
    func origin(of setting: BootstrapSetting) -> ConfigOrigin { given[setting]?.origin ?? origin }

    func typeError(_ setting: BootstrapSetting) -> ConfigError {
        let found = given[setting]?.raw.map { $0.isEmpty ? "nothing" : "'\($0)'" } ?? "a value of another type"
        return .type(origin(of: setting), name(of: setting), expected: setting.valueType.expected, found: found)
    }

    // MARK: Sources

    /// Command-line options, read by `CommandLineArgumentsProvider` under their version's key names.
    static func arguments(_ arguments: [String], warnings: inout [ConfigWarning]) throws -> SourceLayer {
        // Split the tokens the way swift-configuration's parser does, to know which options are given.
        var options: [(name: String, values: [String])] = []
        var takesValues = false
        for token in arguments {
            if token.hasPrefix("--") {
                if let equals = token.firstIndex(of: "=") {
                    options.append((String(token[..<equals]), [String(token[token.index(after: equals)...])]))
                    takesValues = false
                } else {
                    options.append((token, []))
                    takesValues = true
                }
            } else if takesValues {
                options[options.count - 1].values.append(token)
            }
        }
        var version = BootstrapFormat.unversioned
        if let option = options.last(where: { $0.name == BootstrapConfig.versionArgument }) {
            guard option.values.count == 1, let number = Int(option.values[0]) else {
                throw ConfigError.type(.arguments, option.name, expected: "an integer", found: "'\(option.values.joined(separator: " "))'")
            }
            version = number
        }
        let format = try BootstrapFormat.released(version, origin: .arguments, keyPath: BootstrapConfig.versionArgument)
        let names = Dictionary(uniqueKeysWithValues: format.allKeyPaths.map { (SourceNaming.argumentName(forKeyPath: $0), $0) })

        var present = PresentKeys(format: format, origin: .arguments)
        var configFile: String?
        for (name, values) in options {
            if name == BootstrapConfig.configFileArgument {
                guard values.count == 1 else {
                    throw ConfigError.type(.arguments, name, expected: "one file path", found: values.isEmpty ? "nothing" : "'\(values.joined(separator: " "))'")
                }
                configFile = values[0]
            } else if name == BootstrapConfig.versionArgument {
                continue
            } else if let keyPath = names[name] {
                present.add(keyPath: keyPath, name: name, raw: values.joined(separator: " "), warnings: &warnings)
            } else {
                warnings.append(ConfigWarning(origin: .arguments, keyPath: name, kind: .unknownKey, message: "unknown option '\(name)'"))
            }
        }
        let provider = CommandLineArgumentsProvider(
            arguments: ["molt"] + arguments,
            secretsSpecifier: .specific(Set(secretKeyPaths(format).map(SourceNaming.argumentName(forKeyPath:)))))
        return SourceLayer(kind: .arguments, origin: .arguments, provider: provider.mapKeys(present.keyMapper()),
                           given: present.given, configFile: configFile)
    }

    /// `MOLT_…` environment variables, read by `EnvironmentVariablesProvider` under their version's key names.
    static func environment(_ environment: [String: String], warnings: inout [ConfigWarning]) throws -> SourceLayer {
        var version = BootstrapFormat.unversioned
        if let text = environment[BootstrapConfig.versionEnvironment] {
            guard let number = Int(text) else {
                throw ConfigError.type(.environment, BootstrapConfig.versionEnvironment, expected: "an integer", found: "'\(text)'")
            }
            version = number
        }
        let format = try BootstrapFormat.released(version, origin: .environment, keyPath: BootstrapConfig.versionEnvironment)
        let names = Dictionary(uniqueKeysWithValues: format.allKeyPaths.map { (SourceNaming.environmentName(forKeyPath: $0), $0) })
        var present = PresentKeys(format: format, origin: .environment)
        let prefix = SourceNaming.environmentPrefix + "_"
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix(prefix) {
            if name == BootstrapConfig.configFileEnvironment || name == BootstrapConfig.versionEnvironment { continue }
            if let keyPath = names[name] {
                present.add(keyPath: keyPath, name: name, raw: value, warnings: &warnings)
            } else {
                warnings.append(ConfigWarning(origin: .environment, keyPath: name, kind: .unknownKey, message: "unknown variable '\(name)'"))
            }
        }
        let provider = EnvironmentVariablesProvider(
            environmentVariables: environment,
            secretsSpecifier: .specific(Set(secretKeyPaths(format).map(SourceNaming.environmentName(forKeyPath:)))))
        let mapper = present.keyMapper()
        return SourceLayer(kind: .environment, origin: .environment,
                           provider: provider.mapKeys { mapper($0).prepending([SourceNaming.environmentPrefix.lowercased()]) },
                           given: present.given)
    }

    /// Dapr's own variables, honoured as `daprd` does (not deprecated): `APP_ID`, `APP_PORT`, `DAPR_API_TOKEN`, and
    /// `DAPR_GRPC_PORT`/`DAPR_HTTP_PORT`, which replace only the port of the address the layers
    /// `below` (file, defaults) give. `MOLT_…` variables and arguments take precedence over them.
    static func daprEnvironment(_ environment: [String: String], below: [SourceLayer]) throws -> SourceLayer {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        var given: [BootstrapSetting: Given] = [:]
        func set(_ setting: BootstrapSetting, _ value: String, from variable: String) {
            values[AbsoluteConfigKey(setting.innerKeyComponents)] = ConfigValue(.string(value), isSecret: setting.isSecret)
            given[setting] = Given(name: variable, origin: .environment, raw: value)
        }
        if let appID = environment["APP_ID"] { set(.appID, appID, from: "APP_ID") }
        if let token = environment["DAPR_API_TOKEN"] { set(.apiToken, token, from: "DAPR_API_TOKEN") }
        if let port = environment["APP_PORT"] {
            // An integer setting: the value is stored as one (the loader checks its range and names APP_PORT).
            guard let number = Int(port) else {
                throw ConfigError.type(.environment, "APP_PORT", expected: BootstrapSetting.appPort.valueType.expected, found: "'\(port)'")
            }
            values[AbsoluteConfigKey(BootstrapSetting.appPort.innerKeyComponents)] = ConfigValue(.int(number), isSecret: false)
            given[.appPort] = Given(name: "APP_PORT", origin: .environment, raw: port)
        }
        let lower = ConfigReader(providers: below.map(\.provider))
        for (setting, variable) in [(BootstrapSetting.grpcAddress, "DAPR_GRPC_PORT"), (.httpAddress, "DAPR_HTTP_PORT")] {
            guard let port = environment[variable] else { continue }
            guard let number = Int(port), (0...65535).contains(number) else {
                throw ConfigError.type(.environment, variable, expected: "a port number (0-65535)", found: "'\(port)'")
            }
            let base = lower.string(forKey: ConfigKey(setting.innerKeyComponents)) ?? ""
            let host = base.lastIndex(of: ":").map { String(base[..<$0]) } ?? "127.0.0.1"
            set(setting, "\(host):\(number)", from: variable)
        }
        return SourceLayer(kind: .daprEnvironment, origin: .environment,
                           provider: InMemoryProvider(name: "Dapr environment variables", values: values), given: given)
    }

    /// A JSON or YAML config file: validated and converted by its declared version's rules
    /// (`BootstrapFileContents`), whose values this layer then serves. (swift-configuration's
    /// `FileProvider` cannot hold a list of mappings such as `secrets.scopes`; the file is parsed once.)
    static func file(_ path: String, warnings: inout [ConfigWarning]) async throws -> SourceLayer {
        let (contents, _) = try BootstrapFileContents.read(file: path)
        warnings += contents.warnings
        var given: [BootstrapSetting: Given] = [:]
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        for (setting, entry) in contents.entries {
            given[setting] = Given(name: entry.keyPath, origin: entry.origin, raw: nil)
            values[AbsoluteConfigKey(setting.innerKeyComponents)] = ConfigValue(entry.value.content, isSecret: setting.isSecret)
        }
        return SourceLayer(kind: .file, origin: ConfigOrigin(file: path),
                           provider: InMemoryProvider(name: "config file \(path)", values: values), given: given)
    }

    static func defaults() -> SourceLayer {
        let values = BootstrapConfig().settingValues.map { setting, value in
            (AbsoluteConfigKey(setting.innerKeyComponents), ConfigValue(value.content, isSecret: setting.isSecret))
        }
        return SourceLayer(kind: .defaults, origin: .defaults,
                           provider: InMemoryProvider(name: "defaults", values: Dictionary(uniqueKeysWithValues: values)), given: [:])
    }

    private static func secretKeyPaths(_ format: BootstrapFormat) -> [String] {
        format.allKeyPaths.filter { format.resolve($0)?.setting.isSecret == true }
    }
}

/// The key paths a textual source (environment, arguments) uses, deprecated spellings resolved.
private struct PresentKeys {
    /// A key no source has: what a setting maps to when the source's version has no key for it.
    static let absentKey = ["\u{0}absent"]

    let format: BootstrapFormat
    let origin: ConfigOrigin
    var keyPaths: [BootstrapSetting: String] = [:]
    var given: [BootstrapSetting: SourceLayer.Given] = [:]

    init(format: BootstrapFormat, origin: ConfigOrigin) {
        self.format = format
        self.origin = origin
    }

    mutating func add(keyPath: String, name: String, raw: String, warnings: inout [ConfigWarning]) {
        guard let (setting, replacement) = format.resolve(keyPath) else { return }
        if replacement != nil {
            let current = origin == .environment ? SourceNaming.environmentName(forKeyPath: replacement!)
                                                  : SourceNaming.argumentName(forKeyPath: replacement!)
            warnings.append(ConfigWarning(origin: origin, keyPath: name, kind: .deprecated,
                                          message: "'\(name)' is renamed '\(current)'; it still works, but use '\(current)'"))
            // The current spelling wins when both are given.
            if keyPaths[setting] != nil { return }
        }
        keyPaths[setting] = keyPath
        given[setting] = SourceLayer.Given(name: name, origin: origin, raw: raw)
    }

    /// Inner key → this source's key (the spelling given, else the version's current one).
    func keyMapper() -> @Sendable (AbsoluteConfigKey) -> AbsoluteConfigKey {
        var outer: [String: [String]] = [:]
        for setting in BootstrapSetting.allCases {
            guard let keyPath = keyPaths[setting] ?? format.keyPath(of: setting) else { continue }
            outer[setting.rawValue] = keyPath.split(separator: ".").map(String.init)
        }
        return { [outer] key in AbsoluteConfigKey(outer[key.components.joined(separator: ".")] ?? Self.absentKey) }
    }
}

extension SettingValue {
    var content: ConfigContent {
        switch self {
        case .string(let text): return .string(text)
        case .int(let number): return .int(number)
        case .bool(let flag): return .bool(flag)
        case .strings(let list): return .stringArray(list)
        case .secretScopes(let scopes): return .string(SecretScopesSetting.json(scopes))
        }
    }
}

/// The syntax of a config file.
public enum ConfigSyntax: String, Sendable {
    case json, yaml

    /// By extension (`.json`, `.yaml`, `.yml`), else by content (JSON starts with `{`).
    static func of(file: String, text: String) -> ConfigSyntax {
        let lowercased = file.lowercased()
        if lowercased.hasSuffix(".json") { return .json }
        if lowercased.hasSuffix(".yaml") || lowercased.hasSuffix(".yml") { return .yaml }
        return text.drop(while: \.isWhitespace).first == "{" ? .json : .yaml
    }
}

extension BootstrapFileContents {
    /// Reads and validates a bootstrap config file.
    static func read(file: String) throws -> (BootstrapFileContents, ConfigSyntax) {
        let text = try SourceNode.readText(of: file)
        let documents = try SourceNode.documents(of: text, file: file)
        guard documents.count <= 1 else {
            throw ConfigError(origin: documents[1].origin, keyPath: "", message: "a config file is one document, this one has \(documents.count)")
        }
        let root = documents.first ?? SourceNode(node: .mapping(YAMLMapping(pairs: [], tag: .map, mark: YAMLMark(line: 1, column: 1))), file: file, path: "")
        return (try BootstrapFileContents(root: root), ConfigSyntax.of(file: file, text: text))
    }
}
