import Dispatch

/// Runs blocking work (file writes that fsync, plugin init and destroy) on threads of libdispatch's
/// overcommitting pool, and suspends the caller meanwhile. Swift's cooperative pool has one thread per
/// CPU (two on a 2-vCPU machine) and those threads also run the app's calls: work that blocks one of
/// them stalls every call queued behind it. Here it only delays the apply that asked for it.
///
/// Only serial dispatch queues are used: on Linux a concurrent queue targets the same width-limited
/// root queue as the cooperative pool, so blocking there would starve it all the same.
///
/// A job's closure, and whatever it captured, is released before the caller resumes: a destroyed
/// plugin instance is gone (its binary unmapped when it was the last) by the time the apply returns.
public final class BlockingWorkQueue: Sendable {
    private let label: String
    /// The one queue of a serial instance; nil: every job gets a queue (and so a thread) of its own.
    private let serialQueue: DispatchQueue?

    /// `serial`: jobs run one at a time in submission order; otherwise they run at once.
    public init(label: String, serial: Bool) {
        self.label = label
        serialQueue = serial ? DispatchQueue(label: label) : nil
    }

    /// Runs `work` on a thread that is not one of the cooperative pool's (after every job submitted
    /// before it, on a serial instance).
    public func run<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async throws -> Value {
        try await submit { Result { try work() } }.get()
    }

    /// `run` for work that cannot fail.
    public func run<Value: Sendable>(_ work: @escaping @Sendable () -> Value) async -> Value {
        await submit(work)
    }

    private func submit<Value: Sendable>(_ job: @escaping @Sendable () -> Value) async -> Value {
        let queue = serialQueue ?? DispatchQueue(label: label)
        let once = RunOnce(job)
        return await withCheckedContinuation { (continuation: CheckedContinuation<Value, Never>) in
            queue.async { continuation.resume(returning: once.run()) }
        }
    }
}

/// Holds a job until it runs, then drops it, so the dispatch block that still references this box
/// no longer keeps the job's captures alive.
final class RunOnce<Value: Sendable>: @unchecked Sendable {
    // @unchecked: `job` is written in init and read and cleared once, by `run`, on the one thread
    // that runs the dispatch block; the submitting task does not touch it after handing it over.
    private var job: (@Sendable () -> Value)?

    init(_ job: @escaping @Sendable () -> Value) { self.job = job }

    func run() -> Value {
        let job = self.job!
        self.job = nil
        return job()
    }
}
