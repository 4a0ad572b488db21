import Engine
import Foundation
import MoltTestSupport
import PluginHost
import Synchronization
import Testing

/// Many calls at once on redis-state's few connections (each on one of the host's event loops):
/// a connection pipelines them and matches the replies to the calls in order; a reload or a
/// shutdown with calls in flight completes every call and leaves no connection open.
@Suite(.serialized) struct InFlightCallsTests {
    static let count = 300

    @Test func manyCallsInFlightOnOneConnectionPerLoopEachGetTheirOwnReply() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await redisEngine(server, ["poolSize": "1"])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<Self.count {
                group.addTask { _ = try await engine.setState(store: "statestore", StateSetRequest(key: "k\(i)", value: Array("value-\(i)".utf8))) }
            }
            try await group.waitForAll()
        }
        let connections = try server.clientCount()
        #expect(connections <= ProcessInfo.processInfo.activeProcessorCount, "poolSize 1: one connection per host loop, got \(connections)")

        // Redis holds every reply while paused, so all the gets are in flight at once on those connections.
        try server.cli("CLIENT", "PAUSE", "500", "ALL")
        let started = ContinuousClock.now
        let values = try await withThrowingTaskGroup(of: (Int, [UInt8], String?).self) { group in
            for i in 0..<Self.count {
                group.addTask {
                    let got = try await engine.getState(store: "statestore", key: "k\(i)").value
                    return (i, got.value, got.etag)
                }
            }
            var values: [Int: ([UInt8], String?)] = [:]
            for try await (i, value, etag) in group { values[i] = (value, etag) }
            return values
        }
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(400), "the replies waited for the pause: every call was in flight at once (\(waited))")
        let wrong = (0..<Self.count).filter { values[$0]?.0 != Array("value-\($0)".utf8) || values[$0]?.1 != "1" }
        #expect(wrong.isEmpty, "calls that got another call's reply: \(wrong.prefix(10))")

        // One call of many commands (a bulk get) beside many calls of one.
        try server.cli("CLIENT", "PAUSE", "300", "ALL")
        async let bulk = engine.bulkGetState(store: "statestore", keys: (0..<Self.count).map { "k\($0)" })
        let singles = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in stride(from: 0, to: Self.count, by: 7) {
                group.addTask { try await engine.getState(store: "statestore", key: "k\(i)").value.value == Array("value-\(i)".utf8) }
            }
            return try await group.reduce(true) { $0 && $1 }
        }
        let items = try await bulk.value
        #expect(singles && items.count == Self.count)
        #expect(items.enumerated().allSatisfy { $1.key == "k\($0)" && $1.value == Array("value-\($0)".utf8) })
        await engine.shutdown()
    }

    @Test func aFlushedScriptCacheMakesCallsInFlightRunAgainWithEval() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await redisEngine(server, ["poolSize": "1"])
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "kept", value: [7]))
        try server.cli("SCRIPT", "FLUSH")
        // Every call is answered NOSCRIPT at first, and runs again.
        let tally = Tally()
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<100 {
                group.addTask {
                    do {
                        if i % 2 == 0 {
                            _ = try await engine.setState(store: "statestore", StateSetRequest(key: "s\(i)", value: [UInt8(i)]))
                        } else {
                            #expect(try await engine.getState(store: "statestore", key: "kept").value.value == [7])
                        }
                    } catch {
                        tally.failures.withLock { $0.append("\(error)") }
                    }
                }
            }
        }
        #expect(tally.failures.withLock { $0 } == [])
        #expect(try server.cli("HGET", "s98", "version") == "1", "each write applied once")
        await engine.shutdown()
    }

    @Test func reloadAndShutdownWithCallsInFlightCompleteEveryCallAndCloseEveryConnection() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await redisEngine(server)
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "k", value: [1]))

        // Calls held by a paused Redis while a reload replaces the pool: the old one finishes them.
        try server.cli("CLIENT", "PAUSE", "600", "ALL")
        let first = Task { await Self.gets(engine, 64) }
        try await Task.sleep(for: .milliseconds(100))
        let reloaded = await engine.apply(redisDefinition(["redisHost": server.address, "redisDB": "1"]))
        #expect(reloaded.action == .reloaded, "\(reloaded)")
        let (found, failed) = await first.value
        #expect(found == 64 && failed == [], "the old generation completed its calls: \(failed.prefix(3))")
        #expect(await Self.settles { try server.clientCount() == 4 }, "the old pool's 4 connections are closed, the new one's are open")

        // Shutdown with calls in flight: they complete, then every connection is closed.
        try server.cli("CLIENT", "PAUSE", "600", "ALL")
        let second = Task { await Self.gets(engine, 64) }
        try await Task.sleep(for: .milliseconds(100))
        let abandoned = await engine.shutdown()
        let (_, outcomes) = await second.value
        #expect(abandoned.isEmpty && outcomes.count == 64 && outcomes.allSatisfy { $0 == "not found" }, "database 1 has no k; \(outcomes.prefix(3))")
        #expect(await Self.settles { try server.clientCount() == 0 }, "destroy closed every connection")
    }

    @Test func shutdownWhileRedisIsFrozenReturnsOnceTheCallsTimedOut() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let engine = try await redisEngine(server, ["readTimeout": "500ms", "maxRetries": "0"])
        _ = try await engine.setState(store: "statestore", StateSetRequest(key: "k", value: [1]))
        server.freeze()
        defer { server.thaw() }
        let calls = Task { await Self.gets(engine, 32) }
        try await Task.sleep(for: .milliseconds(100))
        let started = ContinuousClock.now
        let abandoned = await engine.shutdown()
        let took = ContinuousClock.now - started
        let (found, failed) = await calls.value
        #expect(found == 0 && failed.count == 32 && failed.allSatisfy { $0.contains("did not answer in time") }, "\(failed.prefix(3))")
        #expect(abandoned.isEmpty)
        #expect(took < .seconds(3), "destroy waits for the streams and timers, not for Redis (\(took))")
    }

    /// `count` concurrent gets of "k": how many found it, and the errors of the others.
    static func gets(_ engine: Engine, _ count: Int) async -> (found: Int, failed: [String]) {
        await withTaskGroup(of: String?.self) { group in
            for _ in 0..<count {
                group.addTask {
                    do {
                        return try await engine.getState(store: "statestore", key: "k").value.found ? nil : "not found"
                    } catch {
                        return "\(error)"
                    }
                }
            }
            var found = 0
            var failed: [String] = []
            for await outcome in group {
                if let outcome { failed.append(outcome) } else { found += 1 }
            }
            return (found, failed)
        }
    }

    /// Whether `condition` holds within a second (Redis notices closed sockets asynchronously).
    static func settles(_ condition: () throws -> Bool) async -> Bool {
        for _ in 0..<100 {
            if (try? condition()) == true { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }
}
