import ArgumentParser
import Engine
import PluginHost

/// `operation-dispatch`: what calling a declared operation (ABI 1.2) costs, against a direct C call.
///
/// ops-1.0.0.so's `add(a: int64, b: int64) -> (sum: int64)`, one task, interleaved round by round:
/// - dispatch: `PluginInstance._benchmarkOperationDispatch` (Sources/PluginHost/Operations/OperationBenchmarkHooks.swift):
///   the same function through its prepared `ffi_cif` and through a C function pointer; "added" is the
///   per-round difference of means (the target: at most 50 ns).
/// - invoke: `PluginInstance.invoke` (arguments checked against the declaration, marshalled, results copied
///   into a dictionary) and `Engine.invoke` (plus the lease), per call.
struct OperationDispatchBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "operation-dispatch",
                                                    abstract: "A declared operation through libffi vs a direct C call, and invoke end to end.")

    @OptionGroup var plugins: PluginOptions
    @Option(help: "Calls per round through libffi and directly.") var calls = 2_000_000
    @Option(help: "Calls per round through PluginInstance.invoke and Engine.invoke.") var invokeCalls = 200_000
    @Option(help: "Rounds.") var rounds = 9

    func run() async throws {
        var result = BenchResult("operation-dispatch")
        let directory = try plugins.makePluginsDirectory(["ops-1.0.0.so"])
        let engine = try directory.engine()
        let added = await engine.apply(ComponentDefinition(kind: .binding, name: "calc", plugin: "ops"))
        guard added.action == .added else { throw BenchError("\(added)") }
        let instance = try PluginInstance(binary: try engine.loader.load(path: "ops-1.0.0.so"), componentName: "direct", config: [:],
                                          logger: benchLogger)
        let key = ComponentKey(kind: .binding, name: "calc")
        let arguments: [String: OperationValue] = ["a": .int64(1), "b": .int64(2)]
        Log.info("operation-dispatch: \(rounds) rounds of \(calls) dispatches each way and \(invokeCalls) invokes each way")

        guard instance._benchmarkOperationDispatch("add", iterations: min(calls, 100_000)) != nil else {
            throw BenchError("ops-1.0.0.so's add does not have the shape (int64, int64) -> (int64)")
        }
        var ffi: [Double] = [], direct: [Double] = [], addedNs: [Double] = [], viaInstance: [Double] = [], viaEngine: [Double] = []
        let clock = ContinuousClock()
        for round in 1...rounds {
            let (ffiTime, directTime) = instance._benchmarkOperationDispatch("add", iterations: calls)!
            ffi.append(ffiTime.nanoseconds / Double(calls))
            direct.append(directTime.nanoseconds / Double(calls))
            addedNs.append(ffi.last! - direct.last!)
            var start = clock.now
            for _ in 0..<invokeCalls { _ = try await instance.invoke(operation: "add", arguments: arguments) }
            viaInstance.append((clock.now - start).nanoseconds / Double(invokeCalls))
            start = clock.now
            for _ in 0..<invokeCalls { _ = try await engine.invoke(key, operation: "add", arguments: arguments) }
            viaEngine.append((clock.now - start).nanoseconds / Double(invokeCalls))
            Log.info("  round \(round): ffi_call \(Format.number(ffi.last!)) ns, direct \(Format.number(direct.last!)) ns, added "
                + "\(Format.number(addedNs.last!)) ns; PluginInstance.invoke \(Format.number(viaInstance.last!)) ns, Engine.invoke \(Format.number(viaEngine.last!)) ns")
        }
        instance.destroy()
        await engine.shutdown()
        result.add(Metric("libffi dispatch − direct C call, add(int64, int64) -> (int64)", Stats(addedNs), unit: "ns/call", goalAtMost: 50,
                          note: "per-round difference of means, median/p99 over rounds (PluginInstance._benchmarkOperationDispatch)"))
        result.add(Metric("ffi_call through the prepared cif", Stats(ffi), unit: "ns/call"))
        result.add(Metric("direct C call", Stats(direct), unit: "ns/call"))
        result.add(Metric("PluginInstance.invoke (checks, marshalling, results dictionary)", Stats(viaInstance), unit: "ns/call"))
        result.add(Metric("Engine.invoke (plus the lease)", Stats(viaEngine), unit: "ns/call"))
        try result.emit()
    }
}
