import ArgumentParser
import FoundationEssentials
import Glibc
import GRPCCore
import GRPCNIOTransportHTTP2
import MoltProtos
import Synchronization

/// Set by SIGINT/SIGTERM: the scheduler stops issuing calls and the run ends cleanly. An atomic store
/// is async-signal-safe.
let loadGenStopRequested = Atomic<Bool>(false)

/// `loadgen`: an open-loop load generator for molt's gRPC app API (what an app sees).
///
/// Call i is due at start + i/rate whatever the earlier calls did, and its latency counts from that
/// due time, so a stall shows as latency of the calls that were due during it (no coordinated
/// omission). Calls are spread round-robin over `--clients` HTTP/2 connections (and over the
/// targets). Every acknowledged save is recorded and read back from Redis at the end.
struct LoadGenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadgen",
        abstract: "Open-loop load on molt's gRPC app API: state save/get and lock calls in a mix; acknowledged writes verified in Redis.",
        discussion: """
            Prints `started <unix ms>` on stdout when the first call is due and a progress line on stderr every second. \
            Stops after --duration seconds, or at SIGINT/SIGTERM (--duration 0): no new calls, calls in flight finish, held \
            locks and acknowledged writes are checked, then --out gets summary.json, calls.csv (one row per call: due time in µs \
            since the start, op, latency in µs from the due time, ok, target, error) and acked.tsv. Exit 0 even when calls \
            failed (the summary says how many); 1 when the run could not be made.
            """)

    @Option(name: .customLong("target"), help: "molt's app gRPC address HOST:PORT (repeatable; clients are spread over them).")
    var targets: [String] = []
    @Option(help: "HTTP/2 connections (gRPC clients), spread round-robin over the targets.") var clients = 4
    @Option(help: "Operations per second in total, open loop (a lock operation is TryLock and, when acquired, Unlock: two calls).") var rate: Double = 1000
    @Option(help: "Seconds of load; 0 = until SIGINT/SIGTERM.") var duration: Double = 0
    @Option(help: "Operation weights: save, get, lock (a lock is TryLock and, when acquired, Unlock).") var mix = "save=40,get=40,lock=20"
    @Option(help: "State store name.") var stateStore = "statestore"
    @Option(help: "Lock store name.") var lockStore = "lockstore"
    @Option(help: "Locks acquired before the load (expiry 1 h) and checked at the end: still held by their owner.") var holdLocks = 0
    @Option(help: "Deadline of each call in milliseconds.") var timeoutMs = 2000
    @Option(help: "dapr-api-token sent with every call.") var apiToken: String?
    @Option(help: "Prefix of the keys, lock resources and owners this run uses (default: unique per run).") var keyPrefix: String?
    @Option(help: "Bytes of each saved value.") var valueBytes = 64
    @Option(name: .customLong("verify-redis"), help: "Redis HOST:PORT that acknowledged saves are read back from (repeatable).")
    var verifyRedis: [String] = []
    @Option(help: "Prefix molt puts before state keys in Redis (default: \"<app id>||\", the app id from GetMetadata).")
    var storedKeyPrefix: String?
    @Option(help: "Calls in flight beyond which a due call is not issued and counts as failed (OVERLOADED).") var maxInFlight = 20_000
    @Option(help: "Seed of the operation sequence.") var seed: UInt64 = 1
    @Option(help: "Directory for summary.json, calls.csv and acked.tsv (created).") var out: String

    func validate() throws {
        guard !targets.isEmpty else { throw ValidationError("give at least one --target HOST:PORT") }
        for target in targets { _ = try Self.hostPort(target) }
        guard clients >= 1, clients <= 1024 else { throw ValidationError("--clients must be 1...1024") }
        guard rate > 0, rate <= 1_000_000 else { throw ValidationError("--rate must be > 0 and ≤ 1000000 calls/s") }
        guard duration >= 0 else { throw ValidationError("--duration must be ≥ 0") }
        _ = try Self.parseMix(mix)
        guard timeoutMs > 0 else { throw ValidationError("--timeout-ms must be > 0") }
        guard valueBytes >= 16, valueBytes <= 1 << 20 else { throw ValidationError("--value-bytes must be 16...1048576") }
        guard holdLocks >= 0 else { throw ValidationError("--hold-locks must be ≥ 0") }
        guard maxInFlight > 0 else { throw ValidationError("--max-in-flight must be > 0") }
        for server in verifyRedis {
            do { _ = try WriteVerifier.split(server) } catch { throw ValidationError("--verify-redis \(error)") }
        }
    }

    func run() async throws {
        signal(SIGINT) { _ in loadGenStopRequested.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in loadGenStopRequested.store(true, ordering: .relaxed) }
        guard mkdir(out, 0o755) == 0 || errno == EEXIST else { throw BenchError("cannot create --out \(out): \(String(cString: strerror(errno)))") }

        // Reconnect quickly after a connection loss (the default first backoff is 1 s), so a restart
        // of molt is measured as molt's gap, not the client's.
        var config = HTTP2ClientTransport.Posix.Config.defaults
        config.backoff = .init(initial: .milliseconds(20), max: .milliseconds(250), multiplier: 1.6, jitter: 0.2)
        var grpcClients: [GRPCClient<HTTP2ClientTransport.Posix>] = []
        for index in 0..<clients {
            let (host, port) = try Self.hostPort(targets[index % targets.count])
            grpcClients.append(GRPCClient(transport: try .http2NIOPosix(target: .dns(host: host, port: port), transportSecurity: .plaintext,
                                                                        config: config)))
        }
        let connections = grpcClients
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in connections { group.addTask { try await client.runConnections() } }
            do {
                try await drive(connections)
            } catch {
                connections.forEach { $0.beginGracefulShutdown() }
                throw error
            }
            connections.forEach { $0.beginGracefulShutdown() }
            try await group.waitForAll()
        }
    }

    private func drive(_ connections: [GRPCClient<HTTP2ClientTransport.Posix>]) async throws {
        let daprs = connections.map { Dapr_Proto_Runtime_V1_Dapr.Client(wrapping: $0) }
        let caller = Caller(daprs: daprs, clientTargets: (0..<clients).map { UInt16($0 % targets.count) }, stateStore: stateStore,
                            lockStore: lockStore, token: apiToken, timeout: .milliseconds(timeoutMs))
        let prefix = keyPrefix ?? "lg\(getpid())-\(Int(Self.unixMillis()))"
        let storedPrefix: String
        if let storedKeyPrefix { storedPrefix = storedKeyPrefix } else { storedPrefix = try await caller.storedKeyPrefix() }
        let heldOwner = "\(prefix)-holder"
        if holdLocks > 0 {
            try await caller.acquireHeld(count: holdLocks, prefix: prefix, owner: heldOwner)
            Log.info("loadgen: holding \(holdLocks) locks (\(lockStore), owner \(heldOwner))")
        }

        let weights = try Self.parseMix(mix)
        let recorder = LoadRecorder()
        let clock = ContinuousClock()
        let startUnixMs = Self.unixMillis()
        let start = clock.now
        Self.writeAll(STDOUT_FILENO, "started \(Int64(startUnixMs))\n")
        Log.info("loadgen: \(Self.number(rate)) calls/s over \(clients) connections to \(targets.joined(separator: ", ")), mix \(mix), "
                 + (duration > 0 ? "\(Self.number(duration)) s" : "until SIGINT/SIGTERM"))

        let progress = Task { await Self.reportProgress(recorder, start: start, clock: clock) }
        var rng = SplitMix64(seed: seed)
        let nanosPerCall = 1e9 / rate
        let maxInFlight = self.maxInFlight, valueBytes = self.valueBytes, duration = self.duration
        await withDiscardingTaskGroup { group in
            var index = 0
            while !loadGenStopRequested.load(ordering: .relaxed) {
                let due = start.advanced(by: .nanoseconds(Int64((Double(index) * nanosPerCall).rounded())))
                if duration > 0, due - start >= .milliseconds(Int64(duration * 1000)) { break }
                if clock.now < due {
                    try? await clock.sleep(until: due, tolerance: .microseconds(50))
                } else if index % 8 == 0 {
                    // Behind schedule: issue the due calls at once, but let the call tasks run meanwhile.
                    await Task.yield()
                }
                if loadGenStopRequested.load(ordering: .relaxed) { break }
                let op = weights.pick(rng.next())
                let dueMicros = Self.micros(due - start)
                if recorder.inFlight >= maxInFlight {
                    recorder.overloaded(dueMicros: dueMicros, op: op)
                } else {
                    let callIndex = index
                    recorder.callStarted()
                    group.addTask {
                        await caller.perform(op, index: callIndex, prefix: prefix, valueBytes: valueBytes, due: due, start: start,
                                             recorder: recorder)
                    }
                }
                index += 1
            }
        }
        progress.cancel()
        await progress.value
        let elapsed = Double(Self.micros(clock.now - start)) / 1e6
        Log.info("loadgen: load stopped after \(Self.number(elapsed)) s; checking")

        let heldLocks = holdLocks > 0 ? await caller.checkHeld(count: holdLocks, prefix: prefix, owner: heldOwner) : nil
        let (records, acked, summaryBase) = recorder.withState { state in
            (state.records, state.acked, (state.overall, state.perOp, state.callsPerOp, state.failedPerOp, state.failuresByError,
                                           state.overloaded, state.maxInFlight))
        }
        let verify = verifyRedis.isEmpty ? nil : try WriteVerifier(servers: verifyRedis, storedKeyPrefix: storedPrefix).verify(acked)

        let (overall, perOp, callsPerOp, failedPerOp, failuresByError, overloaded, maxSeen) = summaryBase
        var byOp: [String: OpSummary] = [:]
        for op in LoadOp.allCases {
            let histogram = LatencySummary(perOp[Int(op.rawValue)])
            byOp[op.name] = OpSummary(calls: callsPerOp[Int(op.rawValue)], failed: failedPerOp[Int(op.rawValue)], p50_us: histogram.p50,
                                      p99_us: histogram.p99, max_us: histogram.max)
        }
        let calls = callsPerOp.reduce(0, +), failed = failedPerOp.reduce(0, +)
        #if DEBUG
        let build = "debug"
        #else
        let build = "release"
        #endif
        let summary = LoadSummary(start_unix_ms: startUnixMs, duration_s: elapsed, rate: rate, clients: clients, targets: targets, mix: mix,
                                  key_prefix: prefix, stored_key_prefix: storedPrefix, calls: calls, ok: calls - failed, failed: failed,
                                  failed_by_error: failuresByError, latency_us: LatencySummary(overall), by_op: byOp,
                                  writes_acked: acked.count, verify: verify, held_locks: heldLocks, overloaded: overloaded,
                                  max_in_flight: maxSeen, build: build)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try writeTextFile("\(out)/summary.json", String(decoding: try encoder.encode(summary), as: UTF8.self) + "\n")
        try writeTextFile("\(out)/calls.csv", callsCSV(records))
        try writeTextFile("\(out)/acked.tsv", acked.map { "\($0.key)\t\($0.value)\n" }.joined())

        let latency = summary.latency_us
        var line = "loadgen: \(calls) calls in \(Self.number(elapsed)) s, \(failed) failed; latency µs p50 \(latency.p50) p99 \(latency.p99) max \(latency.max)"
        if let verify { line += "; acked writes \(verify.checked): \(verify.missing) missing, \(verify.mismatched) mismatched" }
        if let heldLocks { line += "; held locks \(heldLocks.held): \(heldLocks.lost) lost" }
        Log.info(line)
        for (error, count) in failuresByError.sorted(by: { $0.value > $1.value }).prefix(10) { Log.info("  \(count) × \(error)") }
        Log.info("loadgen: wrote \(out)/summary.json, calls.csv, acked.tsv")
    }

    /// Every second: elapsed, calls/s, failures, p99 of that second, calls in flight. On a terminal the
    /// line is rewritten in place; into a pipe or file it is one line per second.
    private static func reportProgress(_ recorder: LoadRecorder, start: ContinuousClock.Instant, clock: ContinuousClock) async {
        let terminal = isatty(STDERR_FILENO) == 1
        var previous = clock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            let now = clock.now
            let seconds = Double(micros(now - previous)) / 1e6
            previous = now
            let interval = recorder.takeInterval()
            let text = "[\(Format.fixed(Double(micros(now - start)) / 1e6, digits: 1)) s] "
                + "\(Int((Double(interval.calls) / max(seconds, 0.001)).rounded())) calls/s  failed \(interval.failed) (total \(interval.totalFailed))  "
                + "p99 \(Format.fixed(Double(interval.p99Micros) / 1000, digits: 2)) ms  in flight \(interval.inFlight)"
            writeAll(STDERR_FILENO, terminal ? "\r\(text)\u{1B}[K" : "\(text)\n")
        }
        if terminal { writeAll(STDERR_FILENO, "\n") }
    }

    /// Unbuffered, so a reader of the pipe sees the line at once.
    static func writeAll(_ descriptor: Int32, _ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }

    static func micros(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
    }

    static func unixMillis() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) * 1000 + Double(now.tv_nsec) / 1e6
    }

    static func number(_ value: Double) -> String { Format.number(value) }

    static func hostPort(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1..<65536).contains(port),
              colon > text.startIndex else {
            throw ValidationError("--target '\(text)' is not HOST:PORT")
        }
        return (String(text[..<colon]), port)
    }

    /// `text` without leading and trailing spaces and tabs.
    static func trimmed(_ text: Substring) -> Substring {
        var slice = text
        while let first = slice.first, first == " " || first == "\t" { slice.removeFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice.removeLast() }
        return slice
    }

    static func parseMix(_ text: String) throws -> OpWeights {
        var save = 0, get = 0, lock = 0
        for part in text.split(separator: ",") {
            let pieces = part.split(separator: "=", maxSplits: 1)
            guard pieces.count == 2, let weight = Int(trimmed(pieces[1])), weight >= 0 else {
                throw ValidationError("--mix '\(text)': '\(part)' is not NAME=WEIGHT (a non-negative integer)")
            }
            switch trimmed(pieces[0]) {
            case "save": save = weight
            case "get": get = weight
            case "lock": lock = weight
            default: throw ValidationError("--mix '\(text)': unknown operation '\(pieces[0])' (save, get, lock)")
            }
        }
        guard save + get + lock > 0 else { throw ValidationError("--mix '\(text)': the weights add up to 0") }
        return OpWeights(save: save, get: get, lock: lock)
    }
}

/// Cumulative operation weights.
struct OpWeights: Sendable {
    let save: Int, get: Int, lock: Int

    func pick(_ random: UInt64) -> LoadOp {
        let roll = Int(random % UInt64(save + get + lock))
        return roll < save ? .save : roll < save + get ? .get : .trylock
    }
}

/// A small deterministic generator, so the same seed gives the same operation sequence.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
