import FoundationEssentials
import Engine
import MoltTestSupport
import PluginHost
import Synchronization
import Testing

/// Anything that fails before the switch leaves the old generation serving, and the apply returns
/// the plugin's own message.
@Suite struct FaultTests {
    /// Applies `config` to a serving probe and checks the old generation still answers afterwards.
    func failedApplyLeavesOldServing(_ config: [String: String], plugin: String = "probe", fixtures: [String] = ["probe-1.0.0.so"],
                                     configure: (inout EngineSettings) -> Void = { _ in }) async throws -> ApplyResult {
        let engine = try makeEngine(fixtures, configure: configure)
        #expect(await engine.apply(lockDefinition("locks", plugin: plugin)).action == .added)
        #expect(try await engine.tryLock(store: "locks", resource: "before", owner: "alice", expiryInSeconds: 60).value)
        let traffic = Traffic(engine: engine, store: "locks")
        await traffic.waitForCalls(20)
        let result = await engine.apply(lockDefinition("locks", plugin: plugin, config))
        await traffic.waitForCalls(20)
        await traffic.stop()
        traffic.expectClean()
        #expect(result.action == .failed)
        #expect(result.oldGeneration == 1)
        // The old generation still serves, with its state.
        let check = try await engine.unlock(store: "locks", resource: "before", owner: "bob")
        #expect(check.value == .lockBelongsToOthers && check.generation == 1)
        #expect(engine.components.map(\.generation) == [1])
        #expect(engine.leaseViolations == 0)
        return result
    }

    @Test func initFailureReturnsThePluginsMessage() async throws {
        let result = try await failedApplyLeavesOldServing(["initError": "redis at 10.0.0.9:6379 refused the password"])
        #expect(result.error?.contains("redis at 10.0.0.9:6379 refused the password") == true, "\(result)")
    }

    @Test func readinessFailedReturnsThePluginsMessage() async throws {
        let result = try await failedApplyLeavesOldServing(["readiness": "failed"])
        #expect(result.error?.contains("probe: readiness failed by config") == true, "\(result)")
    }

    @Test func readinessTimeoutIsReported() async throws {
        let result = try await failedApplyLeavesOldServing(["readyAfterPolls": "100000"]) { $0.readinessTimeout = .milliseconds(100) }
        #expect(result.error?.contains("not ready after") == true && result.error?.contains("warming up") == true, "\(result)")
    }

    @Test func importRefusalAbortsBeforeTheSwitch() async throws {
        let result = try await failedApplyLeavesOldServing(["importError": "state from the future"], plugin: "probe-stateful",
                                                           fixtures: ["probe-stateful-1.0.0.so"])
        #expect(result.error?.contains("state from the future") == true, "\(result)")
    }

    @Test func unknownPluginVersionIsAClearError() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        await engine.apply(lockDefinition("locks", plugin: "probe"))
        let result = await engine.apply(lockDefinition("locks", plugin: "probe", version: "9.9.9"))
        #expect(result.action == .failed)
        #expect(result.error?.contains("probe@9.9.9") == true && result.error?.contains("available versions: 1.0.0") == true, "\(result)")
        #expect(try await engine.tryLock(store: "locks", resource: "r", owner: "o", expiryInSeconds: 5).generation == 1)
    }

    @Test func readinessAfterNPollsDelaysTheSwitch() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"]) { $0.readinessInterval = .milliseconds(20) }
        await engine.apply(lockDefinition("locks", plugin: "probe"))
        let began = Date()
        let applying = Task { await engine.apply(lockDefinition("locks", plugin: "probe", ["readyAfterPolls": "5"])) }
        // While the new instance warms up, calls are served by the old generation.
        try await Task.sleep(for: .milliseconds(30))
        #expect(try await engine.tryLock(store: "locks", resource: "r", owner: "o", expiryInSeconds: 5).generation == 1)
        let result = await applying.value
        #expect(result.action == .reloaded)
        // Five NOT_READY answers mean at least five sleeps of the poll interval before the switch.
        #expect(try #require(result.readinessDuration) >= .milliseconds(100))
        #expect(try await engine.tryLock(store: "locks", resource: "r2", owner: "o", expiryInSeconds: 5).generation == 2)
        // The caller gets the result as published: stamped when the apply finished, not when it began.
        #expect(result.finishedAt.timeIntervalSince(began) >= 0.1)
        #expect(engine.recentApplies.last?.finishedAt == result.finishedAt)
    }

    @Test func unchangedDefinitionIsANoOp() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        await engine.apply(lockDefinition("locks", plugin: "probe", ["a": "1"]))
        let result = await engine.apply(lockDefinition("locks", plugin: "probe", ["a": "1"]))
        #expect(result.action == .unchanged && result.newGeneration == 1)
    }

    @Test func inPlaceRefusalFallsBackToAReloadThatReportsThePluginsMessage() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        await engine.apply(lockDefinition("locks", plugin: "probe"))
        let result = await engine.apply(lockDefinition("locks", plugin: "probe", ["applyError": "bad live value"]))
        #expect(result.action == .reloaded)
        #expect(result.warnings.contains { $0.contains("bad live value") })
    }

    @Test func componentsAreAddedAndRemovedAtRunTime() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        #expect(await engine.apply(lockDefinition("a", plugin: "probe")).action == .added)
        #expect(await engine.apply(lockDefinition("b", plugin: "probe")).action == .added)
        #expect(engine.components.map(\.key.name) == ["a", "b"])
        let removed = await engine.remove(ComponentKey(kind: .lock, name: "a"))
        #expect(removed.action == .removed && removed.oldGeneration == 1)
        await #expect(throws: CallError.unknownComponent(ComponentKey(kind: .lock, name: "a"))) {
            try await engine.tryLock(store: "a", resource: "r", owner: "o", expiryInSeconds: 5)
        }
        #expect(try await engine.tryLock(store: "b", resource: "r", owner: "o", expiryInSeconds: 5).value)
        #expect(await engine.remove(ComponentKey(kind: .lock, name: "a")).action == .failed)
        #expect(await engine.apply(lockDefinition("a", plugin: "probe")).action == .added)
        #expect(await engine.apply(ComponentDefinition(kind: .lock, name: "c")).error?.contains("name its plugin") == true)
    }

    @Test func hostIsReadyOnceEveryBootstrapComponentServes() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        #expect(!engine.isReady)
        let failing = await engine.bootstrap([lockDefinition("a", plugin: "probe"), lockDefinition("b", plugin: "probe", ["readiness": "failed"])])
        #expect(failing.map(\.action) == [.added, .failed])
        #expect(!engine.isReady)
        // The operator fixes the failed component's configuration: the host becomes ready.
        #expect(await engine.apply(lockDefinition("b", plugin: "probe")).action == .added)
        #expect(engine.isReady)
        let other = try makeEngine(["probe-1.0.0.so"])
        _ = await other.bootstrap([lockDefinition("a", plugin: "probe"), lockDefinition("b", plugin: "probe", ["readyAfterPolls": "3"])])
        #expect(other.isReady)
    }

    @Test func drainTimeoutIsReportedAndDoesNotBlockOtherComponents() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"]) { $0.drainTimeout = .milliseconds(100) }
        await engine.apply(lockDefinition("slow", plugin: "probe", ["hangMs": "1500"]))
        await engine.apply(lockDefinition("other", plugin: "probe"))
        let finished = Shared()
        let stuck = Task {
            defer { finished.flag.store(true, ordering: .releasing) }
            return try await engine.tryLock(store: "slow", resource: "hang", owner: "o", expiryInSeconds: 5)
        }
        while engine.components.first(where: { $0.key.name == "slow" })?.inFlight != 1 { await Task.yield() }

        let reload = await engine.apply(lockDefinition("slow", plugin: "probe", ["epoch": "2"]))
        #expect(reload.action == .reloaded)
        #expect(reload.callsStillDraining == 1)
        #expect(reload.warnings.contains { $0.contains("drain timeout") })
        #expect(!finished.isSet, "the stuck call is still running")

        // Another component reloads while the stuck call is still in the old generation.
        let other = await engine.apply(lockDefinition("other", plugin: "probe", ["epoch": "2"]))
        #expect(other.action == .reloaded)
        #expect(!finished.isSet)
        #expect(engine.components.first { $0.key.name == "slow" }?.drainingGeneration == 1)

        // The stuck call completes on the generation it started on; only then is that one destroyed.
        let served = try await stuck.value
        #expect(served.value && served.generation == 1)
        await engine.settle()
        #expect(engine.components.first { $0.key.name == "slow" }?.drainingGeneration == nil)
        #expect(engine.leaseViolations == 0)
    }

    /// A plugin that blocks in init or destroy (the ABI asks it not to; a third-party one may) delays its
    /// own apply only: with more of them blocked at once than the cooperative pool has threads, a call to
    /// another component still completes. (Were init and destroy called on the pool's threads, the call
    /// would wait for the probes' 10 s cap and find the applies finished.)
    @Test func blockingInitAndDestroyDoNotStallCalls() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        #expect(await engine.apply(lockDefinition("other", plugin: "probe")).action == .added)
        let directory = try Fixtures.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (initGate, destroyGate) = ("\(directory)/init-may-return", "\(directory)/destroy-may-return")
        let names = (0..<(ProcessInfo.processInfo.activeProcessorCount + 2)).map { "blocking-\($0)" }

        // Phase 1: every init blocks until initGate exists.
        let added = Shared()
        let adding = names.map { name in
            Task {
                let result = await engine.apply(lockDefinition(name, plugin: "probe", ["initWaitFor": initGate, "destroyWaitFor": destroyGate]))
                added.flag.store(true, ordering: .releasing)
                return result
            }
        }
        try await Task.sleep(for: .milliseconds(200))  // lets the applies reach init
        #expect(try await engine.tryLock(store: "other", resource: "during-init", owner: "o", expiryInSeconds: 5).value)
        #expect(!added.isSet, "a call to another component waited for plugins blocked in init")
        #expect(FileManager.default.createFile(atPath: initGate, contents: nil))
        for task in adding { #expect(await task.value.action == .added) }

        // Phase 2: every destroy blocks until destroyGate exists.
        let removed = Shared()
        let removing = names.map { name in
            Task {
                let result = await engine.remove(ComponentKey(kind: .lock, name: name))
                removed.flag.store(true, ordering: .releasing)
                return result
            }
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await engine.tryLock(store: "other", resource: "during-destroy", owner: "o", expiryInSeconds: 5).value)
        #expect(!removed.isSet, "a call to another component waited for plugins blocked in destroy")
        #expect(FileManager.default.createFile(atPath: destroyGate, contents: nil))
        for task in removing { #expect(await task.value.action == .removed) }
    }
}
