import Engine
import MoltTestSupport
import PluginABI
import PluginHost
import Testing

/// The state operations of the ABI, end to end through the engine, against a real C state plugin
/// (memstate: Dapr's in-memory store semantics), completing inline and from the plugin's own thread.
@Suite struct StateTests {
    static let completions = ["false", "true"]

    func engine(asyncCompletion: String) async throws -> Engine {
        let engine = try makeEngine(["memstate-1.0.0.so"])
        let added = await engine.apply(ComponentDefinition(kind: .state, name: "statestore", plugin: "memstate",
                                                           config: ["asyncCompletion": asyncCompletion]))
        #expect(added.action == .added, "\(added)")
        return engine
    }

    func expectFailure(_ status: PluginStatus, containing text: String, _ body: () async throws -> Void,
                       sourceLocation: SourceLocation = #_sourceLocation) async {
        do {
            try await body()
            Issue.record("expected \(status.rawValue)", sourceLocation: sourceLocation)
        } catch {
            guard case .plugin(let failure)? = error as? CallError else { Issue.record("\(error)", sourceLocation: sourceLocation); return }
            #expect(failure.status == status && !failure.message.isEmpty && (text.isEmpty || failure.message.contains(text)), "\(failure)", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: completions)
    func getSetDeleteWithEtags(asyncCompletion: String) async throws {
        let engine = try await engine(asyncCompletion: asyncCompletion)
        let missing = try await engine.getState(store: "statestore", key: "order-1").value
        #expect(!missing.found && missing.value.isEmpty && missing.etag == nil, "a missing key is empty, not an error")

        let bytes: [UInt8] = [0x7B, 0x00, 0xFF, 0x7D]  // values are bytes, NUL included
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "order-1", value: bytes))
        let first = try await engine.getState(store: "statestore", key: "order-1").value
        #expect(first.found && first.value == bytes)
        let etag = try #require(first.etag)

        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "order-1", value: [1], etag: etag))
        await expectFailure(.etagMismatch, containing: "etag") {
            _ = try await engine.setState(store: "statestore", StateSetRequest(key: "order-1", value: [2], etag: etag))
        }
        await expectFailure(.etagInvalid, containing: "") {
            _ = try await engine.setState(store: "statestore", StateSetRequest(key: "order-1", value: [2], etag: "not-a-number"))
        }
        await expectFailure(.etagMismatch, containing: "") {
            _ = try await engine.setState(store: "statestore", StateSetRequest(key: "order-1", value: [3], concurrency: .firstWrite))
        }
        #expect(try await engine.getState(store: "statestore", key: "order-1").value.value == [1])

        let current = try #require(try await engine.getState(store: "statestore", key: "order-1").value.etag)
        await expectFailure(.etagMismatch, containing: "") {
            _ = try await engine.deleteState(store: "statestore", StateDeleteRequest(key: "order-1", etag: etag))
        }
        _ = try await engine.deleteState(store: "statestore", StateDeleteRequest(key: "order-1", etag: current))
        #expect(try await !engine.getState(store: "statestore", key: "order-1").value.found)
        await expectFailure(.invalidArgument, containing: "") {
            _ = try await engine.setState(store: "statestore", StateSetRequest(key: "", value: [1]))
        }
    }

    @Test(arguments: completions)
    func bulkGetAndTransactions(asyncCompletion: String) async throws {
        let engine = try await engine(asyncCompletion: asyncCompletion)
        for key in ["a", "b"] { _ = try await engine.setState(store: "statestore", StateSetRequest(key: key, value: Array(key.utf8))) }
        let items = try await engine.bulkGetState(store: "statestore", keys: ["a", "missing", "b"]).value
        #expect(items.map(\.key) == ["a", "missing", "b"])
        #expect(items.map(\.found) == [true, false, true])
        #expect(items[2].value == Array("b".utf8) && items[2].etag != nil && items.allSatisfy { $0.error == nil })

        _ = try await engine.transactState(store: "statestore", [
            .set(StateSetRequest(key: "c", value: [3])), .delete(StateDeleteRequest(key: "a")),
        ])
        #expect(try await engine.bulkGetState(store: "statestore", keys: ["a", "c"]).value.map(\.found) == [false, true])

        // One failing operation fails the whole transaction and applies nothing.
        await expectFailure(.etagMismatch, containing: "") {
            _ = try await engine.transactState(store: "statestore", [
                .set(StateSetRequest(key: "d", value: [4])), .delete(StateDeleteRequest(key: "b", etag: "999")),
            ])
        }
        #expect(try await !engine.getState(store: "statestore", key: "d").value.found)
        #expect(try await engine.getState(store: "statestore", key: "b").value.found)
    }

    @Test func perRequestTTLIsReportedAndExpires() async throws {
        let engine = try await engine(asyncCompletion: "false")
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "session", value: [1], ttlInSeconds: 1))
        let live = try await engine.getState(store: "statestore", key: "session").value
        #expect(live.found && live.metadata["ttlExpireTime"] != nil)
        await expectFailure(.invalidArgument, containing: "") {
            _ = try await engine.setState(store: "statestore", StateSetRequest(key: "x", value: [1], ttlInSeconds: 0))
        }
        try await Task.sleep(for: .milliseconds(1100))
        #expect(try await !engine.getState(store: "statestore", key: "session").value.found)
    }

    @Test func aLockCallOnAStateStoreIsAnUnknownComponent() async throws {
        let engine = try await engine(asyncCompletion: "false")
        await #expect(throws: CallError.unknownComponent(ComponentKey(kind: .lock, name: "statestore"))) {
            _ = try await engine.tryLock(store: "statestore", resource: "r", owner: "o", expiryInSeconds: 5)
        }
    }

    @Test func stateTrafficSurvivesReloadsWithAsyncCompletion() async throws {
        let engine = try await engine(asyncCompletion: "true")
        let failures = Shared()
        let stop = Shared()
        let writers = Task {
            await withTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        var index = 0
                        while !stop.isSet {
                            index += 1
                            do {
                                _ = try await engine.setState(store: "statestore", StateSetRequest(key: "w\(worker)-\(index)", value: [UInt8(index & 0xFF)]))
                                _ = try await engine.getState(store: "statestore", key: "w\(worker)-\(index)")
                            } catch {
                                failures.items.withLock { $0.append("\(error)") }
                            }
                        }
                    }
                }
            }
        }
        for round in 1...20 {
            try await Task.sleep(for: .milliseconds(5))
            let result = await engine.apply(ComponentDefinition(kind: .state, name: "statestore", plugin: "memstate",
                                                                config: ["asyncCompletion": "true", "note": "round \(round)"]))
            #expect(result.action == .reloaded, "\(result)")
        }
        stop.flag.store(true, ordering: .releasing)
        await writers.value
        #expect(failures.items.withLock { $0 } == [])
        #expect(engine.leaseViolations == 0)
    }
}
