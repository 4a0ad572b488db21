// The protocols a plugin author implements. A plugin is one type conforming to `Component` plus
// one kind protocol (`LockComponent` in PluginKitLock, `StateComponent` in PluginKitState) and any
// optional capability protocols (`InPlaceConfigurable`, `StateTransferable`, ...), each from the
// module that also exports the matching C symbols.

/// The kind of component a plugin implements (`molt_plugin_identity.kind`).
public struct ComponentKind: RawRepresentable, Hashable, Sendable {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let lock = ComponentKind(rawValue: "lock")
    public static let state = ComponentKind(rawValue: "state")
    /// ABI 1.2: a component with nothing but declared operations (`BindingComponent` in PluginKitOperations).
    public static let binding = ComponentKind(rawValue: "binding")
}

/// What `readiness()` answers. `notReady` and `failed` carry the message operators will see.
public enum Readiness: Sendable, Equatable {
    /// Take traffic.
    case ready
    /// Still starting (connecting, warming up); the host polls again.
    case notReady(String)
    /// Will never become ready; the host gives up on this instance.
    case failed(String)
}

/// A configuration key the plugin understands (`molt_config_key`).
public struct ConfigKey: Sendable, Equatable {
    public var name: String
    public var description: String
    /// nil: no default; else the host sets the key to it when a configuration lacks it, before init and
    /// apply (so `config[name]` is never nil).
    public var defaultValue: String?
    /// The host refuses a configuration without it, before init.
    public var required: Bool
    /// A change of this key can be applied in place (needs `InPlaceConfigurable`). The host calls
    /// `apply(config:)` only for a change whose every changed key applies in place; any other change
    /// starts a new instance. Keys not declared at all are refused (see `anyOtherKey`).
    public var appliesInPlace: Bool
    /// Old names still accepted; the host renames them to `name` before init/apply.
    public var deprecatedAliases: [String]

    public init(
        _ name: String,
        description: String,
        default defaultValue: String? = nil,
        required: Bool = false,
        appliesInPlace: Bool = false,
        deprecatedAliases: [String] = []
    ) {
        self.name = name
        self.description = description
        self.defaultValue = defaultValue
        self.required = required
        self.appliesInPlace = appliesInPlace
        self.deprecatedAliases = deprecatedAliases
    }

    /// The entry that declares the configuration open (a key named "*"): the host then accepts keys the
    /// component does not declare (without it, a host of ABI 1.1 refuses them), and a change of such a key
    /// goes to `apply(config:)` when `appliesInPlace`. Operators never see "*" as a key.
    public static func anyOtherKey(description: String = "any other key", appliesInPlace: Bool = false) -> ConfigKey {
        ConfigKey("*", description: description, appliesInPlace: appliesInPlace)
    }
}

/// The state formats a plugin can both export and import (`state_format_min/max`); `none` is 0...0.
/// Plugin authors do not use this directly: conform to `StateTransferable` instead.
public struct StateFormatRange: Sendable, Equatable {
    public var min: UInt32
    public var max: UInt32
    public init(min: UInt32, max: UInt32) {
        self.min = min
        self.max = max
    }
    public static let none = StateFormatRange(min: 0, max: 0)
    public func contains(_ format: UInt32) -> Bool { min != 0 && min <= format && format <= max }
}

/// One component plugin: a final class. The host creates an instance per configured component with
/// `init(config:host:)`, calls operations on it from many threads at once (so the class must be
/// `Sendable`: keep mutable state behind a `Mutex` or in your own thread-safe types), and ends it
/// with `shutdown()`, after which PluginKit releases its reference.
public protocol Component: AnyObject, Sendable {
    /// `[a-z0-9][a-z0-9._-]{0,63}`, e.g. "memorylock".
    static var name: String { get }
    /// Semantic version 2.0.0, e.g. "1.2.0".
    static var version: String { get }
    /// One line for operators.
    static var description: String { get }
    /// Provided by `LockComponent` / `StateComponent` / `BindingComponent`.
    static var kind: ComponentKind { get }
    /// The configuration keys the plugin understands. Default: none.
    static var configKeys: [ConfigKey] { get }
    /// Whether instances hold in-memory state callers rely on (an in-memory lock's held locks; not a client
    /// of a server that keeps the state): `MOLT_PLUGIN_HOLDS_STATE`. The host then refuses a reload or version
    /// swap that cannot hand the state over (conform to `StateTransferable` so that it can), unless the
    /// operator accepts the loss. Default: false.
    static var holdsState: Bool { get }
    /// Provided by `StateTransferable` (module PluginKitStateTransfer); do not implement it yourself.
    static var _stateFormatRange: StateFormatRange { get }

    /// Creates an instance from the full configuration. Do not block for long: start connecting in
    /// the background and report `.notReady` from `readiness()` until done. Throwing means nothing
    /// stays allocated or running.
    init(config: Config, host: HostServices) throws(PluginError)

    /// Answers from what the instance knows now, without blocking on I/O. Default: `.ready`.
    func readiness() -> Readiness

    /// Stops the instance: close connections, stop and join every thread you started. Called once,
    /// after every operation has completed; the instance is released right after. Default: nothing.
    func shutdown()
}

extension Component {
    public static var configKeys: [ConfigKey] { [] }
    public static var holdsState: Bool { false }
    public static var _stateFormatRange: StateFormatRange { .none }
    public func readiness() -> Readiness { .ready }
    public func shutdown() {}
}
