import Engine
import MoltTestSupport
import PluginHost
import Testing

/// No silent state loss: a plugin that declares MOLT_PLUGIN_HOLDS_STATE is not reloaded or swapped when its
/// state cannot be handed over, unless the apply accepts the loss.
@Suite struct StateLossTests {
    static func refusal(_ component: String, old: String, new: String) -> String {
        "reloading \(component) would lose the in-memory state of \(old) (it holds state callers rely on, and \(new) cannot import it: "
            + "no state transfer); apply with accept_state_loss (molt apply --accept-state-loss) to reload anyway"
    }

    @Test func holdsStateWithoutTransferIsRefusedOnReloadAndSwapUnlessAccepted() async throws {
        let engine = try makeEngine(["holds-state-1.0.0.so", "holds-state-1.1.0.so"])
        #expect(engine.catalog.entries.allSatisfy { $0.info.holdsState && $0.info.stateFormats == nil })
        let added = await engine.apply(lockDefinition("locks", plugin: "holds-state", version: "1.0.0"))
        #expect(added.action == .added, "\(added)")
        #expect(try await engine.tryLock(store: "locks", resource: "r", owner: "first", expiryInSeconds: 600).value)

        // A reload (a config change, no apply_config) and a version swap: refused, nothing started.
        let reload = await engine.apply(lockDefinition("locks", plugin: "holds-state", ["note": "x"]))
        #expect(reload.action == .failed && reload.failure == .stateWouldBeLost, "\(reload)")
        #expect(reload.error == Self.refusal("lock/locks", old: "holds-state@1.0.0", new: "holds-state@1.0.0"))
        #expect(reload.newGeneration == nil && reload.initDuration == nil)
        let swap = await engine.apply(lockDefinition("locks", plugin: "holds-state", version: "1.1.0"))
        #expect(swap.action == .failed && swap.failure == .stateWouldBeLost, "\(swap)")
        #expect(swap.error == Self.refusal("lock/locks", old: "holds-state@1.0.0", new: "holds-state@1.1.0"))
        // A dry run (config check) says the same, before anything is applied.
        let check = engine.check(lockDefinition("locks", plugin: "holds-state", version: "1.1.0"))
        #expect(!check.passed && check.problems == [Self.refusal("lock/locks", old: "holds-state@1.0.0", new: "holds-state@1.1.0")],
                "\(check.problems)")

        // The old generation keeps serving, with its state.
        #expect(engine.components.first?.generation == 1 && engine.components.first?.plugin == "holds-state@1.0.0")
        #expect(try await !engine.tryLock(store: "locks", resource: "r", owner: "second", expiryInSeconds: 600).value)

        // Accepted: the swap goes through, and the lock is gone (as the refusal said).
        var accepted = lockDefinition("locks", plugin: "holds-state", version: "1.1.0")
        accepted.acceptStateLoss = true
        let swapped = await engine.apply(accepted)
        #expect(swapped.action == .versionSwapped, "\(swapped)")
        #expect(swapped.warnings.contains { $0.contains("in-memory state of holds-state@1.0.0 is dropped") }, "\(swapped.warnings)")
        #expect(try await engine.tryLock(store: "locks", resource: "r", owner: "second", expiryInSeconds: 600).value)
        var reloadAccepted = lockDefinition("locks", plugin: "holds-state", ["note": "y"])
        reloadAccepted.acceptStateLoss = true
        #expect(await engine.apply(reloadAccepted).action == .reloaded)
        await engine.shutdown()
    }

    @Test func holdsStateWithTransferReloadsAndSwapsWithItsState() async throws {
        let engine = try makeEngine(["memorylock-1.0.0.so", "memorylock-2.0.0.so", "swift-testlock-1.0.0.so"])
        #expect(engine.catalog.entries.allSatisfy { $0.info.holdsState && $0.info.stateFormats != nil })
        await engine.apply(lockDefinition("locks", plugin: "memorylock", version: "1.0.0"))
        #expect(try await engine.tryLock(store: "locks", resource: "r", owner: "first", expiryInSeconds: 600).value)
        let reload = await engine.apply(lockDefinition("locks", plugin: "memorylock", ["buckets": "128"]))
        #expect(reload.action == .reloaded && reload.failure == nil, "\(reload)")
        let swap = await engine.apply(lockDefinition("locks", plugin: "memorylock", version: "2.0.0"))
        #expect(swap.action == .versionSwapped, "\(swap)")
        #expect(try await !engine.tryLock(store: "locks", resource: "r", owner: "second", expiryInSeconds: 600).value)
        await engine.shutdown()
    }

    /// memorylock holds state and transfers it; probe cannot import it: the refusal names what is lost.
    @Test func swappingToAPluginWithoutTransferIsRefused() async throws {
        let engine = try makeEngine(["memorylock-1.0.0.so", "probe-1.0.0.so"])
        await engine.apply(lockDefinition("locks", plugin: "memorylock"))
        let result = await engine.apply(lockDefinition("locks", plugin: "probe"))
        #expect(result.failure == .stateWouldBeLost, "\(result)")
        #expect(result.error == Self.refusal("lock/locks", old: "memorylock@1.0.0", new: "probe@1.0.0"))
        #expect(engine.components.first?.plugin == "memorylock@1.0.0")
        await engine.shutdown()
    }

    /// The ABI 1.0 fixture sets MOLT_PLUGIN_HOLDS_STATE beyond its struct_size: never read, never refused.
    @Test func anABI1_0PluginIsNeverRefused() async throws {
        let directory = try Fixtures.pluginDirectory(with: [])
        try Fixtures.install(try Fixtures.path("abi-1-0.so"), into: directory, as: "abi-1-0-1.0.0.so")
        let catalog = PluginCatalog(loader: try PluginLoader(pluginsDirectory: directory))
        catalog.rescan()
        let engine = Engine(catalog: catalog)
        #expect(try #require(catalog.entries.first?.info).holdsState == false)
        await engine.apply(lockDefinition("a", plugin: "abi-1-0"))
        await engine.apply(lockDefinition("b", plugin: "abi-1-0"))
        // A batch never applies in place: both reload.
        let batch = await engine.applyBatch([lockDefinition("a", plugin: "abi-1-0", ["level": "2"]),
                                             lockDefinition("b", plugin: "abi-1-0", ["level": "2"])])
        #expect(batch.results.map(\.action) == [.reloaded, .reloaded], "\(batch.results)")
        await engine.shutdown()
    }

    @Test func removingIsNeverRefused() async throws {
        let engine = try makeEngine(["holds-state-1.0.0.so"])
        await engine.apply(lockDefinition("locks", plugin: "holds-state"))
        #expect(try await engine.tryLock(store: "locks", resource: "r", owner: "first", expiryInSeconds: 600).value)
        let removed = await engine.remove(ComponentKey(kind: .lock, name: "locks"))
        #expect(removed.action == .removed, "\(removed)")
        #expect(engine.components.isEmpty)
        await engine.shutdown()
    }
}
