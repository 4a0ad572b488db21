public import PluginKit
public import PluginABI

/// What `apply(config:)` did. `needsReload` and `rejected` carry the message operators will see.
public enum ApplyOutcome: Sendable, Equatable {
    /// The instance now runs with the new config.
    case applied
    /// The change needs a new instance; this one is unchanged (say which key).
    case needsReload(String)
    /// The config was refused; this one is unchanged (say which key and why).
    case rejected(String)
}

/// A component that can apply a new full configuration in place, atomically: either all of it
/// takes effect (`.applied`) or none of it does. Operations may run concurrently. Without this
/// capability every configuration change reloads the component.
public protocol InPlaceConfigurable: Component {
    func apply(config: Config) -> ApplyOutcome
}

private struct ApplyDriver: Sendable {
    let apply: @Sendable (UnsafeMutableRawPointer, Config) -> ApplyOutcome
    init<T: InPlaceConfigurable>(_: T.Type) { apply = { component(at: $0, as: T.self).apply(config: $1) } }
}

private let driver: ApplyDriver? =
    (Registration.shared.componentType as? any InPlaceConfigurable.Type).map { ApplyDriver($0) }

/// molt_plugin_apply_config. Public, or release builds drop it.
@_cdecl("molt_plugin_apply_config")
public func _moltPluginApplyConfig(
    _ instance: molt_instance?, _ config: UnsafePointer<molt_config>?, _ messageOut: UnsafeMutablePointer<molt_message>?
) -> molt_apply_outcome {
    guard let instance, let driver else {
        writeMessage("this plugin's component cannot apply configuration in place", to: messageOut)
        return MOLT_NEEDS_RELOAD
    }
    switch driver.apply(instance, Config(config)) {
    case .applied:
        return MOLT_APPLIED
    case .needsReload(let message):
        writeMessage(message.isEmpty ? "the change needs a reload" : message, to: messageOut)
        return MOLT_NEEDS_RELOAD
    case .rejected(let message):
        writeMessage(message.isEmpty ? "the configuration was refused" : message, to: messageOut)
        return MOLT_APPLY_ERROR
    }
}
