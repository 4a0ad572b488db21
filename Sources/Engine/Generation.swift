import PluginHost
import Synchronization

/// One instance of a component's plugin, numbered per component.
final class Generation: Sendable {
    let number: UInt64
    let key: ComponentKey
    let instance: PluginInstance
    /// The normalized config (what the plugin got, declared defaults included), the same without the
    /// filled defaults, and what calls derive from it. Replaced by in-place applies, which are serialized
    /// per component; calls read it under the lock (uncontended but for those applies).
    private let current: Mutex<(config: [String: String], explicit: [String: String], stateKeyPrefix: String)>
    let pin: String?
    /// Set just before the plugin's destroy runs. A lease that observes it has reached (or is about
    /// to reach) a destroyed instance: counted as a violation, which must never happen.
    let destroyed = Atomic<Bool>(false)

    init(number: UInt64, key: ComponentKey, instance: PluginInstance, config: NormalizedConfig, pin: String?, appID: String) {
        self.number = number
        self.key = key
        self.instance = instance
        self.current = Mutex((config.config, config.explicit, StateKeyPrefix.prefix(config: config.config, store: key.name, appID: appID)))
        self.pin = pin
    }

    var binary: PluginBinary { instance.binary }
    var pluginID: String { instance.binary.info.id }
    /// The running configuration, declared defaults included (what the plugin got; status shows it).
    var config: [String: String] { current.withLock { $0.config } }
    /// The running configuration as given, without the defaults the host filled in (what a restart
    /// re-applies, and what an apply that keeps the running configuration gives another version).
    var explicitConfig: [String: String] { current.withLock { $0.explicit } }
    /// The prefix of the stored keys of a state component (`keyPrefix`), "" for none.
    var stateKeyPrefix: String { current.withLock { $0.stateKeyPrefix } }

    /// After an in-place apply.
    func replaceConfig(_ config: NormalizedConfig, appID: String) {
        let prefix = StateKeyPrefix.prefix(config: config.config, store: key.name, appID: appID)
        current.withLock { $0 = (config.config, config.explicit, prefix) }
    }
}
