import PluginABI

/// The component kinds this host knows how to serve.
public enum ComponentKind: String, Sendable, CaseIterable, Codable {
    case lock
    case state
    /// ABI 1.2: nothing but declared operations (apps call them through Dapr's output bindings API).
    case binding
    /// ABI 1.3: Dapr's secret store; other components' `secretKeyRef`s are read from it.
    case secretstore
    /// ABI 1.3: Dapr's configuration store; apps read and subscribe to its items.
    case configuration
    /// ABI 1.3: Dapr's pub/sub; apps publish, and molt delivers to subscribers.
    case pubsub

    /// Dapr's building block of the kind, the first part of a Dapr component type (`state.redis`,
    /// `lock.in-memory`, `bindings.kafka`): Dapr Component YAML and the metadata APIs use it.
    public var daprBuildingBlock: String {
        switch self {
        case .lock: "lock"
        case .state: "state"
        case .binding: "bindings"
        case .secretstore: "secretstores"
        case .configuration: "configuration"
        case .pubsub: "pubsub"
        }
    }
}

/// A configuration key a plugin declares (molt_config_key), copied out of the plugin's memory.
public struct ConfigKeySpec: Sendable, Equatable, Codable {
    /// The name of the entry that declares a plugin's config open (`molt_config_key` named "*").
    public static let openName = "*"

    public var name: String
    public var description: String
    public var defaultValue: String?
    public var required: Bool
    public var appliesInPlace: Bool
    public var deprecatedAliases: [String]
}

/// Optional capabilities, detected by symbol presence.
public struct Capabilities: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let configKeys = Capabilities(rawValue: 1 << 0)
    public static let applyConfig = Capabilities(rawValue: 1 << 1)
    public static let stateTransfer = Capabilities(rawValue: 1 << 2)
    public static let bulkGet = Capabilities(rawValue: 1 << 3)
    public static let transactions = Capabilities(rawValue: 1 << 4)
    public static let bulkSecrets = Capabilities(rawValue: 1 << 5)

    /// The exported symbol each capability stands for, for `molt plugin inspect`.
    public var symbolNames: [String] {
        var names: [String] = []
        if contains(.configKeys) { names.append(MOLT_SYMBOL_PLUGIN_CONFIG_KEYS) }
        if contains(.applyConfig) { names.append(MOLT_SYMBOL_PLUGIN_APPLY_CONFIG) }
        if contains(.stateTransfer) { names += [MOLT_SYMBOL_PLUGIN_EXPORT_STATE, MOLT_SYMBOL_PLUGIN_IMPORT_STATE] }
        if contains(.bulkGet) { names.append(MOLT_SYMBOL_STATE_BULK_GET) }
        if contains(.transactions) { names.append(MOLT_SYMBOL_STATE_TRANSACT) }
        if contains(.bulkSecrets) { names.append(MOLT_SYMBOL_SECRET_BULK_GET) }
        return names
    }
}

/// Everything the host knows about a plugin binary without creating an instance.
public struct PluginInfo: Sendable, Equatable {
    public var name: String
    public var version: SemanticVersion
    public var kind: ComponentKind
    public var description: String
    public var abiVersion: (major: UInt32, minor: UInt32)
    /// Formats the plugin can export and import; nil when it does not transfer state.
    public var stateFormats: ClosedRange<UInt32>?
    /// The declared keys, without the `*` entry (see `openConfig`).
    public var configKeys: [ConfigKeySpec]
    public var capabilities: Capabilities
    /// The plugin's `*` entry, when it declares its config open: keys it does not declare are accepted,
    /// and apply in place when this entry says so. nil: only declared keys are accepted (when it declares any).
    public var openConfig: ConfigKeySpec? = nil
    /// The plugin declares (MOLT_PLUGIN_HOLDS_STATE, ABI 1.1) that its instances hold in-memory state callers
    /// rely on: a reload or swap that cannot hand it over is refused unless the apply accepts the loss.
    /// false for ABI 1.0 plugins (their identity has no flags).
    public var holdsState = false
    /// The operations the plugin declares (`molt_plugin_operations`, ABI 1.2), in its order, checked against
    /// its library at load. Empty for plugins built for ABI < 1.2 (never read from them).
    public var operations: [OperationDeclaration] = []

    /// The declared operation named `name`, if any.
    public func operation(named name: String) -> OperationDeclaration? { operations.first { $0.name == name } }

    /// Whether the plugin declares its configuration at all (any key, or `*`).
    public var declaresConfig: Bool { !configKeys.isEmpty || openConfig != nil }

    /// Whether the host enforces the declarations: unknown keys refused (unless `*`), defaults filled, and a
    /// change goes to apply_config only when every changed key applies in place. ABI 1.0 plugins, and plugins
    /// that declare no keys, are treated as before ABI 1.1: any key accepted, apply_config tried for any change.
    public var honoursDeclaredKeys: Bool { declaresConfig && (abiVersion.major, abiVersion.minor) >= (1, 1) }

    /// "name@version", the way logs and errors name a plugin.
    public var id: String { "\(name)@\(version)" }

    public static func == (a: PluginInfo, b: PluginInfo) -> Bool {
        a.name == b.name && a.version == b.version && a.kind == b.kind && a.description == b.description
            && a.abiVersion == b.abiVersion && a.stateFormats == b.stateFormats && a.configKeys == b.configKeys
            && a.capabilities == b.capabilities && a.openConfig == b.openConfig && a.holdsState == b.holdsState
            && a.operations == b.operations
    }
}

/// The ABI version this host implements (from the header it was compiled with).
public let hostABIVersion: (major: UInt32, minor: UInt32) = (UInt32(MOLT_ABI_VERSION_MAJOR), UInt32(MOLT_ABI_VERSION_MINOR))
