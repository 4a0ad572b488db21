import NIOCore
import NIOPosix
import PluginABI
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The ABI 1.1 I/O services (molt_plugin.h, "I/O on the host's event loops"): plugins' TCP streams
/// and timers on the host's event loops, the same loops that serve the app API, so a call read on
/// loop L and sent by the plugin over a stream of loop L completes on L without a thread switch.
///
/// Loops are numbered by their position in the group; every stream and timer lives on one of them.
public final class HostIO: Sendable {
    /// The loops of NIO's singleton group, which the app servers use too.
    public static let shared = HostIO(group: .singleton)

    let loops: [any EventLoop]
    /// The loops, in their numbering, for callers that call plugins as the app servers do (on one of
    /// these loops): `molt plugin verify`.
    public var eventLoops: [any EventLoop] { loops }
    private let nextTimer = Atomic<UInt64>(1)
    /// Timers not yet fired nor cancelled, by id.
    private let timers = Mutex<[UInt64: Scheduled<Void>]>([:])

    public init(group: MultiThreadedEventLoopGroup) {
        loops = Array(group.makeIterator())
    }

    /// The index of the calling thread's loop, or MOLT_NO_LOOP.
    func currentLoop() -> UInt32 {
        guard let current = MultiThreadedEventLoopGroup.currentEventLoop,
              let index = loops.firstIndex(where: { $0 === current }) else { return UInt32.max }
        return UInt32(index)
    }

    func openStream(loop: UInt32, address: String, port: UInt16, timeoutMs: UInt32,
                    events: molt_stream_events) -> UnsafeMutableRawPointer? {
        guard Int(loop) < loops.count else { return nil }
        let stream = HostStream(loop: loops[Int(loop)], events: events)
        let handle = Unmanaged.passRetained(stream).toOpaque()  // released once `closed` is delivered
        stream.eventLoop.execute { stream.connect(address: address, port: port, timeout: .milliseconds(Int64(timeoutMs))) }
        return handle
    }

    func startTimer(loop: UInt32, delayMs: UInt32, fire: molt_timer_fn, context: UnsafeMutableRawPointer?) -> UInt64 {
        guard Int(loop) < loops.count else { return 0 }
        let id = nextTimer.wrappingAdd(1, ordering: .relaxed).oldValue
        let callback = TimerCallback(fire: fire, context: context)
        // Registered under the lock before the task can run, so that it always finds itself.
        timers.withLock { timers in
            timers[id] = loops[Int(loop)].scheduleTask(in: .milliseconds(Int64(delayMs))) { [self] in
                guard self.timers.withLock({ $0.removeValue(forKey: id) }) != nil else { return }
                callback.fire(callback.context)
            }
        }
        return id
    }

    func cancelTimer(_ id: UInt64) {
        timers.withLock { $0.removeValue(forKey: id) }?.cancel()
    }
}

/// A plugin's timer callback and its context.
private struct TimerCallback: @unchecked Sendable {
    // @unchecked: the context is the plugin's, handed back to it on the timer's loop only.
    let fire: molt_timer_fn
    let context: UnsafeMutableRawPointer?
}

/// One plugin TCP stream on one loop. Everything happens on that loop: the plugin calls write and
/// close there (the ABI says so), and NIO delivers reads there. Retained by its handle until the
/// `closed` callback, which is delivered exactly once.
final class HostStream: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked Sendable: all mutable state is touched on `eventLoop` only; the object crosses
    // threads only to be scheduled there.
    typealias InboundIn = ByteBuffer

    let eventLoop: any EventLoop
    private let events: molt_stream_events
    private var channel: (any Channel)?
    private var unsent: ByteBuffer?
    private var closing: String?
    private var closedDelivered = false
    private var flushScheduled = false

    init(loop: any EventLoop, events: molt_stream_events) {
        self.eventLoop = loop
        self.events = events
    }

    func connect(address: String, port: UInt16, timeout: TimeAmount) {
        let target = "\(address):\(port)"
        ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(self) }
            }
            .connect(host: address, port: Int(port))
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    if let reason = self.closing {
                        channel.close(promise: nil)
                        self.deliverClosed(reason)
                        return
                    }
                    self.channel = channel
                    self.events.connected?(self.events.context)
                    if var unsent = self.unsent {
                        self.unsent = nil
                        self.send(&unsent)
                    }
                case .failure(let error):
                    self.deliverClosed(self.closing ?? "cannot connect to \(target): \(Self.describe(error))")
                }
            }
    }

    /// Queues bytes; one flush per loop turn sends everything queued in it.
    func write(_ bytes: UnsafeRawBufferPointer) {
        guard closing == nil, !closedDelivered else { return }
        if channel == nil {
            if unsent == nil { unsent = ByteBufferAllocator().buffer(capacity: bytes.count) }
            unsent!.writeBytes(bytes)
            return
        }
        var buffer = channel!.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        send(&buffer)
    }

    private func send(_ buffer: inout ByteBuffer) {
        guard let channel else { return }
        channel.write(buffer, promise: nil)
        guard !flushScheduled else { return }
        flushScheduled = true
        eventLoop.execute {
            self.flushScheduled = false
            self.channel?.flush()
        }
    }

    func close(reason: String) {
        guard closing == nil, !closedDelivered else { return }
        closing = reason
        channel?.close(promise: nil)  // channelInactive delivers `closed`; while connecting, connect's completion does
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard !closedDelivered else { return }
        buffer.withUnsafeReadableBytes { bytes in
            events.received?(events.context, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if closing == nil { closing = "connection error: \(Self.describe(error))" }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        channel = nil
        deliverClosed(closing ?? "the server closed the connection")
    }

    /// An I/O error as an operator reads it: "Connection refused (errno 111)", "timed out after 5000 ms".
    static func describe(_ error: any Error) -> String {
        switch error {
        case let failure as NIOConnectionError:
            if let first = failure.connectionErrors.first { return describe(first.error) }
            if let dns = failure.dnsAError ?? failure.dnsAAAAError { return "cannot resolve \(failure.host): \(describe(dns))" }
            return "no address for \(failure.host)"
        case let io as IOError:
            return "\(String(cString: strerror(io.errnoCode))) (errno \(io.errnoCode))"
        case ChannelError.connectTimeout(let timeout):
            return "timed out after \(timeout.nanoseconds / 1_000_000) ms"
        default:
            return "\(error)"
        }
    }

    private func deliverClosed(_ reason: String) {
        guard !closedDelivered else { return }
        closedDelivered = true
        reason.withCString { events.closed?(events.context, $0) }
        Unmanaged.passUnretained(self).release()  // the handle's reference
    }
}
