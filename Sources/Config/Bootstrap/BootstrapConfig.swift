import Logging

/// The inner model of molt's bootstrap configuration: what `molt serve` needs before it serves.
/// Every outer form (config file of any released version, `MOLT_…` environment, command line)
/// converts into this; nothing else reads those forms. Defaults are `molt serve`'s historical ones.
public struct BootstrapConfig: Sendable, Equatable {
    /// App ID reported by the metadata API.
    public var appID = "molt"
    /// Dapr app API over gRPC, host:port.
    public var grpcAddress = "127.0.0.1:50001"
    /// Dapr app API over HTTP, host:port.
    public var httpAddress = "127.0.0.1:3500"
    /// Control plane (Layotto Lifecycle + molt Control, gRPC), host:port.
    public var controlAddress = "127.0.0.1:34904"
    /// Admin HTTP (health, /metrics), host:port.
    public var adminAddress = "127.0.0.1:34999"
    /// The app's HTTP port (Dapr's `--app-port`, env `APP_PORT`), 1-65535: molt calls the app there (the app
    /// channel), e.g. to deliver HTTP configuration subscriptions. nil: no app channel.
    public var appPort: Int?
    /// How molt talks to the app on `appPort` (Dapr's `--app-protocol`): `http` or `grpc`.
    public var appProtocol = BootstrapConfig.appProtocols[0]
    /// The app's host (Dapr's `--app-channel-address`).
    public var appHost = "127.0.0.1"
    /// Token every app call must carry (dapr-api-token); nil: none required.
    public var apiToken: String?
    /// Token every control call must carry (molt-control-token); nil: none required.
    public var controlToken: String?
    public var pluginsDirectory = "plugins.d"
    /// Where molt may keep state on disk; nil: nowhere.
    public var stateDirectory: String?
    /// Component files or directories (any format `ComponentSources` reads), in order.
    public var components: [String] = []
    /// Milliseconds a new instance may take to become ready (> 0).
    public var readinessTimeoutMs = 10_000
    /// Milliseconds a switched-out generation may take to finish its calls (> 0); also bounds the drain
    /// of calls in flight at shutdown.
    public var drainTimeoutMs = 30_000
    /// Milliseconds an app call may wait for its plugin when its client set no deadline (> 0).
    public var callTimeoutMs = 30_000
    /// Milliseconds each blocking plugin step may take (> 0): init, apply_config, export and import
    /// (each), destroy.
    public var initTimeoutMs = 10_000
    public var applyConfigTimeoutMs = 10_000
    public var stateTransferTimeoutMs = 10_000
    public var destroyTimeoutMs = 10_000
    public var logLevel: Logger.Level = .info
    /// Unknown keys are errors rather than warnings.
    public var strict = false
    /// Development: a plugin file rebuilt in place (same name@version) reloads the components running it.
    public var watchPlugins = false
    public var agents = Agents()
    /// Which secrets the app may read, per secret store (`secrets.scopes`, as Dapr's Configuration
    /// `spec.secrets.scopes`); a store without a scope: all of them.
    public var secretScopes: [SecretScope] = []

    /// Configuration agents: sources that push component changes at run time.
    public struct Agents: Sendable, Equatable {
        /// A directory of component files to watch; nil: no file agent.
        public var fileDirectory: String?
        /// nil: no etcd agent (set by giving at least one endpoint).
        public var etcd: Etcd?

        public init(fileDirectory: String? = nil, etcd: Etcd? = nil) {
            self.fileDirectory = fileDirectory
            self.etcd = etcd
        }
    }

    public struct Etcd: Sendable, Equatable {
        public static let defaultPrefix = "/molt/"
        /// host:port of each member; never empty.
        public var endpoints: [String]
        /// Key prefix molt watches.
        public var prefix: String

        public init(endpoints: [String], prefix: String = Etcd.defaultPrefix) {
            self.endpoints = endpoints
            self.prefix = prefix
        }
    }

    public init() {}

    /// The app protocols molt speaks on the app channel (Dapr also has grpcs, https, h2c).
    public static let appProtocols = ["http", "grpc"]
}

/// A setting's value as every outer form carries it.
enum SettingValue: Sendable, Equatable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case strings([String])
    case secretScopes([BootstrapConfig.SecretScope])
}

extension BootstrapConfig {
    /// The value of each setting that has one (optional settings left unset are absent), in
    /// `BootstrapSetting.allCases` order.
    var settingValues: [(setting: BootstrapSetting, value: SettingValue)] {
        BootstrapSetting.allCases.compactMap { setting in
            let value: SettingValue? = switch setting {
            case .appID: .string(appID)
            case .grpcAddress: .string(grpcAddress)
            case .httpAddress: .string(httpAddress)
            case .controlAddress: .string(controlAddress)
            case .adminAddress: .string(adminAddress)
            case .appPort: appPort.map(SettingValue.int)
            case .appProtocol: .string(appProtocol)
            case .appHost: .string(appHost)
            case .apiToken: apiToken.map(SettingValue.string)
            case .controlToken: controlToken.map(SettingValue.string)
            case .pluginsDirectory: .string(pluginsDirectory)
            case .stateDirectory: stateDirectory.map(SettingValue.string)
            case .components: .strings(components)
            case .readinessTimeoutMs: .int(readinessTimeoutMs)
            case .drainTimeoutMs: .int(drainTimeoutMs)
            case .callTimeoutMs: .int(callTimeoutMs)
            case .initTimeoutMs: .int(initTimeoutMs)
            case .applyConfigTimeoutMs: .int(applyConfigTimeoutMs)
            case .stateTransferTimeoutMs: .int(stateTransferTimeoutMs)
            case .destroyTimeoutMs: .int(destroyTimeoutMs)
            case .logLevel: .string(logLevel.rawValue)
            case .strict: .bool(strict)
            case .watchPlugins: .bool(watchPlugins)
            case .agentsFileDirectory: agents.fileDirectory.map(SettingValue.string)
            case .agentsEtcdEndpoints: agents.etcd.map { .strings($0.endpoints) }
            case .agentsEtcdPrefix: agents.etcd.map { .string($0.prefix) }
            case .secretsScopes: secretScopes.isEmpty ? nil : .secretScopes(secretScopes)
            }
            return value.map { (setting, $0) }
        }
    }
}

extension BootstrapConfig {
    /// The names of the settings whose value differs in `other` (a SIGHUP re-read), in setting order.
    public func changedSettings(in other: BootstrapConfig) -> [String] {
        let mine = Dictionary(uniqueKeysWithValues: settingValues.map { ($0.setting, $0.value) })
        let theirs = Dictionary(uniqueKeysWithValues: other.settingValues.map { ($0.setting, $0.value) })
        return BootstrapSetting.allCases.filter { mine[$0] != theirs[$0] }.map(\.rawValue)
    }
}
