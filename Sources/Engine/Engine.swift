import FoundationEssentials
import Logging
import PluginHost
import Synchronization

/// Runs components and hot-reloads them: in place when the plugin can, otherwise by starting a new
/// generation, waiting for it to be ready, handing over state, switching traffic atomically and
/// draining the old one. Anything that fails before the switch leaves the old generation serving.
///
/// Applies to one component are serialized (per-key async lock); different components reload
/// concurrently. Calls never take a lock shared with applies (see `ComponentSlot`).
public final class Engine: Sendable {
    public let catalog: PluginCatalog
    public let settings: EngineSettings
    let logger: Logger
    /// Serving components. Read on every call (short critical section); written on add/remove.
    let slots = Mutex<[ComponentKey: ComponentSlot]>([:])
    /// Components being added (first generation starting), not in `slots` yet. With `slots` they count
    /// against `settings.maxComponents`. Lock order: `slots`, then `addingComponents`.
    private let addingComponents = Mutex<Set<ComponentKey>>([])
    private let applyLocks = Mutex<[ComponentKey: AsyncLock]>([:])
    private let history = Mutex<[ApplyResult]>([])
    private let generationCounters = Mutex<[ComponentKey: UInt64]>([:])
    /// Background drains that outlived their apply's drain timeout, by the cell they drain. The task
    /// owns that cell until it ends: it destroys the generation and empties the cell.
    let lateDrains = Mutex<[ObjectIdentifier: Task<Void, Never>]>([:])
    /// Leases that reached a destroyed generation in components removed since (kept for the tests).
    private let retiredViolations = Atomic<Int>(0)
    /// Bootstrap components that have not served yet; nil until `bootstrap` has run. The host is
    /// ready when it is empty: a bootstrap component that failed counts once a later apply adds it.
    private let unservedBootstrap = Mutex<Set<ComponentKey>?>(nil)
    /// Subscribers to apply results (control-plane streams, metrics), by subscription id.
    private let applySubscribers = Mutex<(next: Int, byID: [Int: AsyncStream<ApplyResult>.Continuation])>((0, [:]))

    /// Records the running configuration after every change; nil: nothing is persisted.
    let journal: (any ConfigJournal)?
    /// Runs journal commits one at a time off the cooperative pool (they fsync), so a snapshot is never
    /// older than the one written before it and a slow disk never stalls the app's calls.
    private let journalQueue = BlockingWorkQueue(label: "molt.engine.journal", serial: true)
    /// Runs plugin init and destroy (a plugin may connect, spawn or join threads there) off the cooperative
    /// pool, so a slow one delays only its own apply; instances of different components start at once.
    let pluginLifecycle = BlockingWorkQueue(label: "molt.engine.plugin-lifecycle", serial: false)

    public init(catalog: PluginCatalog, settings: EngineSettings = EngineSettings(), journal: (any ConfigJournal)? = nil,
                logger: Logger = Logger(label: "molt.engine")) {
        self.catalog = catalog
        self.settings = settings
        self.journal = journal
        self.logger = logger
    }

    public var loader: PluginLoader { catalog.loader }

    // MARK: - Calls

    func slot(_ key: ComponentKey) throws(CallError) -> ComponentSlot {
        guard let slot = slots.withLock({ $0[key] }) else { throw .unknownComponent(key) }
        return slot
    }

    /// Runs `body` with a lease on the component's active generation; the lease covers the whole
    /// call, including an asynchronous completion.
    func withLease<Value: Sendable>(_ key: ComponentKey,
                                    _ body: (PluginInstance) async throws(PluginError) -> Value) async throws(CallError) -> Served<Value> {
        let slot = try slot(key)
        // The fast path is synchronous; only a paused slot (stateful handoff) suspends the call.
        let lease: ComponentSlot.Lease
        if let leased = try slot.tryAcquire() { lease = leased } else { lease = try await slot.acquireAfterPause() }
        defer { slot.release(lease) }
        do {
            return Served(value: try await body(lease.generation.instance), generation: lease.generation.number)
        } catch {
            throw .plugin(error)
        }
    }

    // MARK: - Apply

    /// Applies a full component definition. Never throws: failures come back as a `failed` result
    /// carrying the reason (the plugin's own message when the plugin refused).
    @discardableResult
    public func apply(_ definition: ComponentDefinition) async -> ApplyResult {
        await apply(definition, persist: true)
    }

    /// `persist: false` for the bootstrap, which writes one snapshot once every component started.
    private func apply(_ definition: ComponentDefinition, persist: Bool) async -> ApplyResult {
        let key = definition.key
        let clock = ContinuousClock()
        let started = clock.now
        var result = await applyLock(key).withLock {
            var result = await self.applySerialized(definition, clock: clock, started: started)
            if persist { await self.commit(&result) }
            return result
        }
        result.totalDuration = clock.now - started
        return record(result)
    }

    /// The definitions of every running component, as a restart must reproduce them: plugin name
    /// and exact version, the (normalized) configuration and pin of the active generation.
    public var runningDefinitions: [ComponentDefinition] {
        slots.withLock { Array($0.values) }.compactMap { slot in
            guard let generation = slot.activeCell.current else { return nil }
            let info = generation.binary.info
            return ComponentDefinition(kind: slot.key.kind, name: slot.key.name, plugin: info.name, version: info.version,
                                       config: generation.config.withLock { $0 }, pin: generation.pin)
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

    /// Removes a component: stop routing, drain, destroy.
    @discardableResult
    public func remove(_ key: ComponentKey) async -> ApplyResult {
        await remove(key, persist: true)
    }

    /// `persist: false` for shutdown: the components stop with the process, but a restart must
    /// bring them back, so the journal keeps them.
    @discardableResult
    private func remove(_ key: ComponentKey, persist: Bool) async -> ApplyResult {
        let clock = ContinuousClock()
        let started = clock.now
        var result = await applyLock(key).withLock { () async -> ApplyResult in
            var result = ApplyResult(key: key, action: .removed)
            guard let slot = slots.withLock({ $0.removeValue(forKey: key) }) else {
                result.action = .failed
                result.error = "component \(key) is not configured"
                result.failure = .unknownComponent
                return result
            }
            slot.markRemoved()
            if persist { await commit(&result) }
            let cell = slot.activeCell
            let generation = cell.current
            result.oldGeneration = generation?.number
            result.oldPlugin = generation?.pluginID
            let drainStart = clock.now
            result.callsStillDraining = await retire(cell, of: slot)
            result.drainDuration = clock.now - drainStart
            if result.callsStillDraining > 0 {
                result.warnings.append("\(result.callsStillDraining) calls still running after the \(settings.drainTimeout) drain timeout; destroyed when they finish")
            }
            retiredViolations.add(slot.violations.load(ordering: .relaxed), ordering: .relaxed)
            return result
        }
        result.totalDuration = clock.now - started
        return record(result)
    }

    func applyLock(_ key: ComponentKey) -> AsyncLock {
        applyLocks.withLock { locks in
            if let lock = locks[key] { return lock }
            let lock = AsyncLock()
            locks[key] = lock
            return lock
        }
    }

    private func applySerialized(_ definition: ComponentDefinition, clock: ContinuousClock, started: ContinuousClock.Instant) async -> ApplyResult {
        let key = definition.key
        var result = ApplyResult(key: key, action: .failed)
        let existing = slots.withLock { $0[key] }
        let current = existing?.activeCell.current
        result.oldGeneration = current?.number
        result.oldPlugin = current?.pluginID

        // The limits first, before any binary is loaded; then the binary: plugin name and version
        // default to the current ones.
        var reserved: [ComponentKey] = []
        defer { releaseRoom(for: reserved) }
        let binary: PluginBinary
        do {
            try ComponentLimits.check(definition)
            if current == nil {
                try reserveRoom(for: [key])
                reserved = [key]
            }
            binary = try resolveBinary(definition, current: current)
        } catch {
            result.error = "\(error)"
            result.failure = .invalidDefinition
            return result
        }
        result.newPlugin = binary.info.id
        let config: [String: String]
        do {
            (config, result.warnings) = try binary.normalize(config: definition.config)
        } catch {
            result.error = "\(error)"
            result.failure = .invalidDefinition
            return result
        }

        guard let slot = existing, let current else {
            // A new component: its first generation must be ready before anyone can call it.
            do {
                let generation = try await startGeneration(key: key, binary: binary, config: config, pin: definition.pin,
                                                           clock: clock, result: &result)
                slots.withLock { $0[key] = ComponentSlot(key: key, first: generation) }
                result.action = .added
                result.newGeneration = generation.number
                result.switchDuration = clock.now - started
            } catch {
                result.error = "\(error)"
                result.failure = StartFailure.kind(of: error)
            }
            return result
        }

        // 1. Unchanged definition: nothing to do.
        let sameBinary = binary.sha256 == current.binary.sha256
        if sameBinary && config == current.config.withLock({ $0 }) && definition.pin == current.pin {
            result.action = .unchanged
            result.newGeneration = current.number
            return result
        }
        // 2. Same binary and the plugin applies configs in place: try that first.
        if sameBinary, definition.pin == current.pin, let outcome = current.instance.applyConfig(config) {
            switch outcome {
            case .applied:
                current.config.withLock { $0 = config }
                result.action = .appliedInPlace
                result.newGeneration = current.number
                result.switchDuration = clock.now - started
                return result
            case .needsReload(let why):
                result.warnings.append("in-place apply needs a reload: \(why)")
            case .rejected(let why):
                result.warnings.append("in-place apply refused (\(why)); trying a new instance")
            }
        }
        // 3 and 4. A new generation, then the switch.
        return await reload(slot: slot, from: current, binary: binary, config: config, pin: definition.pin,
                            clock: clock, started: started, result: result)
    }

    /// Counts `keys` (components not serving, whose apply locks the caller holds) against
    /// `settings.maxComponents` until `releaseRoom`: all of them fit, or none is counted.
    /// Under both locks, so concurrent applies never add more than the limit between them.
    func reserveRoom(for keys: [ComponentKey]) throws {
        // The closures return the problem rather than throw it: typed throws through Mutex.withLock,
        // inlined into the async apply path, crashed the Swift 6.3.1 optimizer (coroutine splitting).
        let problem: String? = slots.withLock { slots in
            addingComponents.withLock { adding in
                // A key both serving and being added (between its insertion and release) counts once.
                let counted = slots.count + adding.filter { slots[$0] == nil }.count
                let new = keys.filter { slots[$0] == nil && !adding.contains($0) }
                if let problem = ComponentLimits.countProblem(serving: counted, adding: new, limit: settings.maxComponents) {
                    return problem
                }
                adding.formUnion(new)
                return nil
            }
        }
        if let problem { throw ConfigProblem(problem) }
    }

    /// Ends the reservation of `reserveRoom`, once the components serve or their apply failed.
    func releaseRoom(for keys: [ComponentKey]) {
        addingComponents.withLock { $0.subtract(keys) }
    }

    func resolveBinary(_ definition: ComponentDefinition, current: Generation?) throws -> PluginBinary {
        let key = definition.key
        guard let pluginName = definition.plugin ?? current?.binary.info.name else {
            throw ConfigProblem("component \(key) is new: name its plugin")
        }
        let keepCurrent = current.map { $0.binary.info.name == pluginName && definition.version == nil } ?? false
        let version = keepCurrent ? current?.binary.info.version : definition.version
        if keepCurrent, let current, definition.pin == nil || definition.pin == current.pin {
            return current.binary
        }
        var entry = catalog.find(kind: key.kind, name: pluginName, version: version)
        if entry == nil {
            catalog.rescan()  // a file may have been dropped into the plugins directory since
            entry = catalog.find(kind: key.kind, name: pluginName, version: version)
        }
        guard let entry else {
            let available = catalog.versions(of: pluginName).map(\.description)
            let wanted = version.map { "\(pluginName)@\($0)" } ?? pluginName
            throw ConfigProblem("no \(key.kind.rawValue) plugin \(wanted) in \(loader.pluginsDirectory)"
                + (available.isEmpty ? "" : " (available versions: \(available.joined(separator: ", ")))"))
        }
        return try loader.load(path: entry.path, pin: definition.pin)
    }

    private func nextGenerationNumber(_ key: ComponentKey) -> UInt64 {
        generationCounters.withLock { counters in
            counters[key, default: 0] += 1
            return counters[key]!
        }
    }

    /// init + readiness polling. On any failure the new instance is destroyed before returning.
    func startGeneration(key: ComponentKey, binary: PluginBinary, config: [String: String], pin: String?,
                                 clock: ContinuousClock, result: inout ApplyResult) async throws -> Generation {
        let initStart = clock.now
        let instance: PluginInstance
        do {
            let (name, logger) = (key.name, logger)
            instance = try await pluginLifecycle.run {
                try PluginInstance(binary: binary, componentName: name, config: config, logger: logger)
            }
        } catch {
            result.initDuration = clock.now - initStart
            let message = (error as? PluginError)?.message ?? "\(error)"
            throw StartFailure(.rejected, "\(binary.info.id) init failed: \(message)")
        }
        result.initDuration = clock.now - initStart
        let readinessStart = clock.now
        let deadline = readinessStart.advanced(by: settings.readinessTimeout)
        var lastMessage = ""
        while true {
            switch instance.readiness() {
            case .ready:
                result.readinessDuration = clock.now - readinessStart
                return Generation(number: nextGenerationNumber(key), instance: instance, config: config, pin: pin)
            case .failed(let message):
                result.readinessDuration = clock.now - readinessStart
                await destroy(instance)
                throw StartFailure(.rejected, "\(binary.info.id) readiness FAILED: \(message)")
            case .notReady(let message):
                lastMessage = message
            }
            if clock.now >= deadline {
                result.readinessDuration = clock.now - readinessStart
                await destroy(instance)
                throw StartFailure(.timedOut, "\(binary.info.id) not ready after \(settings.readinessTimeout)"
                    + (lastMessage.isEmpty ? "" : ": \(lastMessage)"))
            }
            try? await Task.sleep(for: settings.readinessInterval)
        }
    }

    private func reload(slot: ComponentSlot, from old: Generation, binary: PluginBinary, config: [String: String], pin: String?,
                        clock: ContinuousClock, started: ContinuousClock.Instant, result initial: ApplyResult) async -> ApplyResult {
        var result = initial
        let oldBinary = old.binary
        // State handoff needs both sides; refusing beats silently dropping held state.
        let handoffFormat: UInt32?
        do {
            handoffFormat = try Self.handoffFormat(from: oldBinary, to: binary)
            try await freeIdleCell(of: slot)
        } catch {
            result.error = error.description
            result.failure = error.kind
            return result
        }

        let generation: Generation
        do {
            generation = try await startGeneration(key: slot.key, binary: binary, config: config, pin: pin, clock: clock, result: &result)
        } catch {
            result.error = "\(error)"
            result.failure = StartFailure.kind(of: error)
            return result
        }
        result.newGeneration = generation.number
        let oldCell = slot.activeCell

        if let format = handoffFormat {
            // Stateful: new calls wait while the old instance finishes its calls and hands over.
            let pauseStart = clock.now
            slot.pause()
            let still = await slot.drain(oldCell, timeout: settings.drainTimeout)
            var failure: String?
            var failureKind = ApplyFailure.rejected
            if still > 0 {
                failure = "\(still) calls still running on generation \(old.number) after \(settings.drainTimeout); state not handed over"
                failureKind = .busy
            } else {
                do {
                    let state = try old.instance.exportState(format: format, limit: settings.stateTransferLimit)
                    try generation.instance.importState(state, format: format)
                } catch {
                    failure = "state handoff (format \(format)) failed: \(error.message)"
                }
            }
            if let failure {
                slot.resume()
                result.pauseDuration = clock.now - pauseStart
                await abandon(generation)
                result.error = failure
                result.failure = failureKind
                return result
            }
            slot.idleCell.install(generation)
            slot.switchToIdleCell()
            result.pauseDuration = clock.now - pauseStart
            result.switchDuration = clock.now - started
            result.drainDuration = .zero
            _ = await retire(oldCell, of: slot)
        } else {
            slot.idleCell.install(generation)
            slot.switchToIdleCell()
            result.switchDuration = clock.now - started
            let drainStart = clock.now
            result.callsStillDraining = await retire(oldCell, of: slot)
            result.drainDuration = clock.now - drainStart
            if result.callsStillDraining > 0 {
                result.warnings.append("\(result.callsStillDraining) calls still running on generation \(old.number) after the \(settings.drainTimeout) drain timeout; it is destroyed when they finish")
            }
        }
        result.action = oldBinary.info.version != binary.info.version ? .versionSwapped : .reloaded
        return result
    }

    /// The state format a reload from `old` to `new` hands over in: nil when `old` holds no state,
    /// else the newest format both understand. Refuses a reload that would drop state.
    static func handoffFormat(from old: PluginBinary, to new: PluginBinary) throws(StartFailure) -> UInt32? {
        guard let oldFormats = old.info.stateFormats else { return nil }
        guard let newFormats = new.info.stateFormats else {
            throw StartFailure(.invalidDefinition, "\(new.info.id) cannot import state, so a reload would drop \(old.info.id)'s state; refusing")
        }
        guard oldFormats.overlaps(newFormats) else {
            throw StartFailure(.invalidDefinition, "no common state format: \(old.info.id) has \(oldFormats), \(new.info.id) has \(newFormats)")
        }
        return min(oldFormats.upperBound, newFormats.upperBound)
    }

    /// A generation still draining from an earlier apply occupies the idle cell: waits for it
    /// (bounded by the drain timeout) and for its destruction.
    func freeIdleCell(of slot: ComponentSlot) async throws(StartFailure) {
        let idle = slot.idleCell
        guard idle.current != nil else { return }
        let still = await slot.drain(idle, timeout: settings.drainTimeout)
        if still > 0 {
            throw StartFailure(.busy, "generation \(idle.current?.number ?? 0) of \(slot.key) still has \(still) calls running; try again later")
        }
        // The background task that owned the cell is finishing; let it destroy and empty it.
        if let task = lateDrains.withLock({ $0[ObjectIdentifier(idle)] }) { await task.value }
    }

    /// Destroys a plugin instance off the cooperative pool (destroy joins the plugin's threads).
    private func destroy(_ instance: PluginInstance) async {
        await pluginLifecycle.run { instance.destroy() }
    }

    /// Destroys a generation that was never installed (an apply that failed after it was ready).
    func abandon(_ generation: Generation) async {
        generation.destroyed.store(true, ordering: .releasing)
        await destroy(generation.instance)
    }

    /// Drains `cell` (bounded by the drain timeout), then destroys its generation and empties it.
    /// Past the timeout the destroy happens in the background once the calls end. Returns the calls
    /// still running at the timeout.
    func retire(_ cell: ComponentSlot.Cell, of slot: ComponentSlot) async -> Int {
        let still = await slot.drain(cell, timeout: settings.drainTimeout)
        if still == 0 {
            await destroyGeneration(in: cell, of: slot)
            return 0
        }
        let id = ObjectIdentifier(cell)
        lateDrains.withLock { drains in
            drains[id] = Task {
                _ = await slot.drain(cell, timeout: .seconds(365 * 24 * 3600))
                await self.destroyGeneration(in: cell, of: slot)
                _ = self.lateDrains.withLock { $0.removeValue(forKey: id) }
            }
        }
        return still
    }

    private func destroyGeneration(in cell: ComponentSlot.Cell, of slot: ComponentSlot) async {
        guard let generation = cell.current else { return }
        generation.destroyed.store(true, ordering: .sequentiallyConsistent)
        await destroy(generation.instance)
        cell.clear()
        logger.debug("generation destroyed", metadata: ["component": "\(slot.key)", "generation": "\(generation.number)"])
    }

    private func waitForLateDrains() async {
        for task in lateDrains.withLock({ Array($0.values) }) { await task.value }
    }

    /// Every apply result from now on, in the order applies finish, until the stream's consumer stops
    /// iterating (or is cancelled). A consumer that falls 1024 results behind loses the oldest ones.
    public func applyResults() -> AsyncStream<ApplyResult> {
        let (stream, continuation) = AsyncStream<ApplyResult>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let id = applySubscribers.withLock { subscribers in
            subscribers.next += 1
            subscribers.byID[subscribers.next] = continuation
            return subscribers.next
        }
        continuation.onTermination = { [weak self] _ in _ = self?.applySubscribers.withLock { $0.byID.removeValue(forKey: id) } }
        return stream
    }

    /// Stamps `result` with its finishing time, publishes it (subscribers, history, log) and returns the
    /// stamped copy, which is what the caller must hand back.
    @discardableResult
    func record(_ result: ApplyResult) -> ApplyResult {
        if result.action == .added { _ = unservedBootstrap.withLock { $0?.remove(result.key) } }
        var result = result
        result.finishedAt = Date()
        for continuation in applySubscribers.withLock({ Array($0.byID.values) }) { continuation.yield(result) }
        history.withLock { history in
            history.append(result)
            if history.count > settings.historyLimit { history.removeFirst(history.count - settings.historyLimit) }
        }
        var metadata: Logger.Metadata = ["component": "\(result.key)", "action": "\(result.action.rawValue)"]
        if let old = result.oldGeneration { metadata["old_generation"] = "\(old)" }
        if let new = result.newGeneration { metadata["new_generation"] = "\(new)" }
        if let plugin = result.newPlugin { metadata["plugin"] = "\(plugin)" }
        if let error = result.error { metadata["error"] = "\(error)" }
        for (name, duration) in [("init", result.initDuration), ("readiness", result.readinessDuration), ("pause", result.pauseDuration),
                                 ("drain", result.drainDuration), ("switch", result.switchDuration)] {
            if let duration { metadata["\(name)_us"] = "\(duration.microseconds)" }
        }
        metadata["total_us"] = "\(result.totalDuration.microseconds)"
        if !result.warnings.isEmpty { metadata["warnings"] = "\(result.warnings.joined(separator: "; "))" }
        logger.log(level: result.succeeded ? .info : .warning, "apply", metadata: metadata)
        return result
    }

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
                group.addTask { await self.apply(definition, persist: false) }
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
        slots.withLock { slots in
            unservedBootstrap.withLock { $0 = Set(failed.filter { slots[$0] == nil }) }
        }
        return results.sorted { $0.key < $1.key }
    }

    /// Ready once every bootstrap component has served: its first generation was ready, at
    /// bootstrap or in a later apply (readiness probes).
    public var isReady: Bool { unservedBootstrap.withLock { $0?.isEmpty ?? false } }

    // MARK: - Status

    public var recentApplies: [ApplyResult] { history.withLock { $0 } }

    public struct ComponentStatus: Sendable {
        public let key: ComponentKey
        public let plugin: String
        public let generation: UInt64
        public let paused: Bool
        public let inFlight: Int
        public let drainingGeneration: UInt64?
        public let drainingInFlight: Int
        /// Calls that have waited for a stateful handoff (since the component was added).
        public let callsThatWaitedForHandoff: Int
        public let lastApply: ApplyResult?
    }

    public var components: [ComponentStatus] {
        let snapshot = slots.withLock { $0 }
        let applies = recentApplies
        return snapshot.values.compactMap { slot in
            guard let active = slot.activeCell.current else { return nil }
            let draining = slot.idleCell.current
            return ComponentStatus(key: slot.key, plugin: active.pluginID, generation: active.number, paused: slot.isPaused,
                                   inFlight: slot.activeCell.inFlight.load(ordering: .relaxed),
                                   drainingGeneration: draining?.number, drainingInFlight: slot.idleCell.inFlight.load(ordering: .relaxed),
                                   callsThatWaitedForHandoff: slot.waitedForPause.load(ordering: .relaxed),
                                   lastApply: applies.last { $0.key == slot.key })
        }.sorted { $0.key < $1.key }
    }

    /// The active generation's normalized configuration; nil when the component is not configured.
    public func activeConfig(of key: ComponentKey) -> [String: String]? {
        slots.withLock { $0[key] }?.activeCell.current?.config.withLock { $0 }
    }

    /// Leases that reached a destroyed generation, across all components. Always 0 unless molt has a bug.
    public var leaseViolations: Int {
        slots.withLock { $0.values.reduce(0) { $0 + $1.violations.load(ordering: .relaxed) } } + retiredViolations.load(ordering: .relaxed)
    }

    /// Waits for drains that outlived their apply (tests and shutdown).
    public func settle() async { await waitForLateDrains() }

    /// Removes every component (shutdown): each drains and is destroyed.
    public func shutdown() async {
        for key in slots.withLock({ Array($0.keys) }) { await remove(key, persist: false) }
        await waitForLateDrains()
    }
}

extension Duration {
    var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}

/// A failure to start a generation, with its kind for `ApplyResult.failure`.
struct StartFailure: Error, CustomStringConvertible {
    let kind: ApplyFailure
    let description: String
    init(_ kind: ApplyFailure, _ description: String) { self.kind = kind; self.description = description }

    static func kind(of error: any Error) -> ApplyFailure { (error as? StartFailure)?.kind ?? .invalidDefinition }
}

/// Where the engine records the configuration it runs. `committed` is called after every change
/// (apply, removal, batch) with every running component, before the change is acknowledged, and
/// never concurrently with itself.
public protocol ConfigJournal: Sendable {
    func committed(_ running: [ComponentDefinition]) throws
}
