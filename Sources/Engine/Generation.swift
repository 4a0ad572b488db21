import PluginHost
import Synchronization

/// One instance of a component's plugin, numbered per component.
final class Generation: Sendable {
    let number: UInt64
    let key: ComponentKey
    let instance: PluginInstance
    /// The normalized config and what calls derive from it. Replaced by in-place applies, which are
    /// serialized per component; calls read it under the lock (uncontended but for those applies).
    private let current: Mutex<(config: [String: String], stateKeyPrefix: String)>
    let pin: String?
    /// Set just before the plugin's destroy runs. A lease that observes it has reached (or is about
    /// to reach) a destroyed instance: counted as a violation, which must never happen.
    let destroyed = Atomic<Bool>(false)

    init(number: UInt64, key: ComponentKey, instance: PluginInstance, config: [String: String], pin: String?, appID: String) {
        self.number = number
        self.key = key
        self.instance = instance
        self.current = Mutex((config, StateKeyPrefix.prefix(config: config, store: key.name, appID: appID)))
        self.pin = pin
    }

    var binary: PluginBinary { instance.binary }
    var pluginID: String { instance.binary.info.id }
    var config: [String: String] { current.withLock { $0.config } }
    /// The prefix of the stored keys of a state component (`keyPrefix`), "" for none.
    var stateKeyPrefix: String { current.withLock { $0.stateKeyPrefix } }

    /// After an in-place apply.
    func replaceConfig(_ config: [String: String], appID: String) {
        let prefix = StateKeyPrefix.prefix(config: config, store: key.name, appID: appID)
        current.withLock { $0 = (config, prefix) }
    }
}
