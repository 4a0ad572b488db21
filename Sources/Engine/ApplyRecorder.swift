import FoundationEssentials
import Synchronization

/// The steps of an apply, in order. `molt status` shows the step an apply in progress is in.
public enum ApplyStep: String, Sendable, CaseIterable {
    /// Resolve binaries, check limits and configs, choose what each component needs.
    case plan
    /// The running instance is asked to take the new configuration.
    case applyConfig = "apply-config"
    /// New generations: init, then readiness polls.
    case start
    /// Calls wait while the old generations finish theirs (stateful handoffs and batches).
    case pause
    /// State export from the old generation and import into the new one.
    case handover
    case `switch`
    /// The old generations drain, then are destroyed or abandoned.
    case retire
    /// The running configuration is written to the state directory.
    case commit
}

/// Times the steps of one apply (or batch) and tells status APIs which step it is in. The pipeline
/// calls `begin` at each step; durations are read off at the end, so no signature carries clocks.
public final class ApplyRecorder: Sendable {
    public let keys: [ComponentKey]
    public let started = ContinuousClock.now
    public let startedAt = Date()
    private let steps = Mutex<(current: ApplyStep, since: ContinuousClock.Instant, totals: [ApplyStep: Duration])>(
        (.plan, ContinuousClock.now, [:]))
    /// When the new generations started serving (the switch), relative to `started`.
    private let switched = Mutex<Duration?>(nil)

    init(keys: [ComponentKey]) { self.keys = keys }

    public var currentStep: ApplyStep { steps.withLock { $0.current } }
    public var elapsed: Duration { ContinuousClock.now - started }

    /// Ends the current step and starts `step`.
    func begin(_ step: ApplyStep) {
        let now = ContinuousClock.now
        steps.withLock { steps in
            steps.totals[steps.current, default: .zero] += now - steps.since
            (steps.current, steps.since) = (step, now)
        }
    }

    func markSwitched() { switched.withLock { $0 = ContinuousClock.now - started } }

    /// The time spent in `step` so far (nil: never entered). The current step counts until now.
    func duration(_ step: ApplyStep) -> Duration? {
        let now = ContinuousClock.now
        return steps.withLock { steps in
            let running = steps.current == step ? now - steps.since : nil
            switch (steps.totals[step], running) {
            case (nil, nil): return nil
            case (let total, let running): return (total ?? .zero) + (running ?? .zero)
            }
        }
    }

    /// Copies the step timings into `result` (init and readiness are the component's own, set at its start).
    func stamp(_ result: inout ApplyResult) {
        result.pauseDuration = pauseDuration
        result.drainDuration = duration(.retire)
        result.switchDuration = switched.withLock { $0 }
        result.totalDuration = elapsed
    }

    /// From pausing to the switch: how long new calls waited.
    var pauseDuration: Duration? {
        guard let pause = duration(.pause) else { return nil }
        return pause + (duration(.handover) ?? .zero) + (duration(.switch) ?? .zero)
    }
}
