import ArgumentParser
import Engine
import PluginHost

/// `apply`: how long an apply takes to have the new generation serving, from the engine's own
/// ApplyResult durations (no traffic; default EngineSettings).
///
/// - probe reload (config change the plugin answers NEEDS_RELOAD to): switchDuration − initDuration
///   − readinessDuration, i.e. the engine's own part (in-place attempt, generation bookkeeping,
///   switch) without the plugin's init.
/// - C version swap probe 1.0.0 ↔ 2.0.0: totalDuration (load of the other binary, init, readiness,
///   switch, drain, destroy of the old generation and dlclose of the old binary).
/// - stateful: memorylock holding `locks` locks, reloaded (buckets change) and swapped 1.0.0 ↔
///   2.0.0: pauseDuration (new calls wait: drain + export + import + switch).
struct ApplyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "apply", abstract: "Reload, version swap and stateful pause durations.")

    @OptionGroup var plugins: PluginOptions
    @Option(help: "Measured probe reloads.") var reloads = 300
    @Option(help: "Measured probe version swaps.") var swaps = 300
    @Option(help: "Measured memorylock reloads, and as many v1↔v2 swaps, with the locks held.") var statefulApplies = 30
    @Option(help: "Locks held in memorylock during the stateful applies.") var locks = 10_000
    @Option(help: "Unmeasured applies before each series.") var warmup = 20

    func run() async throws {
        var result = BenchResult("apply")
        let directory = try plugins.makePluginsDirectory(["probe-1.0.0.so", "probe-2.0.0.so", "memorylock-1.0.0.so", "memorylock-2.0.0.so"])
        let engine = try directory.engine()
        Log.info("apply: \(reloads) probe reloads, \(swaps) probe version swaps, \(statefulApplies)+\(statefulApplies) stateful applies with \(locks) locks")

        // Probe reloads.
        try Self.expect(await engine.apply(Self.definition("reload", plugin: "probe", version: "1.0.0", ["epoch": "0"])), .added)
        var engineOnly: [Double] = [], switchTimes: [Double] = [], totals: [Double] = [], inits: [Double] = []
        for index in 1...(warmup + reloads) {
            let applied = await engine.apply(Self.definition("reload", plugin: "probe", ["epoch": "\(index)"]))
            try Self.expect(applied, .reloaded)
            guard index > warmup else { continue }
            let switched = try Self.value(applied.switchDuration, "switch", applied)
            let initialized = try Self.value(applied.initDuration, "init", applied)
            let readiness = try Self.value(applied.readinessDuration, "readiness", applied)
            engineOnly.append((switched - initialized - readiness).milliseconds)
            switchTimes.append(switched.milliseconds)
            totals.append(applied.totalDuration.milliseconds)
            inits.append((initialized + readiness).milliseconds)
        }
        result.add(Metric("probe reload: apply → new generation serving, excluding plugin init+readiness", Stats(engineOnly), unit: "ms",
                          goalAtMost: 2, note: "ApplyResult switchDuration − initDuration − readinessDuration"))
        result.add(Metric("probe reload: switchDuration (incl. init+readiness)", Stats(switchTimes), unit: "ms"))
        result.add(Metric("probe reload: plugin init+readiness", Stats(inits), unit: "ms"))
        result.add(Metric("probe reload: totalDuration (incl. drain + destroy of old)", Stats(totals), unit: "ms"))

        // C version swaps (the reload component goes first, so only the swapped binary stays mapped).
        try Self.expect(await engine.remove(ComponentKey(kind: .lock, name: "reload")), .removed)
        try Self.expect(await engine.apply(Self.definition("swap", plugin: "probe", version: "1.0.0")), .added)
        var swapTotals: [Double] = [], swapSwitch: [Double] = [], swapEngineOnly: [Double] = []
        for index in 1...(warmup + swaps) {
            let target = index % 2 == 1 ? "2.0.0" : "1.0.0"
            let applied = await engine.apply(Self.definition("swap", plugin: "probe", version: target))
            try Self.expect(applied, .versionSwapped)
            guard index > warmup else { continue }
            let switched = try Self.value(applied.switchDuration, "switch", applied)
            let initialized = try Self.value(applied.initDuration, "init", applied)
            let readiness = try Self.value(applied.readinessDuration, "readiness", applied)
            swapTotals.append(applied.totalDuration.milliseconds)
            swapSwitch.append(switched.milliseconds)
            swapEngineOnly.append((switched - initialized - readiness).milliseconds)
        }
        let mapped = engine.loader.mappedBinaries.map(\.info.id).filter { $0.hasPrefix("probe@") }
        guard mapped.count == 1 else { throw BenchError("after the swaps, probe binaries still mapped: \(mapped)") }
        result.add(Metric("C version swap probe 1.0.0↔2.0.0: totalDuration", Stats(swapTotals), unit: "ms", goalAtMost: 5,
                          note: "load of the other binary (dlopen), init, readiness, switch, drain, destroy, dlclose of the old"))
        result.add(Metric("C version swap: switchDuration (apply start → new version serving)", Stats(swapSwitch), unit: "ms"))
        result.add(Metric("C version swap: switch excluding plugin init+readiness", Stats(swapEngineOnly), unit: "ms"))

        // Stateful: memorylock holding `locks` locks.
        try Self.expect(await engine.apply(Self.definition("locks", plugin: "memorylock", version: "1.0.0", ["buckets": "65536"])), .added)
        for index in 0..<locks {
            guard try await engine.tryLock(store: "locks", resource: "r\(index)", owner: "o\(index)", expiryInSeconds: 3600).value else {
                throw BenchError("lock r\(index) was not granted")
            }
        }
        var reloadPauses: [Double] = [], reloadTotals: [Double] = []
        for index in 1...(1 + statefulApplies) {
            let buckets = index % 2 == 1 ? "32768" : "65536"
            let applied = await engine.apply(Self.definition("locks", plugin: "memorylock", ["buckets": buckets]))
            try Self.expect(applied, .reloaded)
            guard index > 1 else { continue }
            reloadPauses.append(try Self.value(applied.pauseDuration, "pause", applied).milliseconds)
            reloadTotals.append(applied.totalDuration.milliseconds)
        }
        var swapPauses: [Double] = [], swapPauseTotals: [Double] = []
        for index in 1...(1 + statefulApplies) {
            let target = index % 2 == 1 ? "2.0.0" : "1.0.0"
            let applied = await engine.apply(Self.definition("locks", plugin: "memorylock", version: target, ["buckets": "65536"]))
            try Self.expect(applied, .versionSwapped)
            guard index > 1 else { continue }
            swapPauses.append(try Self.value(applied.pauseDuration, "pause", applied).milliseconds)
            swapPauseTotals.append(applied.totalDuration.milliseconds)
        }
        // Every lock must have survived the handoffs.
        for index in 0..<locks {
            let status = try await engine.unlock(store: "locks", resource: "r\(index)", owner: "someone-else").value
            guard status == .lockBelongsToOthers else { throw BenchError("lock r\(index) lost across the stateful applies: \(status)") }
        }
        result.add(Metric("stateful pause, memorylock reload with \(locks) locks held", Stats(reloadPauses), unit: "ms", goalAtMost: 1,
                          note: "ApplyResult.pauseDuration: drain + export + import + switch (format 1)"))
        result.add(Metric("stateful pause, memorylock 1.0.0↔2.0.0 swap with \(locks) locks held", Stats(swapPauses), unit: "ms", goalAtMost: 1,
                          note: "format 1 both ways (the newest format both versions speak)"))
        result.add(Metric("stateful reload with \(locks) locks: totalDuration", Stats(reloadTotals), unit: "ms"))
        result.add(Metric("stateful v1↔v2 swap with \(locks) locks: totalDuration", Stats(swapPauseTotals), unit: "ms"))
        if engine.leaseViolations != 0 { throw BenchError("\(engine.leaseViolations) lease violations") }

        // Where the pause goes: export and import of the same locks between two instances, alone.
        let (exports, imports, size) = try await Self.handoff(engine.loader, locks: locks, repetitions: 1 + statefulApplies)
        result.add(Metric("pause breakdown: export_state of \(locks) locks (memorylock 1.0.0, format 1)", Stats(exports), unit: "ms",
                          note: "PluginInstance.exportState, \(size) bytes"))
        result.add(Metric("pause breakdown: import_state of \(locks) locks (memorylock 1.0.0, format 1)", Stats(imports), unit: "ms",
                          note: "PluginInstance.importState into a fresh instance"))
        await engine.shutdown()
        try result.emit()
    }

    /// Times export (from an instance holding `locks` locks) and import (into a fresh instance), in ms.
    static func handoff(_ loader: PluginLoader, locks: Int, repetitions: Int) async throws -> ([Double], [Double], Int) {
        let binary = try loader.load(path: "memorylock-1.0.0.so")
        let source = try PluginInstance(binary: binary, componentName: "export", config: [:], logger: benchLogger)
        defer { source.destroy() }
        try waitUntilReady(source)
        for index in 0..<locks {
            guard try await source.tryLock(resource: "r\(index)", owner: "o\(index)", expiryInSeconds: 3600) else {
                throw BenchError("lock r\(index) was not granted")
            }
        }
        let clock = ContinuousClock()
        var exports: [Double] = [], imports: [Double] = [], size = 0
        for repetition in 0..<repetitions {
            let target = try PluginInstance(binary: binary, componentName: "import", config: [:], logger: benchLogger)
            defer { target.destroy() }
            try waitUntilReady(target)
            let start = clock.now
            let bytes = try source.exportState(format: 1)
            let exported = clock.now
            try target.importState(bytes, format: 1)
            let imported = clock.now
            size = bytes.count
            guard repetition > 0 else { continue }  // the first one warms up
            exports.append((exported - start).milliseconds)
            imports.append((imported - exported).milliseconds)
        }
        return (exports, imports, size)
    }

    static func definition(_ name: String, plugin: String, version: String? = nil, _ config: [String: String] = [:]) -> ComponentDefinition {
        ComponentDefinition(kind: .lock, name: name, plugin: plugin, version: version.flatMap(SemanticVersion.init), config: config)
    }

    static func expect(_ result: ApplyResult, _ action: ApplyAction) throws {
        guard result.action == action else { throw BenchError("expected \(action.rawValue), got \(result)") }
    }

    static func value(_ duration: Duration?, _ name: String, _ result: ApplyResult) throws -> Duration {
        guard let duration else { throw BenchError("no \(name) duration in \(result)") }
        return duration
    }
}
