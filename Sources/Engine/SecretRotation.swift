import Logging
import PluginHost
import Synchronization

/// Rotation: when a secret changes, every component whose configuration references it is re-applied
/// through the apply pipeline (in place when the plugin can take the new value, otherwise a new generation
/// before the old one goes), so its calls never fail for it. A store's values are read again when its
/// plugin reports a change (host service `changed`, ABI 1.3), when the store itself is re-applied, and
/// otherwise every `pollInterval` of the store (a host key of kind secretstore; default 30 s).
final class SecretWatch: Sendable {
    static let defaultPollInterval = Duration.seconds(30)
    /// Per store: a check is running, and whether another was asked for meanwhile (it runs right after).
    private let checks = Mutex<[String: Bool]>([:])
    /// Per store: when it was last read by a check.
    private let lastChecked = Mutex<[String: ContinuousClock.Instant]>([:])
    private let poller = Mutex<Task<Void, Never>?>(nil)

    deinit { poller.withLock { $0?.cancel() } }

    /// Marks a check of `store` wanted; true when the caller must run it (none is running).
    func begin(_ store: String) -> Bool {
        checks.withLock { running in
            if running[store] != nil { running[store] = true; return false }
            running[store] = false
            return true
        }
    }

    /// Ends a check; true when another was asked for meanwhile (the caller runs it again).
    func end(_ store: String) -> Bool {
        lastChecked.withLock { $0[store] = .now }
        return checks.withLock { running in
            if running[store] == true { running[store] = false; return true }
            running[store] = nil
            return false
        }
    }

    func due(_ store: String, every interval: Duration) -> Bool {
        lastChecked.withLock { last in
            guard let when = last[store] else { last[store] = .now; return false }
            return ContinuousClock.now - when >= interval
        }
    }

    /// Starts the poller once (it holds the engine weakly and ends with it).
    func startPolling(_ tick: @escaping @Sendable () async -> Bool) {
        poller.withLock { task in
            guard task == nil else { return }
            task = Task.detached {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(250))
                    guard await tick() else { return }
                }
            }
        }
    }
}

extension Engine {
    /// A secret store's generation now serves: its change reports reach the watch, the poller runs, and the
    /// components using it are checked (its values may differ from the previous generation's).
    func secretStoreServes(_ generation: Generation) {
        let store = generation.key.name
        generation.instance.onChange { [weak self] _ in self?.secretsMayHaveChanged(store: store) }
        secretWatch.startPolling { [weak self] in
            guard let self else { return false }
            self.pollSecretStores()
            return true
        }
        secretsMayHaveChanged(store: store)
    }

    /// Schedules a check of the components that reference `store` (coalesced: one runs at a time per store).
    func secretsMayHaveChanged(store: String) {
        guard secretWatch.begin(store) else { return }
        Task.detached { [weak self] in
            repeat {
                guard let self else { return }
                await self.reapplyComponentsUsing(store: store)
            } while self?.secretWatch.end(store) == true
        }
    }

    private func pollSecretStores() {
        let stores = slots.withLock { slots in
            slots.compactMap { key, slot -> (String, [String: String])? in
                guard key.kind == .secretstore, let generation = slot.activeCell.current else { return nil }
                return (key.name, generation.config)
            }
        }
        for (store, config) in stores {
            let interval = config["pollInterval"].flatMap(Self.pollInterval) ?? SecretWatch.defaultPollInterval
            if secretWatch.due(store, every: interval) { secretsMayHaveChanged(store: store) }
        }
    }

    /// A `pollInterval` value: a number followed by ms, s or m ("500ms", "10s", "1m").
    static func pollInterval(_ text: String) -> Duration? {
        for (suffix, unit) in [("ms", Duration.milliseconds(1)), ("s", .seconds(1)), ("m", .seconds(60))] where text.hasSuffix(suffix) {
            guard let count = Int(text.dropLast(suffix.count)), count > 0 else { return nil }
            return unit * count
        }
        return nil
    }

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
