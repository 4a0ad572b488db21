import Dispatch

/// Runs blocking work (file writes that fsync, plugin init and destroy) on threads of libdispatch's
/// overcommitting pool, and suspends the caller meanwhile. Swift's cooperative pool has one thread per
/// CPU (two on a 2-vCPU machine) and those threads also run the app's calls: work that blocks one of
/// them stalls every call queued behind it. Here it only delays the apply that asked for it.
///
/// Only serial dispatch queues are used: on Linux a concurrent queue targets the same width-limited
/// root queue as the cooperative pool, so blocking there would starve it all the same.
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
        let queue = serialQueue ?? DispatchQueue(label: label)
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// `run` for work that cannot fail.
    public func run<Value: Sendable>(_ work: @escaping @Sendable () -> Value) async -> Value {
        let queue = serialQueue ?? DispatchQueue(label: label)
        return await withCheckedContinuation { (continuation: CheckedContinuation<Value, Never>) in
            queue.async { continuation.resume(returning: work()) }
        }
    }
}
