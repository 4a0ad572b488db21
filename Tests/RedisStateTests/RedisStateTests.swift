import Engine
import Foundation
import MoltTestSupport
import PluginHost
import Synchronization
import Testing

/// The redis-state plugin end to end: the engine loads the staged plugin, which talks to a real
/// redis-server the test starts on a free loopback port.
@Suite(.serialized) struct RedisStateTests {
    func engine(_ server: RedisServer, _ extra: [String: String] = [:], readinessTimeout: Duration = .seconds(10)) async throws -> Engine {
        let engine = try makeRedisEngine(readinessTimeout: readinessTimeout)
        let added = await engine.apply(redisDefinition(["redisHost": server.address].merging(extra) { $1 }))
        try #require(added.action == .added, "\(added)")
        return engine
    }

    @Test func getSetDeleteWithEtags() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await engine(server)
        let missing = try await engine.getState(store: "statestore", key: "order-1").value
        #expect(!missing.found && missing.value.isEmpty && missing.etag == nil)

        let bytes: [UInt8] = [0x7B, 0x00, 0xFF, 0x7D, 0x0D, 0x0A]  // binary-safe: NUL, 0xFF, CRLF
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "order-1", value: bytes))
        let first = try await engine.getState(store: "statestore", key: "order-1").value
        #expect(first.found && first.value == bytes && first.etag == "1")
        let etag = try #require(first.etag)

        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "order-1", value: [1], etag: etag))
        await expectFailure(Status.etagMismatch, containing: "order-1") {
            _ = try await engine.setState(store: "statestore", StateSetRequest(key: "order-1", value: [2], etag: etag))
        }
        await expectFailure(Status.etagInvalid, containing: "not-a-number") {
            _ = try await engine.setState(store: "statestore", StateSetRequest(key: "order-1", value: [2], etag: "not-a-number"))
        }
        // First-write: without an etag only a new key may be written.
        await expectFailure(Status.etagMismatch) {
            _ = try await engine.setState(store: "statestore", StateSetRequest(key: "order-1", value: [3], concurrency: .firstWrite))
        }
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "order-2", value: [9], concurrency: .firstWrite))
        #expect(try server.cli("HGET", "order-2", "first-write") == "0", "first-write is recorded as Dapr does")
        // Last-write ignores the etag (Dapr).
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "order-2", value: [10], etag: "77", concurrency: .lastWrite))
        #expect(try await engine.getState(store: "statestore", key: "order-1").value.value == [1])

        let current = try #require(try await engine.getState(store: "statestore", key: "order-1").value.etag)
        #expect(current == "2")
        await expectFailure(Status.etagMismatch) {
            _ = try await engine.deleteState(store: "statestore", StateDeleteRequest(key: "order-1", etag: etag))
        }
        _ = try await engine.deleteState(store: "statestore", StateDeleteRequest(key: "order-1", etag: current))
        #expect(try await !engine.getState(store: "statestore", key: "order-1").value.found)
        _ = try await engine.deleteState(store: "statestore", StateDeleteRequest(key: "order-2"))
        #expect(try server.cli("EXISTS", "order-2") == "0")
        await expectFailure(Status.invalidArgument) {
            _ = try await engine.setState(store: "statestore", StateSetRequest(key: "", value: [1]))
        }
        await engine.shutdown()
    }

    @Test func ttlPerRequestAndDefault() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await engine(server)
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "session", value: [1], ttlInSeconds: 1))
        let live = try await engine.getState(store: "statestore", key: "session").value
        let expiry = try #require(live.metadata["ttlExpireTime"])
        #expect(expiry.hasSuffix("Z") && expiry.count == 20, "RFC 3339 UTC, got \(expiry)")
        #expect(Int(try server.cli("TTL", "session")) ?? -9 > 0)
        // -1: never expires (PERSIST).
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "kept", value: [1], ttlInSeconds: 100))
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "kept", value: [2], ttlInSeconds: -1))
        #expect(try server.cli("TTL", "kept") == "-1")
        #expect(try await engine.getState(store: "statestore", key: "kept").value.metadata["ttlExpireTime"] == nil)
        await expectFailure(Status.invalidArgument) {
            _ = try await engine.setState(store: "statestore", StateSetRequest(key: "x", value: [1], ttlInSeconds: 0))
        }
        try await Task.sleep(for: .milliseconds(1300))
        #expect(try await !engine.getState(store: "statestore", key: "session").value.found)

        // The component's default TTL (ttlInSeconds), applied in place.
        let applied = await engine.apply(redisDefinition(["redisHost": server.address, "ttlInSeconds": "100"]))
        #expect(applied.action == .appliedInPlace, "\(applied)")
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "defaulted", value: [1]))
        let ttl = Int(try server.cli("TTL", "defaulted")) ?? -9
        #expect(ttl > 90 && ttl <= 100)
        await engine.shutdown()
    }

    @Test func bulkGetAndTransactions() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await engine(server)
        for key in ["a", "b"] { _ = try await engine.setState(store: "statestore", StateSetRequest(key: key, value: Array(key.utf8))) }
        let items = try await engine.bulkGetState(store: "statestore", keys: ["a", "missing", "b"]).value
        #expect(items.map(\.key) == ["a", "missing", "b"])
        #expect(items.map(\.found) == [true, false, true])
        #expect(items[2].value == Array("b".utf8) && items[2].etag == "1" && items.allSatisfy { $0.error == nil })

        _ = try await engine.transactState(store: "statestore", [
            .set(StateSetRequest(key: "c", value: [3], ttlInSeconds: 50)), .delete(StateDeleteRequest(key: "a")),
        ])
        #expect(try await engine.bulkGetState(store: "statestore", keys: ["a", "c"]).value.map(\.found) == [false, true])
        #expect((Int(try server.cli("TTL", "c")) ?? -9) > 0)

        // One failing operation fails the whole transaction and applies nothing.
        await expectFailure(Status.etagMismatch, containing: "operation 1") {
            _ = try await engine.transactState(store: "statestore", [
                .set(StateSetRequest(key: "d", value: [4])), .delete(StateDeleteRequest(key: "b", etag: "999")),
            ])
        }
        #expect(try await !engine.getState(store: "statestore", key: "d").value.found)
        #expect(try await engine.getState(store: "statestore", key: "b").value.found)
        // Checks see earlier operations of the same transaction.
        _ = try await engine.transactState(store: "statestore", [
            .set(StateSetRequest(key: "b", value: [5], etag: "1")), .set(StateSetRequest(key: "b", value: [6], etag: "2")),
        ])
        let b = try await engine.getState(store: "statestore", key: "b").value
        #expect(b.value == [6] && b.etag == "3")
        await engine.shutdown()
    }

    @Test func daprLayoutInteroperates() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await engine(server)
        // Written by Dapr (or by hand in Dapr's layout), read through the plugin.
        try server.cli("HSET", "myapp||balance", "data", "{\"v\":42}", "version", "7")
        let read = try await engine.getState(store: "statestore", key: "myapp||balance").value
        #expect(read.found && read.value.text == "{\"v\":42}" && read.etag == "7")
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "myapp||balance", value: Array("43".utf8), etag: "7"))
        #expect(try server.cli("HGET", "myapp||balance", "version") == "8")

        // Written through the plugin, read with raw commands.
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "myapp||order", value: Array("hello".utf8)))
        #expect(try server.cli("TYPE", "myapp||order") == "hash")
        #expect(try server.cli("HGET", "myapp||order", "data") == "hello")
        #expect(try server.cli("HGET", "myapp||order", "version") == "1")

        // A plain string written by old Dapr versions reads as a value without an etag, and the
        // next write turns it into a hash.
        try server.cli("SET", "legacy", "old")
        let legacy = try await engine.getState(store: "statestore", key: "legacy").value
        #expect(legacy.found && legacy.value.text == "old" && legacy.etag == nil)
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "legacy", value: Array("new".utf8)))
        #expect(try server.cli("HGET", "legacy", "data") == "new")

        // A key of another type fails that key only.
        try server.cli("LPUSH", "alist", "x")
        await expectFailure(.internal) { _ = try await engine.getState(store: "statestore", key: "alist") }
        let items = try await engine.bulkGetState(store: "statestore", keys: ["alist", "legacy"]).value
        #expect(items[0].error != nil && items[1].found)
        await engine.shutdown()
    }

    /// A Dapr hash, or a missing key, is read with `HMGET` and `PTTL`; only what those cannot settle
    /// (a legacy string, another type, a hash without Dapr's fields) goes to the get script.
    @Test func aDaprHashIsReadWithoutTheScript() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await engine(server)
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "plain", value: Array("v".utf8)))
        try server.cli("CONFIG", "RESETSTAT")
        let read = try await engine.getState(store: "statestore", key: "plain").value
        #expect(read.found && read.value.text == "v" && read.etag == "1" && read.metadata.isEmpty)
        #expect(try await !engine.getState(store: "statestore", key: "nothing").value.found)
        let stats = try server.cli("INFO", "commandstats")
        #expect(stats.contains("cmdstat_hmget:calls=2,") && stats.contains("cmdstat_pttl:calls=2,"), "\(stats)")
        #expect(!stats.contains("cmdstat_evalsha") && !stats.contains("cmdstat_eval:"), "\(stats)")

        try server.cli("HSET", "odd", "other", "1")
        await expectFailure(Status.internal, containing: "BADSTATE") { _ = try await engine.getState(store: "statestore", key: "odd") }
        try server.cli("HSET", "half", "data", "x")
        await expectFailure(Status.internal, containing: "BADSTATE") { _ = try await engine.getState(store: "statestore", key: "half") }
        #expect(try server.cli("INFO", "commandstats").contains("cmdstat_evalsha:calls=2,"))
        await engine.shutdown()
    }

    @Test func tunablesApplyInPlaceAndDatabaseReloads() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await engine(server, ["maxRetries": "3"])
        let before = try await engine.getState(store: "statestore", key: "k")
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "k", value: [1]))

        let inPlace = await engine.apply(redisDefinition(["redisHost": server.address, "maxRetries": "5", "readTimeout": "2s"]))
        #expect(inPlace.action == .appliedInPlace && inPlace.newGeneration == before.generation, "\(inPlace)")
        #expect(try await engine.getState(store: "statestore", key: "k").generation == before.generation)

        let reload = await engine.apply(redisDefinition(["redisHost": server.address, "maxRetries": "5", "readTimeout": "2s", "redisDB": "1"]))
        #expect(reload.action == .reloaded, "\(reload)")
        #expect(reload.warnings.contains { $0.contains("redisDB") }, "\(reload.warnings)")
        let after = try await engine.getState(store: "statestore", key: "k")
        #expect(after.generation > before.generation && !after.value.found, "database 1 is empty")
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "in-db1", value: [1]))
        #expect(try server.cli("-n", "1", "EXISTS", "in-db1") == "1")
        #expect(try server.cli("EXISTS", "in-db1") == "0")

        // Refused values: the instance keeps running unchanged.
        let refused = await engine.apply(redisDefinition(["redisHost": server.address, "redisDB": "1", "enableTLS": "true"]))
        #expect(refused.action == .failed && (refused.error ?? "").contains("enableTLS"), "\(refused)")
        let failover = await engine.apply(redisDefinition(["redisHost": server.address, "redisDB": "1", "failover": "true"]))
        #expect(failover.action == .failed && (failover.error ?? "").contains("failover"), "\(failover)")
        #expect(try await engine.getState(store: "statestore", key: "in-db1").value.found)
        await engine.shutdown()
    }

    @Test func movingToAnotherServerUnderTrafficFailsNoCall() async throws {
        let a = try RedisServer()
        defer { a.stop() }
        let b = try RedisServer()
        defer { b.stop() }
        let engine = try await engine(a)
        let tally = Tally()
        let traffic = Task { [tally] in
            await withTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        var index = 0
                        while !tally.stop.load(ordering: .relaxed) {
                            index += 1
                            do {
                                _ = try await engine.setState(store: "statestore", StateSetRequest(key: "w\(worker)-\(index % 50)", value: [UInt8(index & 0xFF)]))
                                _ = try await engine.getState(store: "statestore", key: "w\(worker)-\(index % 50)")
                                tally.calls.add(2, ordering: .relaxed)
                            } catch {
                                tally.failures.withLock { $0.append("\(error)") }
                            }
                        }
                    }
                }
            }
        }
        let deadline = ContinuousClock.now + .seconds(20)
        while tally.calls.load(ordering: .relaxed) < 200 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        let moved = await engine.apply(redisDefinition(["redisHost": b.address]))
        #expect(moved.action == .reloaded, "\(moved)")
        let atSwitch = tally.calls.load(ordering: .relaxed)
        while tally.calls.load(ordering: .relaxed) < atSwitch + 200 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        tally.stop.store(true, ordering: .relaxed)
        await traffic.value
        #expect(tally.failures.withLock { $0 } == [])
        #expect(engine.leaseViolations == 0)

        // The drained old generation closed its connections to A: only this redis-cli remains
        // (Redis notices a closed socket asynchronously, so give it a moment).
        var clientsOnA = Int.max
        for _ in 0..<100 {
            clientsOnA = try a.cli("CLIENT", "LIST").split(separator: "\n").count
            if clientsOnA == 1 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(clientsOnA == 1, "the old instance's connections to A are closed after the drain")

        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "after-move", value: [1]))
        #expect(try b.cli("EXISTS", "after-move") == "1")
        #expect(try a.cli("EXISTS", "after-move") == "0")
        #expect(Int(try b.cli("DBSIZE")) ?? 0 > 1, "traffic after the switch landed in B")
        await engine.shutdown()
    }

    @Test func reloadToAnUnreachableHostTimesOutAndTheOldInstanceKeepsServing() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await engine(server, readinessTimeout: .milliseconds(800))
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "k", value: [1]))
        let before = try await engine.getState(store: "statestore", key: "k")
        let nowhere = "127.0.0.1:\(try freeLoopbackPort())"
        let result = await engine.apply(redisDefinition(["redisHost": nowhere]))
        #expect(result.action == .failed, "\(result)")
        #expect((result.error ?? "").contains("not ready") && (result.error ?? "").contains(nowhere), "\(result)")
        let after = try await engine.getState(store: "statestore", key: "k")
        #expect(after.value.found && after.generation == before.generation)
        await engine.shutdown()
    }

    @Test func droppedConnectionsReconnect() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await engine(server, ["poolSize": "2"])
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "k", value: [1]))
        try server.cli("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        // Reads are retried on a fresh connection (maxRetries).
        for _ in 0..<4 { #expect(try await engine.getState(store: "statestore", key: "k").value.found) }
        try server.cli("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        // Writes: a connection the server closed while idle is noticed before sending (so the
        // write goes to a fresh connection); one that dies mid-call fails clearly and fast.
        var failed = 0
        for i in 0..<6 {
            do {
                _ = try await engine.setState(store: "statestore", StateSetRequest(key: "w\(i)", value: [1]))
            } catch {
                guard case .plugin(let failure) = error else { Issue.record("\(error)"); continue }
                #expect(failure.status == Status.unavailable && failure.message.contains(server.address), "\(failure)")
                failed += 1
            }
        }
        #expect(failed == 0, "idle connections the server closed are replaced before a write is sent")
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "last", value: [1]))
        await engine.shutdown()
    }

    @Test func aServerThatGoesAwayFailsCallsFastAndIsReconnectedWhenBack() async throws {
        let first = try RedisServer()
        let engine = try await engine(first, ["maxRetries": "1"])
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "k", value: [1]))
        first.stop()
        let started = ContinuousClock.now
        await expectFailure(Status.unavailable, containing: first.address) {
            _ = try await engine.getState(store: "statestore", key: "k")
        }
        await expectFailure(Status.unavailable, containing: first.address) {
            _ = try await engine.setState(store: "statestore", StateSetRequest(key: "k", value: [2]))
        }
        #expect(ContinuousClock.now - started < .seconds(1), "fails fast")

        let second = try RedisServer(reusing: first.port)
        defer { second.stop() }
        let deadline = ContinuousClock.now + .seconds(5)
        var recovered = false
        while !recovered && ContinuousClock.now < deadline {
            recovered = (try? await engine.setState(store: "statestore", StateSetRequest(key: "k", value: [3]))) != nil
            if !recovered { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(recovered, "calls reconnect once the server is back")
        #expect(try second.cli("HGET", "k", "version") == "1")
        await engine.shutdown()
    }

    @Test func aServerThatDoesNotAnswerTimesOutFastAndRecovers() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await engine(server, ["readTimeout": "300ms", "maxRetries": "0"])
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "k", value: [1]))
        try server.cli("CLIENT", "PAUSE", "1500", "ALL")
        let started = ContinuousClock.now
        await expectFailure(Status.timeout, containing: "did not answer in time") {
            _ = try await engine.getState(store: "statestore", key: "k")
        }
        #expect(ContinuousClock.now - started < .milliseconds(1200), "bounded by readTimeout, not by the pause")
        try await Task.sleep(for: .milliseconds(1600))
        #expect(try await engine.getState(store: "statestore", key: "k").value.found, "the next call reconnects")
        await engine.shutdown()
    }

    @Test func aPlainNumberDurationIsSecondsAsInDapr() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await engine(server, ["readTimeout": "1", "maxRetries": "0"])
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "k", value: [1]))
        try server.cli("CLIENT", "PAUSE", "3000", "ALL")
        let started = ContinuousClock.now
        await expectFailure(Status.timeout, containing: "did not answer in time") {
            _ = try await engine.getState(store: "statestore", key: "k")
        }
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(500), "readTimeout \"1\" is one second, not one millisecond (waited \(waited))")
        #expect(waited < .milliseconds(2800), "bounded by readTimeout, not by the pause")
        await engine.shutdown()
    }

    @Test func configurationIsCheckedAndUnsupportedKeysAreRefused() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try makeRedisEngine()
        for (config, word) in [
            (["redisHost": "localhost"], "redisHost"),
            (["redisHost": server.address, "enableTLS": "true"], "enableTLS"),
            (["redisHost": server.address, "redisType": "cluster"], "cluster"),
            (["redisHost": server.address, "dialTimeout": "soon"], "dialTimeout"),
            (["redisHost": server.address, "redisDB": "-1"], "redisDB"),
        ] {
            let result = await engine.apply(redisDefinition(config))
            #expect(result.action == .failed && (result.error ?? "").contains(word), "\(result)")
        }
        // A wrong password never becomes ready, and says so.
        try server.cli("CONFIG", "SET", "requirepass", "secret")
        let wrong = await engine.apply(redisDefinition(["redisHost": server.address, "redisPassword": "nope"]))
        #expect(wrong.action == .failed && (wrong.error ?? "").contains("authentication"), "\(wrong)")
        let right = await engine.apply(redisDefinition(["redisHost": server.address, "redisPassword": "secret", "minIdleConns": "2"]))
        #expect(right.action == .added, "\(right)")
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "k", value: [1]))
        await engine.shutdown()
    }
}

final class Tally: Sendable {
    let failures = Mutex<[String]>([])
    let calls = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
}
