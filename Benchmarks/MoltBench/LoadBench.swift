import ArgumentParser
import PluginHost

/// `load`: loader (read + hash + stage + dlopen + symbols/info) and init + readiness, per plugin
/// language.
///
/// C: every iteration loads memorylock, starts an instance, waits until it is ready, then destroys
/// it and drops every reference, so the loader's content-hash dedup finds nothing and the library is
/// really dlclosed (checked) and dlopened again next time.
///
/// Swift: a Swift plugin is never unmapped (RTLD_NODELETE) and the loader keeps its mapping, so a
/// second load of the same bytes is a hash hit. Only first loads are real dlopens: one per distinct
/// Swift binary (swift-testlock 1.0.0 and 2.0.0, minimal-swift-lock). init + readiness is then
/// measured separately on the retained mapping.
struct LoadBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "load", abstract: "dlopen + init + readiness time per plugin language.")

    @OptionGroup var plugins: PluginOptions
    @Option(help: "Measured C load cycles.") var iterations = 300
    @Option(help: "Unmeasured C load cycles first.") var warmup = 20

    static let cPlugin = "memorylock-1.0.0.so"
    static let swiftPlugins = ["swift-testlock-1.0.0.so", "swift-testlock-2.0.0.so", "minimal-swift-lock.so"]

    func run() async throws {
        var result = BenchResult("load")
        let directory = try plugins.makePluginsDirectory([Self.cPlugin] + Self.swiftPlugins)
        let loader = try directory.loader()
        let clock = ContinuousClock()
        Log.info("load: \(iterations) C load cycles (+\(warmup) warm-up), first loads of \(Self.swiftPlugins.count) Swift binaries")

        // C, the very first load in this process (as cold as the bench can make it).
        let (firstC, _) = try Self.cycleC(loader: loader, clock: clock)

        // Swift: the first (and only real) load of each distinct binary.
        var swiftFirstLoads: [Double] = []
        var swiftFirstInits: [Double] = []
        var swiftBinaries: [PluginBinary] = []
        for name in Self.swiftPlugins {
            let start = clock.now
            let binary = try loader.load(path: name)
            let loaded = clock.now
            let instance = try PluginInstance(binary: binary, componentName: "bench", config: [:], logger: benchLogger)
            try waitUntilReady(instance)
            let ready = clock.now
            instance.destroy()
            guard binary.linksSwiftRuntime else { throw BenchError("\(name) does not link the Swift runtime") }
            swiftFirstLoads.append((loaded - start).microseconds)
            swiftFirstInits.append((ready - loaded).microseconds)
            swiftBinaries.append(binary)
            result.note("Swift first load of \(binary.info.id) (\(directory.sources[name] ?? name)): load \(Format.number((loaded - start).microseconds)) µs, first init+readiness \(Format.number((ready - loaded).microseconds)) µs")
        }

        // C: warm-up, then measured cycles.
        var cLoad: [Double] = [], cInit: [Double] = [], cReady: [Double] = [], cTotal: [Double] = [], cUnload: [Double] = []
        for iteration in 0..<(warmup + iterations) {
            let (sample, unload) = try Self.cycleC(loader: loader, clock: clock)
            guard iteration >= warmup else { continue }
            cLoad.append(sample.load); cInit.append(sample.initialize); cReady.append(sample.readiness)
            cTotal.append(sample.load + sample.initialize + sample.readiness); cUnload.append(unload)
        }

        // Swift: init + readiness (+ destroy, separately) on the retained mapping of swift-testlock 1.0.0.
        var swiftInit: [Double] = [], swiftDestroy: [Double] = [], swiftHashHit: [Double] = []
        let swiftBinary = swiftBinaries[0]
        for iteration in 0..<(warmup + iterations) {
            let start = clock.now
            let again = try loader.load(path: Self.swiftPlugins[0])
            let loaded = clock.now
            guard again === swiftBinary else { throw BenchError("the loader mapped \(Self.swiftPlugins[0]) twice") }
            let instance = try PluginInstance(binary: swiftBinary, componentName: "bench", config: [:], logger: benchLogger)
            try waitUntilReady(instance)
            let ready = clock.now
            instance.destroy()
            let destroyed = clock.now
            guard iteration >= warmup else { continue }
            swiftHashHit.append((loaded - start).microseconds)
            swiftInit.append((ready - loaded).microseconds)
            swiftDestroy.append((destroyed - ready).microseconds)
        }

        result.add(Metric("C memorylock: first load+init+readiness in process", firstC.load + firstC.initialize + firstC.readiness, unit: "µs",
                          note: "load \(Format.number(firstC.load)) + init \(Format.number(firstC.initialize)) + readiness \(Format.number(firstC.readiness)) µs"))
        result.add(Metric("C memorylock: load (read+sha256+stage+dlopen+dlsym+info)", Stats(cLoad), unit: "µs"))
        result.add(Metric("C memorylock: init", Stats(cInit), unit: "µs"))
        result.add(Metric("C memorylock: readiness (first poll)", Stats(cReady), unit: "µs"))
        result.add(Metric("C memorylock: load+init+readiness", Stats(cTotal), unit: "µs"))
        result.add(Metric("C memorylock: destroy+dlclose", Stats(cUnload), unit: "µs"))
        let swiftFirstTotals = zip(swiftFirstLoads, swiftFirstInits).map(+)
        result.add(Metric("Swift: first load (read+sha256+stage+dlopen+dlsym+info), median of 3 binaries", Stats(swiftFirstLoads).median,
                          unit: "µs", samples: swiftFirstLoads.count,
                          note: "swift-testlock 1.0.0, 2.0.0, minimal-swift-lock: \(swiftFirstLoads.map(Format.number).joined(separator: ", ")) µs"))
        result.add(Metric("Swift: first load+init+readiness, median of 3 binaries", Stats(swiftFirstTotals).median, unit: "µs",
                          samples: swiftFirstTotals.count, note: "\(swiftFirstTotals.map(Format.number).joined(separator: ", ")) µs"))
        result.add(Metric("Swift swift-testlock: init+readiness on retained mapping", Stats(swiftInit), unit: "µs"))
        result.add(Metric("Swift swift-testlock: destroy", Stats(swiftDestroy), unit: "µs"))
        result.add(Metric("Swift swift-testlock: reload of same bytes (sha256 hit, no dlopen)", Stats(swiftHashHit), unit: "µs"))
        result.note("C loads are real dlopen/dlclose cycles: after each one the loader has no mapping left (checked).")
        try result.emit()
    }

    struct Sample { var load: Double; var initialize: Double; var readiness: Double }

    /// One C cycle: load, init, readiness, then destroy and release (→ dlclose). Times in µs.
    static func cycleC(loader: PluginLoader, clock: ContinuousClock) throws -> (Sample, unload: Double) {
        let start = clock.now
        var binary: PluginBinary? = try loader.load(path: cPlugin)
        let loaded = clock.now
        var instance: PluginInstance? = try PluginInstance(binary: binary!, componentName: "bench", config: [:], logger: benchLogger)
        let initialized = clock.now
        try waitUntilReady(instance!)
        let ready = clock.now
        guard !binary!.linksSwiftRuntime else { throw BenchError("\(cPlugin) links the Swift runtime") }
        instance!.destroy()
        instance = nil
        binary = nil
        let unloaded = clock.now
        guard !loader.mappedBinaries.contains(where: { !$0.linksSwiftRuntime }) else { throw BenchError("\(cPlugin) is still mapped after its last reference went") }
        return (Sample(load: (loaded - start).microseconds, initialize: (initialized - loaded).microseconds,
                       readiness: (ready - initialized).microseconds), (unloaded - ready).microseconds)
    }
}
