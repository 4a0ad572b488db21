// The connection pool: `poolSize` connections spread over the host's event loops (at least one per
// loop), each a HostStream the host drives. The plugin has no threads: a call the host makes on loop
// L goes out on a connection of L and completes on L when its reply arrives. A call from a thread
// that is not a loop (the engine's Swift tests call from the cooperative pool) hops onto a loop
// with a zero-delay timer first.
import PluginKit
import Synchronization

final class Pool: Sendable {
    let context: PoolContext
    private let shards: [LoopShard]
    private let nextLoop = Atomic<UInt>(0)

    /// Fails when the host has no I/O services (ABI 1.0).
    init(endpoint: Endpoint, tunables: Tunables, host: HostServices) throws(PluginError) {
        let loops = host.loopCount
        guard loops > 0 else {
            throw .unsupported("redis-state \(RedisStateStore.version) needs a molt host with ABI 1.1 I/O services (streams and timers on the host's event loops); this host has none")
        }
        let context = PoolContext(endpoint: endpoint, tunables: tunables, host: host)
        let perLoop = (endpoint.poolSize + loops - 1) / loops
        self.context = context
        shards = (0..<loops).map { LoopShard(loop: $0, connectionCount: perLoop, context: context) }
    }

    /// How many connections there are (poolSize rounded up to a multiple of the loop count).
    var connectionCount: Int { shards.count * (shards.first?.connections.count ?? 0) }
    var loopCount: Int { shards.count }

    /// Starts connecting, in the background, on every loop.
    func start() throws(PluginError) {
        for shard in shards {
            guard context.startTimer(loop: shard.loop, after: .zero, { shard.start() }) != nil else {
                stop()
                throw .internalError("redis-state: the host refused a timer on its loop \(shard.loop)")
            }
        }
    }

    var readiness: Readiness { context.readiness }

    /// Runs `call` on the caller's loop, or on one picked round-robin when the caller is on none.
    func submit(_ call: Call) {
        if let loop = context.host.currentLoop, loop < shards.count { return shards[loop].dispatch(call) }
        let shard = shards[Int(nextLoop.wrappingAdd(1, ordering: .relaxed).oldValue % UInt(shards.count))]
        if context.startTimer(loop: shard.loop, after: .zero, { shard.dispatch(call) }) == nil {
            call.fail(.internalError("redis-state: the host refused a timer on its loop \(shard.loop)"))
        }
    }

    /// Closes every connection, fails the calls still waiting, and returns once the host has
    /// delivered every stream's `closed` and every timer fired or was cancelled: nothing of the pool
    /// runs afterwards. Blocks: never call it on a loop (the host calls destroy on its own thread).
    /// A connection attempt in progress can delay it by up to dialTimeout.
    func stop() {
        context.beginStopping()
        for shard in shards { context.startTimer(loop: shard.loop, after: .zero) { shard.stop() } }
        context.callbacks.waitForZero()
    }
}
