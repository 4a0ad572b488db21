import Engine
import Metrics
import PluginHost
import Synchronization

/// The metrics every API reports, through swift-metrics (the host bootstraps the Prometheus backend):
///
/// - `molt_calls_total{kind,component,operation,outcome}`: app calls by result (`ok`, or an
///   `APIFailure.outcome` such as `etag_mismatch`, `store_not_found`).
/// - `molt_call_duration_seconds{kind,component,operation}`: latency histogram of app calls.
/// - `molt_applies_total{kind,component,action}`, `molt_apply_failures_total{kind,component,failure}`.
/// - `molt_apply_duration_seconds{kind,component,action}`: whole apply (reloads, swaps, in-place).
/// - `molt_component_generation{kind,component}`, `molt_component_in_flight_calls{kind,component}`,
///   `molt_component_draining_calls{kind,component}` (calls the plugin still holds on abandoned
///   generations): refreshed from the engine on each scrape.
/// - `molt_abandoned_generations`: generations left to calls their plugin never completed (each is
///   destroyed when the plugin completes them); `molt_applies_in_progress`. Refreshed on each scrape.
///
/// Metric handles are created once per label set and cached (creating one takes the backend's lock).
public final class Telemetry: Sendable {
    private struct CallLabels: Hashable {
        let kind: ComponentKind
        let component: String
        let operation: String
    }

    private final class CallMetrics: Sendable {
        let duration: Timer
        /// `outcome="ok"`, held apart: a call that succeeds takes no lock here.
        let succeeded: Counter
        let outcomes: Mutex<[String: Counter]>
        let labels: [(String, String)]
        init(_ labels: CallLabels) {
            self.labels = [("kind", labels.kind.rawValue), ("component", labels.component), ("operation", labels.operation)]
            duration = Timer(label: "molt_call_duration_seconds", dimensions: self.labels, preferredDisplayUnit: .seconds)
            succeeded = Counter(label: "molt_calls_total", dimensions: self.labels + [("outcome", "ok")])
            outcomes = Mutex([:])
        }
        func count(_ outcome: String) {
            if outcome == "ok" {
                succeeded.increment()
                return
            }
            let counter = outcomes.withLock { counters in
                if let counter = counters[outcome] { return counter }
                let counter = Counter(label: "molt_calls_total", dimensions: labels + [("outcome", outcome)])
                counters[outcome] = counter
                return counter
            }
            counter.increment()
        }
    }

    private let engine: Engine
    private let calls = Mutex<[CallLabels: CallMetrics]>([:])
    /// Gauges of components seen so far, so a removed component's gauges drop to 0.
    private let knownComponents = Mutex<Set<ComponentKey>>([])

    public init(engine: Engine) {
        self.engine = engine
    }

    /// Runs one app call, counting it and timing it. Failures come back classified.
    @inlinable
    public func call<Value>(_ kind: ComponentKind, _ component: String, _ operation: String, daprOperation: String,
                            _ body: () async throws(CallError) -> Value) async throws(APIFailure) -> Value {
        let start = ContinuousClock.now
        do {
            let value = try await body()
            record(kind, component, operation, outcome: "ok", elapsed: ContinuousClock.now - start)
            return value
        } catch {
            let failure = APIFailure(error, operation: daprOperation)
            record(kind, component, operation, outcome: failure.outcome, elapsed: ContinuousClock.now - start)
            throw failure
        }
    }

    /// Counts a call the API rejected before reaching a store (bad request).
    public func rejected(_ kind: ComponentKind, _ component: String, _ operation: String, _ failure: APIFailure) {
        record(kind, component, operation, outcome: failure.outcome, elapsed: nil)
    }

    @usableFromInline
    func record(_ kind: ComponentKind, _ component: String, _ operation: String, outcome: String, elapsed: Duration?) {
        let labels = CallLabels(kind: kind, component: component, operation: operation)
        let metrics = calls.withLock { calls in
            if let metrics = calls[labels] { return metrics }
            let metrics = CallMetrics(labels)
            calls[labels] = metrics
            return metrics
        }
        metrics.count(outcome)
        if let elapsed {
            let (seconds, attoseconds) = elapsed.components
            metrics.duration.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        }
    }

    /// Counts the applies of `results` (from `engine.applyResults()`, taken before the first apply
    /// to count); returns when the stream ends or the task is cancelled.
    public func observeApplies(_ results: AsyncStream<ApplyResult>) async {
        for await result in results {
            let labels = [("kind", result.key.kind.rawValue), ("component", result.key.name)]
            Counter(label: "molt_applies_total", dimensions: labels + [("action", result.action.rawValue)]).increment()
            if let failure = result.failure {
                Counter(label: "molt_apply_failures_total", dimensions: labels + [("failure", failure.rawValue)]).increment()
            }
            if result.action != .unchanged {
                let (seconds, attoseconds) = result.totalDuration.components
                Timer(label: "molt_apply_duration_seconds", dimensions: labels + [("action", result.action.rawValue)],
                      preferredDisplayUnit: .seconds)
                    .recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
            }
        }
    }

    /// Sets the per-component gauges from the engine's current state (call before each scrape).
    public func refreshGauges() {
        Gauge(label: "molt_abandoned_generations").record(Double(engine.abandonedGenerations.count))
        Gauge(label: "molt_applies_in_progress").record(Double(engine.appliesInProgress.count))
        let components = engine.components
        let current = Set(components.map(\.key))
        let gone = knownComponents.withLock { known in
            let gone = known.subtracting(current)
            known = current
            return gone
        }
        for status in components {
            let labels = [("kind", status.key.kind.rawValue), ("component", status.key.name)]
            Gauge(label: "molt_component_generation", dimensions: labels).record(Double(status.generation))
            Gauge(label: "molt_component_in_flight_calls", dimensions: labels).record(Double(status.inFlight))
            Gauge(label: "molt_component_draining_calls", dimensions: labels).record(Double(status.drainingInFlight))
        }
        for key in gone {
            let labels = [("kind", key.kind.rawValue), ("component", key.name)]
            Gauge(label: "molt_component_generation", dimensions: labels).record(0)
            Gauge(label: "molt_component_in_flight_calls", dimensions: labels).record(0)
            Gauge(label: "molt_component_draining_calls", dimensions: labels).record(0)
        }
    }
}
