import PluginABI
@testable import PluginKit
@testable import PluginKitOperations
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Calls through the exported thunks with molt_value arrays, as the host makes them: the method runs on
/// the instance passed, results come back malloc()ed (OperationHost frees them with free()), failures
/// are a status and a message, and bad input from the host is refused, never trapped on.
@Suite struct OperationCallTests {
    @Test func aThunkCallsTheMethodOnTheInstanceItIsGiven() {
        let first = OperationHost.instance(offset: 0), second = OperationHost.instance(offset: 100)
        defer { _moltPluginDestroy(first); _moltPluginDestroy(second) }
        let add = OperationHost.call("add", on: first, [.int64(2), .int64(3)])
        #expect(add.status == MOLT_OK && add.results == [.int64(5)] && add.message.isEmpty)
        #expect(OperationHost.call("add", on: second, [.int64(2), .int64(3)]).results == [.int64(105)])
        #expect(OperationHost.call("calls", on: first, []).results == [.int64(1)])
        #expect(OperationHost.call("forget", on: first, [.string("x")]).status == MOLT_OK)
        #expect(OperationHost.call("calls", on: first, []).results == [.int64(2)], "a Void method ran too")
        #expect(OperationHost.call("calls", on: second, []).results == [.int64(1)])
    }

    @Test func everyTypeCrossesBothWays() {
        let instance = OperationHost.instance()
        defer { _moltPluginDestroy(instance) }
        let answer = OperationHost.call("describe", on: instance, [.bool(true), .double(0.25), .string("héllo"), .bytes([1, 2, 3])])
        #expect(answer.status == MOLT_OK)
        #expect(answer.results == [.string("true 0.25 héllo 3"), .bytes([3, 2, 1]), .bool(false)])
        let empty = OperationHost.call("describe", on: instance, [.bool(false), .double(-1), .string(""), .bytes([])])
        #expect(empty.results == [.string("false -1.0  0"), .bytes([]), .bool(true)], "empty bytes: NULL, length 0")
        #expect(OperationHost.call("split", on: instance, [.int64(17), .int64(5)]).results == [.int64(3), .int64(2)])
        #expect(OperationHost.call("ratio", on: instance, [.double(4)]).results == [.double(0.25)])
    }

    @Test func aThrownPluginErrorIsTheStatusAndMessage() {
        let instance = OperationHost.instance()
        defer { _moltPluginDestroy(instance) }
        let overflow = OperationHost.call("add", on: instance, [.int64(.max), .int64(1)])
        #expect(overflow.status == MOLT_ERR_INVALID_ARGUMENT && overflow.message == "9223372036854775807 + 1 overflows int64")
        let zero = OperationHost.call("split", on: instance, [.int64(1), .int64(0)])
        #expect(zero.status == MOLT_ERR_INVALID_ARGUMENT && zero.message == "division by zero", "untyped throws keeps a PluginError")
        let refused = OperationHost.call("refuse", on: instance, [])
        #expect(refused.status == MOLT_ERR_UNAVAILABLE && refused.message == "backend down")
        #expect(refused.results == [nil, nil], "results of a failed call are left NULL")
        let other = OperationHost.call("crash-free", on: instance, [])
        #expect(other.status == MOLT_ERR_INTERNAL && other.message == "operation 'crash-free' failed: Oops()")
    }

    @Test func aResultTheABICannotCarryFailsAndFreesTheResultsAlreadyMade() {
        let instance = OperationHost.instance()
        defer { _moltPluginDestroy(instance) }
        let nul = OperationHost.call("nul", on: instance, [])
        #expect(nul.status == MOLT_ERR_INTERNAL && nul.message == "result 'text' contains a NUL character, which a C string cannot hold")
        #expect(nul.results == [nil, nil], "the first result was allocated, then freed and zeroed")
        let infinite = OperationHost.call("ratio", on: instance, [.double(0)])
        #expect(infinite.status == MOLT_ERR_INTERNAL && infinite.message == "result 'inverse' is inf; a double result must be finite")
    }

    @Test func badInputFromTheHostIsRefusedWithAMessage() {
        let instance = OperationHost.instance()
        defer { _moltPluginDestroy(instance) }
        let forget = OperationHost.thunk("forget"), add = OperationHost.thunk("add"), describe = OperationHost.thunk("describe")

        var null = molt_value()
        null.type = MOLT_TYPE_STRING
        let nullString = OperationHost.call(forget, on: instance, [null], resultTypes: [])
        #expect(nullString.status == MOLT_ERR_INVALID_ARGUMENT && nullString.message == "parameter 'text' is NULL")

        var invalid = molt_value()
        invalid.type = MOLT_TYPE_STRING
        invalid.as.string = UnsafePointer(strdup("\u{FF}")!)  // strdup'd here, then overwritten with bad UTF-8
        UnsafeMutablePointer(mutating: invalid.as.string!).withMemoryRebound(to: UInt8.self, capacity: 2) { $0[0] = 0xC3; $0[1] = 0x28 }
        let badUTF8 = OperationHost.call(forget, on: instance, [invalid], resultTypes: [])
        #expect(badUTF8.status == MOLT_ERR_INVALID_ARGUMENT && badUTF8.message == "parameter 'text' is not valid UTF-8")

        let wrongType = OperationHost.call("add", on: instance, [.int64(1), .string("2")])
        #expect(wrongType.status == MOLT_ERR_INVALID_ARGUMENT)
        #expect(wrongType.message == "operation 'add': parameter 'b' is passed as string, declared int64")
        let wrongResult = OperationHost.call("add", on: instance, [.int64(1), .int64(2)], results: [42])
        #expect(wrongResult.status == MOLT_ERR_INVALID_ARGUMENT)
        #expect(wrongResult.message == "operation 'add': result 'sum' is passed as type 42, declared int64")

        var bytes = molt_value()
        bytes.type = MOLT_TYPE_BYTES
        bytes.as.bytes = molt_bytes(data: nil, length: 3)
        let parameters = [OperationHost.value(.bool(true)), OperationHost.value(.double(1)), OperationHost.value(.string("t")), bytes]
        let nullBytes = OperationHost.call(describe, on: instance, parameters, resultTypes: [MOLT_TYPE_STRING, MOLT_TYPE_BYTES, MOLT_TYPE_BOOL])
        #expect(nullBytes.status == MOLT_ERR_INVALID_ARGUMENT && nullBytes.message == "parameter 'data' is NULL with length 3")

        var two = OperationHost.value(.bool(true))
        withUnsafeMutableBytes(of: &two) { $0[MemoryLayout<molt_value>.offset(of: \.as)!] = 2 }  // a C bool that is not 0 or 1
        let odd = OperationHost.call(describe, on: instance, [two, OperationHost.value(.double(1)), OperationHost.value(.string("t")),
                                                             OperationHost.value(.bytes([]))],
                                     resultTypes: [MOLT_TYPE_STRING, MOLT_TYPE_BYTES, MOLT_TYPE_BOOL])
        #expect(odd.status == MOLT_OK && odd.results.first == .string("true 1.0 t 0"))

        let noInstance = OperationHost.call("add", on: nil, [.int64(1), .int64(2)])
        #expect(noInstance.status == MOLT_ERR_INVALID_ARGUMENT && noInstance.message == "operation 'add': instance is NULL")
        var text = [CChar](repeating: 0, count: 64)
        let noParameters = text.withUnsafeMutableBufferPointer { buffer in
            var message = molt_message(text: buffer.baseAddress, capacity: 64)
            return add(instance, nil, nil, &message)
        }
        #expect(noParameters == MOLT_ERR_INVALID_ARGUMENT)
        #expect(text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } == "operation 'add': parameters is NULL")
        var noBuffer = molt_message(text: nil, capacity: 0)
        #expect(add(instance, nil, nil, &noBuffer) == MOLT_ERR_INVALID_ARGUMENT, "a NULL message buffer is not written")
        #expect(add(instance, nil, nil, nil) == MOLT_ERR_INVALID_ARGUMENT, "nor a NULL message")
        let beyond = OperationHost.call(operationThunks[15], on: instance, [], resultTypes: [])
        #expect(beyond.status == MOLT_ERR_UNSUPPORTED && beyond.message == "molt_pluginkit_operation_15: this plugin declares 9 operations")
        #expect(OperationHost.call("add", on: instance, [.int64(1), .int64(2)], capacity: 8).status == MOLT_OK)
        let short = OperationHost.call("refuse", on: instance, [], capacity: 8)
        #expect(short.message == "backend", "a message is truncated to the host's capacity")
    }

    @Test func callsFromManyThreadsAtOnceEachGetTheirOwnAnswer() async {
        let instance = OperationHost.instance()
        defer { _moltPluginDestroy(instance) }
        let address = UInt(bitPattern: instance)  // a raw pointer is not Sendable; the instance is
        let wrong = await withTaskGroup(of: Int.self) { group in
            for task in 0..<4 {
                group.addTask {
                    let instance = UnsafeMutableRawPointer(bitPattern: address)
                    var wrong = 0
                    for i in 0..<500 {
                        let text = "t\(task)-\(i)"
                        let answer = OperationHost.call("describe", on: instance, [.bool(true), .double(1), .string(text), .bytes([UInt8(i & 0xFF)])])
                        if answer.results != [.string("true 1.0 \(text) 1"), .bytes([UInt8(i & 0xFF)]), .bool(false)] { wrong += 1 }
                    }
                    return wrong
                }
            }
            return await group.reduce(0, +)
        }
        #expect(wrong == 0)
    }

    @Test func everyThunkIsExportedUnderItsDeclaredName() {
        #expect(operationThunks.count == OperationTable.maxOperations)
        #if canImport(Glibc)
        // The test binary is not linked with -rdynamic everywhere; when it exports symbols, they are these.
        if let handle = dlopen(nil, RTLD_NOW), let first = dlsym(handle, "molt_pluginkit_operation_0") {
            #expect(first == unsafeBitCast(operationThunks[0], to: UnsafeMutableRawPointer.self))
        }
        #endif
    }
}
