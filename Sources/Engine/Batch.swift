import FoundationEssentials
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

extension Engine {
    /// Applies several full component definitions all-or-nothing:
    ///
    /// 1. every changed component gets a new generation (no in-place apply: it could not be undone
    ///    if a later component failed), all of them ready before anything switches;
    /// 2. calls to the batch's existing components pause, and the calls already running on their
    ///    old generations finish (bounded by the drain timeout); stateful ones hand their state over;
    /// 3. new components appear and every changed one switches, then the pause ends.
    ///
    /// Any failure before step 3 destroys the new generations and leaves every component as it
    /// was. No call ever sees a new generation of one batch component and then an old generation of
    /// another: the old ones have no call left when the first new one serves.
    public func applyBatch(_ definitions: [ComponentDefinition]) async -> BatchApplyResult {
        let clock = ContinuousClock()
        let started = clock.now
        var batch: BatchApplyResult
        let keys = definitions.map(\.key)
        if let duplicate = Dictionary(grouping: keys, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            batch = BatchApplyResult(results: definitions.map { definition in
                var result = ApplyResult(key: definition.key, action: .failed)
                result.error = "component \(duplicate) appears more than once in the batch"
                result.failure = .invalidDefinition
                return result
            })
        } else {
            // Apply locks in key order, so that batches sharing components cannot deadlock.
            batch = await withApplyLocks(keys.sorted()[...]) {
                await self.applyBatchLocked(definitions, clock: clock, started: started)
            }
        }
        batch.totalDuration = clock.now - started
        for index in batch.results.indices {
            batch.results[index].totalDuration = batch.totalDuration
            batch.results[index] = record(batch.results[index])
        }
        return batch
    }

    private func withApplyLocks<R: Sendable>(_ keys: ArraySlice<ComponentKey>, _ body: () async -> R) async -> R {
        guard let first = keys.first else { return await body() }
        return await applyLock(first).withLock { await self.withApplyLocks(keys.dropFirst(), body) }
    }

    /// One component of a batch between its preparation and the switch.
    private struct Member: Sendable {
        var result: ApplyResult
        let definition: ComponentDefinition
        /// nil for a component the batch adds.
        let slot: ComponentSlot?
        let old: Generation?
        var binary: PluginBinary?
        var config: [String: String] = [:]
        var handoffFormat: UInt32?
        /// nil when the definition changes nothing.
        var new: Generation?
        var changes: Bool { binary != nil }
    }

    private func applyBatchLocked(_ definitions: [ComponentDefinition], clock: ContinuousClock,
                                  started: ContinuousClock.Instant) async -> BatchApplyResult {
        // 1. The limits, before any binary is loaded; then resolve and validate every definition.
        func unresolved(_ definitions: some Sequence<ComponentDefinition>) -> [Member] {
            definitions.map { Member(result: ApplyResult(key: $0.key, action: .failed), definition: $0, slot: nil, old: nil) }
        }
        for (index, definition) in definitions.enumerated() {
            do {
                try ComponentLimits.check(definition)
            } catch {
                return await abort(unresolved(definitions), failed: index, error, kind: .invalidDefinition)
            }
        }
        // The batch holds the apply locks of its keys: which of them are new cannot change meanwhile.
        let added = slots.withLock { slots in definitions.map(\.key).filter { slots[$0]?.activeCell.current == nil } }
        do {
            try reserveRoom(for: added)
        } catch {
            return await abort(unresolved(definitions), failed: definitions.firstIndex { $0.key == added.first }!, error,
                         kind: .invalidDefinition)
        }
        defer { releaseRoom(for: added) }
        var members: [Member] = []
        for definition in definitions {
            let slot = slots.withLock { $0[definition.key] }
            let old = slot?.activeCell.current
            var member = Member(result: ApplyResult(key: definition.key, action: .failed), definition: definition,
                                slot: old == nil ? nil : slot, old: old)
            member.result.oldGeneration = old?.number
            member.result.oldPlugin = old?.pluginID
            do {
                let binary = try resolveBinary(definition, current: old)
                member.result.newPlugin = binary.info.id
                (member.config, member.result.warnings) = try binary.normalize(config: definition.config)
                if let old, binary.sha256 == old.binary.sha256, member.config == old.config.withLock({ $0 }), definition.pin == old.pin {
                    member.result.action = .unchanged
                    member.result.newGeneration = old.number
                } else {
                    member.binary = binary
                    if let old, let slot {
                        member.handoffFormat = try Self.handoffFormat(from: old.binary, to: binary)
                        try await freeIdleCell(of: slot)
                    }
                }
            } catch {
                // The definitions after this one are reported too, unresolved.
                let rest = unresolved(definitions.dropFirst(members.count + 1))
                return await abort(members + [member] + rest, failed: members.count, error, kind: StartFailure.kind(of: error))
            }
            members.append(member)
        }

        // 2. Every new generation, concurrently; all must be ready.
        let starts = await withTaskGroup(of: (Int, Result<Generation, StartFailure>, ApplyResult).self) { group in
            for (index, member) in members.enumerated() {
                guard let binary = member.binary else { continue }
                group.addTask {
                    var result = member.result
                    do {
                        let generation = try await self.startGeneration(key: member.definition.key, binary: binary, config: member.config,
                                                                        pin: member.definition.pin, clock: clock, result: &result)
                        return (index, .success(generation), result)
                    } catch {
                        return (index, .failure(StartFailure(StartFailure.kind(of: error), "\(error)")), result)
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        var firstFailure: (index: Int, error: StartFailure)?
        for (index, outcome, result) in starts {
            members[index].result = result
            switch outcome {
            case .success(let generation):
                members[index].new = generation
                members[index].result.newGeneration = generation.number
            case .failure(let error):
                if firstFailure == nil || index < firstFailure!.index { firstFailure = (index, error) }
            }
        }
        if let firstFailure {
            return await abort(members, failed: firstFailure.index, firstFailure.error, kind: firstFailure.error.kind)
        }

        // 3. Pause the existing components that change and let their old generations finish.
        let switching = members.indices.filter { members[$0].new != nil && members[$0].slot != nil }
        let pauseStart = clock.now
        for index in switching { members[index].slot!.pause() }
        let deadline = pauseStart.advanced(by: settings.drainTimeout)
        for index in switching {
            let slot = members[index].slot!
            let still = await slot.drain(slot.activeCell, timeout: max(.zero, deadline - clock.now))
            if still > 0 {
                for index in switching { members[index].slot!.resume() }
                let error = StartFailure(.busy, "\(still) calls still running on generation \(members[index].old!.number) of "
                    + "\(slot.key) after \(settings.drainTimeout); nothing switched")
                return await abort(members, failed: index, error, kind: .busy, pause: clock.now - pauseStart)
            }
        }
        for index in switching {
            guard let format = members[index].handoffFormat, let old = members[index].old, let new = members[index].new else { continue }
            do {
                let state = try old.instance.exportState(format: format, limit: settings.stateTransferLimit)
                try new.instance.importState(state, format: format)
            } catch {
                for index in switching { members[index].slot!.resume() }
                let failure = StartFailure(.rejected, "state handoff (format \(format)) of \(members[index].definition.key) failed: \(error.message)")
                return await abort(members, failed: index, failure, kind: .rejected, pause: clock.now - pauseStart)
            }
        }

        // 4. The switch: new components appear, changed ones switch (each switch ends its pause).
        slots.withLock { slots in
            for member in members where member.slot == nil {
                if let new = member.new { slots[member.definition.key] = ComponentSlot(key: member.definition.key, first: new) }
            }
        }
        for index in switching {
            let slot = members[index].slot!
            slot.idleCell.install(members[index].new!)
            slot.switchToIdleCell()
        }
        let pause = clock.now - pauseStart
        let switched = clock.now - started
        for index in members.indices where members[index].new != nil {
            members[index].result.switchDuration = switched
            if let old = members[index].old {
                members[index].result.pauseDuration = pause
                members[index].result.action = old.binary.info.version != members[index].binary!.info.version ? .versionSwapped : .reloaded
            } else {
                members[index].result.action = .added
            }
        }
        // The old generations have no call left: destroy them.
        for index in switching {
            let slot = members[index].slot!
            let drainStart = clock.now
            _ = await retire(slot.idleCell, of: slot)
            members[index].result.drainDuration = clock.now - drainStart
        }
        // One journal write for the whole batch (the first changed result carries any warning).
        if let first = members.firstIndex(where: { $0.new != nil }) { await commit(&members[first].result) }
        return BatchApplyResult(results: members.map(\.result), pauseDuration: switching.isEmpty ? nil : pause)
    }

    /// Ends a batch that failed at `members[failed]`: destroys every new generation; every result
    /// becomes `failed`, the failing one with its reason, the others naming it.
    private func abort(_ members: [Member], failed: Int, _ error: any Error, kind: ApplyFailure,
                       pause: Duration? = nil) async -> BatchApplyResult {
        for member in members { if let new = member.new { await abandon(new) } }
        let culprit = members[failed].definition.key
        let results = members.enumerated().map { index, member in
            var result = member.result
            result.action = .failed
            result.newGeneration = nil
            result.pauseDuration = pause
            result.failure = index == failed ? kind : .aborted
            result.error = index == failed ? "\(error)" : "batch aborted: \(culprit) failed; nothing was changed"
            return result
        }
        return BatchApplyResult(results: results, pauseDuration: pause)
    }
}
