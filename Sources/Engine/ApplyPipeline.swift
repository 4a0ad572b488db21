import PluginHost

/// What an all-or-nothing apply of several components did.
public struct BatchApplyResult: Sendable {
    /// One result per definition, in the order given. On failure every one is `failed`: the
    /// component that failed carries its reason, the others say the batch was aborted because of it.
    public var results: [ApplyResult]
    /// How long calls to the batch's existing components waited while the batch switched them.
    public var pauseDuration: Duration?
    public var totalDuration: Duration = .zero

    public init(results: [ApplyResult], pauseDuration: Duration? = nil) {
        self.results = results
        self.pauseDuration = pauseDuration
    }

    public var succeeded: Bool { results.allSatisfy(\.succeeded) }
}

/// A failure of one step of the pipeline, with its kind for `ApplyResult.failure`.
struct StepFailure: Error, CustomStringConvertible {
    let kind: ApplyFailure
    let description: String
    /// The configuration keys it is about, when it names some (unknown keys), for `check`.
    var keys: [String] = []
    init(_ kind: ApplyFailure, _ description: String, keys: [String] = []) { self.kind = kind; self.description = description; self.keys = keys }

    static func kind(of error: any Error) -> ApplyFailure { (error as? StepFailure)?.kind ?? .invalidDefinition }
}

/// The apply pipeline. Every change, one component or a batch, goes through the same steps:
///
/// 1. **plan**: limits, secret references read from their stores (`SecretResolution.swift`), binary,
///    normalized config; each component is unchanged, tried in place, or
///    gets a new generation (added components too).
/// 2. **apply in place**, only when it is the apply's one change (an in-place apply cannot be undone if
///    another component failed later); APPLIED ends the apply, otherwise a new generation follows.
/// 3. **start**: every new generation's init and readiness, concurrently, each with its timeout.
/// 4. **pause** (batches, and components handing over state): new calls wait while the old generations
///    finish theirs, so no call sees a new generation of one component then an old one of another.
/// 5. **hand over**: stateful generations export, the new ones import.
/// 6. **switch**: new components appear and changed ones switch at once; the pause ends.
/// 7. **retire**: each old generation drains, then is destroyed, or abandoned to calls the plugin never
///    completes (`Retirement.swift`).
/// 8. **commit**: the running configuration is journalled before the apply is acknowledged.
///
/// Any failure before step 6 destroys the new generations and leaves every component as it was.
extension Engine {
    /// One component of an apply, from plan to retire.
    struct Change: Sendable {
        var result: ApplyResult
        let definition: ComponentDefinition
        /// nil for a component the apply adds.
        let slot: ComponentSlot?
        let old: Generation?
        var binary: PluginBinary?
        /// The binary the definition resolves to, also when it changes nothing.
        var resolved: PluginBinary?
        var normalized = NormalizedConfig(config: [:], explicit: [:], warnings: [])
        /// The secret references of the configuration given, by config key (their values are in `normalized`).
        var references: [String: SecretReference] = [:]
        /// What the plugin gets (`normalized.config`).
        var config: [String: String] { normalized.config }
        /// A changed key that does not apply in place (declared keys, ABI 1.1): the change reloads
        /// without calling apply_config.
        var blockingKey: String?
        var handoffFormat: UInt32?
        /// Why a reload must not happen (the state would be lost), when the change may still apply in place:
        /// it fails the apply only if a new generation is needed after all.
        var reloadRefusal: StepFailure?
        /// The new generation, once started.
        var new: Generation?
        /// false when the definition changes nothing.
        var changes: Bool { binary != nil }
    }

    /// Applies `definitions` all-or-nothing and records each result. `persist: false` for the
    /// bootstrap, which writes one snapshot once every component started.
    func applyAll(_ definitions: [ComponentDefinition], persist: Bool) async -> [ApplyResult] {
        if let (stores, users) = Self.secretStoresFirst(definitions) {
            // The stores must serve before the components that read secrets from them are planned.
            let results = await applyAll(stores, persist: persist) + applyAll(users, persist: persist)
            let byKey = Dictionary(results.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
            return definitions.map { byKey[$0.key]! }
        }
        let keys = definitions.map(\.key)
        let recorder = ApplyRecorder(keys: keys)
        inProgress.withLock { $0[ObjectIdentifier(recorder)] = recorder }
        defer { _ = inProgress.withLock { $0.removeValue(forKey: ObjectIdentifier(recorder)) } }
        var results: [ApplyResult]
        if let duplicate = Dictionary(grouping: keys, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            results = definitions.map { definition in
                var result = ApplyResult(key: definition.key, action: .failed)
                result.error = "component \(duplicate) appears more than once in the batch"
                result.failure = .invalidDefinition
                return result
            }
        } else {
            results = await withApplyLocks(keys.sorted()[...]) {
                await self.runPipeline(definitions, persist: persist, recorder: recorder)
            }
        }
        return results.map { result in
            var result = result
            recorder.stamp(&result)
            return record(result)
        }
    }

    /// A batch holding secret stores and components that reference them, split in two: the stores, then the
    /// rest (each all-or-nothing); nil for any other batch.
    static func secretStoresFirst(_ definitions: [ComponentDefinition]) -> (stores: [ComponentDefinition], users: [ComponentDefinition])? {
        let stores = definitions.filter { $0.key.kind == .secretstore }
        let names = Set(stores.map(\.key.name))
        guard !names.isEmpty, stores.count < definitions.count else { return nil }
        let users = definitions.filter { $0.key.kind != .secretstore }
        let referencesBatchStore = users.contains { definition in
            ((try? SecretReference.references(in: definition.config)) ?? [:]).values.contains { names.contains($0.store) }
        }
        return referencesBatchStore ? (stores, users) : nil
    }

    private func runPipeline(_ definitions: [ComponentDefinition], persist: Bool, recorder: ApplyRecorder) async -> [ApplyResult] {
        // 1. Plan. The limits first, before any binary is loaded.
        func unresolved(_ definitions: some Sequence<ComponentDefinition>) -> [Change] {
            definitions.map { Change(result: ApplyResult(key: $0.key, action: .failed), definition: $0, slot: nil, old: nil) }
        }
        for (index, definition) in definitions.enumerated() {
            do {
                try ComponentLimits.check(definition)
            } catch {
                return await abort(unresolved(definitions), failed: index, StepFailure(.invalidDefinition, "\(error)"))
            }
        }
        // The apply holds the locks of its keys: which of them are new cannot change meanwhile.
        let added = slots.withLock { slots in definitions.map(\.key).filter { slots[$0] == nil } }
        do {
            try reserveRoom(for: added)
        } catch {
            return await abort(unresolved(definitions), failed: definitions.firstIndex { $0.key == added.first }!,
                               StepFailure(.invalidDefinition, "\(error)"))
        }
        defer { releaseRoom(for: added) }
        var changes: [Change] = []
        for definition in definitions {
            do {
                let secrets = try await resolveSecrets(of: definition)
                changes.append(try await planQueue.run { try self.plan(definition, secrets: secrets) })
            } catch {
                var change = Change(result: ApplyResult(key: definition.key, action: .failed), definition: definition, slot: nil, old: nil)
                change.result.oldGeneration = slots.withLock { $0[definition.key] }?.activeCell.current?.number
                let rest = unresolved(definitions.dropFirst(changes.count + 1))
                return await abort(changes + [change] + rest, failed: changes.count,
                                   StepFailure(StepFailure.kind(of: error), "\(error)"))
            }
        }

        // 2. In place, when this is the apply's one change.
        let changing = changes.indices.filter { changes[$0].changes }
        if changing.count == 1, let index = changing.first, let old = changes[index].old,
           changes[index].binary!.sha256 == old.binary.sha256, changes[index].definition.pin == old.pin {
            if let blocking = changes[index].blockingKey {
                if old.binary.symbols.applyConfig != nil {
                    changes[index].result.warnings.append("reload: key '\(blocking)' does not apply in place")
                }
            } else {
                recorder.begin(.applyConfig)
                switch await applyInPlace(changes[index].normalized, references: changes[index].references, to: old) {
                case .applied:
                    changes[index].result.action = .appliedInPlace
                    changes[index].result.newGeneration = old.number
                    recorder.markSwitched()
                    return await finish(changes, persist: persist, recorder: recorder)
                case .reload(let warning):
                    if let warning { changes[index].result.warnings.append(warning) }
                case .failed(let failure):
                    return await abort(changes, failed: index, failure)
                }
            }
        }

        // A reload refused because it would lose state: nothing has started, the old generation keeps serving.
        if let index = changing.first(where: { changes[$0].reloadRefusal != nil }) {
            return await abort(changes, failed: index, changes[index].reloadRefusal!)
        }

        // 3. Start every new generation, concurrently; all must be ready.
        recorder.begin(.start)
        let starts = await withTaskGroup(of: (Int, Result<StartedGeneration, StepFailure>).self) { group in
            for index in changing {
                let change = changes[index]
                group.addTask {
                    (index, await self.startGeneration(key: change.definition.key, binary: change.binary!, config: change.normalized,
                                                       references: change.references, pin: change.definition.pin))
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        var firstFailure: (index: Int, error: StepFailure)?
        for (index, outcome) in starts {
            switch outcome {
            case .success(let started):
                changes[index].new = started.generation
                changes[index].result.newGeneration = started.generation.number
                changes[index].result.initDuration = started.initDuration
                changes[index].result.readinessDuration = started.readinessDuration
            case .failure(let error):
                if firstFailure.map({ index < $0.index }) ?? true { firstFailure = (index, error) }
            }
        }
        if let firstFailure { return await abort(changes, failed: firstFailure.index, firstFailure.error) }

        // 4. and 5. Pause and hand over, when several components switch or one holds state.
        let switching = changing.filter { changes[$0].slot != nil }
        let mustPause = switching.count > 1 || switching.contains { changes[$0].handoffFormat != nil }
        if mustPause {
            recorder.begin(.pause)
            for index in switching { changes[index].slot!.pause() }
            if let failure = await pauseAndHandOver(changes, switching: switching, recorder: recorder) {
                for index in switching { changes[index].slot!.resume() }
                // A pub/sub component whose subscriptions were stopped for the handover gets them back.
                for index in switching where changes[index].definition.key.kind == .pubsub {
                    await attachDetached(of: changes[index].definition.key.name, to: changes[index].old!)
                }
                return await abort(changes, failed: failure.index, failure.error)
            }
        }

        // 6. Switch: new components appear, changed ones switch (each switch ends its pause).
        recorder.begin(.switch)
        slots.withLock { slots in
            for change in changes where change.slot == nil {
                if let new = change.new { slots[change.definition.key] = ComponentSlot(key: change.definition.key, first: new) }
            }
        }
        for index in switching {
            changes[index].slot!.idleCell.install(changes[index].new!)
            changes[index].slot!.switchToIdleCell()
        }
        recorder.markSwitched()
        for change in changes where [.secretstore, .configuration].contains(change.definition.key.kind) {
            if let new = change.new { storeServes(new) }
        }
        // Subscriptions move to the new generations before the old ones retire (the old ones take the answers
        // of their deliveries in flight until then).
        for change in changes where change.definition.key.kind == .pubsub {
            if let new = change.new { await moveSubscriptions(of: change.definition.key.name, from: change.old, to: new) }
        }
        for index in changing {
            if let old = changes[index].old {
                changes[index].result.action = old.binary.info.version != changes[index].binary!.info.version ? .versionSwapped : .reloaded
            } else {
                changes[index].result.action = .added
            }
        }

        // 7. Retire the old generations, concurrently.
        recorder.begin(.retire)
        let retired = await withTaskGroup(of: (Int, Int).self) { group in
            for index in switching {
                let slot = changes[index].slot!
                group.addTask { (index, await self.retire(slot.idleCell, of: slot, replaceCell: true)) }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        for (index, calls) in retired where calls > 0 {
            changes[index].result.callsStillDraining = calls
            changes[index].result.warnings.append("\(calls) calls still held by the plugin on generation \(changes[index].old!.number) "
                + "after the \(settings.drainTimeout) drain timeout; it is abandoned and destroyed when they complete")
        }
        return await finish(changes, persist: persist, recorder: recorder)
    }

    /// 8. Commit: one journal write for the whole apply (the first changed result carries any warning).
    private func finish(_ changes: [Change], persist: Bool, recorder: ApplyRecorder) async -> [ApplyResult] {
        var results = changes.map(\.result)
        if persist, let first = results.firstIndex(where: { $0.succeeded && $0.action != .unchanged }) {
            recorder.begin(.commit)
            await commit(&results[first])
        }
        return results
    }

    private enum InPlaceOutcome {
        case applied
        /// The plugin cannot apply it in place: a new generation takes it (the warning says why).
        case reload(String?)
        case failed(StepFailure)
    }

    /// Step 2: apply_config on the running instance, on a thread of its own, with its timeout.
    private func applyInPlace(_ config: NormalizedConfig, references: [String: SecretReference], to generation: Generation) async -> InPlaceOutcome {
        let instance = generation.instance
        guard instance.binary.symbols.applyConfig != nil else { return .reload(nil) }
        let plain = config.config
        guard let outcome = await pluginSteps.run(timeout: settings.applyConfigTimeout, { instance.applyConfig(plain) }) else {
            return .failed(StepFailure(.timedOut, "\(generation.pluginID) apply_config did not return within \(settings.applyConfigTimeout); "
                + "generation \(generation.number) keeps serving with its configuration"))
        }
        switch outcome {
        case .applied?:
            generation.replaceConfig(config, references: references, appID: settings.appID)
            return .applied
        case .needsReload(let why)?: return .reload("in-place apply needs a reload: \(why)")
        case .rejected(let why)?: return .reload("in-place apply refused (\(why)); trying a new instance")
        case nil: return .reload(nil)
        }
    }

    struct StartedGeneration: Sendable {
        let generation: Generation
        let initDuration: Duration
        let readinessDuration: Duration
    }

    /// Step 3 for one component: init, then readiness polls (each on a thread of its own, bounded by the
    /// init and readiness timeouts).
    /// On any failure the new instance is destroyed before returning.
    func startGeneration(key: ComponentKey, binary: PluginBinary, config: NormalizedConfig, references: [String: SecretReference] = [:],
                         pin: String?) async -> Result<StartedGeneration, StepFailure> {
        let clock = ContinuousClock()
        let initStart = clock.now
        let (name, logger) = (key.name, logger)
        // An init that returns after its timeout: the instance nobody will use is destroyed on its thread.
        let created = await pluginSteps.run(timeout: settings.initTimeout, late: { (late: Result<PluginInstance, PluginError>) in
            if case .success(let instance) = late {
                instance.destroy()
                logger.warning("an init that overran its timeout returned at last; its instance was destroyed",
                               metadata: ["component": "\(key)", "plugin": "\(binary.info.id)"])
            }
        }) {
            Result { () throws(PluginError) in try PluginInstance(binary: binary, componentName: name, config: config.config, logger: logger) }
        }
        let initDuration = clock.now - initStart
        let instance: PluginInstance
        switch created {
        case nil:
            return .failure(StepFailure(.timedOut, "\(binary.info.id) init did not return within \(settings.initTimeout)"))
        case .failure(let error)?:
            return .failure(StepFailure(.rejected, "\(binary.info.id) init failed: \(error.message)"))
        case .success(let created)?:
            instance = created
        }
        let readinessStart = clock.now
        let deadline = readinessStart.advanced(by: settings.readinessTimeout)
        var lastMessage = ""
        while true {
            let failure: StepFailure
            // On a thread of its own too: a readiness call that blocks fails the start at the deadline.
            let remaining = max(deadline - clock.now, .milliseconds(1))
            // Destroyed only once that call returned (never under a call), on its thread.
            guard let readiness = await pluginSteps.run(timeout: remaining, late: { _ in instance.destroy() }, { instance.readiness() }) else {
                return .failure(StepFailure(.timedOut, "\(binary.info.id) readiness did not return within \(settings.readinessTimeout)"))
            }
            switch readiness {
            case .ready:
                let generation = Generation(number: nextGenerationNumber(key), key: key, instance: instance, config: config,
                                            references: references, pin: pin,
                                            appID: settings.appID)
                return .success(StartedGeneration(generation: generation, initDuration: initDuration, readinessDuration: clock.now - readinessStart))
            case .failed(let message):
                failure = StepFailure(.rejected, "\(binary.info.id) readiness FAILED: \(message)")
            case .notReady(let message):
                lastMessage = message
                guard clock.now >= deadline else {
                    try? await Task.sleep(for: settings.readinessInterval)
                    continue
                }
                failure = StepFailure(.timedOut, "\(binary.info.id) not ready after \(settings.readinessTimeout)"
                    + (lastMessage.isEmpty ? "" : ": \(lastMessage)"))
            }
            await destroy(instance, of: key, generation: nil)
            return .failure(failure)
        }
    }

    /// Steps 4 and 5, with the switching components paused: their old generations finish their calls
    /// (stateful ones every call the plugin holds, since state cannot be exported under a call), then
    /// each stateful one hands its state over. Returns the first failure.
    private func pauseAndHandOver(_ changes: [Change], switching: [Int], recorder: ApplyRecorder) async -> (index: Int, error: StepFailure)? {
        let deadline = ContinuousClock.now.advanced(by: settings.drainTimeout)
        for index in switching {
            let change = changes[index], cell = change.slot!.activeCell
            let stateful = change.handoffFormat != nil
            await drain(cell, timeout: max(.zero, deadline - ContinuousClock.now)) { cell in
                stateful ? cell.leases.load(ordering: .sequentiallyConsistent) == 0 : cell.waitingLeases <= 0
            }
            let still = stateful ? cell.leases.load(ordering: .sequentiallyConsistent) : cell.waitingLeases
            if still > 0 {
                return (index, StepFailure(.busy, "\(still) calls still running on generation \(change.old!.number) of \(change.definition.key) "
                    + "after the \(settings.drainTimeout) drain timeout\(stateful ? "; its state cannot be handed over under a call" : ""); "
                    + "nothing switched"))
            }
        }
        recorder.begin(.handover)
        for index in switching {
            guard let format = changes[index].handoffFormat, let old = changes[index].old, let new = changes[index].new else { continue }
            // A pub/sub plugin's messages travel in its state: its subscriptions stop first, so none is in flight.
            if old.key.kind == .pubsub { await detachSubscriptions(of: old.key.name, from: old) }
            if let failure = await handOver(from: old, to: new, format: format) { return (index, failure) }
        }
        return nil
    }

    /// Export from `old`, import into `new`, each on a thread of its own with its timeout.
    private func handOver(from old: Generation, to new: Generation, format: UInt32) async -> StepFailure? {
        let (oldInstance, newInstance, limit, timeout) = (old.instance, new.instance, settings.stateTransferLimit, settings.stateTransferTimeout)
        guard let exported = await pluginSteps.run(timeout: timeout, { Result { () throws(PluginError) in
            try oldInstance.exportState(format: format, limit: limit)
        } }) else {
            return StepFailure(.timedOut, "state handoff: \(old.pluginID) export_state (format \(format)) did not return within \(timeout); "
                + "generation \(old.number) keeps serving")
        }
        let state: [UInt8]
        switch exported {
        case .success(let bytes): state = bytes
        case .failure(let error): return StepFailure(.rejected, "state handoff (format \(format)) failed: export: \(error.message)")
        }
        guard let imported = await pluginSteps.run(timeout: timeout, { Result { () throws(PluginError) in
            try newInstance.importState(state, format: format)
        } }) else {
            return StepFailure(.timedOut, "state handoff: \(new.pluginID) import_state (format \(format)) did not return within \(timeout); "
                + "generation \(old.number) keeps serving")
        }
        if case .failure(let error) = imported {
            return StepFailure(.rejected, "state handoff (format \(format)) failed: import: \(error.message)")
        }
        return nil
    }

    /// Ends an apply that failed at `changes[failed]`: destroys every new generation; every result
    /// becomes `failed`, the failing one with its reason, the others naming it.
    private func abort(_ changes: [Change], failed: Int, _ error: StepFailure) async -> [ApplyResult] {
        await withTaskGroup(of: Void.self) { group in
            for change in changes { if let new = change.new { group.addTask { await self.destroy(new) } } }
        }
        let culprit = changes[failed].definition.key
        return changes.enumerated().map { index, change in
            var result = change.result
            result.action = .failed
            result.newGeneration = nil
            (result.droppedKeys, result.changedKeys) = ([], [])
            result.failure = index == failed ? error.kind : .aborted
            result.error = index == failed ? error.description : "batch aborted: \(culprit) failed; nothing was changed"
            return result
        }
    }
}
