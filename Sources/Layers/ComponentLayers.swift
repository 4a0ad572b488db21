import Config
import Engine
import Logging
import Persistence
import PluginHost
import Synchronization

/// One source's new content in one layer; no components means the source is gone.
public struct LayerChange: Sendable {
    public var layer: ConfigLayer
    public var source: String
    public var components: [ComponentSpec]

    public init(layer: ConfigLayer, source: String, components: [ComponentSpec]) {
        self.layer = layer
        self.source = source
        self.components = components
    }
}

/// What one layer update did.
public struct LayerUpdateResult: Sendable {
    /// Applies of the components whose merged definition changed (empty when none did).
    public var applies: [ApplyResult] = []
    /// Removals of the components no layer defines any more.
    public var removals: [ApplyResult] = []
    /// Why nothing changed, when the update failed (the layers keep their previous content).
    public var error: String?

    public var succeeded: Bool { error == nil }
}

/// Turns the layers (common < app < local, see `LayeredComponents`) into running components: the
/// agents report source changes here, and only components whose merged definition changed are
/// applied, through the engine's usual path (one component: a plain apply, in place when the plugin
/// can; several: one all-or-nothing batch). Components no layer defines any more are removed, if the
/// layers had applied them.
///
/// Invariant: `layers` is what was last applied successfully; a failed update leaves it (and the
/// running components) as they were. Updates are serialized by `updates`, so a change is merged
/// against the result of the one before. Components added by other paths (the Lifecycle and Control
/// APIs) are left alone until a layer defines them.
public final class ComponentLayers: Sendable {
    private let engine: Engine
    private let logger: Logger
    private let updates = AsyncLock()
    private struct State {
        var layers = LayeredComponents()
        /// The merged definition the layers last applied to each component they manage.
        var applied: [ComponentKey: ComponentDefinition] = [:]
    }
    private let state: Mutex<State>

    /// `bootstrap`: the local layer's components molt starts with (source "bootstrap"). `store`: where
    /// the layers are kept across restarts. What both define was started by the engine's bootstrap
    /// (restored from the running snapshot), and is adopted here as already applied.
    public init(engine: Engine, bootstrap: [ComponentSpec] = [], store: LayerStore? = nil,
                logger: Logger = Logger(label: "molt.layers")) {
        self.engine = engine
        self.store = store
        self.logger = logger
        var initial = State()
        do {
            if let stored = try store?.load() { initial.layers = stored }
        } catch {
            logger.error("the stored configuration layers are unreadable; starting without them (the agents' first sync re-applies what they hold)",
                         metadata: ["error": "\(error)"])
        }
        initial.layers.set(.local, source: Self.bootstrapSource, components: bootstrap)
        for key in initial.layers.keys {
            if let definition = try? initial.layers.effective(key)?.definition(catalog: engine.catalog) { initial.applied[key] = definition }
        }
        state = Mutex(initial)
    }

    private let store: LayerStore?
    /// Runs the store's writes (they fsync) off the cooperative pool; `updates` already orders them.
    private let storeQueue = BlockingWorkQueue(label: "molt.layers.store", serial: true)

    public static let bootstrapSource = "bootstrap"

    /// The current layers (as last applied).
    public var layers: LayeredComponents { state.withLock { $0.layers } }

    /// Applies source changes together: every component whose merged definition changes is applied in
    /// one step (all-or-nothing when several), then the components no layer defines any more are removed.
    @discardableResult
    public func update(_ changes: [LayerChange]) async -> LayerUpdateResult {
        await updates.withLock { await self.updateSerialized(changes) }
    }

    private func updateSerialized(_ changes: [LayerChange]) async -> LayerUpdateResult {
        var result = LayerUpdateResult()
        let (current, applied) = state.withLock { ($0.layers, $0.applied) }
        var candidate = current
        var affected = Set<ComponentKey>()
        for change in changes {
            affected.formUnion(candidate.components(change.layer, source: change.source).map(\.key))
            affected.formUnion(change.components.map(\.key))
            candidate.set(change.layer, source: change.source, components: change.components)
        }
        var toApply: [ComponentDefinition] = []
        var toRemove: [ComponentKey] = []
        for key in affected.sorted() {
            guard let merged = candidate.effective(key) else {
                if applied[key] != nil { toRemove.append(key) }
                continue
            }
            let definition: ComponentDefinition
            do {
                definition = try merged.definition(catalog: engine.catalog)
            } catch {
                result.error = "\(key): \(error)"
                return result
            }
            if applied[key] != definition { toApply.append(definition) }
        }
        if !toApply.isEmpty {
            let batch = toApply.count == 1 ? BatchApplyResult(results: [await engine.apply(toApply[0])])
                                           : await engine.applyBatch(toApply)
            result.applies = batch.results
            guard batch.succeeded else {
                result.error = batch.results.filter { !$0.succeeded && $0.failure != .aborted }
                    .map { "\($0.key): \($0.error ?? "failed")" }.joined(separator: "; ")
                if batch.results.contains(where: { $0.failure == .stateWouldBeLost }) {
                    // Configuration agents never accept a loss of state: an operator decides, with the Control API.
                    result.error! += "; not applied from the configuration layers, which never accept state loss: "
                        + "an operator applies it with `molt apply --accept-state-loss`"
                }
                return result
            }
        }
        for key in toRemove {
            let removal = await engine.remove(key)
            result.removals.append(removal)
        }
        state.withLock { state in
            state.layers = candidate
            for definition in toApply { state.applied[definition.key] = definition }
            for key in toRemove { state.applied.removeValue(forKey: key) }
        }
        if let store, candidate != current {
            do {
                let stored = candidate
                try await storeQueue.run { try store.save(stored, excluding: [Self.bootstrapSource]) }
            } catch {
                logger.error("the configuration layers were applied but NOT stored", metadata: ["error": "\(error)"])
            }
        }
        return result
    }
}
