import PluginABI
@testable import PluginKit
@testable import PluginKitOperations
import Testing

/// What molt_plugin_operations declares for one registration line per method, as the host reads the C
/// structs, and how PluginKit makes a wrong declaration refuse the plugin instead of misbehaving.
@Suite struct OperationDeclarationTests {
    @Test func eachLineBecomesAStaticDeclarationInTheValuesFormNamingItsThunk() throws {
        let seen = OperationHost.declarations()
        #expect(seen.map(\.name) == ["add", "describe", "calls", "split", "forget", "refuse", "crash-free", "nul", "ratio"])
        #expect(seen.map(\.symbol) == (0..<9).map { "molt_pluginkit_operation_\($0)" })
        let add = seen[0]
        #expect(add == SeenOperation(
            name: "add", description: "Adds two integers", symbol: "molt_pluginkit_operation_0", flags: UInt32(MOLT_OPERATION_VALUES),
            parameters: [.init(name: "a", type: MOLT_TYPE_INT64, description: nil), .init(name: "b", type: MOLT_TYPE_INT64, description: nil)],
            results: [.init(name: "sum", type: MOLT_TYPE_INT64, description: "a + b")],
            parametersIsNull: false, resultsIsNull: false))
        let describe = seen[1]
        #expect(describe.parameters.map(\.type) == [MOLT_TYPE_BOOL, MOLT_TYPE_DOUBLE, MOLT_TYPE_STRING, MOLT_TYPE_BYTES])
        #expect(describe.parameters.map(\.name) == ["flag", "ratio", "text", "data"])
        #expect(describe.results.map(\.type) == [MOLT_TYPE_STRING, MOLT_TYPE_BYTES, MOLT_TYPE_BOOL])
        #expect(describe.results.map(\.name) == ["summary", "payload", "even"])

        let calls = seen[2]
        #expect(calls.flags == UInt32(MOLT_OPERATION_VALUES | MOLT_OPERATION_BLOCKING), "blocking: true")
        #expect(calls.parameters.isEmpty && calls.parametersIsNull, "no parameters: NULL")
        let forget = seen[4]
        #expect(forget.results.isEmpty && forget.resultsIsNull, "a Void method has no results")

        var count: UInt32 = 0
        #expect(_moltPluginOperations(&count) == _moltPluginOperations(nil), "static: the same array every time")
        #expect(count == 9 && Probe.operationProblems.isEmpty)
    }

    @Test func theKindIsBinding() {
        #expect(String(cString: _moltPluginInfo().pointee.kind) == "binding")
        #expect(Probe.kind == .binding && ComponentKind.binding.rawValue == MOLT_KIND_BINDING)
    }

    @Test func swiftTypesMapToTheABITypes() {
        #expect(Int64._valueType.rawValue == MOLT_TYPE_INT64 && Double._valueType.rawValue == MOLT_TYPE_DOUBLE)
        #expect(Bool._valueType.rawValue == MOLT_TYPE_BOOL && String._valueType.rawValue == MOLT_TYPE_STRING)
        #expect([UInt8]._valueType.rawValue == MOLT_TYPE_BYTES)
        #expect(ValueType.allCases.map(\.description) == ["int64", "double", "bool", "string", "bytes"])
    }

    @Test func wrongDeclarationsAreListedNamingTheOperation() {
        #expect(Faulty.operationProblems == [
            "operation 'count': 2 parameter name(s) for a method with 1 parameter(s)",
            "operation 'Count': the name must match [a-z][a-z0-9_-]{0,63}",
            "operation 'pair': 1 result name(s) for a method with 2 result(s)",
            "operation 'pair': result name 'first-one' must match [a-z][A-Za-z0-9_]{0,63}",
            "operation 'same': 'x' names two parameters or results",
            "operation 'lines': the description must be one line",
            "operation 'count' is declared twice",
        ])
        #expect(Many.operationProblems == ["17 operations declared; PluginKit exports at most 16"])
        #expect(Empty.operationProblems == ["a binding must declare at least one operation"])
        #expect(OperationTable(Empty.self).declarations == nil && OperationTable(Empty.self).count == 0)
    }

    @Test func aWrongDeclarationIsDeclaredUnderANameTheHostRefusesAndCannotBeCalled() throws {
        let table = OperationTable(Faulty.self)
        let seen = OperationHost.read(table.declarations, table.count)
        #expect(seen.map(\.name) == [
            "count (PluginKit: 2 parameter name(s) for a method with 1 parameter(s))",
            "Count (PluginKit: the name must match [a-z][a-z0-9_-]{0,63})",
            "pair (PluginKit: 1 result name(s) for a method with 2 result(s); result name 'first-one' must match [a-z][A-Za-z0-9_]{0,63})",
            "same (PluginKit: 'x' names two parameters or results)",
            "lines (PluginKit: the description must be one line)",
            "count (PluginKit: declared twice)",
            "ok",
        ])
        #expect(seen[0].parameters.map(\.type) == [MOLT_TYPE_STRING, 0], "a name without a value has no type")

        let many = OperationTable(Many.self)
        let last = OperationHost.read(many.declarations, many.count)[16]
        #expect(last.name == "op16 (PluginKit: operation 17 of 17; PluginKit exports at most 16)")

        let instance = OperationHost.instance()
        defer { _moltPluginDestroy(instance) }
        var text = [CChar](repeating: 0, count: 256)
        let status = text.withUnsafeMutableBufferPointer { buffer in
            var message = molt_message(text: buffer.baseAddress, capacity: 256)
            return table.call(0, instance, nil, nil, &message)
        }
        #expect(status == MOLT_ERR_INTERNAL)
        #expect(text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } == "operation 'count' is declared wrongly: 2 parameter name(s) for a method with 1 parameter(s)")
    }
}

/// Declarations with every mistake PluginKit catches (never registered: tables are built directly).
private final class Faulty: BindingComponent {
    static let name = "faulty"
    static let version = "0.0.0"
    static let description = "wrong declarations"
    static let operations: [Operation<Faulty>] = [
        Operation("count", "Counts", Faulty.count, parameters: ["text", "extra"], results: ["n"]),
        Operation("Count", "Upper case", Faulty.count, parameters: ["text"], results: ["n"]),
        Operation("pair", "Two results, one name", Faulty.pair, results: ["first-one"]),
        Operation("same", "A name twice", Faulty.count, parameters: ["x"], results: ["x"]),
        Operation("lines", "Two\nlines", Faulty.count, parameters: ["text"], results: ["n"]),
        Operation("count", "Again", Faulty.count, parameters: ["text"], results: ["n"]),
        Operation("ok", "Fine", Faulty.count, parameters: ["text"], results: ["n"]),
    ]
    init(config: Config, host: HostServices) throws(PluginError) {}
    func count(text: String) -> Int64 { Int64(text.count) }
    func pair() -> (Bool, Bool) { (true, false) }
}

/// One operation more than PluginKit has thunks for.
private final class Many: BindingComponent {
    static let name = "many"
    static let version = "0.0.0"
    static let description = "17 operations"
    static let operations: [Operation<Many>] = (0..<17).map { Operation("op\($0)", "One of many", Many.one, results: ["one"]) }
    init(config: Config, host: HostServices) throws(PluginError) {}
    func one() -> Int64 { 1 }
}

/// A binding without operations (the host refuses it: kind binding needs at least one).
private final class Empty: BindingComponent {
    static let name = "empty"
    static let version = "0.0.0"
    static let description = "no operations"
    static let operations: [Operation<Empty>] = []
    init(config: Config, host: HostServices) throws(PluginError) {}
}
