import Synchronization

/// Which bootstrap components have not served yet. The host is ready when none is left: a bootstrap
/// component that failed counts once a later apply adds it.
final class BootstrapReadiness: Sendable {
    /// nil until `bootstrap` has run.
    private let unserved = Mutex<Set<ComponentKey>?>(nil)

    var isReady: Bool { unserved.withLock { $0?.isEmpty ?? false } }

    func served(_ key: ComponentKey) { _ = unserved.withLock { $0?.remove(key) } }

    func set(_ keys: Set<ComponentKey>) { unserved.withLock { $0 = keys } }
}

extension Engine {
    /// Applies the components the host starts with, concurrently. The host is ready once every
    /// one of them serves; a failure is returned (and logged) and leaves the host not ready.
    /// The bootstrap components were read from the bootstrap config or the journal's own snapshot, so
    /// a crash before they are journalled loses nothing: they are journalled once, at the end, in one write.
    /// Over `settings.maxComponents`, the components beyond it in name order fail unstarted.
    public func bootstrap(_ definitions: [ComponentDefinition]) async -> [ApplyResult] {
        let (serving, new) = slots.withLock { slots in (slots.count, definitions.map(\.key).filter { slots[$0] == nil }.sorted()) }
        let room = max(0, settings.maxComponents - serving)
        let refused = Set(new.dropFirst(room))
        var results = await withTaskGroup(of: ApplyResult.self) { group in
            for definition in definitions where !refused.contains(definition.key) {
                group.addTask { await self.applyAll([definition], persist: false)[0] }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        for key in refused.sorted() {
            var result = ApplyResult(key: key, action: .failed)
            result.error = "\(key) not started: the bootstrap would make \(serving + new.count) components, over the limit of "
                + "\(settings.maxComponents) (the first \(room) new ones in name order were started)"
            result.failure = .invalidDefinition
            results.append(record(result))
        }
        if let index = results.firstIndex(where: { $0.succeeded && $0.action != .unchanged }) {
            await commit(&results[index])  // one snapshot with every running component; a failure warns on one result
        }
        let failed = results.filter { !$0.succeeded }.map(\.key)
        // Under the slots lock, so an apply that adds one of them meanwhile is not missed.
        slots.withLock { slots in readiness.set(Set(failed.filter { slots[$0] == nil })) }
        return results.sorted { $0.key < $1.key }
    }

    /// Ready once every bootstrap component has served: its first generation was ready, at
    /// bootstrap or in a later apply (readiness probes).
    public var isReady: Bool { readiness.isReady }
}
