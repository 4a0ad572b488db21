import FoundationEssentials
import Logging
import PluginHost
import Synchronization

/// Runs components and hot-reloads them: in place when the plugin can, otherwise by starting a new
/// generation, waiting for it to be ready, handing over state, switching traffic atomically and
/// retiring the old one (`ApplyPipeline.swift`). Anything that fails before the switch leaves the old
/// generation serving.
///
/// Applies to one component are serialized (per-key async lock); different components reload
/// concurrently. Calls never take a lock shared with applies (`ComponentSlot`). Every plugin step that
/// can block runs on a thread of its own with a timeout (`PluginSteps`), and every call has a deadline
/// (`Calls.swift`), so no plugin can wedge an apply, a removal or the shutdown.
public final class Engine: Sendable {
    public let catalog: PluginCatalog
    /// The settings in force. Timeouts can change while running (`updateTimeouts`); an apply reads them
    /// as it reaches each step.
    public var settings: EngineSettings { currentSettings.withLock { $0 } }
    private let currentSettings: Mutex<EngineSettings>
    /// `settings.callTimeout` in nanoseconds, read on every call without a lock.
    private let callTimeoutNanoseconds: Atomic<Int64>
    let logger: Logger
    /// Serving components. Read on every call (short critical section); written on add/remove.
    let slots = Mutex<[ComponentKey: ComponentSlot]>([:])
    /// Components being added (first generation starting), not in `slots` yet (`Admission.swift`).
    let addingComponents = Mutex<Set<ComponentKey>>([])
    private let applyLocks = Mutex<[ComponentKey: AsyncLock]>([:])
    private let generationCounters = Mutex<[ComponentKey: UInt64]>([:])
    /// Applies in progress, for status APIs.
    let inProgress = Mutex<[ObjectIdentifier: ApplyRecorder]>([:])
    /// Generations left to the plugin's calls (`Retirement.swift`).
    let abandoned = AbandonedGenerations()
    /// Leases that reached a destroyed generation in components removed since (kept for the tests).
    let retiredViolations = Atomic<Int>(0)
    let history: ApplyHistory
    let readiness = BootstrapReadiness()
    /// Expires app calls whose deadline passed.
    let callTimer = CallTimer()
    /// Times the blocking plugin steps (apart from `callTimer`, whose `expireAll` ends calls at shutdown).
    let stepTimer = CallTimer()

    /// Records the running configuration after every change; nil: nothing is persisted.
    let journal: (any ConfigJournal)?
    /// Runs journal commits one at a time off the cooperative pool (they fsync), so a snapshot is never
    /// older than the one written before it and a slow disk never stalls the app's calls.
    let journalQueue = BlockingWorkQueue(label: "molt.engine.journal", serial: true)
    /// Planning (`plan`, `check`) off the cooperative pool: resolving a definition's binary reads, hashes and
    /// maps the plugin file (its constructors run), and a version the catalog lacks rescans the directory.
    let planQueue = BlockingWorkQueue(label: "molt.engine.plan", serial: false)
    /// Plugin init, apply_config, export, import and destroy, each on a thread of its own with a timeout.
    let pluginSteps: PluginSteps
    /// Reads secret and configuration stores again when their values may have changed (`StoreWatch.swift`).
    let storeWatch = StoreWatch()
    /// Apps' configuration subscriptions (`ConfigurationCalls.swift`).
    let configurationSubscriptions = ConfigurationSubscriptions()
    /// Apps' pub/sub subscriptions (`PubsubCalls.swift`).
    let pubsubRegistry = PubsubRegistry()

    public init(catalog: PluginCatalog, settings: EngineSettings = EngineSettings(), journal: (any ConfigJournal)? = nil,
                logger: Logger = Logger(label: "molt.engine")) {
        self.catalog = catalog
        self.currentSettings = Mutex(settings)
        self.callTimeoutNanoseconds = Atomic(settings.callTimeout.nanoseconds)
        self.journal = journal
        self.logger = logger
        self.history = ApplyHistory(limit: settings.historyLimit, logger: logger)
        self.pluginSteps = PluginSteps(label: "molt.engine.plugin-step", timer: stepTimer)
    }

    deinit {
        callTimer.stop()
        stepTimer.stop()
    }

    public var loader: PluginLoader { catalog.loader }

    /// Replaces the timeouts (readiness, drain, call, and each plugin step's) with those of `new` (a
    /// SIGHUP re-read); the other settings stay. Returns the names of the timeouts that changed.
    @discardableResult
    public func updateTimeouts(from new: EngineSettings) -> [String] {
        let timeouts: [(String, WritableKeyPath<EngineSettings, Duration>)] = [
            ("readinessTimeout", \.readinessTimeout), ("drainTimeout", \.drainTimeout), ("callTimeout", \.callTimeout),
            ("initTimeout", \.initTimeout), ("applyConfigTimeout", \.applyConfigTimeout),
            ("stateTransferTimeout", \.stateTransferTimeout), ("destroyTimeout", \.destroyTimeout),
        ]
        let changed = currentSettings.withLock { settings in
            timeouts.filter { settings[keyPath: $0.1] != new[keyPath: $0.1] }.map { name, path in
                settings[keyPath: path] = new[keyPath: path]
                return name
            }
        }
        callTimeoutNanoseconds.store(new.callTimeout.nanoseconds, ordering: .relaxed)
        return changed
    }

    /// The deadline of a call started now whose caller gave none.
    var defaultCallDeadline: ContinuousClock.Instant {
        ContinuousClock.now.advanced(by: .nanoseconds(callTimeoutNanoseconds.load(ordering: .relaxed)))
    }

    // MARK: - Changes

    /// Applies a full component definition. Never throws: failures come back as a `failed` result
    /// carrying the reason (the plugin's own message when the plugin refused).
    @discardableResult
    public func apply(_ definition: ComponentDefinition) async -> ApplyResult {
        await applyAll([definition], persist: true)[0]
    }

    /// Applies several full component definitions all-or-nothing (see `ApplyPipeline.swift`).
    public func applyBatch(_ definitions: [ComponentDefinition]) async -> BatchApplyResult {
        let results = await applyAll(definitions, persist: true)
        let pause = results.compactMap(\.pauseDuration).max()
        var batch = BatchApplyResult(results: results, pauseDuration: pause)
        batch.totalDuration = results.map(\.totalDuration).max() ?? .zero
        return batch
    }

    /// Removes a component: stop routing, drain, destroy (or abandon to the plugin's calls).
    @discardableResult
    public func remove(_ key: ComponentKey) async -> ApplyResult {
        await remove(key, persist: true)
    }

    /// The definitions of every running component, as a restart must reproduce them: plugin name
    /// and exact version, the (normalized) configuration as given (without the defaults the host filled in:
    /// those are the plugin version's own; secret references, never their values) and pin of the active generation.
    public var runningDefinitions: [ComponentDefinition] {
        slots.withLock { Array($0.values) }.compactMap { slot in
            guard let generation = slot.activeCell.current else { return nil }
            let info = generation.binary.info
            return ComponentDefinition(kind: slot.key.kind, name: slot.key.name, plugin: info.name, version: info.version,
                                       config: generation.shownExplicitConfig, pin: generation.pin)
        }.sorted { $0.key < $1.key }
    }

    /// Writes the running configuration to the journal after a change, before the change is
    /// acknowledged (callers hold the apply locks of the changed components). A write that fails
    /// cannot undo the switch: the result carries a warning and the error is logged.
    func commit(_ result: inout ApplyResult) async {
        guard let journal, result.succeeded, result.action != .unchanged else { return }
        do {
            // The definitions are read on the queue, so each snapshot includes every change committed before it.
            try await journalQueue.run { try journal.committed(self.runningDefinitions) }
        } catch {
            result.warnings.append("the running configuration was NOT persisted: \(error)")
            logger.error("persisting the running configuration failed", metadata: ["component": "\(result.key)", "error": "\(error)"])
        }
    }

    func applyLock(_ key: ComponentKey) -> AsyncLock {
        applyLocks.withLock { locks in
            if let lock = locks[key] { return lock }
            let lock = AsyncLock()
            locks[key] = lock
            return lock
        }
    }

    /// Runs `body` holding the apply locks of `keys`, taken in key order so that applies sharing
    /// components cannot deadlock.
    func withApplyLocks<R: Sendable>(_ keys: ArraySlice<ComponentKey>, _ body: () async -> R) async -> R {
        guard let first = keys.first else { return await body() }
        return await applyLock(first).withLock { await self.withApplyLocks(keys.dropFirst(), body) }
    }

    func nextGenerationNumber(_ key: ComponentKey) -> UInt64 {
        generationCounters.withLock { counters in
            counters[key, default: 0] += 1
            return counters[key]!
        }
    }

    // MARK: - Shutdown

    /// Expires every call still waiting for a plugin (shutdown, after the drain timeout): each answers
    /// DEADLINE_EXCEEDED and its generation is left to the plugin. Returns how many.
    @discardableResult
    public func expireCallsInFlight() -> Int { callTimer.expireAll() }

    /// Removes every component (shutdown): each drains (bounded by the drain timeout) and is destroyed,
    /// or abandoned when the plugin still holds calls. The journal keeps them, so a restart brings
    /// them back. Returns the generations left abandoned.
    @discardableResult
    public func shutdown() async -> [AbandonedGeneration] {
        let keys = slots.withLock { Array($0.keys) }
        await withTaskGroup(of: Void.self) { group in
            for key in keys { group.addTask { _ = await self.remove(key, persist: false) } }
        }
        return abandoned.list
    }
}

/// Where the engine records the configuration it runs. `committed` is called after every change
/// (apply, removal, batch) with every running component, before the change is acknowledged, and
/// never concurrently with itself.
public protocol ConfigJournal: Sendable {
    func committed(_ running: [ComponentDefinition]) throws
}
