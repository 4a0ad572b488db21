import Configuration
import FoundationEssentials
import Logging
import Synchronization

/// The result of loading the bootstrap configuration.
public struct LoadedBootstrapConfig: Sendable {
    public var config: BootstrapConfig
    /// Deprecated spellings, unknown keys (when not strict), ignored settings, in source order.
    public var warnings: [ConfigWarning]
    /// For each setting (inner key path, e.g. `grpcAddress`, `agents.etcd.endpoints`), where its
    /// effective value came from: `defaults`, `environment MOLT_GRPC_ADDRESS`, `molt.yaml:3:14 grpcAddress`, ….
    public var sources: [String: String]
    /// The config file read, if any (`--config` or `MOLT_CONFIG`).
    public var configFile: String?
}

extension BootstrapConfig {
    /// Names of the options that choose the config file and each source's format version.
    public static let configFileArgument = "--config", configFileEnvironment = "MOLT_CONFIG"
    public static let versionArgument = "--config-version", versionEnvironment = "MOLT_CONFIG_VERSION"

    /// Loads the bootstrap configuration from, lowest precedence first: defaults < the config file
    /// (`--config FILE` or `MOLT_CONFIG`; JSON or YAML) < the environment (`MOLT_<KEY>`, plus Dapr's
    /// `APP_ID`, `APP_PORT`, `DAPR_API_TOKEN`, and `DAPR_GRPC_PORT`/`DAPR_HTTP_PORT`, which set only the port) < the
    /// command line (`--<key>`, e.g. `--grpc-address`, `--readiness-timeout-ms`, `--strict`).
    ///
    /// - Parameters:
    ///   - arguments: the options only, without the program and subcommand names (e.g.
    ///     `["--config", "molt.yaml", "--grpc-address", "0.0.0.0:50001"]`). Values may be given as
    ///     `--key value` or `--key=value`; list values as `--components a.yaml b.yaml` or `a.yaml,b.yaml`
    ///     (so, a limitation of swift-configuration's parser: no value may contain a comma).
    ///   - environment: the process environment (`ProcessInfo.processInfo.environment`).
    /// - Throws: `ConfigError` naming the source (file, "environment", "command line"), the key path
    ///   and, for type errors, the expected type. Under strict (`--strict`, `MOLT_STRICT`, `strict: true`),
    ///   an unknown key is an error too.
    public static func load(arguments: [String], environment: [String: String]) async throws -> LoadedBootstrapConfig {
        var warnings: [ConfigWarning] = []
        let argumentLayer = try SourceLayer.arguments(arguments, warnings: &warnings)
        let environmentLayer = try SourceLayer.environment(environment, warnings: &warnings)
        let configFile = argumentLayer.configFile ?? environment[configFileEnvironment]
        var fileLayer: SourceLayer?
        if let configFile {
            fileLayer = try await SourceLayer.file(configFile, warnings: &warnings)
        }
        let defaultsLayer = SourceLayer.defaults()
        let daprLayer = try SourceLayer.daprEnvironment(environment, below: [fileLayer, defaultsLayer].compactMap { $0 })
        let layers = [argumentLayer, environmentLayer, daprLayer, fileLayer, defaultsLayer].compactMap { $0 }

        let recorder = AccessRecorder()
        let reader = ConfigReader(providers: layers.map(\.provider), accessReporter: recorder)
        var values: [BootstrapSetting: (value: SettingValue, layer: SourceLayer)] = [:]
        for setting in BootstrapSetting.allCases {
            let key = ConfigKey(setting.innerKeyComponents)
            let value: SettingValue? = switch setting.valueType {
            case .string: reader.string(forKey: key, isSecret: setting.isSecret).map(SettingValue.string)
            case .int: reader.int(forKey: key).map(SettingValue.int)
            case .bool: reader.bool(forKey: key).map(SettingValue.bool)
            case .strings: reader.stringArray(forKey: key).map(SettingValue.strings)
            case .secretScopes: reader.string(forKey: key).map(SettingValue.string)
            }
            // MultiProvider asks the layers in order and stops at the first that has a value or fails.
            let results = recorder.takeLast()?.providerResults ?? []
            if let failed = results.firstIndex(where: { if case .failure = $0.result { true } else { false } }) {
                throw layers[failed].typeError(setting)
            }
            guard let value, let winner = results.firstIndex(where: { (try? $0.result.get().value) != nil }) else { continue }
            values[setting] = (value, layers[winner])
        }

        var config = BootstrapConfig()
        for setting in BootstrapSetting.allCases {
            guard let entry = values[setting] else { continue }
            try config.set(setting, to: entry.value, origin: entry.layer.origin(of: setting), keyPath: entry.layer.name(of: setting))
        }
        if config.agents.etcd == nil, let prefix = values[.agentsEtcdPrefix], prefix.layer.kind != .defaults {
            warnings.append(ConfigWarning(origin: prefix.layer.origin(of: .agentsEtcdPrefix), keyPath: prefix.layer.name(of: .agentsEtcdPrefix),
                                          kind: .ignored, message: "agents.etcd.prefix has no effect without agents.etcd.endpoints"))
        }
        warnings = try warnings.enforcingStrict(config.strict)
        var sources: [String: String] = [:]
        for (setting, entry) in values {
            sources[setting.rawValue] = entry.layer.kind == .defaults
                ? "defaults" : "\(entry.layer.origin(of: setting)) \(entry.layer.name(of: setting))"
        }
        return LoadedBootstrapConfig(config: config, warnings: warnings, sources: sources, configFile: configFile)
    }

    /// Stores one read value (call in `BootstrapSetting.allCases` order), checking what the type alone does not (levels, addresses, positive timeouts).
    mutating func set(_ setting: BootstrapSetting, to value: SettingValue, origin: ConfigOrigin, keyPath: String) throws {
        func invalid(_ expected: String, _ found: String) -> ConfigError {
            .type(origin, keyPath, expected: expected, found: "'\(found)'")
        }
        func address(_ text: String) throws -> String {
            guard let colon = text.lastIndex(of: ":"), colon != text.startIndex,
                  let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
                throw invalid("an address host:port (port 0-65535)", text)
            }
            return text
        }
        func positive(_ number: Int) throws -> Int {
            guard number > 0 else { throw invalid("a positive integer (milliseconds)", "\(number)") }
            return number
        }
        switch (setting, value) {
        case (.appID, .string(let text)): appID = text
        case (.grpcAddress, .string(let text)): grpcAddress = try address(text)
        case (.httpAddress, .string(let text)): httpAddress = try address(text)
        case (.controlAddress, .string(let text)): controlAddress = try address(text)
        case (.adminAddress, .string(let text)): adminAddress = try address(text)
        case (.appPort, .int(let number)):
            guard (1...65535).contains(number) else { throw invalid("a port number (1-65535)", "\(number)") }
            appPort = number
        case (.appProtocol, .string(let text)):
            guard Self.appProtocols.contains(text) else {
                throw invalid("one of \(Self.appProtocols.joined(separator: ", ")) (Dapr's grpcs, https and h2c are not supported)", text)
            }
            appProtocol = text
        case (.appHost, .string(let text)):
            guard !text.isEmpty else { throw invalid("a host name or address", text) }
            appHost = text
        case (.apiToken, .string(let text)): apiToken = text.isEmpty ? nil : text
        case (.controlToken, .string(let text)): controlToken = text.isEmpty ? nil : text
        case (.pluginsDirectory, .string(let text)): pluginsDirectory = text
        case (.stateDirectory, .string(let text)): stateDirectory = text.isEmpty ? nil : text
        case (.components, .strings(let paths)): components = paths.filter { !$0.isEmpty }
        case (.readinessTimeoutMs, .int(let number)): readinessTimeoutMs = try positive(number)
        case (.drainTimeoutMs, .int(let number)): drainTimeoutMs = try positive(number)
        case (.callTimeoutMs, .int(let number)): callTimeoutMs = try positive(number)
        case (.initTimeoutMs, .int(let number)): initTimeoutMs = try positive(number)
        case (.applyConfigTimeoutMs, .int(let number)): applyConfigTimeoutMs = try positive(number)
        case (.stateTransferTimeoutMs, .int(let number)): stateTransferTimeoutMs = try positive(number)
        case (.destroyTimeoutMs, .int(let number)): destroyTimeoutMs = try positive(number)
        case (.logLevel, .string(let text)):
            guard let level = Logger.Level(rawValue: text) else {
                throw invalid("one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))", text)
            }
            logLevel = level
        case (.strict, .bool(let flag)): strict = flag
        case (.watchPlugins, .bool(let flag)): watchPlugins = flag
        case (.agentsFileDirectory, .string(let text)): agents.fileDirectory = text.isEmpty ? nil : text
        case (.agentsEtcdEndpoints, .strings(let endpoints)):
            let endpoints = endpoints.filter { !$0.isEmpty }
            agents.etcd = endpoints.isEmpty ? nil : Etcd(endpoints: endpoints, prefix: agents.etcd?.prefix ?? Etcd.defaultPrefix)
        case (.agentsEtcdPrefix, .string(let text)):
            // Set after the endpoints (allCases order); without endpoints there is no etcd agent to configure.
            agents.etcd?.prefix = text
        case (.secretsScopes, .secretScopes(let scopes)): secretScopes = scopes
        case (.secretsScopes, .string(let text)):
            // JSON text from the environment or the command line (a file's list arrives re-encoded, already checked).
            secretScopes = try SecretScopesSetting.parse(text: text, origin: origin, keyPath: keyPath)
        default:
            throw ConfigError.type(origin, keyPath, expected: setting.valueType.expected, found: "\(value)")
        }
    }
}

/// Collects access events so the loader can tell which provider (source) failed or won a lookup.
/// Events arrive synchronously from the `ConfigReader` call that made them.
private final class AccessRecorder: AccessReporter {
    private let last = Mutex<AccessEvent?>(nil)

    func report(_ event: AccessEvent) { last.withLock { $0 = event } }
    func takeLast() -> AccessEvent? { last.withLock { event in defer { event = nil }; return event } }
}
