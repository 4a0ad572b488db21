import ArgumentParser
import CHiredis
import FoundationEssentials
import Glibc
import GRPCCore
import GRPCNIOTransportHTTP2
import MoltProtos
import Synchronization

/// `serve`: a real `molt serve` process measured through its gRPC app API, as an app sees it.
///
/// - Idle RSS of the process once it serves a Redis state store and a lock store.
/// - Host-added latency of state get: one client, 1000 calls/s (paced), GetState over gRPC through
///   molt vs a direct hiredis `HMGET key data version` to the same redis-server, interleaved in the
///   same run. "Added" therefore includes gRPC, the engine, the plugin and the plugin's Lua script.
/// - Peak calls/s for GetState and TryLockAlpha1 with many concurrent calls on one HTTP/2 connection.
///   The load generator runs on the same 2 cores as molt and Redis, so the peak is shared CPU.
struct ServeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "molt serve over gRPC: idle RSS, added latency at 1000 calls/s, peak calls/s.")

    @OptionGroup var plugins: PluginOptions
    @Option(help: "The molt executable (default: beside molt-bench).") var moltBin: String?
    @Option(help: "Seconds of paced calls at 1000 calls/s (each for molt and for direct Redis).") var seconds = 10
    @Option(help: "Seconds of each peak-throughput run.") var peakSeconds = 5
    @Option(help: "Concurrent calls in the peak runs.") var concurrency = 64

    func run() async throws {
        var result = BenchResult("serve")
        let redis = try RedisProcess()
        defer { redis.stop() }
        let directory = try plugins.makePluginsDirectory(["redis-state-1.0.0.so", "memorylock-1.0.0.so"])
        result.note("plugins measured: \(directory.sources.values.sorted().joined(separator: ", "))")
        let molt = try MoltProcess(binary: moltBin ?? Self.siblingBinary("molt"), pluginsDirectory: directory.path, components: """
            {"components": [
              {"kind": "state", "name": "statestore", "plugin": "redis-state", "metadata": {"redisHost": "\(redis.address)", "poolSize": "8"}},
              {"kind": "lock", "name": "lockstore", "plugin": "memorylock", "metadata": {"maxLocks": "0"}}
            ]}
            """)
        defer { molt.stop() }

        try await withGRPCClient(transport: try .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: molt.grpcPort),
                                                               transportSecurity: .plaintext)) { grpc in
            let dapr = Dapr_Proto_Runtime_V1_Dapr.Client(wrapping: grpc)
            try await Self.waitForComponents(dapr)
            var save = Dapr_Proto_Runtime_V1_SaveStateRequest()
            save.storeName = "statestore"
            var item = Dapr_Proto_Common_V1_StateItem()
            item.key = "bench"
            item.value = Data(repeating: 0x61, count: 64)
            save.states = [item]
            _ = try await dapr.saveState(save)

            // Idle RSS: serving both components, no calls for a second.
            try await Task.sleep(for: .seconds(1))
            let rssMiB = Double(molt.rssKiB()) / 1024
            result.add(Metric("idle RSS of molt serve (Redis state store + lock store)", rssMiB, unit: "MiB", goalAtMost: 30,
                              goalText: "≤ 30 MB"))
            result.add(Metric("idle RSS of molt serve: anonymous (heap, stacks) only", Double(molt.rssKiB("RssAnon")) / 1024, unit: "MiB",
                              note: "the rest is file-backed: pages of the molt binary and the Swift/Foundation libraries, shared with other Swift processes"))

            // Added latency at 1000 calls/s: molt and direct alternate in 1 s rounds so both see the same machine.
            guard let direct = redisConnect("127.0.0.1", redis.port), direct.pointee.err == 0 else { throw BenchError("hiredis connect") }
            defer { redisFree(direct) }
            let request = {
                var request = Dapr_Proto_Runtime_V1_GetStateRequest()
                request.storeName = "statestore"
                request.key = "bench"
                return request
            }()
            var throughMolt: [Double] = [], directRedis: [Double] = [], metadataOnly: [Double] = []
            for _ in 0..<seconds {
                metadataOnly += try await Self.paced(calls: 1000, perSecond: 1000) {
                    _ = try await dapr.getMetadata(Dapr_Proto_Runtime_V1_GetMetadataRequest())
                }
                throughMolt += try await Self.paced(calls: 1000, perSecond: 1000) {
                    let reply = try await dapr.getState(request)
                    guard reply.data.count == 64 else { throw BenchError("GetState returned \(reply.data.count) bytes") }
                }
                directRedis += try await Self.paced(calls: 1000, perSecond: 1000) {
                    guard let reply = hiredisCommand(direct, ["HMGET", "bench", "data", "version"]) else { throw BenchError("HMGET failed") }
                    freeReplyObject(reply)
                }
            }
            let moltStats = Stats(throughMolt), directStats = Stats(directRedis)
            result.add(Metric("gRPC round trip without a store call (GetMetadata) at 1000 calls/s", Stats(metadataOnly), unit: "µs",
                              note: "the transport's share: client + HTTP/2 + server, no engine or plugin"))
            result.add(Metric("state get at 1000 calls/s, direct Redis (HMGET) latency", directStats, unit: "µs"))
            result.add(Metric("state get at 1000 calls/s, through molt (gRPC GetState) latency", moltStats, unit: "µs"))
            result.add(Metric("state get at 1000 calls/s: host-added p50", moltStats.median - directStats.median, unit: "µs",
                              goalAtMost: 60))
            result.add(Metric("state get at 1000 calls/s: host-added p99", moltStats.p99 - directStats.p99, unit: "µs",
                              goalAtMost: 300))
            result.add(Metric("state get at 1000 calls/s: GetState p50 − GetMetadata p50 (the store call through engine + plugin)",
                              moltStats.median - Stats(metadataOnly).median, unit: "µs",
                              note: "compare with the direct Redis p50 above: the rest of the added latency is the gRPC round trip"))

            // Peak calls/s.
            let gets = try await Self.peak(concurrency: concurrency, seconds: peakSeconds) { _, _ in
                _ = try await dapr.getState(request)
            }
            result.add(Metric("peak state get (gRPC GetState, \(concurrency) concurrent calls)", gets, unit: "calls/s"))
            let locks = try await Self.peak(concurrency: concurrency, seconds: peakSeconds) { worker, index in
                var lock = Dapr_Proto_Runtime_V1_TryLockRequest()
                lock.storeName = "lockstore"
                lock.resourceID = "r-\(worker)-\(index)"
                lock.lockOwner = "bench"
                lock.expiryInSeconds = 1
                guard try await dapr.tryLockAlpha1(lock).success else { throw BenchError("TryLock of a fresh resource failed") }
            }
            result.add(Metric("peak try_lock (gRPC TryLockAlpha1, \(concurrency) concurrent calls)", locks, unit: "calls/s"))
            grpc.beginGracefulShutdown()
        }
        result.note("load generator, molt and redis-server share the machine's cores; see BENCHMARKS.md")
        try result.emit()
    }

    static func siblingBinary(_ name: String) -> String {
        let own = CommandLine.arguments[0]
        guard let slash = own.lastIndex(of: "/") else { return name }
        return "\(own[..<slash])/\(name)"
    }

    static func waitForComponents(_ dapr: Dapr_Proto_Runtime_V1_Dapr.Client<HTTP2ClientTransport.Posix>) async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while ContinuousClock.now < deadline {
            if let metadata = try? await dapr.getMetadata(Dapr_Proto_Runtime_V1_GetMetadataRequest()),
               metadata.registeredComponents.count == 2 {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError("molt serve did not register both components within 30 s")
    }

    /// `calls` calls at `perSecond`, each started on its slot (sleeping until then); latencies in µs.
    static func paced(calls: Int, perSecond: Int, _ call: () async throws -> Void) async throws -> [Double] {
        let clock = ContinuousClock()
        let interval = Duration.nanoseconds(1_000_000_000 / perSecond)
        var next = clock.now
        var samples: [Double] = []
        samples.reserveCapacity(calls)
        for _ in 0..<calls {
            next = next.advanced(by: interval)
            let begin = clock.now
            try await call()
            samples.append((clock.now - begin).microseconds)
            if next > clock.now { try await clock.sleep(until: next) }
        }
        return samples
    }

    /// Calls per second with `concurrency` workers calling back to back for `seconds`.
    static func peak(concurrency: Int, seconds: Int, _ call: @escaping @Sendable (Int, Int) async throws -> Void) async throws -> Double {
        let tally = RedisBench.Tally()
        let clock = ContinuousClock()
        let start = clock.now
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var count = 0
                    while !tally.stop.load(ordering: .relaxed) {
                        try await call(worker, count)
                        count += 1
                    }
                    return count
                }
            }
            try await Task.sleep(for: .seconds(seconds))
            tally.stop.store(true, ordering: .relaxed)
            return try await group.reduce(0, +)
        }
        return Double(total) / (clock.now - start).nanoseconds * 1e9
    }
}

/// A `molt serve` child process on free loopback ports; SIGTERM then wait on `stop()`.
final class MoltProcess {
    let pid: pid_t
    let grpcPort: Int
    private let directory: String

    init(binary: String, pluginsDirectory: String, components: String) throws {
        directory = pluginsDirectory
        let componentsPath = "\(pluginsDirectory)/components.json"
        guard let file = fopen(componentsPath, "w") else { throw BenchError("cannot write \(componentsPath)") }
        fputs(components, file)
        fclose(file)
        grpcPort = Int(try RedisProcess.freePort())
        let ports = try (0..<3).map { _ in try RedisProcess.freePort() }
        let arguments = [binary, "serve", "--plugins-directory", pluginsDirectory, "--components", componentsPath,
                         "--grpc-address", "127.0.0.1:\(grpcPort)", "--http-address", "127.0.0.1:\(ports[0])",
                         "--control-address", "127.0.0.1:\(ports[1])", "--admin-address", "127.0.0.1:\(ports[2])",
                         "--log-level", "warning"]
        var argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        guard posix_spawn(&pid, binary, nil, nil, &argv, environ) == 0 else { throw BenchError("cannot start \(binary)") }
        self.pid = pid
    }

    func rssKiB(_ field: String = "VmRSS") -> Int { ProcessStats.statusKiB(field, process: String(pid)) }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        unlink("\(directory)/components.json")
    }
}
