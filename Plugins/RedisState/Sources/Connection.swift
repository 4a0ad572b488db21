// One connection to Redis on one of the host's loops: a HostStream speaking RESP. It connects
// (AUTH, SELECT, PING and SCRIPT LOAD, pipelined), then sends each call's commands as the call
// comes and matches replies to calls in order: Redis answers a connection's commands in the order
// they were sent, so the calls awaiting replies form a FIFO. A timer fails the calls and drops the
// connection when the oldest reply is overdue (readTimeout); a dropped connection reconnects.
import PluginKit

final class Connection: HostStreamHandler, @unchecked Sendable {
    // @unchecked Sendable: loop-confined. A connection is created by its shard and touched only on
    // the shard's loop: stream callbacks and timers run there, and the shard calls it there.
    private enum State { case down, connecting, handshaking, ready, closing }

    unowned let shard: LoopShard
    private let context: PoolContext
    private var state = State.down
    private var stream: HostStream?
    private var reader: ReplyReader?
    /// Calls whose commands were sent, oldest first: the next reply belongs to the first one.
    private var awaiting = FIFO<Call>()
    private var scripts: ScriptSHAs = Array(repeating: nil, count: Script.allCases.count)
    /// While handshaking: the commands sent (their names), the replies so far, when they were sent.
    private var handshake: [String] = []
    private var handshakeReplies: [RedisValue] = []
    private var handshakeSentAt = ContinuousClock.Instant.now
    private var attemptStarted = ContinuousClock.Instant.now
    private var readTimer: HostTimer?
    private var reconnectTimer: HostTimer?
    /// The delay before the next background reconnect after a failed attempt.
    private var backoff = Connection.firstBackoff
    /// After a drop: reconnect right away (the connection was up) rather than after `backoff`.
    private var reconnectAtOnce = false

    private static let firstBackoff = Duration.milliseconds(50)
    private static let maxBackoff = Duration.seconds(1)

    init(shard: LoopShard, context: PoolContext) {
        self.shard = shard
        self.context = context
    }

    var isReady: Bool { state == .ready }
    var isConnecting: Bool { state == .connecting || state == .handshaking }
    var isDown: Bool { state == .down }

    // MARK: - Connecting

    /// Starts an attempt now (cancelling a scheduled one). Only when down.
    func connect() {
        guard state == .down, !context.isStopping else { return }
        context.cancel(reconnectTimer)
        reconnectTimer = nil
        guard let reader = ReplyReader() else {
            attemptFailed(ConnectionFailure(error: .unavailable("cannot connect to \(context.redis): out of memory"), notSent: true))
            return
        }
        self.reader = reader
        state = .connecting
        attemptStarted = .now
        stream = context.openStream(loop: shard.loop, timeout: context.tunables.dialTimeout, handler: self)
        if stream == nil {
            state = .down
            self.reader = nil
            attemptFailed(ConnectionFailure(error: .unavailable("cannot connect to \(context.redis): the host refused to open a stream"), notSent: true))
        }
    }

    /// An attempt failed before a stream existed.
    private func attemptFailed(_ failure: ConnectionFailure) {
        context.attemptFailed(failure)
        shard.connectAttemptFailed(failure)
        scheduleReconnect()
    }

    private func scheduleReconnect() {
        guard state == .down, reconnectTimer == nil, !context.isStopping else { return }
        let delay = backoff
        backoff = min(backoff * 2, Connection.maxBackoff)
        reconnectTimer = context.startTimer(loop: shard.loop, after: delay) { [self] in
            reconnectTimer = nil
            connect()
        }
    }

    func streamConnected(_ stream: HostStream) {
        guard state == .connecting else { return }
        state = .handshaking
        let endpoint = context.endpoint
        var buffer = CommandBuffer(capacity: 2048)
        handshake = []
        if !endpoint.password.isEmpty {
            buffer.command(endpoint.username.isEmpty ? ["AUTH", endpoint.password] : ["AUTH", endpoint.username, endpoint.password])
            handshake.append("AUTH")
        }
        if endpoint.database != 0 {
            buffer.command(["SELECT", String(endpoint.database)])
            handshake.append("SELECT")
        }
        buffer.command(["PING"])
        handshake.append("PING")
        for script in Script.allCases {
            buffer.command("SCRIPT", [Array("LOAD".utf8), script.sourceBytes])
            handshake.append("SCRIPT")
        }
        handshakeReplies = []
        handshakeSentAt = .now
        stream.write(buffer.bytes)
        armReadTimer()
    }

    /// Every handshake reply is in: an error refuses the connection (AUTH or SELECT: for good);
    /// SCRIPT LOAD's SHAs are kept (a script that did not load runs with EVAL).
    private func finishHandshake() {
        var script = 0
        for (name, reply) in zip(handshake, handshakeReplies) {
            if name == "SCRIPT" {
                if case .bytes(let sha) = reply { scripts[script] = sha } else { scripts[script] = nil }
                script += 1
                continue
            }
            if case .error(let message) = reply {
                let what = name == "AUTH" ? "authentication (redisUsername/redisPassword)"
                    : name == "SELECT" ? "selecting redisDB \(context.endpoint.database)" : "PING"
                drop(ConnectionFailure(error: .unavailable("\(context.redis) refused \(what): \(message)"), notSent: true,
                                       permanent: name != "PING"))
                return
            }
        }
        state = .ready
        handshake = []
        handshakeReplies = []
        backoff = Connection.firstBackoff
        context.connectionUp()
        shard.connectionReady(self)
    }

    // MARK: - Calls

    /// Sends the call's commands. Only when ready.
    func send(_ call: Call) {
        guard state == .ready, let stream else {
            shard.dispatch(call)
            return
        }
        var buffer = CommandBuffer()
        call.encode(into: &buffer, scripts: scripts, now: .now)
        awaiting.append(call)
        stream.write(buffer.bytes)
        if readTimer == nil { armReadTimer() }
    }

    func stream(_ stream: HostStream, received bytes: UnsafeRawBufferPointer) {
        guard let reader, state == .handshaking || state == .ready else { return }
        guard reader.feed(bytes) else {
            drop(ConnectionFailure(error: .unavailable("connection to \(context.redis) failed: the reply parser refused the bytes"),
                                   notSent: state == .handshaking))
            return
        }
        while state == .handshaking || state == .ready {
            switch reader.next() {
            case .success(nil):
                return
            case .success(let reply?):
                take(reply)
            case .failure(let error):
                drop(ConnectionFailure(error: .unavailable("connection to \(context.redis) failed: protocol error: \(error.message)"),
                                       notSent: state == .handshaking))
                return
            }
        }
    }

    private func take(_ reply: RedisValue) {
        if state == .handshaking {
            handshakeReplies.append(reply)
            if handshakeReplies.count == handshake.count { finishHandshake() }
            return
        }
        guard let call = awaiting.first else {
            drop(ConnectionFailure(error: .unavailable("connection to \(context.redis) failed: a reply to no command"), notSent: false))
            return
        }
        guard call.received(reply) else { return }
        _ = awaiting.popFirst()
        if call.needsScriptsAgain {
            // SCRIPT FLUSH or a restarted server: forget the SHAs, run the call again with EVAL.
            scripts = Array(repeating: nil, count: Script.allCases.count)
            shard.dispatch(call)
        } else {
            call.succeed()
        }
    }

    // MARK: - readTimeout

    /// When the oldest reply is due: the handshake's, or the first awaiting call's.
    private var oldestSentAt: ContinuousClock.Instant? {
        switch state {
        case .handshaking: return handshakeSentAt
        case .ready: return awaiting.first?.sentAt
        default: return nil
        }
    }

    /// One timer per connection, due when the oldest reply is overdue; re-armed for the next.
    private func armReadTimer() {
        guard readTimer == nil, let since = oldestSentAt, let timeout = context.tunables.commandTimeout else { return }
        let delay = max(.zero, timeout - since.duration(to: .now))
        readTimer = context.startTimer(loop: shard.loop, after: delay) { [self] in
            readTimer = nil
            checkReadTimeout()
        }
    }

    private func checkReadTimeout() {
        guard let since = oldestSentAt, let timeout = context.tunables.commandTimeout else { return }
        guard since.duration(to: .now) >= timeout else { return armReadTimer() }
        drop(ConnectionFailure(error: .timeout("\(context.redis) did not answer in time (readTimeout \(timeout))"),
                               notSent: state == .handshaking))
    }

    // MARK: - Closing

    /// Gives up on the connection: closes the stream, fails (or retries) what was awaiting replies.
    private func drop(_ failure: ConnectionFailure) {
        guard isReady || isConnecting else { return }
        let wasReady = isReady
        state = .closing
        stream?.close(reason: failure.error.message)
        failEverything(failure, wasReady: wasReady)
    }

    private func failEverything(_ failure: ConnectionFailure, wasReady: Bool) {
        context.cancel(readTimer)
        readTimer = nil
        handshake = []
        handshakeReplies = []
        reconnectAtOnce = wasReady
        if wasReady { context.connectionLost(failure.error.message) } else { context.attemptFailed(failure) }
        var sent = failure
        sent.notSent = false
        for call in awaiting.removeAll() { shard.retryOrFail(call, sent) }
        if !wasReady { shard.connectAttemptFailed(failure) }
    }

    func streamClosed(_ stream: HostStream, reason: String) {
        if isReady || isConnecting {  // not this side's doing: the peer, the network, or the dial
            let wasReady = isReady
            let failure = wasReady
                ? ConnectionFailure(error: .unavailable("connection to \(context.redis) failed: \(reason)"), notSent: false)
                : attemptFailure(reason)
            state = .closing
            failEverything(failure, wasReady: wasReady)
        }
        state = .down
        self.stream = nil
        reader = nil
        scripts = Array(repeating: nil, count: Script.allCases.count)
        if !context.isStopping {
            if reconnectAtOnce || shard.hasWaitingCalls { connect() } else { scheduleReconnect() }
        }
        reconnectAtOnce = false
        context.callbacks.remove()  // last: shutdown may return once this is done
    }

    /// Why connecting failed, from the host's reason: TIMEOUT when it took dialTimeout.
    private func attemptFailure(_ reason: String) -> ConnectionFailure {
        let dialTimeout = context.tunables.dialTimeout
        let timedOut = state == .connecting
            && (attemptStarted.duration(to: .now) >= dialTimeout || reason.contains("imeout") || reason.contains("timed out"))
        var why = reason
        let hostPrefix = "cannot connect to \(context.endpoint.host):\(context.endpoint.port): "
        if why.hasPrefix(hostPrefix) { why.removeFirst(hostPrefix.count) }
        return ConnectionFailure(
            error: PluginError(timedOut ? .timeout : .unavailable,
                               "cannot connect to \(context.redis): \(why)\(timedOut ? " (dialTimeout \(dialTimeout))" : "")"),
            notSent: true)
    }

    /// Shutdown, on the loop: cancel the timers, fail what awaits replies, close the stream
    /// (`streamClosed` follows and does not reconnect).
    func stop() {
        context.cancel(reconnectTimer)
        reconnectTimer = nil
        context.cancel(readTimer)
        readTimer = nil
        if isReady { context.connectionStopped() }
        if isReady || isConnecting {
            state = .closing
            stream?.close(reason: "redis-state is shutting down")
        }
        for call in awaiting.removeAll() { call.fail(PoolContext.shuttingDown) }
    }
}
