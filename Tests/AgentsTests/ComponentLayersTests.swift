import Agents
import Config
import Engine
import Layers
import MoltTestSupport
import PluginHost
import Persistence
import Testing
import Foundation

private func lock(_ name: String, _ metadata: [String: String], plugin: String = "memorylock") -> ComponentSpec {
    ComponentSpec(kind: .lock, name: name, plugin: plugin, metadata: metadata)
}

private let lockA = ComponentKey(kind: .lock, name: "a")
private let lockB = ComponentKey(kind: .lock, name: "b")

@Suite struct LayeredComponentsTests {
    @Test func higherLayersWinKeyByKeyAndTheHighestNamesThePlugin() {
        var layers = LayeredComponents()
        layers.set(.common, source: "common/a", components: [lock("a", ["maxLocks": "10", "sweepIntervalMs": "100"])])
        layers.set(.app, source: "app/a", components: [lock("a", ["maxLocks": "20"], plugin: "other")])
        layers.set(.local, source: "local/a", components: [lock("a", ["buckets": "64"], plugin: "memorylock")])
        let merged = layers.effective(lockA)
        #expect(merged?.metadata == ["maxLocks": "20", "sweepIntervalMs": "100", "buckets": "64"])
        #expect(merged?.plugin == "memorylock")
        #expect(layers.contributors(lockA).map(\.layer) == [.common, .app, .local])

        layers.set(.app, source: "app/a", components: [])
        #expect(layers.effective(lockA)?.metadata["maxLocks"] == "10")
        layers.set(.common, source: "common/a", components: [])
        layers.set(.local, source: "local/a", components: [])
        #expect(layers.effective(lockA) == nil)
        #expect(layers.keys.isEmpty)
    }

    @Test func sourcesOfOneLayerMergeInNameOrder() {
        var layers = LayeredComponents()
        layers.set(.local, source: "b.yaml", components: [lock("a", ["maxLocks": "2"])])
        layers.set(.local, source: "a.yaml", components: [lock("a", ["maxLocks": "1", "buckets": "8"])])
        #expect(layers.effective(lockA)?.metadata == ["maxLocks": "2", "buckets": "8"])
    }
}

@Suite struct ComponentLayersTests {
    private func makeEngine() throws -> Engine {
        var settings = EngineSettings()
        settings.readinessInterval = .milliseconds(1)
        settings.readinessTimeout = .seconds(5)
        settings.drainTimeout = .seconds(5)
        let catalog = PluginCatalog(loader: try Fixtures.loader(with: ["memorylock-2.0.0.so"]))
        catalog.rescan()
        return Engine(catalog: catalog, settings: settings)
    }

    /// Applies (of any outcome) the engine recorded for a component.
    private func applies(_ engine: Engine, _ key: ComponentKey) -> Int {
        engine.recentApplies.filter { $0.key == key }.count
    }

    @Test func aCommonChangeReappliesOnlyWhereNoAppOverrideHidesIt() async throws {
        let engine = try makeEngine()
        let layers = ComponentLayers(engine: engine)
        var result = await layers.update([
            LayerChange(layer: .common, source: "common/a", components: [lock("a", ["maxLocks": "10", "sweepIntervalMs": "100"])]),
            LayerChange(layer: .common, source: "common/b", components: [lock("b", ["maxLocks": "10", "sweepIntervalMs": "100"])]),
            LayerChange(layer: .app, source: "app/a", components: [lock("a", ["maxLocks": "20"])]),
        ])
        #expect(result.succeeded)
        #expect(engine.activeConfig(of: lockA)?["maxLocks"] == "20")
        #expect(engine.activeConfig(of: lockB)?["maxLocks"] == "10")
        let appliesToA = applies(engine, lockA)

        // maxLocks in the common layer: b follows; a's app override hides the change, so no apply at all.
        result = await layers.update([
            LayerChange(layer: .common, source: "common/a", components: [lock("a", ["maxLocks": "30", "sweepIntervalMs": "100"])]),
            LayerChange(layer: .common, source: "common/b", components: [lock("b", ["maxLocks": "30", "sweepIntervalMs": "100"])]),
        ])
        #expect(result.succeeded)
        #expect(result.applies.map(\.key) == [lockB])
        #expect(engine.activeConfig(of: lockB)?["maxLocks"] == "30")
        #expect(engine.activeConfig(of: lockA)?["maxLocks"] == "20")
        #expect(applies(engine, lockA) == appliesToA)

        // A key a does not override: a is re-applied (in place), keeping its override.
        result = await layers.update([
            LayerChange(layer: .common, source: "common/a", components: [lock("a", ["maxLocks": "30", "sweepIntervalMs": "250"])]),
        ])
        #expect(result.applies.map(\.key) == [lockA])
        #expect(result.applies.first?.action == .appliedInPlace)
        #expect(engine.activeConfig(of: lockA)?["sweepIntervalMs"] == "250")
        #expect(engine.activeConfig(of: lockA)?["maxLocks"] == "20")

        // The override removed: a falls back to the common value. The common key removed: b is removed.
        result = await layers.update([LayerChange(layer: .app, source: "app/a", components: [])])
        #expect(engine.activeConfig(of: lockA)?["maxLocks"] == "30")
        result = await layers.update([LayerChange(layer: .common, source: "common/b", components: [])])
        #expect(result.removals.map(\.key) == [lockB])
        #expect(engine.activeConfig(of: lockB) == nil)
        await engine.shutdown()
    }

    @Test func aFailedChangeLeavesTheLayersAndTheComponentsAsTheyWere() async throws {
        let engine = try makeEngine()
        let layers = ComponentLayers(engine: engine)
        #expect(await layers.update([LayerChange(layer: .common, source: "common/a", components: [lock("a", ["maxLocks": "10"])])]).succeeded)
        let before = layers.layers

        // The plugin refuses the merged config: nothing changes, the plugin's message comes back.
        var result = await layers.update([LayerChange(layer: .app, source: "app/a", components: [lock("a", ["maxLocks": "lots"])])])
        #expect(!result.succeeded)
        #expect(result.error?.contains("invalid value \"lots\" for config key maxLocks") == true)
        #expect(layers.layers == before)
        #expect(engine.activeConfig(of: lockA)?["maxLocks"] == "10")

        // Two components in one change, the second refused: the first is not applied either.
        result = await layers.update([
            LayerChange(layer: .common, source: "common/a", components: [lock("a", ["maxLocks": "11"])]),
            LayerChange(layer: .common, source: "common/b", components: [lock("b", ["maxLocks": "lots"])]),
        ])
        #expect(!result.succeeded)
        #expect(engine.activeConfig(of: lockA)?["maxLocks"] == "10")
        #expect(engine.activeConfig(of: lockB) == nil)
        #expect(layers.layers == before)
        await engine.shutdown()
    }

    @Test func bootstrapComponentsAreTheLocalBaseAndSurviveAnEtcdLayerLeaving() async throws {
        let engine = try makeEngine()
        let bootstrap = [lock("a", ["maxLocks": "5"])]
        _ = await engine.bootstrap(try bootstrap.map { try $0.definition(catalog: engine.catalog) })
        let layers = ComponentLayers(engine: engine, bootstrap: bootstrap)

        // A common layer under a local component: the local value wins, so nothing is applied.
        var result = await layers.update([LayerChange(layer: .common, source: "common/a", components: [lock("a", ["maxLocks": "50"])])])
        #expect(result.succeeded && result.applies.isEmpty)
        // A common key the local file does not set is merged in.
        result = await layers.update([LayerChange(layer: .common, source: "common/a",
                                                  components: [lock("a", ["maxLocks": "50", "sweepIntervalMs": "300"])])])
        #expect(engine.activeConfig(of: lockA)?["sweepIntervalMs"] == "300")
        #expect(engine.activeConfig(of: lockA)?["maxLocks"] == "5")
        // The common layer goes away: the bootstrap definition remains, the component is not removed.
        result = await layers.update([LayerChange(layer: .common, source: "common/a", components: [])])
        #expect(result.removals.isEmpty)
        #expect(engine.activeConfig(of: lockA)?["maxLocks"] == "5")
        // The key the layer set is gone from the definition: the plugin's declared default runs again.
        #expect(engine.activeConfig(of: lockA)?["sweepIntervalMs"] == "1000")
        #expect(engine.runningDefinitions.first { $0.key == lockA }?.config == ["maxLocks": "5"])
        await engine.shutdown()
    }
}

@Suite struct StoredLayersTests {
    @Test func aRestartRemembersTheLayersSoASourceGoneMeanwhileIsRemoved() async throws {
        let directory = try Fixtures.makeTemporaryDirectory()
        var settings = EngineSettings()
        settings.readinessInterval = .milliseconds(1)
        let catalog = PluginCatalog(loader: try Fixtures.loader(with: ["memorylock-2.0.0.so"]))
        catalog.rescan()
        let first = Engine(catalog: catalog, settings: settings)
        let layers = ComponentLayers(engine: first, store: LayerStore(directory: directory))
        #expect(await layers.update([
            LayerChange(layer: .common, source: "/molt/common/a", components: [lock("a", ["maxLocks": "10"])]),
            LayerChange(layer: .common, source: "/molt/common/b", components: [lock("b", ["maxLocks": "10"])]),
        ]).succeeded)
        let running = first.runningDefinitions
        await first.shutdown()

        // The restarted sidecar runs what ran (as the running snapshot restores it) and knows the layers.
        let second = Engine(catalog: catalog, settings: settings)
        _ = await second.bootstrap(running)
        let restored = ComponentLayers(engine: second, store: LayerStore(directory: directory))
        #expect(restored.layers == layers.layers)
        // b's key vanished while molt was down: the first sync reports it gone, and b is removed.
        let result = await restored.update([LayerChange(layer: .common, source: "/molt/common/b", components: [])])
        #expect(result.removals.map(\.key) == [lockB])
        #expect(second.activeConfig(of: lockA)?["maxLocks"] == "10")
        await second.shutdown()

        // A corrupt file is reported and ignored, not fatal.
        try "{not json".write(toFile: "\(directory)/layers.json", atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { try LayerStore(directory: directory).load() }
        #expect(ComponentLayers(engine: second, store: LayerStore(directory: directory)).layers == LayeredComponents())
    }
}
