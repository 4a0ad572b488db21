// ABI 1.1, "I/O on the host's event loops", in Swift: TCP streams and timers that the host runs on
// its event loops (the threads that also serve the app API), so a plugin needs no threads of its
// own for network I/O. Every callback of a stream or timer runs on its loop, one at a time, and must
// not block. A call the host made on loop L, sent over a stream of L, is answered on L and completes
// there without any thread switch.
internal import PluginABI

extension HostServices {
    /// The services, when the host has ABI 1.1's I/O (struct_size and every function present).
    var io: UnsafePointer<molt_host_services>? {
        guard let services, ABILayout.hostServicesHasIO(services.pointee.struct_size) else { return nil }
        let s = services.pointee
        guard s.loop_count > 0, s.current_loop != nil, s.stream_open != nil, s.stream_write != nil,
              s.stream_close != nil, s.timer_start != nil, s.timer_cancel != nil else { return nil }
        return services
    }

    /// The host's event loops, numbered `0 ..< loopCount`. 0 when the host has no I/O services (a
    /// host older than ABI 1.1, or `HostServices.none`): then there is nothing to open streams on.
    public var loopCount: Int { io.map { Int($0.pointee.loop_count) } ?? 0 }

    /// The loop the calling thread runs, or nil when it is not one of the host's loops (a thread of
    /// the plugin's own, Swift's cooperative pool, or a host without I/O services). Any thread.
    public var currentLoop: Int? {
        guard let io else { return nil }
        let loop = io.pointee.current_loop!(io.pointee.host_context)
        return loop < io.pointee.loop_count ? Int(loop) : nil  // MOLT_NO_LOOP is out of range
    }

    /// Starts connecting to `address` (a host name or an IP address) and `port` on loop `loop`,
    /// giving up after `timeout`. `handler` is called on that loop: `streamConnected` once the
    /// connection is up, `stream(_:received:)` with every chunk of bytes, and `streamClosed` exactly
    /// once, last (connecting failed or timed out, the peer closed, an I/O error, or `close`). The
    /// stream holds `handler` strongly until `streamClosed` has returned.
    ///
    /// Any thread. Called off `loop`, the stream is opened on the loop's next turn (until then,
    /// writes on the loop are kept and `close` cancels the opening). Returns nil, and calls nothing,
    /// when the host has no I/O services, `loop` is out of range, or the host refused.
    public func openStream(loop: Int, address: String, port: Int, timeout: Duration,
                           handler: any HostStreamHandler) -> HostStream? {
        guard let io, loop >= 0, loop < Int(io.pointee.loop_count), let port = UInt16(exactly: port) else { return nil }
        let stream = HostStream(loop: loop, services: io, handler: handler)
        let timeoutMs = max(milliseconds(timeout), 1)
        if currentLoop == loop { return stream.open(address: address, port: port, timeoutMs: timeoutMs) ? stream : nil }
        let hop = startTimer(loop: loop, after: .zero) {
            if !stream.open(address: address, port: port, timeoutMs: timeoutMs) {
                stream.deliverClosed("the host refused to open a stream to \(address):\(port)")
            }
        }
        return hop == nil ? nil : stream
    }

    /// Calls `fire` on loop `loop` after `delay` (zero: on the loop's next turn), once, unless
    /// cancelled first. Any thread; use it with a zero delay to get onto a loop. Returns nil (and
    /// never calls `fire`) when the host has no I/O services or `loop` is out of range.
    @discardableResult
    public func startTimer(loop: Int, after delay: Duration, _ fire: @escaping @Sendable () -> Void) -> HostTimer? {
        guard let io, loop >= 0, loop < Int(io.pointee.loop_count) else { return nil }
        let timer = HostTimer(loop: loop, services: io, fire: fire)
        let context = Unmanaged.passRetained(timer).toOpaque()  // released when it fires or is cancelled
        let id = io.pointee.timer_start!(io.pointee.host_context, UInt32(loop), milliseconds(delay), hostTimerFired, context)
        guard id != 0 else {
            Unmanaged<HostTimer>.fromOpaque(context).release()
            return nil
        }
        timer.id = id
        return timer
    }
}

/// What a `HostStream` reports, on its loop, one call at a time. Do not block in these: every call
/// on that loop waits meanwhile.
public protocol HostStreamHandler: AnyObject, Sendable {
    /// The connection is established. (Bytes written before it were queued and are sent now.)
    func streamConnected(_ stream: HostStream)
    /// Bytes received, in order. `bytes` is borrowed for the call.
    func stream(_ stream: HostStream, received bytes: UnsafeRawBufferPointer)
    /// The stream is closed, and this is its last callback; `reason` says why (for messages).
    func streamClosed(_ stream: HostStream, reason: String)
}

/// A TCP stream the host runs on one of its loops (`HostServices.openStream`). `write` and `close`
/// must be called on that loop (from a callback of one of its streams or timers, or from an
/// operation the host called there); they do nothing once the stream is closing or closed.
public final class HostStream: @unchecked Sendable {
    // @unchecked Sendable: loop-confined. Besides `init` (before the stream is handed to the loop),
    // every member is touched only on `loop`: by the host's callbacks, by write/close (which the
    // ABI restricts to the loop), and by `open`, which openStream runs on the loop.
    public let loop: Int
    private let services: UnsafePointer<molt_host_services>
    private var handler: (any HostStreamHandler)?
    private enum State { case opening, open(OpaquePointer), closed }
    private var state = State.opening
    /// Set by `close`: nothing is sent any more.
    private var closeReason: String?
    /// Bytes written on the loop before `open` ran there.
    private var unopenedBytes: [UInt8] = []

    init(loop: Int, services: UnsafePointer<molt_host_services>, handler: any HostStreamHandler) {
        self.loop = loop
        self.services = services
        self.handler = handler
    }

    /// Whether `close` was called or the stream is closed.
    public var isClosing: Bool {
        if closeReason != nil { return true }
        if case .closed = state { return true }
        return false
    }

    /// Queues `bytes` (copied) for sending; everything queued in one turn of the loop leaves
    /// together at its end. On the stream's loop only.
    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard closeReason == nil, bytes.count > 0 else { return }
        switch state {
        case .open(let handle):
            services.pointee.stream_write!(handle, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count)
        case .opening:
            unopenedBytes.append(contentsOf: bytes)
        case .closed:
            return
        }
    }

    /// Queues `bytes` for sending. On the stream's loop only.
    public func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Closes the stream; `streamClosed(_:reason:)` follows on a later turn of the loop (with `reason`
    /// unless the stream was closing already for another one). On the stream's loop only.
    public func close(reason: String) {
        guard closeReason == nil else { return }
        switch state {
        case .closed: return
        case .opening: closeReason = reason  // `open` delivers `streamClosed` instead of opening
        case .open(let handle):
            closeReason = reason
            reason.withCString { services.pointee.stream_close!(handle, $0) }
        }
    }

    /// Opens the stream with the host. On `loop`. False when the host refused (no callbacks then).
    fileprivate func open(address: String, port: UInt16, timeoutMs: UInt32) -> Bool {
        guard case .opening = state else { return true }
        if let closeReason {
            deliverClosed(closeReason)
            return true
        }
        let context = Unmanaged.passRetained(self).toOpaque()  // released after `closed`
        var events = molt_stream_events(context: context, connected: hostStreamConnected,
                                        received: hostStreamReceived, closed: hostStreamClosed)
        let handle = address.withCString {
            services.pointee.stream_open!(services.pointee.host_context, UInt32(loop), $0, port, timeoutMs, &events)
        }
        guard let handle else {
            Unmanaged<HostStream>.fromOpaque(context).release()
            return false
        }
        guard case .opening = state else { return true }  // `closed` already came, inline: the handle is invalid
        state = .open(handle)
        if !unopenedBytes.isEmpty {
            let bytes = unopenedBytes
            unopenedBytes = []
            write(bytes)
        }
        if let closeReason { closeReason.withCString { services.pointee.stream_close!(handle, $0) } }
        return true
    }

    fileprivate func deliverConnected() {
        guard closeReason == nil, let handler else { return }
        handler.streamConnected(self)
    }

    fileprivate func deliverReceived(_ bytes: UnsafeRawBufferPointer) {
        guard closeReason == nil, let handler else { return }
        handler.stream(self, received: bytes)
    }

    fileprivate func deliverClosed(_ reason: String) {
        guard let handler else { return }
        state = .closed
        self.handler = nil
        unopenedBytes = []
        handler.streamClosed(self, reason: closeReason ?? reason)
    }
}

/// A timer the host runs on one of its loops (`HostServices.startTimer`). It holds its closure until
/// it fires or is cancelled.
public final class HostTimer: @unchecked Sendable {
    // @unchecked Sendable: `fire` is set in init, before the host can run the timer, and afterwards
    // touched only on `loop` (firing, and `cancel`, which is restricted to the loop); `id` is set by
    // the starting thread before the timer is handed to anyone who may cancel it.
    public let loop: Int
    /// The host's id of the timer (never 0).
    public fileprivate(set) var id: UInt64 = 0
    private let services: UnsafePointer<molt_host_services>
    private var fire: (@Sendable () -> Void)?

    init(loop: Int, services: UnsafePointer<molt_host_services>, fire: @escaping @Sendable () -> Void) {
        self.loop = loop
        self.services = services
        self.fire = fire
    }

    /// Whether the timer is still due (neither fired nor cancelled). On the timer's loop only.
    public var isPending: Bool { fire != nil }

    /// Cancels the timer unless it fired already: `fire` will not be called. On the timer's loop
    /// only (so that it cannot be firing meanwhile). Returns whether it was still pending.
    @discardableResult
    public func cancel() -> Bool {
        guard fire != nil else { return false }
        fire = nil
        services.pointee.timer_cancel!(services.pointee.host_context, id)
        Unmanaged.passUnretained(self).release()  // the reference startTimer gave the host
        return true
    }

    fileprivate func fired() {
        guard let fire else { return }
        self.fire = nil
        fire()
    }
}

// The C callbacks: plain functions, the stream or timer is the context.

private func hostStreamConnected(_ context: UnsafeMutableRawPointer?) {
    guard let context else { return }
    Unmanaged<HostStream>.fromOpaque(context).takeUnretainedValue().deliverConnected()
}

private func hostStreamReceived(_ context: UnsafeMutableRawPointer?, _ bytes: UnsafePointer<UInt8>?, _ length: Int) {
    guard let context, let bytes, length > 0 else { return }
    Unmanaged<HostStream>.fromOpaque(context).takeUnretainedValue().deliverReceived(UnsafeRawBufferPointer(start: bytes, count: length))
}

private func hostStreamClosed(_ context: UnsafeMutableRawPointer?, _ message: UnsafePointer<CChar>?) {
    guard let context else { return }
    let stream = Unmanaged<HostStream>.fromOpaque(context).takeRetainedValue()  // the last callback
    stream.deliverClosed(message.map { String(cString: $0) } ?? "closed")
}

private func hostTimerFired(_ context: UnsafeMutableRawPointer?) {
    guard let context else { return }
    Unmanaged<HostTimer>.fromOpaque(context).takeRetainedValue().fired()
}

/// `duration` in whole milliseconds for the ABI, rounded up (a timer never fires early), clamped
/// to 0 ... UInt32.max.
func milliseconds(_ duration: Duration) -> UInt32 {
    let (seconds, attoseconds) = duration.components
    guard seconds >= 0, duration > .zero else { return 0 }
    let total = seconds.multipliedReportingOverflow(by: 1000)
    let fraction = (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    guard !total.overflow else { return UInt32.max }
    return UInt32(clamping: total.partialValue + fraction)
}
