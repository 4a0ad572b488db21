import ArgumentParser
import PluginHost

/// `load-rss`: memory kept by loading plugins.
///
/// C: RSS growth over `cycles` load/init/readiness/destroy/release cycles of memorylock (each a
/// real dlopen/dlclose), measured after `warmup` cycles. Swift: RSS added per retained Swift
/// plugin version (the 3 distinct Swift binaries loaded once each; RSS delta / 3), plus the mapped
/// size (VmSize delta / 3) for scale.
struct LoadRSSBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "load-rss", abstract: "RSS growth over C load cycles; RSS per retained Swift plugin.")

    @OptionGroup var plugins: PluginOptions
    @Option(help: "Measured C load cycles.") var cycles = 1000
    @Option(help: "Unmeasured C load cycles first.") var warmup = 50
    @Option(help: "Largest acceptable C growth in KiB (the goal).") var maxGrowthKib = 2048

    func run() async throws {
        var result = BenchResult("load-rss")
        let directory = try plugins.makePluginsDirectory([LoadBench.cPlugin] + LoadBench.swiftPlugins)
        let loader = try directory.loader()
        let clock = ContinuousClock()
        Log.info("load-rss: \(cycles) C load cycles after \(warmup) warm-up; then \(LoadBench.swiftPlugins.count) Swift binaries")

        for _ in 0..<warmup { _ = try LoadBench.cycleC(loader: loader, clock: clock) }
        let rssBefore = ProcessStats.residentKiB
        let vmBefore = ProcessStats.virtualKiB
        var peak = rssBefore
        for cycle in 1...cycles {
            _ = try LoadBench.cycleC(loader: loader, clock: clock)
            if cycle % 50 == 0 { peak = max(peak, ProcessStats.residentKiB) }
        }
        let rssAfter = ProcessStats.residentKiB
        let vmAfter = ProcessStats.virtualKiB
        result.add(Metric("C memorylock: RSS growth over \(cycles) load/init/destroy/unload cycles", Double(rssAfter - rssBefore), unit: "KiB",
                          goalAtMost: Double(maxGrowthKib), goalText: "≤ 2 MB (\(maxGrowthKib) KiB)",
                          note: "RSS \(rssBefore) → \(rssAfter) KiB (peak sampled \(peak)); VmSize \(vmBefore) → \(vmAfter) KiB"))

        let swiftBefore = ProcessStats.residentKiB
        let swiftVmBefore = ProcessStats.virtualKiB
        var deltas: [Int] = []
        var binaries: [PluginBinary] = []
        for name in LoadBench.swiftPlugins {
            let before = ProcessStats.residentKiB
            let binary = try loader.load(path: name)
            guard binary.linksSwiftRuntime else { throw BenchError("\(name) does not link the Swift runtime") }
            binaries.append(binary)
            deltas.append(ProcessStats.residentKiB - before)
        }
        let swiftAfter = ProcessStats.residentKiB
        let swiftVmAfter = ProcessStats.virtualKiB
        let count = Double(LoadBench.swiftPlugins.count)
        result.add(Metric("Swift: RSS per retained plugin version (loaded, no instance)", Double(swiftAfter - swiftBefore) / count, unit: "KiB",
                          samples: LoadBench.swiftPlugins.count,
                          note: "per binary in load order (swift-testlock 1.0.0, 2.0.0, minimal-swift-lock): \(deltas.map(String.init).joined(separator: ", ")) KiB"))
        result.add(Metric("Swift: mapped size per retained plugin version (VmSize)", Double(swiftVmAfter - swiftVmBefore) / count, unit: "KiB",
                          samples: LoadBench.swiftPlugins.count))
        let sizes = LoadBench.swiftPlugins.map { name in directory.sources[name].map { "\(name) from \($0)" } ?? name }
        result.note("Swift binaries: \(sizes.joined(separator: "; "))")
        withExtendedLifetime(binaries) {}
        try result.emit()
    }
}
