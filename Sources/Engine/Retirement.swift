import FoundationEssentials
import Logging
import PluginHost
import Synchronization

/// A generation left to the plugin: calls it never completed kept it past the drain timeout. It no
/// longer blocks anything; it is destroyed when the plugin completes those calls.
public struct AbandonedGeneration: Sendable {
    public let key: ComponentKey
    public let generation: UInt64
    public let plugin: String
    /// When it was abandoned (wall clock).
    public let since: Date
    let cell: LeaseCell

    /// Calls the plugin still holds.
    public var callsOutstanding: Int { cell.leases.load(ordering: .relaxed) & ~LeaseCell.abandonedBit }
}

/// The abandoned generations, until each is destroyed (a record leaves once its destroy returned).
final class AbandonedGenerations: Sendable {
    private let byCell = Mutex<[ObjectIdentifier: AbandonedGeneration]>([:])

    var list: [AbandonedGeneration] {
        byCell.withLock { Array($0.values) }.sorted { ($0.key, $0.generation) < ($1.key, $1.generation) }
    }

    func add(_ record: AbandonedGeneration) { byCell.withLock { $0[ObjectIdentifier(record.cell)] = record } }

    func remove(_ cell: LeaseCell) { _ = byCell.withLock { $0.removeValue(forKey: ObjectIdentifier(cell)) } }

    var isEmpty: Bool { byCell.withLock { $0.isEmpty } }
}

extension Engine {
    /// Retires the generation in `cell`, which calls no longer reach (switched out or removed): waits
    /// up to the drain timeout for its calls, then destroys it; when the plugin still holds calls then
    /// (or holds calls their callers gave up on), abandons it instead and returns how many.
    /// `replaceCell`: the slot keeps serving, so it gets a fresh cell where this one was.
    func retire(_ cell: LeaseCell, of slot: ComponentSlot, replaceCell: Bool) async -> Int {
        guard let generation = cell.current else { return 0 }
        await drain(cell, timeout: settings.drainTimeout) { $0.waitingLeases <= 0 }
        if cell.leases.load(ordering: .sequentiallyConsistent) == 0 {
            await destroy(generation)
            cell.clear()
            return 0
        }
        if replaceCell { slot.replaceIdleCell(cell) }
        let record = AbandonedGeneration(key: slot.key, generation: generation.number, plugin: generation.pluginID, since: Date(), cell: cell)
        abandoned.add(record)
        let calls = record.callsOutstanding
        logger.warning("generation abandoned: the plugin still holds calls after the drain timeout; it is destroyed when they complete",
                       metadata: ["component": "\(slot.key)", "generation": "\(generation.number)", "plugin": "\(generation.pluginID)",
                                  "calls": "\(calls)", "drain_timeout": "\(settings.drainTimeout)"])
        cell.abandon { [self] in
            // The plugin completed the last call: on a thread of its own, never the caller's.
            Task.detached {
                await self.destroy(generation)
                cell.clear()
                self.abandoned.remove(cell)
                self.logger.info("abandoned generation destroyed: the plugin completed its last call",
                                 metadata: ["component": "\(record.key)", "generation": "\(record.generation)"])
            }
        }
        return calls
    }

    /// Waits until `drained(cell)` or `timeout`. In-memory calls finish within microseconds: yields
    /// first, sleeps only if it takes longer.
    func drain(_ cell: LeaseCell, timeout: Duration, until drained: (LeaseCell) -> Bool) async {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var spins = 0
        while !drained(cell), clock.now < deadline {
            spins += 1
            if spins < 64 { await Task.yield() } else { try? await Task.sleep(for: .microseconds(200)) }
        }
    }

    /// Destroys a generation's instance on a thread of its own, bounded by the destroy timeout. A
    /// destroy that overruns is left running (it holds the instance, so the binary stays mapped).
    func destroy(_ generation: Generation) async {
        generation.destroyed.store(true, ordering: .sequentiallyConsistent)
        await destroy(generation.instance, of: generation.key, generation: generation.number)
    }

    /// `generation` nil: an instance that never served (its start failed).
    func destroy(_ instance: PluginInstance, of key: ComponentKey, generation: UInt64?) async {
        let done: Void? = await pluginSteps.run(timeout: settings.destroyTimeout) { instance.destroy() }
        let metadata: Logger.Metadata = ["component": "\(key)", "generation": "\(generation.map(String.init) ?? "none")",
                                         "plugin": "\(instance.binary.info.id)"]
        if done == nil {
            logger.error("plugin destroy did not return within the \(settings.destroyTimeout) destroy timeout; left running on its thread",
                         metadata: metadata)
        } else {
            logger.debug("instance destroyed", metadata: metadata)
        }
    }

    /// Removes a component: calls fail as unknown from now on; the last generation is retired.
    func remove(_ key: ComponentKey, persist: Bool) async -> ApplyResult {
        let recorder = ApplyRecorder(keys: [key])
        inProgress.withLock { $0[ObjectIdentifier(recorder)] = recorder }
        defer { _ = inProgress.withLock { $0.removeValue(forKey: ObjectIdentifier(recorder)) } }
        var result = await applyLock(key).withLock { () async -> ApplyResult in
            var result = ApplyResult(key: key, action: .removed)
            guard let slot = slots.withLock({ $0.removeValue(forKey: key) }) else {
                result.action = .failed
                result.error = "component \(key) is not configured"
                result.failure = .unknownComponent
                return result
            }
            slot.markRemoved()
            if key.kind == .pubsub { await endSubscriptions(of: key.name) }
            if persist {
                recorder.begin(.commit)
                await commit(&result)
            }
            let cell = slot.activeCell
            result.oldGeneration = cell.current?.number
            result.oldPlugin = cell.current?.pluginID
            recorder.begin(.retire)
            result.callsStillDraining = await retire(cell, of: slot, replaceCell: false)
            if result.callsStillDraining > 0 {
                result.warnings.append("\(result.callsStillDraining) calls still held by the plugin after the \(settings.drainTimeout) drain timeout; "
                    + "the generation is abandoned and destroyed when they complete")
            }
            retiredViolations.add(slot.violations.load(ordering: .relaxed), ordering: .relaxed)
            return result
        }
        recorder.stamp(&result)
        return record(result)
    }

    /// Waits (up to 10 s) until every abandoned generation whose calls completed has been destroyed
    /// (tests).
    public func settle() async {
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while !abandoned.isEmpty, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
    }
}
