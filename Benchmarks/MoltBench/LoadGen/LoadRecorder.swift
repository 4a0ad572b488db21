import FoundationEssentials
import Glibc
import Histogram
import Synchronization

/// The operations the load generator issues. `unlock` only follows a `trylock` that acquired.
enum LoadOp: UInt8, CaseIterable, Sendable {
    case save, get, trylock, unlock

    var name: String {
        switch self {
        case .save: "save"
        case .get: "get"
        case .trylock: "trylock"
        case .unlock: "unlock"
        }
    }
}

/// One finished (or refused) call. `dueMicros` counts from the run's start; latency from the due time.
struct CallRecord: Sendable {
    var dueMicros: Int64
    var op: LoadOp
    var latencyMicros: Int64
    var target: UInt16
    /// nil when the call succeeded; else "<gRPC code>: <message>".
    var error: String?
}

/// Everything the calls report, behind one mutex: the per-call records, HdrHistograms (overall, per
/// operation, and the current progress interval), failure counts and the acknowledged writes.
/// Calls finish on many tasks; each takes the lock once per call (about 1 µs), far below a gRPC call.
final class LoadRecorder: Sendable {
    struct State {
        var records: [CallRecord] = []
        var overall = LoadRecorder.histogram()
        var perOp: [Histogram<UInt64>] = LoadOp.allCases.map { _ in LoadRecorder.histogram() }
        var callsPerOp = [Int](repeating: 0, count: LoadOp.allCases.count)
        var failedPerOp = [Int](repeating: 0, count: LoadOp.allCases.count)
        var failuresByError: [String: Int] = [:]
        var acked: [(key: String, value: String)] = []
        var inFlight = 0
        var maxInFlight = 0
        var overloaded = 0
        // The progress interval, reset by `takeInterval`.
        var interval = LoadRecorder.histogram()
        var intervalCalls = 0
        var intervalFailed = 0
    }

    private let state = Mutex(State())

    /// Latencies are µs; 10 minutes is more than any deadline the generator sets.
    static func histogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    }

    func callStarted() {
        state.withLock {
            $0.inFlight += 1
            $0.maxInFlight = max($0.maxInFlight, $0.inFlight)
        }
    }

    var inFlight: Int { state.withLock { $0.inFlight } }

    /// Records a finished call (started with `callStarted`) and, for an acknowledged save, its write.
    func finish(_ record: CallRecord, ackedWrite: (key: String, value: String)? = nil, started: Bool = true) {
        state.withLock { state in
            if started { state.inFlight -= 1 }
            state.records.append(record)
            let op = Int(record.op.rawValue)
            state.callsPerOp[op] += 1
            state.intervalCalls += 1
            if let error = record.error {
                state.failedPerOp[op] += 1
                state.intervalFailed += 1
                state.failuresByError["\(record.op.name): \(error.prefix(120))", default: 0] += 1
            } else {
                let latency = UInt64(max(1, record.latencyMicros))
                _ = state.overall.record(latency)
                _ = state.perOp[op].record(latency)
                _ = state.interval.record(latency)
            }
            if let ackedWrite { state.acked.append(ackedWrite) }
        }
    }

    /// A call that was due but not issued because too many calls were in flight: a failure.
    func overloaded(dueMicros: Int64, op: LoadOp) {
        state.withLock { $0.overloaded += 1 }
        finish(CallRecord(dueMicros: dueMicros, op: op, latencyMicros: 0, target: 0, error: "OVERLOADED: generator had too many calls in flight"),
               started: false)
    }

    /// Calls, failures and p99 (µs, successful calls) since the previous call, then starts a new interval.
    func takeInterval() -> (calls: Int, failed: Int, p99Micros: UInt64, inFlight: Int, totalFailed: Int) {
        state.withLock { state in
            let result = (state.intervalCalls, state.intervalFailed,
                          state.interval.totalCount > 0 ? state.interval.valueAtPercentile(99) : 0, state.inFlight,
                          state.failedPerOp.reduce(0, +))
            state.interval.reset()
            state.intervalCalls = 0
            state.intervalFailed = 0
            return result
        }
    }

    func withState<R>(_ body: (inout State) -> R) -> R { state.withLock { body(&$0) } }
}

// MARK: - Summary (summary.json)

struct LatencySummary: Codable, Sendable {
    var p50: UInt64
    var p90: UInt64
    var p99: UInt64
    var p999: UInt64
    var max: UInt64

    init(_ histogram: Histogram<UInt64>) {
        let empty = histogram.totalCount == 0
        p50 = empty ? 0 : histogram.valueAtPercentile(50)
        p90 = empty ? 0 : histogram.valueAtPercentile(90)
        p99 = empty ? 0 : histogram.valueAtPercentile(99)
        p999 = empty ? 0 : histogram.valueAtPercentile(99.9)
        max = empty ? 0 : histogram.max
    }
}

struct OpSummary: Codable, Sendable {
    var calls: Int
    var failed: Int
    var p50_us: UInt64
    var p99_us: UInt64
    var max_us: UInt64
}

struct VerifySummary: Codable, Sendable {
    var checked: Int
    var found: Int
    var missing: Int
    var mismatched: Int
    var examples: [String]
}

struct HeldLocksSummary: Codable, Sendable {
    var held: Int
    var still_held: Int
    var lost: Int
    var examples: [String]
}

struct LoadSummary: Codable, Sendable {
    var start_unix_ms: Double
    var duration_s: Double
    var rate: Double
    var clients: Int
    var targets: [String]
    var mix: String
    var key_prefix: String
    var stored_key_prefix: String
    var calls: Int
    var ok: Int
    var failed: Int
    var failed_by_error: [String: Int]
    var latency_us: LatencySummary
    var by_op: [String: OpSummary]
    var writes_acked: Int
    var verify: VerifySummary?
    var held_locks: HeldLocksSummary?
    var overloaded: Int
    var max_in_flight: Int
    var build: String
}

// MARK: - Files

/// Writes `text` to `path` (created or truncated); throws naming the path.
func writeTextFile(_ path: String, _ text: String) throws {
    guard let file = fopen(path, "w") else { throw BenchError("cannot write \(path): \(String(cString: strerror(errno)))") }
    defer { fclose(file) }
    let written = text.utf8CString.withUnsafeBufferPointer { fputs($0.baseAddress!, file) }
    guard written >= 0 else { throw BenchError("cannot write \(path): \(String(cString: strerror(errno)))") }
}

/// calls.csv: one row per call, in due order. Commas and newlines in error texts become spaces.
func callsCSV(_ records: [CallRecord]) -> String {
    var text = "t_us,op,latency_us,ok,target,error\n"
    text.reserveCapacity(records.count * 32)
    for record in records.sorted(by: { $0.dueMicros < $1.dueMicros }) {
        let error = record.error.map { String($0.map { $0 == "," || $0 == "\n" || $0 == "\r" ? " " : $0 }) } ?? ""
        text += "\(record.dueMicros),\(record.op.name),\(record.latencyMicros),\(record.error == nil ? 1 : 0),\(record.target),\(error)\n"
    }
    return text
}
