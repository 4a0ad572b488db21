// The pool's part on one of the host's loops: that loop's connections, and the calls waiting there
// for one of them to be up (a call made on the loop is sent on a connection of the same loop, so
// its reply completes it there without a thread switch). Calls wait while the loop has no connection
// up, at most poolTimeout, and are retried per maxRetries with backoff after a connection failure.
import PluginKit

final class LoopShard: @unchecked Sendable {
    // @unchecked Sendable: loop-confined. Besides `init` and reading `connections` (set in init,
    // never changed), every member is used only on `loop`: the pool hands calls over there (directly
    // when the host called on this loop, else with a timer), and the connections' callbacks and
    // timers run there.
    let loop: Int
    let context: PoolContext
    private(set) var connections: [Connection] = []
    private var next = 0
    /// Calls waiting for a connection of this loop to be up, oldest first.
    private var waiting = FIFO<Call>()
    private var waitTimer: HostTimer?
    /// Calls waiting to be retried (each with its timer).
    private var retrying: [ObjectIdentifier: Call] = [:]

    init(loop: Int, connectionCount: Int, context: PoolContext) {
        self.loop = loop
        self.context = context
        connections = (0..<connectionCount).map { _ in Connection(shard: self, context: context) }
    }

    /// Starts connecting every connection.
    func start() {
        for connection in connections { connection.connect() }
    }

    var hasWaitingCalls: Bool { !waiting.isEmpty }

    /// Sends the call on a connection that is up (round-robin), or lets it wait for one.
    func dispatch(_ call: Call) {
        if context.isStopping { return call.fail(PoolContext.shuttingDown) }
        if let connection = readyConnection() { return connection.send(call) }
        call.waitingSince = .now
        waiting.append(call)
        armWaitTimer()
        ensureConnecting()
    }

    private func readyConnection() -> Connection? {
        let count = connections.count
        for _ in 0..<count {
            let connection = connections[next]
            next = next + 1 == count ? 0 : next + 1
            if connection.isReady { return connection }
        }
        return nil
    }

    /// Waiting calls do not wait for a reconnect's backoff: start an attempt unless one is running.
    private func ensureConnecting() {
        guard !connections.contains(where: \.isConnecting) else { return }
        connections.first(where: \.isDown)?.connect()
    }

    /// A connection is up: it takes the waiting calls (with the others that are up).
    func connectionReady(_ connection: Connection) {
        context.cancel(waitTimer)
        waitTimer = nil
        while let call = waiting.popFirst() { (readyConnection() ?? connection).send(call) }
    }

    /// A connection attempt failed: the waiting calls have failed an attempt (their commands were
    /// not sent), even when another connection of the loop is still trying; so they retry after
    /// backoff or fail fast, and connections do not reconnect at once on their behalf forever.
    /// (Nothing waits while a connection is up: it took the waiting calls.)
    func connectAttemptFailed(_ failure: ConnectionFailure) {
        guard !waiting.isEmpty else { return }
        context.cancel(waitTimer)
        waitTimer = nil
        for call in waiting.removeAll() { retryOrFail(call, failure) }
    }

    /// After a failure: again after backoff when maxRetries allows it (a call that was sent only
    /// when idempotent, so that a write is never applied twice), else the call fails with it.
    func retryOrFail(_ call: Call, _ failure: ConnectionFailure) {
        let tunables = context.tunables
        guard !context.isStopping, !failure.permanent, call.attempt < tunables.maxRetries, call.idempotent || failure.notSent else {
            return call.fail(failure.error)
        }
        call.attempt += 1
        let delay = tunables.backoff(attempt: call.attempt)
        if delay == .zero { return dispatch(call) }
        let id = ObjectIdentifier(call)
        retrying[id] = call
        call.retryTimer = context.startTimer(loop: loop, after: delay) { [self] in
            retrying[id] = nil
            call.retryTimer = nil
            dispatch(call)
        }
        if call.retryTimer == nil {
            retrying[id] = nil
            call.fail(failure.error)
        }
    }

    // MARK: - poolTimeout

    private func armWaitTimer() {
        guard waitTimer == nil, let oldest = waiting.first else { return }
        let delay = max(.zero, context.tunables.poolTimeout - oldest.waitingSince.duration(to: .now))
        waitTimer = context.startTimer(loop: loop, after: delay) { [self] in
            waitTimer = nil
            expireWaiting()
        }
    }

    /// Fails the calls that waited poolTimeout for a connection, with the last connection error.
    private func expireWaiting() {
        let poolTimeout = context.tunables.poolTimeout
        let now = ContinuousClock.now
        while let oldest = waiting.first, oldest.waitingSince.duration(to: now) >= poolTimeout {
            _ = waiting.popFirst()
            oldest.fail(.timeout("redis-state: no free connection to \(context.redis) within poolTimeout \(poolTimeout)\(context.lastErrorSuffix)"))
        }
        armWaitTimer()
    }

    // MARK: - Shutdown

    /// Fails every call still here, cancels the timers and closes every connection.
    func stop() {
        context.cancel(waitTimer)
        waitTimer = nil
        for call in waiting.removeAll() { call.fail(PoolContext.shuttingDown) }
        for call in retrying.values {
            context.cancel(call.retryTimer)
            call.retryTimer = nil
            call.fail(PoolContext.shuttingDown)
        }
        retrying = [:]
        for connection in connections { connection.stop() }
    }
}
