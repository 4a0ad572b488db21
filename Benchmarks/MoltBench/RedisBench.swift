import ArgumentParser
import CHiredis
import Engine
import Glibc
import PluginHost
import Synchronization

/// `redis`: the RedisState plugin through the engine vs direct hiredis from the same process, at
/// several concurrencies, against a redis-server this benchmark starts on a free loopback port; then
/// the duration of a DR switch (redisHost A → B) under load, with the failed calls counted.
///
/// Direct baseline: one thread per client, each with its own blocking hiredis connection, sending
/// `HMGET key data version` (get) and `HSET key data … version …` (set): the least a client must do
/// for Dapr's layout. The plugin does more per call inside Redis (one Lua script: TYPE, PTTL, HMGET
/// for a get; version check + HSET for a set), so "added" includes that server-side work too.
struct RedisBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "redis", abstract: "RedisState vs direct hiredis; DR switch under load.")

    @OptionGroup var plugins: PluginOptions
    @Option(help: "Calls per client per measurement.") var calls = 2000
    @Option(help: "Concurrencies to measure.") var concurrency: [Int] = [1, 16, 64]

    func run() async throws {
        var result = BenchResult("redis")
        let primary = try RedisProcess()
        defer { primary.stop() }
        let secondary = try RedisProcess()
        defer { secondary.stop() }
        let directory = try plugins.makePluginsDirectory(["redis-state-1.0.0.so"])
        var settings = EngineSettings()
        settings.readinessInterval = .milliseconds(1)
        let engine = try directory.engine(settings: settings)
        let added = await engine.apply(ComponentDefinition(kind: .state, name: "store", plugin: "redis-state",
                                                           config: ["redisHost": primary.address, "poolSize": "8"]))
        guard added.action == .added else { throw BenchError("\(added)") }
        _ = try await engine.setState(store: "store", StateSetRequest(key: "bench", value: Array(repeating: 0x61, count: 64)))

        for clients in concurrency {
            for operation in ["get", "set"] {
                let direct = try DirectLoad.run(port: primary.port, clients: clients, calls: calls, operation: operation)
                let plugin = await Self.pluginLoad(engine: engine, clients: clients, calls: calls, operation: operation)
                guard plugin.failures == 0 else { throw BenchError("\(plugin.failures) plugin calls failed at concurrency \(clients)") }
                let added = plugin.latency.median - direct.latency.median
                result.add(Metric("\(operation), \(clients) clients: direct hiredis latency", direct.latency, unit: "µs",
                                  note: "\(Format.number(direct.callsPerSecond)) calls/s"))
                result.add(Metric("\(operation), \(clients) clients: through molt (engine + plugin) latency", plugin.latency, unit: "µs",
                                  note: "\(Format.number(plugin.callsPerSecond)) calls/s"))
                result.add(Metric("\(operation), \(clients) clients: plugin-added p50 latency", added, unit: "µs",
                                  goalAtMost: 20, note: "p99 added \(Format.number(plugin.latency.p99 - direct.latency.p99)) µs"))
            }
        }

        // DR switch: move redisHost to the second server while 16 clients read and write.
        let tally = Tally()
        let load = Task { [tally] in
            await withTaskGroup(of: Void.self) { group in
                for client in 0..<16 {
                    group.addTask {
                        var index = 0
                        while !tally.stop.load(ordering: .relaxed) {
                            index += 1
                            do {
                                _ = try await engine.setState(store: "store", StateSetRequest(key: "dr-\(client)-\(index % 32)", value: [1]))
                                tally.calls.add(1, ordering: .relaxed)
                            } catch {
                                tally.failures.add(1, ordering: .relaxed)
                            }
                        }
                    }
                }
            }
        }
        try await Task.sleep(for: .milliseconds(300))
        let moved = await engine.apply(ComponentDefinition(kind: .state, name: "store", plugin: "redis-state",
                                                           config: ["redisHost": secondary.address, "poolSize": "8"]))
        try await Task.sleep(for: .milliseconds(300))
        tally.stop.store(true, ordering: .relaxed)
        await load.value
        guard moved.action == .reloaded else { throw BenchError("DR switch: \(moved)") }
        result.add(Metric("DR switch under load: apply start → B serving", (moved.switchDuration ?? .zero).milliseconds, unit: "ms",
                          note: "init \(Format.number((moved.initDuration ?? .zero).milliseconds)) ms, readiness (connect + PING) \(Format.number((moved.readinessDuration ?? .zero).milliseconds)) ms"))
        result.add(Metric("DR switch under load: whole apply incl. drain of A", moved.totalDuration.milliseconds, unit: "ms"))
        result.add(Metric("DR switch under load: failed calls", Double(tally.failures.load(ordering: .relaxed)), unit: "calls",
                          goalAtMost: 0, goalText: "0", note: "\(tally.calls.load(ordering: .relaxed)) sets by 16 clients over 0.6 s"))
        await engine.shutdown()
        try result.emit()
    }

    final class Tally: Sendable {
        let calls = Atomic<Int>(0)
        let failures = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
    }

    struct Load {
        var latency: Stats
        var callsPerSecond: Double
        var failures: Int
    }

    /// `clients` concurrent tasks, `calls` each, through the engine. Each task yields per call (as
    /// separate requests would), which the latency sample excludes.
    static func pluginLoad(engine: Engine, clients: Int, calls: Int, operation: String) async -> Load {
        let clock = ContinuousClock()
        let start = clock.now
        let (samples, failures) = await withTaskGroup(of: ([Double], Int).self) { group in
            for client in 0..<clients {
                group.addTask {
                    var samples: [Double] = []
                    samples.reserveCapacity(calls)
                    var failures = 0
                    for index in 0..<calls {
                        await Task.yield()
                        let begin = clock.now
                        do {
                            if operation == "get" {
                                _ = try await engine.getState(store: "store", key: "bench")
                            } else {
                                _ = try await engine.setState(store: "store", StateSetRequest(key: "set-\(client)-\(index % 64)", value: [1, 2, 3]))
                            }
                            samples.append((clock.now - begin).microseconds)
                        } catch {
                            failures += 1
                        }
                    }
                    return (samples, failures)
                }
            }
            return await group.reduce(into: ([Double](), 0)) { $0.0 += $1.0; $0.1 += $1.1 }
        }
        let elapsed = (clock.now - start).nanoseconds / 1e9
        return Load(latency: Stats(samples.isEmpty ? [0] : samples), callsPerSecond: Double(samples.count) / elapsed, failures: failures)
    }
}

/// Direct hiredis clients on their own threads.
enum DirectLoad {
    final class Client: @unchecked Sendable {
        // @unchecked: each Client is used by exactly one thread between pthread_create and join.
        let port: Int32
        let calls: Int
        let operation: String
        let index: Int
        var samples: [Double] = []
        var error: String?
        init(port: Int32, calls: Int, operation: String, index: Int) {
            (self.port, self.calls, self.operation, self.index) = (port, calls, operation, index)
        }

        func run() {
            let timeout = timeval(tv_sec: 5, tv_usec: 0)
            guard let context = redisConnectWithTimeout("127.0.0.1", port, timeout), context.pointee.err == 0 else {
                error = "connect failed"; return
            }
            defer { redisFree(context) }
            _ = redisSetTimeout(context, timeout)
            samples.reserveCapacity(calls)
            let clock = ContinuousClock()
            for call in 0..<calls {
                let arguments = operation == "get"
                    ? ["HMGET", "bench", "data", "version"]
                    : ["HSET", "direct-\(index)-\(call % 64)", "data", "abc", "version", "\(call)"]
                let begin = clock.now
                guard let reply = hiredisCommand(context, arguments) else { error = "command failed"; return }
                freeReplyObject(reply)
                samples.append((clock.now - begin).microseconds)
            }
        }

    }

    static func run(port: Int32, clients: Int, calls: Int, operation: String) throws -> RedisBench.Load {
        let workers = (0..<clients).map { Client(port: port, calls: calls, operation: operation, index: $0) }
        let clock = ContinuousClock()
        let start = clock.now
        var threads: [pthread_t] = []
        for worker in workers {
            var thread = pthread_t()
            let box = Unmanaged.passRetained(worker).toOpaque()
            guard pthread_create(&thread, nil, { argument in
                let worker = Unmanaged<Client>.fromOpaque(argument!).takeRetainedValue()
                worker.run()
                return nil
            }, box) == 0 else { throw BenchError("pthread_create failed") }
            threads.append(thread)
        }
        for thread in threads { pthread_join(thread, nil) }
        let elapsed = (clock.now - start).nanoseconds / 1e9
        if let error = workers.compactMap(\.error).first { throw BenchError("direct hiredis: \(error)") }
        let samples = workers.flatMap(\.samples)
        return RedisBench.Load(latency: Stats(samples), callsPerSecond: Double(samples.count) / elapsed, failures: 0)
    }
}

/// One blocking hiredis command; the reply is the caller's to free (nil on a connection error).
func hiredisCommand(_ context: UnsafeMutablePointer<redisContext>, _ arguments: [String]) -> UnsafeMutableRawPointer? {
    let pointers = arguments.map { strdup($0) }
    defer { pointers.forEach { free($0) } }
    let lengths = arguments.map { $0.utf8.count }
    var argv = pointers.map { UnsafePointer<CChar>($0) }
    return argv.withUnsafeMutableBufferPointer { argvBuffer in
        lengths.withUnsafeBufferPointer { lengthBuffer in
            redisCommandArgv(context, Int32(arguments.count), argvBuffer.baseAddress, lengthBuffer.baseAddress)
        }
    }
}

/// A redis-server on a free loopback port, killed by `stop()`.
final class RedisProcess {
    let port: Int32
    private let pid: pid_t
    var address: String { "127.0.0.1:\(port)" }

    init() throws {
        port = try Self.freePort()
        var pid = pid_t()
        let arguments = ["redis-server", "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"]
        var argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        guard posix_spawnp(&pid, "redis-server", nil, nil, &argv, environ) == 0 else {
            throw BenchError("cannot start redis-server (run scripts/install-deps.sh)")
        }
        self.pid = pid
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while ContinuousClock.now < deadline {
            if let context = redisConnect("127.0.0.1", port), context.pointee.err == 0 {
                redisFree(context)
                return
            }
            usleep(10_000)
        }
        stop()
        throw BenchError("redis-server on port \(port) did not start")
    }

    func stop() {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    static func freePort() throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(fd, raw, length) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard bound else { throw BenchError("no free port") }
        return Int32(UInt16(bigEndian: address.sin_port))
    }
}
