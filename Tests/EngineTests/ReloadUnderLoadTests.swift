import Engine
import MoltTestSupport
import PluginHost
import Testing

/// The seed's promise: config changes and new plugin binaries under continuous traffic from many
/// tasks, with zero failed calls, and no call ever reaching a destroyed instance.
@Suite struct ReloadUnderLoadTests {
    @Test func fiftyInPlaceApplies() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        #expect(await engine.apply(lockDefinition("locks", plugin: "probe")).action == .added)
        let traffic = Traffic(engine: engine, store: "locks")
        for round in 1...50 {
            await traffic.waitForCalls(20)
            let result = await engine.apply(lockDefinition("locks", plugin: "probe", ["live.round": "\(round)"]))
            #expect(result.action == .appliedInPlace, "\(result)")
            #expect(result.newGeneration == 1)
        }
        await traffic.stop()
        traffic.expectClean()
        #expect(traffic.generationsSeen == [1])
        #expect(engine.leaseViolations == 0)
    }

    @Test func fiftyReloads() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        await engine.apply(lockDefinition("locks", plugin: "probe", ["epoch": "0"]))
        let traffic = Traffic(engine: engine, store: "locks")
        for round in 1...50 {
            await traffic.waitForCalls(20)
            let result = await engine.apply(lockDefinition("locks", plugin: "probe", ["epoch": "\(round)"]))
            #expect(result.action == .reloaded, "\(result)")
            #expect(result.newGeneration == UInt64(round + 1) && result.oldGeneration == UInt64(round))
            #expect(result.callsStillDraining == 0)
            #expect(result.warnings.contains { $0.contains("epoch") }, "the plugin's NEEDS_RELOAD reason is reported")
        }
        await traffic.stop()
        traffic.expectClean()
        #expect(traffic.generationsSeen.count > 1)
        #expect(engine.leaseViolations == 0)
        #expect(engine.components.first?.generation == 51)
    }

    @Test func twentyCVersionSwapsBackAndForthUnloadTheOldBinary() async throws {
        let engine = try makeEngine(["probe-1.0.0.so", "probe-2.0.0.so"])
        await engine.apply(lockDefinition("locks", plugin: "probe", version: "1.0.0"))
        let traffic = Traffic(engine: engine, store: "locks")
        for round in 1...20 {
            await traffic.waitForCalls(20)
            let target = round % 2 == 1 ? "2.0.0" : "1.0.0"
            let result = await engine.apply(lockDefinition("locks", plugin: "probe", version: target))
            #expect(result.action == .versionSwapped, "\(result)")
            #expect(result.newPlugin == "probe@\(target)")
            // The previous version's last instance is gone, so its C library is unmapped.
            #expect(engine.loader.mappedBinaries.map(\.info.id) == ["probe@\(target)"])
        }
        await traffic.stop()
        traffic.expectClean()
        #expect(engine.leaseViolations == 0)
    }

    @Test func tenSwiftVersionSwapsWithStateHandoff() async throws {
        let engine = try makeEngine(["swift-testlock-1.0.0.so", "swift-testlock-2.0.0.so"])
        await engine.apply(lockDefinition("locks", plugin: "swift-testlock", version: "1.0.0"))
        #expect(try await engine.tryLock(store: "locks", resource: "held", owner: "keeper", expiryInSeconds: 600).value)
        let traffic = Traffic(engine: engine, store: "locks")
        for round in 1...10 {
            await traffic.waitForCalls(20)
            let target = round % 2 == 1 ? "2.0.0" : "1.0.0"
            let result = await engine.apply(lockDefinition("locks", plugin: "swift-testlock", version: target))
            #expect(result.action == .versionSwapped, "\(result)")
            #expect(result.pauseDuration != nil, "a stateful swap pauses new calls while state moves")
        }
        await traffic.stop()
        traffic.expectClean()
        #expect(engine.leaseViolations == 0)
        #expect(try await engine.unlock(store: "locks", resource: "held", owner: "thief").value == .lockBelongsToOthers)
        // Swift binaries stay mapped (never unloaded) and are reused, not mapped again per swap.
        #expect(engine.loader.mappedBinaries.filter(\.linksSwiftRuntime).count == 2)
    }

    @Test func concurrentAppliesToOneComponentAreSerialized() async throws {
        let engine = try makeEngine(["probe-1.0.0.so"])
        await engine.apply(lockDefinition("locks", plugin: "probe"))
        let traffic = Traffic(engine: engine, store: "locks")
        let results = await withTaskGroup(of: ApplyResult.self) { group in
            for round in 1...10 { group.addTask { await engine.apply(lockDefinition("locks", plugin: "probe", ["epoch": "\(round)"])) } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        await traffic.stop()
        traffic.expectClean()
        #expect(results.allSatisfy { $0.action == .reloaded })
        // Serialized: each apply started from the generation the previous one created.
        #expect(Set(results.compactMap(\.newGeneration)) == Set(2...11))
        #expect(Set(results.compactMap(\.oldGeneration)) == Set(1...10))
    }
}
