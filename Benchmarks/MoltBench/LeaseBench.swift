import ArgumentParser
import Engine
import PluginHost

/// `lease`: what the engine adds per call, uncontended (one task).
///
/// - engine − instance: `engine.tryLock`/`unlock` vs `PluginInstance.tryLock`/`unlock` on two
///   instances of the same memorylock binary, same workload (rounds of 1000 resources: lock all,
///   unlock all), interleaved round by round; the per-round difference is the lease + component
///   lookup + `Served` wrapping.
/// - lease alone: `Engine._benchmarkLeaseRelease` (Sources/Engine/BenchmarkHooks.swift), a loop of
///   `ComponentSlot.acquire` + `release` on the component's slot.
struct LeaseBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lease", abstract: "Lease + release overhead per call, uncontended.")

    @OptionGroup var plugins: PluginOptions
    @Option(help: "try_lock+unlock pairs per round and path.") var pairs = 200_000
    @Option(help: "Lease acquire+release pairs per round.") var leases = 2_000_000
    @Option(help: "Rounds.") var rounds = 9

    func run() async throws {
        var result = BenchResult("lease")
        let directory = try plugins.makePluginsDirectory(["memorylock-1.0.0.so"])
        let engine = try directory.engine()
        let key = ComponentKey(kind: .lock, name: "locks")
        let added = await engine.apply(ComponentDefinition(kind: .lock, name: "locks", plugin: "memorylock"))
        guard added.action == .added else { throw BenchError("\(added)") }
        let binary = try engine.loader.load(path: "memorylock-1.0.0.so")
        let instance = try PluginInstance(binary: binary, componentName: "direct", config: [:], logger: benchLogger)
        try waitUntilReady(instance)
        let names = (0..<AbiOpBench.batch).map { "resource-\($0)" }
        Log.info("lease: \(rounds) rounds of \(pairs) pairs per path and \(leases) bare leases")

        // Warm-up.
        _ = try await Self.runEngine(engine, names: names, pairs: min(pairs, 20_000))
        _ = try await AbiOpBench.runAsync(instance, names: names, pairs: min(pairs, 20_000))
        _ = await engine._benchmarkLeaseRelease(key, iterations: min(leases, 100_000))
        _ = await engine._benchmarkLeaseRelease(key, iterations: min(leases, 100_000), synchronous: true)

        var engineLock: [Double] = [], engineUnlock: [Double] = [], instanceLock: [Double] = [], instanceUnlock: [Double] = []
        var diffLock: [Double] = [], diffUnlock: [Double] = [], leaseOnly: [Double] = [], leaseSync: [Double] = []
        for round in 1...rounds {
            let viaEngine = try await Self.runEngine(engine, names: names, pairs: pairs)
            let viaInstance = try await AbiOpBench.runAsync(instance, names: names, pairs: pairs)
            let leaseTime = await engine._benchmarkLeaseRelease(key, iterations: leases)
            let syncTime = await engine._benchmarkLeaseRelease(key, iterations: leases, synchronous: true)
            guard leaseTime > .zero, syncTime > .zero else { throw BenchError("the lease hook found no component \(key)") }
            engineLock.append(viaEngine.lockMean); engineUnlock.append(viaEngine.unlockMean)
            instanceLock.append(viaInstance.lockMean); instanceUnlock.append(viaInstance.unlockMean)
            diffLock.append(viaEngine.lockMean - viaInstance.lockMean)
            diffUnlock.append(viaEngine.unlockMean - viaInstance.unlockMean)
            leaseOnly.append(leaseTime.nanoseconds / Double(leases))
            leaseSync.append(syncTime.nanoseconds / Double(leases))
            Log.info("  round \(round): try_lock engine \(Format.number(viaEngine.lockMean)) instance \(Format.number(viaInstance.lockMean)) ns; unlock engine \(Format.number(viaEngine.unlockMean)) instance \(Format.number(viaInstance.unlockMean)) ns; lease+release \(Format.number(leaseOnly.last!)) ns (fast path alone \(Format.number(leaseSync.last!)) ns)")
        }
        instance.destroy()
        if engine.leaseViolations != 0 { throw BenchError("\(engine.leaseViolations) lease violations") }
        await engine.shutdown()

        result.add(Metric("lease acquire+release, uncontended (ComponentSlot.acquire, async, as withLease calls it)", Stats(leaseOnly),
                          unit: "ns/call", goalAtMost: 20,
                          note: "Engine._benchmarkLeaseRelease; mean per pair of each round, median/p99 over rounds"))
        result.add(Metric("lease fast path alone: tryAcquire+release (synchronous)", Stats(leaseSync), unit: "ns/call", goalAtMost: 20,
                          note: "Engine._benchmarkLeaseRelease(synchronous: true)"))
        result.add(Metric("engine.tryLock − PluginInstance.tryLock (lease + lookup)", Stats(diffLock), unit: "ns/call",
                          note: "per-round difference of means, median over rounds"))
        result.add(Metric("engine.unlock − PluginInstance.unlock (lease + lookup)", Stats(diffUnlock), unit: "ns/call"))
        result.add(Metric("engine.tryLock", Stats(engineLock), unit: "ns/call"))
        result.add(Metric("engine.unlock", Stats(engineUnlock), unit: "ns/call"))
        result.add(Metric("PluginInstance.tryLock", Stats(instanceLock), unit: "ns/call"))
        result.add(Metric("PluginInstance.unlock", Stats(instanceUnlock), unit: "ns/call"))
        result.note("The lease-only figure uses the public hook Engine._benchmarkLeaseRelease (Sources/Engine/BenchmarkHooks.swift).")
        try result.emit()
    }

    static func runEngine(_ engine: Engine, names: [String], pairs: Int) async throws -> AbiOpBench.Timings {
        try await AbiOpBench.timeLockPairs(
            names: names, pairs: pairs, what: "engine lock calls",
            tryLock: { try await engine.tryLock(store: "locks", resource: $0, owner: "o", expiryInSeconds: 60).value },
            unlock: { try await engine.unlock(store: "locks", resource: $0, owner: "o").value == .success })
    }
}
