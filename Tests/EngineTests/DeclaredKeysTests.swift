import Engine
import Foundation
import MoltTestSupport
import PluginHost
import Testing

/// The host honours the config keys an ABI 1.1 plugin declares (issue 16): keys it does not declare are
/// refused before any plugin code runs (unless it declares `*`, or the host reads them itself), declared
/// defaults are filled in before init and apply_config, and a change goes to apply_config only when every
/// changed key applies in place. ABI 1.0 plugins and plugins that declare nothing are treated as before.
@Suite struct DeclaredKeysTests {
    /// The lines the probe's callLog got: "init k=v ..." or "apply_config k=v ...".
    private func calls(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    private func logPath() throws -> String { try Fixtures.makeTemporaryDirectory() + "/calls.log" }

    @Test func anUnknownKeyIsRefusedNamingTheKnownOnesAndTheOldGenerationKeepsServing() async throws {
        let engine = try makeEngine(["memorylock-2.0.0.so"])
        let added = await engine.apply(lockDefinition("locks", plugin: "memorylock", ["maxLocks": "5"]))
        #expect(added.action == .added, "\(added)")

        let refused = await engine.apply(lockDefinition("locks", plugin: "memorylock", ["maxLocks": "6", "bogus": "1"]))
        #expect(refused.action == .failed && refused.failure == .invalidDefinition, "\(refused)")
        #expect(refused.error == "config key 'bogus' is not a key of plugin memorylock@2.0.0 (known: buckets, maxLocks, sweepIntervalMs)",
                "\(refused)")
        #expect(engine.components.first?.generation == added.newGeneration)
        #expect(engine.activeConfig(of: added.key)?["maxLocks"] == "5")
        #expect(try await engine.tryLock(store: "locks", resource: "r", owner: "o", expiryInSeconds: 5).value)

        let two = await engine.apply(lockDefinition("other", plugin: "memorylock", ["zeta": "1", "alpha": "2"]))
        #expect(two.error == "config keys 'alpha', 'zeta' are not keys of plugin memorylock@2.0.0 (known: buckets, maxLocks, sweepIntervalMs)",
                "\(two)")
        #expect(engine.components.count == 1)

        // config check and dry runs report each unknown key on its own, with the same words.
        let check = engine.check(lockDefinition("locks", plugin: "memorylock", ["bogus": "1"]))
        #expect(check.findings.map(\.key) == ["bogus"])
        #expect(check.problems == ["config key 'bogus' is not a key of plugin memorylock@2.0.0 (known: buckets, maxLocks, sweepIntervalMs)"])
    }

    @Test func aRefusedKeyNeverReachesThePlugin() async throws {
        let engine = try makeEngine(["probe-declared-1.0.0.so"])
        let log = try logPath()
        let refused = await engine.apply(lockDefinition("locks", plugin: "probe-declared", ["callLog": log, "bogus": "1"]))
        #expect(refused.failure == .invalidDefinition && refused.error?.contains("config key 'bogus' is not a key of plugin probe-declared@1.0.0") == true,
                "\(refused)")
        #expect(calls(log).isEmpty)
    }

    @Test func deprecatedAliasesAndHostKeysAreKnown() async throws {
        let engine = try makeEngine(["memorylock-2.0.0.so", "memstate-1.0.0.so"])
        let aliased = await engine.apply(lockDefinition("locks", plugin: "memorylock", ["maxLockCount": "5"]))
        #expect(aliased.action == .added && aliased.warnings.contains { $0.contains("DEPRECATED") }, "\(aliased)")
        #expect(engine.activeConfig(of: aliased.key)?["maxLocks"] == "5")

        // keyPrefix is the host's (state key prefixing), whatever the plugin declares.
        let state = await engine.apply(ComponentDefinition(kind: .state, name: "statestore", plugin: "memstate", config: ["keyPrefix": "none"]))
        #expect(state.action == .added, "\(state)")
        // ... but only for state stores.
        let lock = await engine.apply(lockDefinition("more", plugin: "memorylock", ["keyPrefix": "none"]))
        #expect(lock.error?.contains("config key 'keyPrefix' is not a key of plugin memorylock@2.0.0") == true, "\(lock)")
        let stateRefused = await engine.apply(ComponentDefinition(kind: .state, name: "other", plugin: "memstate", config: ["bogus": "1"]))
        #expect(stateRefused.error == "config key 'bogus' is not a key of plugin memstate@1.0.0 (known: asyncCompletion, keyPrefix, note)",
                "\(stateRefused)")
    }

    /// ABI minors only add: an ABI 1.0 plugin that declares keys gets any key, no default it did not ask
    /// an ABI 1.0 host for, and apply_config for any change, as ABI 1.0 hosts did.
    @Test func anABI1_0PluginIsTreatedAsBefore() async throws {
        let directory = try Fixtures.pluginDirectory(with: [])
        try Fixtures.install(try Fixtures.path("abi-1-0.so"), into: directory, as: "abi-1-0-1.0.0.so")
        let catalog = PluginCatalog(loader: try PluginLoader(pluginsDirectory: directory))
        catalog.rescan()
        let engine = Engine(catalog: catalog)
        let info = try #require(catalog.entries.first?.info)
        #expect(info.configKeys.map(\.name) == ["level"] && !info.honoursDeclaredKeys)

        let added = await engine.apply(lockDefinition("locks", plugin: "abi-1-0", ["bogus": "1"]))
        #expect(added.action == .added, "\(added)")
        #expect(engine.activeConfig(of: added.key) == ["bogus": "1"])
        // "level" does not apply in place, but an ABI 1.0 plugin's apply_config is tried for any change.
        let changed = await engine.apply(lockDefinition("locks", plugin: "abi-1-0", ["bogus": "1", "level": "2"]))
        #expect(changed.action == .appliedInPlace, "\(changed)")
        #expect(engine.check(lockDefinition("locks", plugin: "abi-1-0", ["bogus": "2"])).passed)
        await engine.shutdown()
    }

    @Test func aPluginThatDeclaresStarTakesAnyKeyAndNeverShowsStarAsAKey() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        let info = try #require(engine.catalog.entries.first?.info)
        #expect(info.configKeys.isEmpty && info.openConfig?.appliesInPlace == true && info.honoursDeclaredKeys)
        let added = await engine.apply(lockDefinition("locks", plugin: "probe", ["bogus": "1", "anything.else": "2"]))
        #expect(added.action == .added, "\(added)")
        #expect(engine.activeConfig(of: added.key) == ["bogus": "1", "anything.else": "2"])
        // Its `*` applies in place: the change goes to apply_config, which decides (only live.* keys apply).
        let inPlace = await engine.apply(lockDefinition("locks", plugin: "probe", ["bogus": "1", "anything.else": "2", "live.x": "1"]))
        #expect(inPlace.action == .appliedInPlace, "\(inPlace)")
        let reloaded = await engine.apply(lockDefinition("locks", plugin: "probe", ["bogus": "2", "anything.else": "2", "live.x": "1"]))
        #expect(reloaded.action == .reloaded && reloaded.warnings.contains { $0.contains("in-place apply needs a reload: probe: config key bogus") },
                "\(reloaded)")
    }

    @Test func declaredDefaultsAreFilledInBeforeInitAndShownAsTheRunningConfiguration() async throws {
        let engine = try makeEngine(["probe-declared-1.0.0.so"])
        let log = try logPath()
        let added = await engine.apply(lockDefinition("locks", plugin: "probe-declared", ["callLog": log]))
        #expect(added.action == .added, "\(added)")
        let initLine = try #require(calls(log).first)
        #expect(initLine.hasPrefix("init ") && initLine.contains(" live.level=1") && initLine.contains(" mode=normal"), "\(initLine)")
        #expect(engine.activeConfig(of: added.key) == ["callLog": log, "live.level": "1", "mode": "normal"])
        // What a restart re-applies is the configuration as given: the defaults are the plugin version's.
        #expect(engine.runningDefinitions.first?.config == ["callLog": log])
        // Giving a default explicitly changes nothing.
        let same = await engine.apply(lockDefinition("locks", plugin: "probe-declared", ["callLog": log, "mode": "normal"]))
        #expect(same.action == .unchanged, "\(same)")
        // apply_config gets the defaults too.
        let inPlace = await engine.apply(lockDefinition("locks", plugin: "probe-declared", ["callLog": log, "live.level": "3"]))
        #expect(inPlace.action == .appliedInPlace, "\(inPlace)")
        let applyLine = try #require(calls(log).last)
        #expect(applyLine.hasPrefix("apply_config ") && applyLine.contains(" live.level=3") && applyLine.contains(" mode=normal"), "\(applyLine)")
    }

    @Test func onlyAChangeOfInPlaceKeysGoesToApplyConfigAnyOtherReloadsWithoutIt() async throws {
        let engine = try makeEngine(["probe-declared-1.0.0.so"])
        let log = try logPath()
        #expect(await engine.apply(lockDefinition("locks", plugin: "probe-declared", ["callLog": log])).action == .added)
        #expect(calls(log).count == 1)

        // live.level applies in place: apply_config is called, and applies it.
        let inPlace = await engine.apply(lockDefinition("locks", plugin: "probe-declared", ["callLog": log, "live.level": "2"]))
        #expect(inPlace.action == .appliedInPlace && inPlace.newGeneration == inPlace.oldGeneration, "\(inPlace)")
        #expect(calls(log).count == 2 && calls(log)[1].hasPrefix("apply_config"))

        // mode does not: a new generation, apply_config never called, and the result says why.
        let reloaded = await engine.apply(lockDefinition("locks", plugin: "probe-declared", ["callLog": log, "live.level": "2", "mode": "fast"]))
        #expect(reloaded.action == .reloaded && reloaded.newGeneration != reloaded.oldGeneration, "\(reloaded)")
        #expect(reloaded.warnings.contains("reload: key 'mode' does not apply in place"), "\(reloaded.warnings)")
        #expect(calls(log).count == 3 && calls(log)[2].hasPrefix("init"), "\(calls(log))")

        // A mixed change (in place and not) reloads too; so does removing a key that does not apply in place.
        let mixed = await engine.apply(lockDefinition("locks", plugin: "probe-declared", ["callLog": log, "live.level": "4", "mode": "slow"]))
        #expect(mixed.action == .reloaded && mixed.warnings.contains("reload: key 'mode' does not apply in place"), "\(mixed)")
        #expect(calls(log).allSatisfy { !$0.hasPrefix("apply_config") } == false && calls(log).filter { $0.hasPrefix("apply_config") }.count == 1)
        let removed = await engine.apply(lockDefinition("locks", plugin: "probe-declared", ["live.level": "4", "mode": "slow"]))
        #expect(removed.action == .reloaded && removed.warnings.contains("reload: key 'callLog' does not apply in place"), "\(removed)")
        #expect(calls(log).filter { $0.hasPrefix("apply_config") }.count == 1)

        // A dry run says the same.
        let check = engine.check(lockDefinition("locks", plugin: "probe-declared", ["live.level": "4", "mode": "normal"]))
        #expect(check.outcome == "reload (new generation): 'mode' does not apply in place", "\(check)")
        #expect(engine.check(lockDefinition("locks", plugin: "probe-declared", ["live.level": "5", "mode": "slow"])).outcome == "apply in place")
    }

    /// The defaults filled in belong to the running version: a swap that keeps the running configuration
    /// gives the new version what was given, and it fills in its own defaults.
    @Test func aVersionSwapKeepingTheConfigurationCarriesNoOldDefaults() async throws {
        let engine = try makeEngine(["memorylock-1.0.0.so", "memorylock-2.0.0.so"])
        #expect(await engine.apply(lockDefinition("locks", plugin: "memorylock", version: "2.0.0", ["maxLocks": "5"])).action == .added)
        var swap = lockDefinition("locks", plugin: "memorylock", version: "1.0.0")
        swap.keepsRunningConfig = true
        let swapped = await engine.apply(swap)
        #expect(swapped.action == .versionSwapped, "\(swapped)")
        #expect(engine.runningDefinitions.first?.config == ["maxLocks": "5"])
        #expect(engine.activeConfig(of: swap.key)?["maxLocks"] == "5")
    }
}
