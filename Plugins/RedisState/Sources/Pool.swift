// The plugin's own I/O: a fixed pool of connections, each owned and driven by its own thread, fed
// from one queue. Host threads only enqueue; replies complete from the worker threads. Workers
// connect in the background from the start (readiness), reconnect after a dropped connection, and
// retry per maxRetries with backoff.
import PluginKit
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What a job sees of its worker: run commands with reconnects and retries.
final class Session {
    let connection: Connection
    let pool: Pool
    var tunables: Tunables

    init(connection: Connection, pool: Pool, tunables: Tunables) {
        self.connection = connection
        self.pool = pool
        self.tunables = tunables
    }

    /// Runs `build(connection)` (commands, pipelined) and returns their replies. `idempotent`
    /// commands are retried after any connection failure; others only when they were not sent.
    func run(idempotent: Bool, _ build: (Connection) -> [[[UInt8]]]) -> Result<[RedisValue], PluginError> {
        var attempt = 0
        while true {
            var failure: ConnectionFailure?
            if connection.isConnected && connection.peerHasClosed() {
                connection.close()
                pool.connectionLost(connection, "the server closed the connection while it was idle")
            }
            if !connection.isConnected { failure = pool.connect(connection, tunables) }
            if failure == nil {
                connection.applyTimeout(tunables)
                switch connection.run(build(connection)) {
                case .success(let replies):
                    // A SCRIPT FLUSH on the server: forget the SHAs, run again with EVAL.
                    if replies.contains(where: { if case .error(let e) = $0 { return e.hasPrefix("NOSCRIPT") }; return false }) {
                        connection.forgetScripts()
                        continue
                    }
                    return .success(replies)
                case .failure(let f):
                    failure = f
                    pool.connectionLost(connection, f.error.message)
                }
            }
            guard let failure else { continue }
            guard attempt < tunables.maxRetries, !failure.permanent, idempotent || failure.notSent, !pool.isStopping else {
                return .failure(failure.error)
            }
            attempt += 1
            let delay = tunables.backoff(attempt: attempt)
            if delay > .zero { sleep(for: delay) }
        }
    }
}

struct Job: Sendable {
    let enqueued: ContinuousClock.Instant
    let run: @Sendable (Session) -> Void
    let abandon: @Sendable (PluginError) -> Void
}

final class Pool: @unchecked Sendable {
    // @unchecked Sendable: `queue`, `stopping` are guarded by `mutex` (a pthread mutex with `cond`);
    // `threads` is written before any worker starts and read only by `stop()`; the rest is atomic
    // or Mutex-protected.
    let endpoint: Endpoint
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var queue: [Job] = []
    private var queueHead = 0
    private var stopping = false
    private let stoppingFlag = Atomic<Bool>(false)
    private var threads: [pthread_t] = []
    private let tunables: Mutex<Tunables>
    private let host: HostServices
    let connected = Atomic<Int>(0)
    private let status = Mutex<(lastError: String?, permanentError: String?)>((nil, nil))
    private let scripts: [String]

    init(endpoint: Endpoint, tunables: Tunables, host: HostServices, scripts: [String]) {
        self.endpoint = endpoint
        self.tunables = Mutex(tunables)
        self.host = host
        self.scripts = scripts
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    var isStopping: Bool { stoppingFlag.load(ordering: .relaxed) }
    var currentTunables: Tunables { tunables.withLock { $0 } }
    func update(_ new: Tunables) { tunables.withLock { $0 = new } }

    /// Starts the workers; each connects in the background right away.
    func start() throws(PluginError) {
        for index in 0..<endpoint.poolSize {
            let pool = self
            let box = Unmanaged.passRetained(ThreadBody { pool.workerLoop(index) })
            var thread = pthread_t()
            let result = pthread_create(&thread, nil, { raw in
                let body = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
                body.run()
                return nil
            }, box.toOpaque())
            if result != 0 {
                box.release()
                stop()
                throw .internalError("redis-state: cannot start connection thread \(index): error \(result)")
            }
            threads.append(thread)
        }
    }

    /// Stops every worker (each closes its connection) and joins them; fails jobs still queued.
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        stoppingFlag.store(true, ordering: .relaxed)
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
        for thread in threads { pthread_join(thread, nil) }
        threads = []
        pthread_mutex_lock(mutex)
        let left = queue[queueHead...]
        queue = []
        queueHead = 0
        pthread_mutex_unlock(mutex)
        for job in left { job.abandon(.unavailable("redis-state is shutting down")) }
    }

    func submit(_ job: Job) {
        pthread_mutex_lock(mutex)
        if stopping {
            pthread_mutex_unlock(mutex)
            job.abandon(.unavailable("redis-state is shutting down"))
            return
        }
        queue.append(job)
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
    }

    /// Readiness: READY once some connection is up and answered PING.
    var readiness: Readiness {
        if connected.load(ordering: .acquiring) > 0 { return .ready }
        let (last, permanent) = status.withLock { ($0.lastError, $0.permanentError) }
        if let permanent { return .failed(permanent) }
        return .notReady("connecting to redis at \(endpoint.address)" + (last.map { " (last attempt: \($0))" } ?? ""))
    }

    // MARK: - Worker side

    func connect(_ connection: Connection, _ tunables: Tunables) -> ConnectionFailure? {
        var failure = connection.connect(tunables)
        if failure == nil { failure = connection.loadScripts(scripts) }
        if let failure {
            connection.close()
            status.withLock { s in
                s.lastError = failure.error.message
                if failure.permanent { s.permanentError = failure.error.message }
            }
            return failure
        }
        status.withLock { $0.permanentError = nil }
        connected.add(1, ordering: .releasing)
        return nil
    }

    func connectionLost(_ connection: Connection, _ why: String) {
        connected.subtract(1, ordering: .releasing)
        status.withLock { $0.lastError = why }
        host.log(.warning, "redis-state: lost a connection to redis at \(endpoint.address): \(why); reconnecting")
    }

    private func workerLoop(_ index: Int) {
        let connection = Connection(endpoint: endpoint)
        let session = Session(connection: connection, pool: self, tunables: currentTunables)
        var nextAttempt = ContinuousClock.now
        var backoff = Duration.milliseconds(50)
        while true {
            var job: Job?
            var shouldConnect = false
            pthread_mutex_lock(mutex)
            while !stopping {
                if queueHead < queue.count {
                    job = queue[queueHead]
                    queueHead += 1
                    if queueHead > 64 && queueHead * 2 > queue.count {
                        queue.removeFirst(queueHead)
                        queueHead = 0
                    }
                    break
                }
                if connection.isConnected {
                    pthread_cond_wait(cond, mutex)
                } else {
                    let now = ContinuousClock.now
                    if now >= nextAttempt {
                        shouldConnect = true
                        break
                    }
                    var deadline = timespec()
                    clock_gettime(CLOCK_MONOTONIC, &deadline)
                    let (seconds, attoseconds) = (now.duration(to: nextAttempt)).components
                    var nanoseconds = Int(deadline.tv_nsec) + Int(attoseconds / 1_000_000_000)
                    deadline.tv_sec += Int(seconds) + nanoseconds / 1_000_000_000
                    nanoseconds %= 1_000_000_000
                    deadline.tv_nsec = nanoseconds
                    pthread_cond_timedwait(cond, mutex, &deadline)
                }
            }
            let exit = stopping
            pthread_mutex_unlock(mutex)
            if exit {
                if let job { job.abandon(.unavailable("redis-state is shutting down")) }
                break
            }
            session.tunables = currentTunables
            if let job {
                if job.enqueued.duration(to: .now) > session.tunables.poolTimeout {
                    job.abandon(.timeout("redis-state: no free connection to redis at \(endpoint.address) within poolTimeout \(session.tunables.poolTimeout)"))
                } else {
                    job.run(session)
                }
            } else if shouldConnect {
                if connect(connection, session.tunables) == nil {
                    backoff = .milliseconds(50)
                } else {
                    nextAttempt = .now + backoff
                    backoff = min(backoff * 2, .seconds(1))
                }
            }
        }
        if connection.isConnected {
            connection.close()
            connected.subtract(1, ordering: .releasing)
        }
    }
}

private final class ThreadBody {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

func sleep(for duration: Duration) {
    let (seconds, attoseconds) = duration.components
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
