import Synchronization

/// Reads a store's values again when they may have changed: when its plugin reports a change (host
/// service `changed`, ABI 1.3), when the store itself is re-applied, and otherwise every `pollInterval` of
/// the store (a host key of kinds secretstore and configuration; default 30 s). Checks are per store and
/// coalesced: one runs at a time, and one asked for meanwhile runs right after it.
final class StoreWatch: Sendable {
    static let defaultPollInterval = Duration.seconds(30)
    /// Per store: a check is running, and whether another was asked for meanwhile.
    private let checks = Mutex<[ComponentKey: Bool]>([:])
    /// Per store: when it was last read by a check.
    private let lastChecked = Mutex<[ComponentKey: ContinuousClock.Instant]>([:])
    private let poller = Mutex<Task<Void, Never>?>(nil)

    deinit { poller.withLock { $0?.cancel() } }

    /// Marks a check of `store` wanted; true when the caller must run it (none is running).
    func begin(_ store: ComponentKey) -> Bool {
        checks.withLock { running in
            if running[store] != nil { running[store] = true; return false }
            running[store] = false
            return true
        }
    }

    /// Ends a check; true when another was asked for meanwhile (the caller runs it again).
    func end(_ store: ComponentKey) -> Bool {
        lastChecked.withLock { $0[store] = .now }
        return checks.withLock { running in
            if running[store] == true { running[store] = false; return true }
            running[store] = nil
            return false
        }
    }

    func due(_ store: ComponentKey, every interval: Duration) -> Bool {
        lastChecked.withLock { last in
            guard let when = last[store] else { last[store] = .now; return false }
            return ContinuousClock.now - when >= interval
        }
    }

    /// Starts the poller once; it ends when `tick` answers false (the engine is gone).
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
    /// A store's generation now serves (kinds secretstore and configuration): its change reports reach the
    /// watch, the poller runs, and a check follows at once (its values may differ from the previous one's).
    func storeServes(_ generation: Generation) {
        let store = generation.key
        generation.instance.onChange { [weak self] _ in self?.storeMayHaveChanged(store) }
        storeWatch.startPolling { [weak self] in
            guard let self else { return false }
            self.pollStores()
            return true
        }
        storeMayHaveChanged(store)
    }

    /// Schedules a check of `store` (coalesced).
    func storeMayHaveChanged(_ store: ComponentKey) {
        guard storeWatch.begin(store) else { return }
        Task.detached { [weak self] in
            repeat {
                guard let self else { return }
                switch store.kind {
                case .secretstore: await self.reapplyComponentsUsing(store: store.name)
                case .configuration: await self.notifySubscribers(of: store.name)
                default: break
                }
            } while self?.storeWatch.end(store) == true
        }
    }

    private func pollStores() {
        let stores = slots.withLock { slots in
            slots.compactMap { key, slot -> (ComponentKey, String?)? in
                guard key.kind == .secretstore || key.kind == .configuration, let generation = slot.activeCell.current else { return nil }
                return (key, generation.config["pollInterval"])
            }
        }
        for (store, text) in stores {
            let interval = text.flatMap(Self.pollInterval) ?? StoreWatch.defaultPollInterval
            if storeWatch.due(store, every: interval) { storeMayHaveChanged(store) }
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
}
