// What every loop of the pool shares, thread-safe: where to connect, the tunables (applied in
// place), readiness (how many connections are up, the last and the permanent error), the stopping
// flag, and the host's streams and timers counted so that shutdown can wait for all of them.
import PluginKit
import Synchronization

final class PoolContext: Sendable {
    let endpoint: Endpoint
    let host: HostServices
    let callbacks = CallbackCount()
    private let currentTunables: Mutex<Tunables>
    private let connected = Atomic<Int>(0)
    private let status = Mutex<(lastError: String?, permanentError: String?)>((nil, nil))
    private let stopping = Atomic<Bool>(false)

    init(endpoint: Endpoint, tunables: Tunables, host: HostServices) {
        self.endpoint = endpoint
        self.host = host
        currentTunables = Mutex(tunables)
    }

    /// "redis at host:port", for messages.
    var redis: String { "redis at \(endpoint.address)" }

    var tunables: Tunables { currentTunables.withLock { $0 } }
    func update(_ tunables: Tunables) { currentTunables.withLock { $0 = tunables } }

    var isStopping: Bool { stopping.load(ordering: .acquiring) }
    func beginStopping() { stopping.store(true, ordering: .releasing) }

    static let shuttingDown = PluginError.unavailable("redis-state is shutting down")

    // MARK: - Readiness

    /// READY once some connection is up (it answered PING); FAILED after a refused AUTH or SELECT.
    var readiness: Readiness {
        if connected.load(ordering: .acquiring) > 0 { return .ready }
        let (last, permanent) = status.withLock { ($0.lastError, $0.permanentError) }
        if let permanent { return .failed(permanent) }
        return .notReady("connecting to \(redis)" + (last.map { " (last attempt: \($0))" } ?? ""))
    }

    /// The last connection error, for messages ("" when none).
    var lastErrorSuffix: String { status.withLock { $0.lastError }.map { " (last attempt: \($0))" } ?? "" }

    func connectionUp() {
        status.withLock { $0.permanentError = nil }
        connected.add(1, ordering: .releasing)
    }

    /// A connection that was up is gone: `why`.
    func connectionLost(_ why: String) {
        connected.subtract(1, ordering: .releasing)
        status.withLock { $0.lastError = why }
        if !isStopping { host.log(.warning, "redis-state: lost a connection to \(redis): \(why); reconnecting") }
    }

    /// A connection that was up is closed by shutdown.
    func connectionStopped() { connected.subtract(1, ordering: .releasing) }

    func attemptFailed(_ failure: ConnectionFailure) {
        status.withLock { s in
            s.lastError = failure.error.message
            if failure.permanent { s.permanentError = failure.error.message }
        }
    }

    // MARK: - The host's streams and timers, counted

    /// A timer on `loop` (see HostServices.startTimer), counted until it fires or `cancel` cancels it.
    @discardableResult
    func startTimer(loop: Int, after delay: Duration, _ fire: @escaping @Sendable () -> Void) -> HostTimer? {
        callbacks.add()
        let callbacks = self.callbacks
        let timer = host.startTimer(loop: loop, after: delay) {
            fire()
            callbacks.remove()
        }
        if timer == nil { callbacks.remove() }
        return timer
    }

    /// Cancels a timer of `startTimer` unless it fired. On the timer's loop.
    func cancel(_ timer: HostTimer?) {
        if let timer, timer.cancel() { callbacks.remove() }
    }

    /// A stream to the endpoint on `loop`, counted until its `closed`: the handler must call
    /// `callbacks.remove()` last thing in `streamClosed`.
    func openStream(loop: Int, timeout: Duration, handler: any HostStreamHandler) -> HostStream? {
        callbacks.add()
        let stream = host.openStream(loop: loop, address: endpoint.host, port: Int(endpoint.port), timeout: timeout, handler: handler)
        if stream == nil { callbacks.remove() }
        return stream
    }
}
