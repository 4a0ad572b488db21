import Engine
import MoltTestSupport
import PluginHost
import Testing

/// A version or plugin change given without a configuration keeps the running one; an apply says which
/// keys of the running configuration it drops or changes; component names follow Dapr's rule.
@Suite struct RunningConfigTests {
    @Test func aVersionSwapWithoutConfigurationKeepsTheRunningOne() async throws {
        let engine = try makeEngine(["probe-1.0.0.so", "probe-2.0.0.so"])
        let config = ["redisHost": "10.0.0.7:6379", "live.x": "1"]
        #expect(await engine.apply(lockDefinition("locks", plugin: "probe", version: "1.0.0", config)).action == .added)

        var swap = lockDefinition("locks", plugin: "probe", version: "2.0.0")
        swap.keepsRunningConfig = true
        let swapped = await engine.apply(swap)
        #expect(swapped.action == .versionSwapped, "\(swapped)")
        #expect(engine.activeConfig(of: swap.key) == config)
        #expect(swapped.droppedKeys.isEmpty && swapped.changedKeys.isEmpty)

        // Without keepsRunningConfig the definition's (empty) configuration replaces it, and says so.
        let replaced = await engine.apply(lockDefinition("locks", plugin: "probe", version: "1.0.0", ["live.x": "2"]))
        #expect(replaced.action == .versionSwapped, "\(replaced)")
        #expect(engine.activeConfig(of: swap.key) == ["live.x": "2"])
        #expect(replaced.droppedKeys == ["redisHost"] && replaced.changedKeys == ["live.x"])
        #expect(replaced.warnings.contains { $0.contains("dropped: redisHost") }, "\(replaced.warnings)")
    }

    /// A version the loader refused is not in the catalog: the apply names the refusal, not just "no such version".
    @Test func anApplyOfARefusedVersionSaysWhyTheLoaderRefusedIt() async throws {
        let directory = try Fixtures.pluginDirectory(with: ["probe-1.0.0.so"])
        try Fixtures.install(try Fixtures.path("abi-minor-99.so"), into: directory, as: "probe-9.0.0.so")
        let catalog = PluginCatalog(loader: try PluginLoader(pluginsDirectory: directory))
        catalog.rescan()
        let engine = Engine(catalog: catalog)
        let result = await engine.apply(lockDefinition("locks", plugin: "probe", version: "9.0.0"))
        #expect(result.failure == .invalidDefinition, "\(result)")
        #expect(result.error?.contains("the loader refused \(directory)/probe-9.0.0.so") == true, "\(result)")
        #expect(engine.check(lockDefinition("locks", plugin: "probe", version: "9.0.0")).problems.first?.contains("the loader refused") == true)
    }

    @Test func aNewComponentGetsItsDefinitionsConfigurationEvenWhenKeepingIsAsked() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        var definition = lockDefinition("locks", plugin: "probe", ["a": "1"])
        definition.keepsRunningConfig = true
        #expect(await engine.apply(definition).action == .added)
        #expect(engine.activeConfig(of: definition.key) == ["a": "1"])
    }

    @Test(arguments: ["../../escape", String(repeating: "a", count: 64), String(repeating: "a.", count: 127) + "a", "Locks",
                      "lock_store", "-locks", "locks-", "a..b", "", "lock store", "lóck"])
    func invalidNamesAreRefusedNamingTheRule(_ name: String) async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        let result = await engine.apply(lockDefinition(name, plugin: "probe"))
        #expect(result.action == .failed && result.failure == .invalidDefinition, "\(result)")
        #expect(result.error?.contains("lowercase RFC 1123 labels") == true, "\(result)")
        #expect(engine.components.isEmpty)
    }

    @Test(arguments: ["locks", "a", "lock-store-1", "payments.v2", String(repeating: "a", count: 63)])
    func validNamesAreAccepted(_ name: String) async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        #expect(ComponentLimits.nameProblem(name) == nil)
        #expect(await engine.apply(lockDefinition(name, plugin: "probe")).action == .added)
    }
}
