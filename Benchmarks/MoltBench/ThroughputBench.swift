import ArgumentParser
import Engine
import PluginHost
import Synchronization

/// `throughput`: lock calls per second through the engine, 8 concurrent tasks each doing
/// try_lock + unlock pairs on the probe plugin, for `seconds` without reloads, then for `seconds`
/// with a reload (config change → new generation) every `reload-interval-ms`. Each task yields
/// once per pair: memorylock-style plugins complete inline and never suspend the caller, so without
/// the yield a few tasks starve the rest of a 2-core pool (real clients are separate requests).
struct ThroughputBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "throughput", abstract: "Lock calls/s with and without reloads every 10 ms.")

    @OptionGroup var plugins: PluginOptions
    @Option(help: "Seconds per phase.") var seconds = 5
    @Option(help: "Concurrent calling tasks.") var tasks = 8
    @Option(help: "Milliseconds between reloads in the reload phase (sleep between applies).") var reloadIntervalMs = 10

    func run() async throws {
        var result = BenchResult("throughput")
        let directory = try plugins.makePluginsDirectory(["probe-1.0.0.so"])
        let engine = try directory.engine()
        let applied = await engine.apply(ComponentDefinition(kind: .lock, name: "tp", plugin: "probe", config: ["epoch": "0"]))
        guard applied.action == .added else { throw BenchError("\(applied)") }
        Log.info("throughput: \(tasks) tasks, \(seconds) s without reloads, then \(seconds) s with a reload every \(reloadIntervalMs) ms")

        _ = await Self.phase(engine: engine, tasks: tasks, duration: .milliseconds(300), reloadEvery: nil)  // warm-up
        let steady = await Self.phase(engine: engine, tasks: tasks, duration: .seconds(seconds), reloadEvery: nil)
        let reloading = await Self.phase(engine: engine, tasks: tasks, duration: .seconds(seconds), reloadEvery: .milliseconds(reloadIntervalMs))
        let violations = engine.leaseViolations
        await engine.shutdown()

        for (label, phase) in [("no reloads", steady), ("reload every \(reloadIntervalMs) ms", reloading)] {
            result.add(Metric("calls/s, \(tasks) tasks, \(label)", phase.callsPerSecond, unit: "calls/s",
                              note: "\(phase.calls) calls in \(Format.number(phase.elapsed)) s (try_lock and unlock each count as one)"))
            let failureNote = phase.failureSamples.isEmpty ? "" : "; first: \(phase.failureSamples.joined(separator: " | "))"
            result.add(Metric("failed calls, \(label)", Double(phase.failures), unit: "calls", goalAtMost: 0, goalText: "0",
                              note: "calls that threw\(failureNote). Pairs whose lock was granted by one generation and unlocked in the next (stateless probe: unlock says lockDoesNotExist, a correct answer, not a failure): \(phase.lostLocks)"))
            result.add(Metric("try_lock+unlock pair latency, \(label)", Stats(phase.latencies), unit: "µs",
                              note: "every 16th pair sampled, excluding the yield"))
        }
        result.add(Metric("reloads done in \(seconds) s", Double(reloading.reloads), unit: "reloads",
                          note: "\(Format.number(Double(reloading.reloads) / reloading.elapsed))/s; failed applies \(reloading.failedApplies); generations are numbered 1…\(reloading.reloads + 1)"))
        if reloading.failedApplies > 0 { result.note("failed applies: \(reloading.failedApplies)") }
        result.add(Metric("lease violations", Double(violations), unit: "leases", goalAtMost: 0, goalText: "0"))
        try result.emit()
        if steady.failures + reloading.failures > 0 || violations > 0 { throw ExitCode(1) }
    }

    struct Phase: Sendable {
        var calls = 0
        var lostLocks = 0
        var failures = 0
        var failureSamples: [String] = []
        var latencies: [Double] = []
        var reloads = 0
        var failedApplies = 0
        var elapsed = 0.0
        var callsPerSecond: Double { Double(calls) / elapsed }
    }

    final class Stop: Sendable {
        let flag = Atomic<Bool>(false)
        var isSet: Bool { flag.load(ordering: .relaxed) }
    }

    struct WorkerTally: Sendable {
        var calls = 0
        var lostLocks = 0
        var failures = 0
        var failureSamples: [String] = []
        var latencies: [Double] = []
    }

    static func phase(engine: Engine, tasks: Int, duration: Duration, reloadEvery: Duration?) async -> Phase {
        let stop = Stop()
        let clock = ContinuousClock()
        let start = clock.now
        let traffic = Task {
            await withTaskGroup(of: WorkerTally.self) { group in
                for worker in 0..<tasks {
                    group.addTask {
                        let resources = (0..<64).map { "w\(worker)-\($0)" }
                        let owner = "w\(worker)"
                        var tally = WorkerTally()
                        var iteration = 0
                        while !stop.isSet {
                            await Task.yield()
                            iteration += 1
                            let resource = resources[iteration & 63]
                            let started: ContinuousClock.Instant? = iteration & 15 == 0 ? clock.now : nil
                            do {
                                let locked = try await engine.tryLock(store: "tp", resource: resource, owner: owner, expiryInSeconds: 30)
                                let unlocked = try await engine.unlock(store: "tp", resource: resource, owner: owner)
                                // Not failures: the probe is stateless, so a lock taken from one generation
                                // is unknown to the next (unlock answers lockDoesNotExist).
                                if !locked.value || unlocked.value != .success { tally.lostLocks += 1 }
                                tally.calls += 2
                            } catch {
                                tally.failures += 1
                                if tally.failureSamples.count < 3 { tally.failureSamples.append("\(error)") }
                            }
                            if let started { tally.latencies.append((clock.now - started).microseconds) }
                        }
                        return tally
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
        }

        var phase = Phase()
        let end = start.advanced(by: duration)
        if let reloadEvery {
            var epoch = 0
            while clock.now < end {
                try? await Task.sleep(for: reloadEvery)
                epoch += 1
                let applied = await engine.apply(ComponentDefinition(kind: .lock, name: "tp", plugin: "probe", config: ["epoch": "r\(epoch)"]))
                if applied.action == .reloaded { phase.reloads += 1 } else { phase.failedApplies += 1 }
            }
        } else {
            try? await Task.sleep(until: end, clock: clock)
        }
        stop.flag.store(true, ordering: .relaxed)
        let tallies = await traffic.value
        phase.elapsed = (clock.now - start).nanoseconds / 1e9
        for tally in tallies {
            phase.calls += tally.calls
            phase.failures += tally.failures
            phase.lostLocks += tally.lostLocks
            phase.failureSamples += tally.failureSamples.prefix(3 - min(3, phase.failureSamples.count))
            phase.latencies += tally.latencies
        }
        if phase.latencies.isEmpty { phase.latencies = [.nan] }
        return phase
    }
}
