import ArgumentParser
import Engine
import PluginHost

/// `swap-rss`: RSS growth over `count` C version swaps (probe 1.0.0 ↔ 2.0.0 through engine.apply,
/// each a real dlopen of the new version and dlclose of the old). RSS is read after `warmup` swaps
/// and after the measured ones; exits 1 when it grew by more than `max-growth-kib` or a swap failed.
/// Used by Tests/EngineTests/RSSTests.swift.
struct SwapRSSBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "swap-rss", abstract: "RSS growth over C version swaps; exit 1 past the limit.")

    @OptionGroup var plugins: PluginOptions
    @Option(help: "Measured version swaps.") var count = 1000
    @Option(help: "Unmeasured swaps first.") var warmup = 50
    @Option(help: "Largest acceptable RSS growth in KiB.") var maxGrowthKib = 2048

    func run() async throws {
        var result = BenchResult("swap-rss")
        let directory = try plugins.makePluginsDirectory(["probe-1.0.0.so", "probe-2.0.0.so"])
        let engine = try directory.engine()
        let clock = ContinuousClock()
        let added = await engine.apply(ApplyBench.definition("swap", plugin: "probe", version: "1.0.0"))
        try ApplyBench.expect(added, .added)
        Log.info("swap-rss: \(warmup) warm-up swaps, then \(count); limit \(maxGrowthKib) KiB")

        var version = "1.0.0"
        func swap() async throws -> Double {
            version = version == "1.0.0" ? "2.0.0" : "1.0.0"
            let applied = await engine.apply(ApplyBench.definition("swap", plugin: "probe", version: version))
            try ApplyBench.expect(applied, .versionSwapped)
            return applied.totalDuration.milliseconds
        }
        for _ in 0..<warmup { _ = try await swap() }
        let before = ProcessStats.residentKiB
        let start = clock.now
        var durations: [Double] = []
        durations.reserveCapacity(count)
        for _ in 0..<count { durations.append(try await swap()) }
        let elapsed = clock.now - start
        let after = ProcessStats.residentKiB
        let mapped = engine.loader.mappedBinaries.map(\.info.id)
        guard mapped == ["probe@\(version)"] else { throw BenchError("after the swaps, mapped binaries are \(mapped), expected probe@\(version) only") }
        if engine.leaseViolations != 0 { throw BenchError("\(engine.leaseViolations) lease violations") }
        await engine.shutdown()

        let growth = after - before
        Log.info("swap-rss: rss_before_kib=\(before) rss_after_kib=\(after) growth_kib=\(growth) limit_kib=\(maxGrowthKib) swaps=\(count)")
        result.add(Metric("RSS growth over \(count) C version swaps (probe 1.0.0↔2.0.0)", Double(growth), unit: "KiB",
                          goalAtMost: Double(maxGrowthKib), goalText: "≤ \(maxGrowthKib) KiB",
                          note: "RSS after \(warmup) warm-up swaps \(before) KiB, after \(count) more \(after) KiB"))
        result.add(Metric("C version swap totalDuration during the RSS run", Stats(durations), unit: "ms",
                          note: "\(count) swaps in \(Format.number(elapsed.milliseconds / 1000)) s"))
        try result.emit()
        if growth > maxGrowthKib {
            Log.info("swap-rss: RSS grew by \(growth) KiB, more than the \(maxGrowthKib) KiB limit")
            throw ExitCode(1)
        }
    }
}
