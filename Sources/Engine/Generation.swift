import PluginHost
import Synchronization

/// One instance of a component's plugin, numbered per component.
final class Generation: Sendable {
    let number: UInt64
    let key: ComponentKey
    let instance: PluginInstance
    /// The normalized config (what the plugin got, declared defaults and secret values included), the same
    /// without the filled defaults, the secret references among them (config key → reference), and what
    /// calls derive from it. Replaced by in-place applies, which are serialized per component; calls read
    /// it under the lock (uncontended but for those applies).
    private let current: Mutex<(config: [String: String], explicit: [String: String], references: [String: SecretReference],
                                stateKeyPrefix: String)>
    let pin: String?
    /// Set just before the plugin's destroy runs. A lease that observes it has reached (or is about
    /// to reach) a destroyed instance: counted as a violation, which must never happen.
    let destroyed = Atomic<Bool>(false)

    init(number: UInt64, key: ComponentKey, instance: PluginInstance, config: NormalizedConfig, references: [String: SecretReference],
         pin: String?, appID: String) {
        self.number = number
        self.key = key
        self.instance = instance
        self.current = Mutex((config.config, config.explicit, references,
                              StateKeyPrefix.prefix(config: config.config, store: key.name, appID: appID)))
        self.pin = pin
    }

    var binary: PluginBinary { instance.binary }
    var pluginID: String { instance.binary.info.id }
    /// The running configuration, declared defaults and secret values included: what the plugin got.
    /// Never shown or stored (`shownConfig`).
    var config: [String: String] { current.withLock { $0.config } }
    /// The running configuration as given, without the defaults the host filled in, secret values included.
    var explicitConfig: [String: String] { current.withLock { $0.explicit } }
    /// `config` with each secret value replaced by its reference: what status shows.
    var shownConfig: [String: String] { current.withLock { Self.referencing($0.config, $0.references) } }
    /// `explicitConfig` with each secret value replaced by its reference: what a restart re-applies (the
    /// journal stores it), and what an apply that keeps the running configuration gives another version.
    var shownExplicitConfig: [String: String] { current.withLock { Self.referencing($0.explicit, $0.references) } }
    /// The secret references of the running configuration, by config key.
    var references: [String: SecretReference] { current.withLock { $0.references } }

    private static func referencing(_ config: [String: String], _ references: [String: SecretReference]) -> [String: String] {
        guard !references.isEmpty else { return config }
        var shown = config
        for (key, reference) in references where shown[key] != nil { shown[key] = reference.description }
        return shown
    }
    /// The prefix of the stored keys of a state component (`keyPrefix`), "" for none.
    var stateKeyPrefix: String { current.withLock { $0.stateKeyPrefix } }

    /// After an in-place apply.
    func replaceConfig(_ config: NormalizedConfig, references: [String: SecretReference], appID: String) {
        let prefix = StateKeyPrefix.prefix(config: config.config, store: key.name, appID: appID)
        current.withLock { $0 = (config.config, config.explicit, references, prefix) }
    }
}
