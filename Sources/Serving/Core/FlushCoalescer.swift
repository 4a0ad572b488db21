import NIOCore

/// Turns the flushes of one loop turn into one: a flush is deferred to a task queued on the channel's
/// loop, which runs after the jobs already queued in the same turn (the other calls answered in it),
/// so their frames leave in one `writev` instead of one each. Placed first in a pipeline (next to the
/// socket). Loop-bound: every method runs on the channel's event loop.
///
/// With one call in flight nothing waits: the deferred flush runs in the same turn, before the loop
/// blocks again.
public final class FlushCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    public typealias OutboundIn = Any

    private var flushScheduled = false

    public init() {}

    public func flush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = bound.value
            handler.flushScheduled = false
            context.flush()
        }
    }
}
