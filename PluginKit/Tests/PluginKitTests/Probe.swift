import PluginKit
import PluginKitOperations
import Synchronization

// Every binary linking PluginKit defines the plugin's entry point (see molt_pluginkit_entry.h): the
// tests' plugin is Probe, a binding whose operations cover every type, arity and way of failing.
@_cdecl("molt_pluginkit_component")
public func moltComponent() -> UnsafeRawPointer { PluginKit.export(Probe.self) }

final class Probe: BindingComponent {
    static let name = "probe"
    static let version = "0.0.0"
    static let description = "entry point for PluginKit's tests"

    static let operations: [Operation<Probe>] = [
        Operation("add", "Adds two integers", Probe.add, parameters: ["a", "b"], results: [OperationField("sum", "a + b")]),
        Operation(
            "describe", "Every type in, three results out", Probe.describe,
            parameters: ["flag", "ratio", "text", "data"], results: ["summary", "payload", "even"]),
        Operation("calls", "Calls of this instance so far", Probe.calls, results: ["count"], blocking: true),
        Operation("split", "Quotient and remainder", Probe.split, parameters: ["n", "d"], results: ["quotient", "remainder"]),
        Operation("forget", "Takes a text, answers nothing", Probe.forget, parameters: ["text"]),
        Operation("refuse", "Fails with a plugin error after a first result", Probe.refuse, results: ["first", "second"]),
        Operation("crash-free", "Throws an error that is not a PluginError", Probe.other, results: ["never"]),
        Operation("nul", "A result a C string cannot hold", Probe.nul, results: ["partial", "text"]),
        Operation("ratio", "A double result", Probe.ratio, parameters: ["x"], results: ["inverse"]),
    ]

    let counter = Atomic<Int64>(0)
    /// Distinguishes instances: operations run on the instance the host passes.
    let offset: Int64

    init(config: Config, host: HostServices) throws(PluginError) {
        offset = Int64(config["offset"] ?? "0") ?? 0
    }

    private func count() { counter.add(1, ordering: .relaxed) }

    func add(a: Int64, b: Int64) throws(PluginError) -> Int64 {
        count()
        let (sum, overflow) = a.addingReportingOverflow(b)
        if overflow { throw .invalidArgument("\(a) + \(b) overflows int64") }
        return sum + offset
    }

    func describe(flag: Bool, ratio: Double, text: String, data: [UInt8]) -> (String, [UInt8], Bool) {
        count()
        return ("\(flag) \(ratio) \(text) \(data.count)", data.reversed(), data.count % 2 == 0)
    }

    func calls() -> Int64 { counter.load(ordering: .relaxed) }

    func split(n: Int64, d: Int64) throws -> (Int64, Int64) {
        guard d != 0 else { throw PluginError(.invalidArgument, "division by zero") }
        return (n / d, n % d)
    }

    func forget(text: String) { count() }

    func refuse() throws(PluginError) -> (String, String) { throw .unavailable("backend down") }

    struct Oops: Error {}
    func other() throws -> Bool { throw Oops() }

    func nul() -> (String, String) { ("allocated first", "a\u{0}b") }

    func ratio(x: Double) -> Double { 1 / x }
}
