import FoundationEssentials
import PluginHost

/// A component is identified by kind and name, e.g. state "statestore".
public struct ComponentKey: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var kind: ComponentKind
    public var name: String
    public init(kind: ComponentKind, name: String) { self.kind = kind; self.name = name }
    public var description: String { "\(kind.rawValue)/\(name)" }
    public static func < (a: Self, b: Self) -> Bool { (a.kind.rawValue, a.name) < (b.kind.rawValue, b.name) }
}

/// The full definition of a component, as pushed by an apply.
public struct ComponentDefinition: Sendable, Equatable {
    public var key: ComponentKey
    /// Plugin name; nil keeps the current plugin (required when the component is new).
    public var plugin: String?
    /// nil keeps the current version, or takes the newest in the catalog for a new component.
    public var version: SemanticVersion?
    /// The full configuration (never a delta).
    public var config: [String: String]
    /// Optional sha256 the plugin binary's bytes must have.
    public var pin: String?
    /// true: `config` is ignored for a running component, which keeps its running configuration (a
    /// version or plugin change given without metadata). A new component gets `config`.
    public var keepsRunningConfig = false
    /// true: a reload or version swap that cannot hand over the in-memory state of a plugin declaring
    /// MOLT_PLUGIN_HOLDS_STATE proceeds and drops it (Control `accept_state_loss`, `molt apply
    /// --accept-state-loss`); false: it is refused (`state-would-be-lost`), the old generation keeps serving.
    public var acceptStateLoss = false
    /// true: a version swap to a plugin that removes a declared operation or changes one's signature proceeds
    /// (Control `accept_operation_changes`, `molt apply --accept-operation-changes`); false: it is refused
    /// (`operations-would-change`), naming each difference. Added operations never need it.
    public var acceptOperationChanges = false

    public init(kind: ComponentKind, name: String, plugin: String? = nil, version: SemanticVersion? = nil,
                config: [String: String] = [:], pin: String? = nil) {
        self.key = ComponentKey(kind: kind, name: name)
        self.plugin = plugin
        self.version = version
        self.config = config
        self.pin = pin
    }
}

public enum ApplyAction: String, Sendable, Codable {
    case unchanged
    case appliedInPlace = "applied-in-place"
    case reloaded
    case versionSwapped = "version-swapped"
    case added
    case removed
    case failed
}

/// Why an apply failed. In every case the old generation (if any) keeps serving, untouched.
public enum ApplyFailure: String, Sendable, Codable {
    /// The definition cannot be used as given: no such plugin or version, bad or missing config keys,
    /// no plugin named for a new component, incompatible state formats.
    case invalidDefinition = "invalid-definition"
    /// The plugin refused: init error, readiness FAILED, in-place refusal without a reload path,
    /// state import refused.
    case rejected
    /// A plugin step (init, readiness, apply_config, export, import) overran its timeout.
    case timedOut = "timed-out"
    /// Calls did not finish within the drain timeout; try again later.
    case busy
    /// A removal named a component that does not exist.
    case unknownComponent = "unknown-component"
    /// Another component of the same batch failed, so this one was not changed either.
    case aborted
    /// A reload or version swap would drop the in-memory state of a plugin that declares it holds state
    /// callers rely on (the new plugin cannot import it); refused unless the apply accepts the loss.
    case stateWouldBeLost = "state-would-be-lost"
    /// A version swap would remove a declared operation (ABI 1.2) or change its parameters or results, breaking
    /// the apps that call it; refused unless the apply accepts it.
    case operationsWouldChange = "operations-would-change"
}

/// What one apply did. Durations are nil for the steps that did not run.
public struct ApplyResult: Sendable, CustomStringConvertible {
    public var key: ComponentKey
    public var action: ApplyAction
    public var oldGeneration: UInt64?
    public var newGeneration: UInt64?
    public var oldPlugin: String?
    public var newPlugin: String?
    public var initDuration: Duration?
    public var readinessDuration: Duration?
    /// Stateful handoff: how long new calls waited (drain of old + export + import + switch).
    public var pauseDuration: Duration?
    public var drainDuration: Duration?
    /// Start of the apply to the new generation serving (or to the failure).
    public var switchDuration: Duration?
    public var totalDuration: Duration = .zero
    /// Calls the plugin still held when the old generation was abandoned (0 normally): they never
    /// completed within the drain timeout, or their callers gave up on them. The generation is destroyed
    /// when the plugin completes them.
    public var callsStillDraining = 0
    public var warnings: [String] = []
    /// For `failed`: the reason, with the plugin's own message verbatim.
    public var error: String?
    /// For `failed`: which kind of failure, so APIs can map it to their status codes.
    public var failure: ApplyFailure?
    /// When the apply finished (wall clock), for status APIs and event streams.
    public var finishedAt = Date()
    /// Keys of the running configuration the new one no longer has, and keys whose value it changes
    /// (sorted; empty for added components and failed applies).
    public var droppedKeys: [String] = []
    public var changedKeys: [String] = []

    public var succeeded: Bool { action != .failed }

    public var description: String {
        var parts = ["\(key): \(action.rawValue)"]
        if let oldGeneration { parts.append("old=g\(oldGeneration)") }
        if let newGeneration { parts.append("new=g\(newGeneration)") }
        if let newPlugin { parts.append("plugin=\(newPlugin)") }
        if let error { parts.append("error=\(error)") }
        if !warnings.isEmpty { parts.append("warnings=\(warnings)") }
        return parts.joined(separator: " ")
    }
}

/// Why a call could not be served. A plugin's own failure comes through as `.plugin`.
public enum CallError: Error, Equatable, CustomStringConvertible, Sendable {
    case unknownComponent(ComponentKey)
    /// The request breaks a rule of the component's kind (a state key containing "||" under a prefix).
    case invalidRequest(String)
    /// The call's deadline passed before the plugin completed it. The plugin may still complete it;
    /// the engine keeps its generation until then (see `LeaseCell`).
    case deadlineExceeded(ComponentKey, PluginError)
    case plugin(PluginError)

    public var description: String {
        switch self {
        case .unknownComponent(let key): return "component \(key) is not configured"
        case .invalidRequest(let message): return message
        case .deadlineExceeded(let key, let error): return "\(key): \(error.message)"
        case .plugin(let error): return error.description
        }
    }
}

/// A call's result with the generation that served it.
public struct Served<Value: Sendable>: Sendable {
    public let value: Value
    public let generation: UInt64
}
