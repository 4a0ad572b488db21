import Dispatch
import PluginHost
import Synchronization

/// Runs the blocking steps of a plugin's lifecycle (init, apply_config, export, import, destroy) on
/// threads of their own, never on the cooperative pool or an event loop, each bounded by a timeout.
///
/// A step that overruns its timeout is left running on its thread (a thread cannot be stopped from
/// outside); the caller gets `nil` at once, and what the step returns later goes to `late`, e.g. an
/// instance an init finally produced is destroyed there. Whatever the step captured (the instance, and
/// through it the plugin's binary) stays alive until it returns, so its code is never unmapped under it.
///
/// Public for `molt plugin verify`, which runs a plugin's blocking steps exactly as the engine does.
public struct PluginSteps: Sendable {
    let label: String
    /// Times the steps; an entry is removed as soon as its step returns.
    let timer: CallTimer

    public init(label: String, timer: CallTimer) {
        self.label = label
        self.timer = timer
    }

    /// `work` on a thread of its own; nil when `timeout` passed first.
    public func run<Value: Sendable>(timeout: Duration, late: @escaping @Sendable (Value) -> Void = { _ in },
                              _ work: @escaping @Sendable () -> Value) async -> Value? {
        let race = StepRace<Value>()
        let job = RunOnce(work)
        let queue = DispatchQueue(label: label)
        let timer = self.timer
        return await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
            race.continuation = continuation
            timer.schedule(race, at: ContinuousClock.now.advanced(by: timeout))
            queue.async {
                let value = job.run()  // releases what `work` captured before the caller can resume
                timer.cancel(race)
                if !race.finish(value) { late(value) }
            }
        }
    }
}

/// Decides, once, whether a step's result or its timeout resumes the caller.
private final class StepRace<Value: Sendable>: TimedCall, @unchecked Sendable {
    // @unchecked: `continuation` is set before either side can run and resumed by the side that wins
    // `decided`.
    var continuation: CheckedContinuation<Value?, Never>?
    private let decided = Atomic<Bool>(false)

    override func expire() { timeOut() }

    /// false: the timeout won; the value is the caller's no more.
    func finish(_ value: Value) -> Bool {
        guard !decided.exchange(true, ordering: .acquiringAndReleasing) else { return false }
        continuation?.resume(returning: value)
        continuation = nil
        return true
    }

    func timeOut() {
        guard !decided.exchange(true, ordering: .acquiringAndReleasing) else { return }
        continuation?.resume(returning: nil)
        continuation = nil
    }
}

extension Duration {
    var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}
