import Engine
import MoltTestSupport
import PluginHost
import Synchronization
import Testing

/// All-or-nothing applies of several components (`Engine.applyBatch`).
@Suite struct BatchTests {
    @Test func batchWhoseThirdComponentFailsReadinessChangesNothing() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        for name in ["a", "b", "c"] {
            #expect(await engine.apply(lockDefinition(name, plugin: "probe", ["v": "1"])).action == .added)
        }
        let traffic = Traffic(engine: engine, store: "a")
        await traffic.waitForCalls(20)
        let batch = await engine.applyBatch([
            lockDefinition("a", plugin: "probe", ["v": "2"]),
            lockDefinition("b", plugin: "probe", ["v": "2"]),
            lockDefinition("c", plugin: "probe", ["v": "2", "readiness": "failed"]),
            lockDefinition("d", plugin: "probe"),  // would be added
        ])
        await traffic.waitForCalls(20)
        await traffic.stop()
        traffic.expectClean()

        #expect(!batch.succeeded)
        #expect(batch.results.map(\.key.name) == ["a", "b", "c", "d"])
        #expect(batch.results.allSatisfy { $0.action == .failed && $0.newGeneration == nil })
        #expect(batch.results[2].error?.contains("readiness FAILED") == true)
        #expect(batch.results[0].error == "batch aborted: lock/c failed; nothing was changed")
        // Nothing changed: same generations, same configs, no new component.
        #expect(engine.components.map(\.key.name) == ["a", "b", "c"])
        #expect(engine.components.map(\.generation) == [1, 1, 1])
        for name in ["a", "b", "c"] {
            #expect(engine.activeConfig(of: ComponentKey(kind: .lock, name: name))?["v"] == "1")
        }
        #expect(traffic.generationsSeen == [1])
        #expect(engine.leaseViolations == 0)
    }

    @Test func concurrentReaderNeverSeesAMixOfOldAndNew() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        for name in ["a", "b"] { #expect(await engine.apply(lockDefinition(name, plugin: "probe")).action == .added) }
        // Both components move to generation k+1 in batch k: a reader that saw generation g of one
        // of them must never see an older one of either afterwards.
        let tally = Traffic.Tally()
        let readers = Task {
            await withTaskGroup(of: Void.self) { group in
                for reader in 0..<4 {
                    group.addTask {
                        var newest: UInt64 = 0
                        var iteration = 0
                        while !tally.stopping.load(ordering: .relaxed) {
                            await Task.yield()
                            iteration += 1
                            for store in reader % 2 == 0 ? ["a", "b"] : ["b", "a"] {
                                do {
                                    let served = try await engine.tryLock(store: store, resource: "r\(reader)-\(iteration)",
                                                                          owner: "reader", expiryInSeconds: 1)
                                    if served.generation < newest { tally.regressions.add(1, ordering: .relaxed) }
                                    newest = max(newest, served.generation)
                                    tally.calls.add(1, ordering: .relaxed)
                                } catch {
                                    tally.failures.withLock { $0.append("\(error)") }
                                }
                            }
                        }
                    }
                }
            }
        }
        for round in 1...20 {
            let target = tally.calls.load(ordering: .relaxed) + 20
            while tally.calls.load(ordering: .relaxed) < target { await Task.yield() }
            let batch = await engine.applyBatch([lockDefinition("a", plugin: "probe", ["round": "\(round)"]),
                                                 lockDefinition("b", plugin: "probe", ["round": "\(round)"])])
            #expect(batch.succeeded && batch.results.map(\.action) == [.reloaded, .reloaded], "\(batch.results)")
        }
        tally.stopping.store(true, ordering: .relaxed)
        await readers.value
        #expect(tally.failures.withLock { $0 } == [])
        #expect(tally.regressions.load(ordering: .relaxed) == 0, "a reader saw an old generation after a new one")
        #expect(engine.components.map(\.generation) == [21, 21])
        #expect(engine.leaseViolations == 0)
    }

    @Test func batchReportsEachComponentInOrderAndHandsStateOver() async throws {
        let engine = try makeEngine(["probe-1.0.0.so", "probe-stateful-1.0.0.so"])
        #expect(await engine.apply(lockDefinition("plain", plugin: "probe")).action == .added)
        #expect(await engine.apply(lockDefinition("same", plugin: "probe")).action == .added)
        #expect(await engine.apply(lockDefinition("held", plugin: "probe-stateful")).action == .added)
        #expect(try await engine.tryLock(store: "held", resource: "r", owner: "alice", expiryInSeconds: 60).value)

        let batch = await engine.applyBatch([
            lockDefinition("plain", plugin: "probe", ["v": "2"]),
            lockDefinition("new", plugin: "probe"),
            lockDefinition("same", plugin: "probe"),
            lockDefinition("held", plugin: "probe-stateful", ["v": "2"]),
        ])
        #expect(batch.succeeded, "\(batch.results)")
        #expect(batch.results.map(\.action) == [.reloaded, .added, .unchanged, .reloaded])
        #expect(batch.results.map(\.newGeneration) == [2, 1, 1, 2])
        #expect(batch.pauseDuration != nil)
        // The stateful component kept its lock across the batch.
        let unlock = try await engine.unlock(store: "held", resource: "r", owner: "bob")
        #expect(unlock.value == .lockBelongsToOthers && unlock.generation == 2)
        #expect(try await engine.tryLock(store: "new", resource: "r", owner: "o", expiryInSeconds: 5).value)
        #expect(engine.recentApplies.suffix(4).map(\.key.name) == ["plain", "new", "same", "held"])
        #expect(engine.leaseViolations == 0)
    }

    @Test func batchNamingAComponentTwiceIsRefused() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        #expect(await engine.apply(lockDefinition("a", plugin: "probe")).action == .added)
        let batch = await engine.applyBatch([lockDefinition("a", plugin: "probe", ["v": "2"]), lockDefinition("a", plugin: "probe", ["v": "3"])])
        #expect(batch.results.map(\.action) == [.failed, .failed])
        #expect(batch.results[0].failure == .invalidDefinition && batch.results[0].error?.contains("more than once") == true)
        #expect(engine.activeConfig(of: ComponentKey(kind: .lock, name: "a")) == [:])
    }

    @Test func batchWithAnUnknownPluginReportsEveryComponent() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        let batch = await engine.applyBatch([lockDefinition("a", plugin: "probe"), lockDefinition("b", plugin: "nope"),
                                             lockDefinition("c", plugin: "probe")])
        #expect(batch.results.map(\.key.name) == ["a", "b", "c"])
        #expect(batch.results.map(\.failure) == [.aborted, .invalidDefinition, .aborted])
        #expect(batch.results[1].error?.contains("no lock plugin nope") == true)
        #expect(engine.components.isEmpty)
    }
}
