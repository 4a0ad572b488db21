import Synchronization

/// A FIFO mutual-exclusion lock for async code: serializes the applies to one component without
/// blocking a thread while an apply waits for readiness or a drain.
public final class AsyncLock: Sendable {
    public init() {}

    private struct State {
        var locked = false
        var waiters: [UnsafeContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    public func lock() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let acquired = state.withLock { state in
                if state.locked { state.waiters.append(continuation); return false }
                state.locked = true
                return true
            }
            if acquired { continuation.resume() }
        }
    }

    /// Hands the lock to the longest waiter, or frees it.
    public func unlock() {
        let next = state.withLock { state -> UnsafeContinuation<Void, Never>? in
            if state.waiters.isEmpty { state.locked = false; return nil }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }

    public func withLock<R: Sendable>(_ body: () async throws -> R) async rethrows -> R {
        await lock()
        defer { unlock() }
        return try await body()
    }
}
