import Logging
import PluginHost

/// Rotation: when a secret changes, every component whose configuration references it is re-applied
/// through the apply pipeline (in place when the plugin can take the new value, otherwise a new generation
/// before the old one goes), so its calls never fail for it. When a store's values are read again: `StoreWatch`.
extension Engine {
    /// Re-applies every component referencing `store` whose secret values are no longer those it runs with.
    func reapplyComponentsUsing(store: String) async {
        let users = slots.withLock { slots in
            slots.compactMap { key, slot -> Generation? in
                guard let generation = slot.activeCell.current,
                      generation.references.values.contains(where: { $0.store == store }) else { return nil }
                return generation
            }
        }
        for generation in users.sorted(by: { $0.key < $1.key }) {
            var stale: [String] = []
            let running = generation.config
            for (configKey, reference) in generation.references where reference.store == store {
                do throws(StepFailure) {
                    if try await secretValue(reference, for: configKey, of: generation.key) != running[configKey] { stale.append(configKey) }
                } catch {
                    logger.warning("a secret a component uses cannot be read; the component keeps its value",
                                   metadata: ["component": "\(generation.key)", "error": "\(error)"])
                }
            }
            guard !stale.isEmpty else { continue }
            var definition = ComponentDefinition(kind: generation.key.kind, name: generation.key.name, plugin: generation.binary.info.name,
                                                 version: generation.binary.info.version, pin: generation.pin)
            definition.keepsRunningConfig = true
            let result = await apply(definition)
            let metadata: Logger.Metadata = ["component": "\(generation.key)", "secret_store": "\(store)",
                                             "config_keys": "\(stale.sorted().joined(separator: ","))", "action": "\(result.action.rawValue)"]
            if result.succeeded {
                logger.info("secret rotated: component re-applied", metadata: metadata)
            } else {
                logger.error("secret rotated, but re-applying the component failed; it keeps its value",
                             metadata: metadata.merging(["error": "\(result.error ?? "")"]) { $1 })
            }
        }
    }
}
