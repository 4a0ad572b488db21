import Foundation
import MoltTestSupport
import PluginHost
import Testing

/// Calls of declared operations on a real instance of ops.c: every type marshalled both ways (libffi's C form
/// and the values form), arguments checked before the plugin runs, bad results refused, plugin errors mapped,
/// blocking operations off the cooperative pool.
@Suite struct OperationCallTests {
    static func instance(_ name: String = "ops-1.0.0.so") throws -> PluginInstance {
        let binary = try Fixtures.loader(with: [name]).load(path: name)
        return try PluginInstance(binary: binary, componentName: "ops", config: [:], logger: .init(label: "test"))
    }

    /// The error of a call expected to fail.
    func failure(_ instance: PluginInstance, _ operation: String, _ arguments: [String: OperationValue]) async -> OperationCallError? {
        do {
            let results = try await instance.invoke(operation: operation, arguments: arguments)
            Issue.record("\(operation) must fail, returned \(results)")
            return nil
        } catch {
            return error
        }
    }

    @Test func integersDoublesAndBools() async throws {
        let ops = try Self.instance()
        defer { ops.destroy() }
        #expect(try await ops.invoke(operation: "add", arguments: ["a": .int64(2), "b": .int64(40)]) == ["sum": .int64(42)])
        #expect(try await ops.invoke(operation: "add", arguments: ["a": .int64(Int64.min), "b": .int64(-0)]) == ["sum": .int64(Int64.min)])
        #expect(try await ops.invoke(operation: "divide", arguments: ["x": .double(1), "y": .double(4)]) == ["q": .double(0.25)])
        // An integer is taken for a double when the double holds it exactly.
        #expect(try await ops.invoke(operation: "divide", arguments: ["x": .int64(3), "y": .double(-2)]) == ["q": .double(-1.5)])
        #expect(try await ops.invoke(operation: "negate", arguments: ["flag": .bool(true)]) == ["result": .bool(false)])
        #expect(try await ops.invoke(operation: "negate", arguments: ["flag": .bool(false)]) == ["result": .bool(true)])
    }

    @Test func stringsAndBytesBothWays() async throws {
        let ops = try Self.instance()
        defer { ops.destroy() }
        let echoed = try await ops.invoke(operation: "echo", arguments: ["text": .string("héllo, wörld"), "data": .bytes([1, 2, 3, 0, 255])])
        #expect(echoed == ["upper": .string("HéLLO, WöRLD"), "reversed": .bytes([255, 0, 3, 2, 1]), "length": .int64(14 + 5)])
        // Empty string and bytes: the plugin gets "" and (NULL, 0), and returns NULL with length 0 for empty bytes.
        #expect(try await ops.invoke(operation: "echo", arguments: ["text": .string(""), "data": .bytes([])])
                == ["upper": .string(""), "reversed": .bytes([]), "length": .int64(0)])
        // The limits are inclusive.
        let longest = String(repeating: "a", count: OperationLimits.maxStringArgumentBytes)
        let large = [UInt8](repeating: 7, count: OperationLimits.maxBytesArgumentBytes)
        let big = try await ops.invoke(operation: "echo", arguments: ["text": .string(longest), "data": .bytes(large)])
        #expect(big["upper"] == .string(longest.uppercased()) && big["reversed"] == .bytes(large))
    }

    @Test func everyTypeInOneCallKeepsTheArgumentOrder() async throws {
        let ops = try Self.instance()
        defer { ops.destroy() }
        let mixed = try await ops.invoke(operation: "mix", arguments: [
            "i": .int64(-7), "y": .bytes([9, 8]), "d": .double(2.5), "s": .string("x y"), "b": .bool(true),
        ])
        #expect(mixed == ["summary": .string("i=-7 y=2 d=2.5 s=x y b=1"), "bytesOut": .bytes([9, 8]), "iOut": .int64(-7),
                          "dOut": .double(2.5), "bOut": .bool(true)])
    }

    @Test func theValuesForm() async throws {
        let ops = try Self.instance()
        defer { ops.destroy() }
        let results = try await ops.invoke(operation: "vsum", arguments: [
            "a": .int64(2), "b": .double(0.5), "label": .string("lbl"), "data": .bytes([1, 2]), "flag": .bool(false),
        ])
        #expect(results == ["total": .double(2.5), "tagged": .string("[lbl]"), "doubled": .bytes([1, 2, 1, 2]), "inverted": .bool(true)])
        let empty = try await ops.invoke(operation: "vsum", arguments: [
            "a": .int64(0), "b": .double(0), "label": .string(""), "data": .bytes([]), "flag": .bool(true),
        ])
        #expect(empty == ["total": .double(0), "tagged": .string("[]"), "doubled": .bytes([]), "inverted": .bool(false)])
    }

    @Test func eachInstanceHasItsOwnState() async throws {
        let first = try Self.instance(), second = try Self.instance()
        defer { first.destroy(); second.destroy() }
        #expect(try await first.invoke(operation: "count", arguments: [:]) == ["calls": .int64(1)])
        #expect(try await first.invoke(operation: "count", arguments: [:]) == ["calls": .int64(2)])
        #expect(try await second.invoke(operation: "count", arguments: [:]) == ["calls": .int64(1)])
    }

    @Test func argumentsAreCheckedBeforeThePluginRuns() async throws {
        let ops = try Self.instance()
        defer { ops.destroy() }
        let cases: [(String, [String: OperationValue], String)] = [
            ("nope", [:], "ops@1.0.0 has no operation 'nope' (operations: add, count, divide, negate, echo, mix, sleep, fail, null_string, bad_utf8, vsum, rendezvous, inside)"),
            ("add", ["a": .int64(1)], "operation add: missing argument 'b' (int64)"),
            ("add", ["a": .int64(1), "b": .int64(2), "c": .int64(3)], "operation add: unknown argument 'c' (parameters: a: int64, b: int64)"),
            ("count", ["x": .bool(true), "a": .bool(true)], "operation count: unknown arguments 'a', 'x' (it takes none)"),
            ("add", ["a": .string("1"), "b": .int64(2)], "operation add: argument 'a' must be int64, not string"),
            ("add", ["a": .double(1), "b": .int64(2)], "operation add: argument 'a' must be int64, not double"),
            ("negate", ["flag": .int64(1)], "operation negate: argument 'flag' must be bool, not int64"),
            ("echo", ["text": .bytes([65]), "data": .bytes([])], "operation echo: argument 'text' must be string, not bytes"),
            ("echo", ["text": .string("a\u{0}b"), "data": .bytes([])], "operation echo: argument 'text' contains a NUL character"),
            ("echo", ["text": .string(String(repeating: "é", count: 32769)), "data": .bytes([])],
             "operation echo: argument 'text' is 65538 bytes (a string argument is limited to 65536)"),
            ("echo", ["text": .string(""), "data": .bytes([UInt8](repeating: 0, count: (1 << 20) + 1))],
             "operation echo: argument 'data' is 1048577 bytes (a bytes argument is limited to 1048576)"),
            ("divide", ["x": .double(.nan), "y": .double(1)], "operation divide: argument 'x' must be a finite double, not nan"),
            ("divide", ["x": .double(-.infinity), "y": .double(1)], "operation divide: argument 'x' must be a finite double, not -inf"),
            ("divide", ["x": .int64(.max), "y": .double(1)],
             "operation divide: argument 'x' (double) cannot hold the integer 9223372036854775807 exactly"),
        ]
        for (operation, arguments, message) in cases {
            #expect(await failure(ops, operation, arguments) == .invalidRequest(message))
        }
        // Nothing reached the plugin: its counter is untouched by the refused calls.
        #expect(try await ops.invoke(operation: "count", arguments: [:]) == ["calls": .int64(1)])
    }

    @Test func pluginErrorsComeWithTheirStatusAndMessage() async throws {
        let ops = try Self.instance()
        defer { ops.destroy() }
        #expect(await failure(ops, "add", ["a": .int64(.max), "b": .int64(1)])
                == .plugin(PluginError(.invalidArgument, "add: 9223372036854775807 + 1 overflows int64")))
        // A failed call's results are freed and ignored (fail allocates `partial` before failing).
        #expect(await failure(ops, "fail", ["code": .int64(4), "message": .string("backend down")])
                == .plugin(PluginError(.unavailable, "backend down")))
        #expect(await failure(ops, "fail", ["code": .int64(99), "message": .string("odd")]) == .plugin(PluginError(.internal, "odd")))
        #expect(await failure(ops, "fail", ["code": .int64(6), "message": .string("")])
                == .plugin(PluginError(.unsupported, "operation fail failed")))
    }

    @Test func badResultsAreRefused() async throws {
        let ops = try Self.instance()
        defer { ops.destroy() }
        #expect(await failure(ops, "null_string", [:]) == .plugin(PluginError(
            .invalidArgument, "operation null_string returned an invalid result 'text' (string): NULL (a string result must be set)")))
        #expect(await failure(ops, "bad_utf8", [:]) == .plugin(PluginError(
            .invalidArgument, "operation bad_utf8 returned an invalid result 'text' (string): not valid UTF-8")))
        #expect(await failure(ops, "divide", ["x": .double(1), "y": .double(0)]) == .plugin(PluginError(
            .invalidArgument, "operation divide returned an invalid result 'q' (double): inf (doubles must be finite)")))
        // The instance keeps serving.
        #expect(try await ops.invoke(operation: "add", arguments: ["a": .int64(1), "b": .int64(1)]) == ["sum": .int64(2)])
    }

    /// Blocking calls wait in the plugin for one another (`rendezvous`: it returns once `parties` callers are
    /// inside at once): more of them than the cooperative pool has threads all meet, and while all but one are
    /// parked there an inline call is served. Parked on the cooperative pool (one thread per CPU) they could never
    /// meet, and nothing else would run. No timing involved but the plugin's 20 s give-up.
    @Test func blockingOperationsRunOffTheCooperativePool() async throws {
        let ops = try Self.instance()
        defer { ops.destroy() }
        let parties = 2 * max(2, ProcessInfo.processInfo.activeProcessorCount) + 1
        let arguments: [String: OperationValue] = ["parties": .int64(Int64(parties)), "timeout_ms": .int64(20_000)]
        try await withThrowingTaskGroup(of: [String: OperationValue].self) { group in
            for _ in 1..<parties { group.addTask { try await ops.invoke(operation: "rendezvous", arguments: arguments) } }
            // All but one are parked in the plugin, and inline calls are served meanwhile.
            let clock = ContinuousClock(), started = clock.now
            while try await ops.invoke(operation: "inside", arguments: [:]) != ["waiting": .int64(Int64(parties - 1))] {
                guard clock.now - started < .seconds(15) else { Issue.record("the blocking calls never all got into the plugin"); break }
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(try await ops.invoke(operation: "add", arguments: ["a": .int64(1), "b": .int64(2)]) == ["sum": .int64(3)])
            group.addTask { try await ops.invoke(operation: "rendezvous", arguments: arguments) }
            for try await results in group {
                #expect(results == ["met": .bool(true), "seen": .int64(Int64(parties))])
            }
        }
    }
}
