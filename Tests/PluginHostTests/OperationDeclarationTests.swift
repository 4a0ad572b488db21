import MoltTestSupport
import PluginHost
import Testing

/// The loader reads declared operations (ABI 1.2) from real binaries, and refuses each bad declaration
/// with a message naming the operation and the field.
@Suite struct OperationDeclarationTests {
    @Test func declarationsAreReadInOrderWithTheirSignatures() throws {
        let binary = try Fixtures.loader(with: ["ops-1.0.0.so"]).load(path: "ops-1.0.0.so")
        #expect(binary.info.kind == .binding && binary.info.abiVersion == (1, 3))
        #expect(binary.info.operations.map(\.name)
                == ["add", "count", "divide", "negate", "echo", "mix", "sleep", "fail", "null_string", "bad_utf8", "vsum", "rendezvous", "inside"])
        let echo = try #require(binary.info.operation(named: "echo"))
        #expect(echo.signature == "echo(text: string, data: bytes) -> (upper: string, reversed: bytes, length: int64)")
        #expect(echo.symbol == "ops_echo" && echo.description == "echo (test fixture)" && !echo.blocking && !echo.valuesForm)
        #expect(echo.parameters.first?.type == .string && echo.parameters.last?.type == .bytes)
        #expect(binary.info.operation(named: "sleep")?.blocking == true)
        #expect(binary.info.operation(named: "vsum")?.valuesForm == true)
        #expect(binary.info.operation(named: "count")?.signature == "count() -> (calls: int64)")
    }

    @Test func aLockMayDeclareOperations() throws {
        let binary = try Fixtures.loader(with: ["ops-lock-1.0.0.so"]).load(path: "ops-lock-1.0.0.so")
        #expect(binary.info.kind == .lock)
        #expect(binary.info.operations.map(\.signature) == ["add(a: int64, b: int64) -> (sum: int64)", "count() -> (calls: int64)"])
    }

    @Test func pluginsBuiltBeforeABI12DeclareNone() throws {
        for name in ["memorylock-1.0.0.so", "abi-1-0.so"] {
            #expect(try Fixtures.loader(with: [name]).load(path: name).info.operations.isEmpty)
        }
    }

    /// `name` refused, with exactly `message` after "refusing plugin <path>: ".
    func expectRefusal(_ name: String, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let loader = try Fixtures.loader(with: [name, "ops-1.0.0.so"])
        do {
            _ = try loader.load(path: name)
            Issue.record("\(name) must be refused", sourceLocation: sourceLocation)
        } catch {
            #expect(error.description == "refusing plugin \(loader.pluginsDirectory)/\(name): \(message)", sourceLocation: sourceLocation)
        }
        #expect(try loader.load(path: "ops-1.0.0.so").info.name == "ops", "the loader stays usable", sourceLocation: sourceLocation)
    }

    @Test func anUnknownTypeIsRefusedNamingOperationAndField() throws {
        try expectRefusal("bad-ops-unknown-type.so",
                          "operation 'echo', field 'text': unknown type 9 (MOLT_TYPE_INT64 1, DOUBLE 2, BOOL 3, STRING 4, BYTES 5)")
    }

    @Test func aDuplicateOperationNameIsRefused() throws {
        try expectRefusal("bad-ops-duplicate-name.so", "operation 'echo': declared twice (operation names must be unique)")
    }

    @Test func aMissingSymbolIsRefusedNamingTheOperation() throws {
        try expectRefusal("bad-ops-missing-symbol.so", "missing required symbol bad_ops_absent (the function of declared operation 'echo')")
    }

    @Test func aHiddenSymbolIsExplained() throws {
        try expectRefusal("bad-ops-hidden-symbol.so", "missing required symbol bad_ops_hidden (the function of declared operation 'echo'; "
            + "the library defines it but does not export it (hidden or local symbol): declare it with MOLT_EXPORT (include molt_plugin.h, "
            + "which does), or build without -fvisibility=hidden)")
    }

    @Test func tooManyFieldsAreRefused() throws {
        try expectRefusal("bad-ops-too-many-fields.so", "operation 'echo': declares 17 parameters (limit MOLT_OPERATION_MAX_FIELDS, 16)")
    }

    @Test func aBadOperationNameIsRefused() throws {
        try expectRefusal("bad-ops-bad-name.so", "operation 'Echo': name must match [a-z][a-z0-9_-]{0,63}")
    }

    @Test func aFieldNamedTwiceIsRefused() throws {
        try expectRefusal("bad-ops-duplicate-field.so",
                          "operation 'echo', field 'text': declared twice (names are unique among an operation's parameters and results)")
    }

    @Test func anUndefinedFlagIsRefused() throws {
        try expectRefusal("bad-ops-unknown-flag.so", "operation 'echo': flags 0x4 set bits molt_plugin.h does not define "
            + "(known: MOLT_OPERATION_BLOCKING 0x1, MOLT_OPERATION_VALUES 0x2)")
    }

    @Test func aBindingWithoutOperationsIsRefused() throws {
        try expectRefusal("bad-ops-none.so", "invalid plugin info: kind 'binding' declares no operations (molt_plugin_operations must declare at least one)")
    }

    @Test func nameRules() {
        #expect(isValidOperationName("allow") && isValidOperationName("get-bucket_2") && !isValidOperationName("2go")
                && !isValidOperationName("Allow") && !isValidOperationName("") && !isValidOperationName(String(repeating: "a", count: 65)))
        #expect(isValidFieldName("retryAfterMs") && isValidFieldName("a_1") && !isValidFieldName("Key") && !isValidFieldName("a-b")
                && !isValidFieldName("_a") && isValidFieldName(String(repeating: "a", count: 64)))
    }
}
