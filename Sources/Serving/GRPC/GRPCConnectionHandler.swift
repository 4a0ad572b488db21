import NIOCore
import NIOHPACK
import NIOHTTP2
import ServingCore

/// One HTTP/2 connection of the app gRPC server, handling every stream's frames itself (no channel
/// per stream): each stream is one call, unary, server streaming or bidirectional streaming. A request is collected
/// (`GRPCRequest`), then served in a task that runs on this connection's event loop
/// (`EventLoopExecutor`), which writes the answer from there: HEADERS, DATA and trailers, or a
/// trailers-only answer for a failure. A server-streaming call writes HEADERS with its first message,
/// a DATA frame per message, and trailers with its final status; its task is cancelled when the client
/// resets the stream or the connection closes (nothing more is written), or when the server quiesces
/// (the call then ends with its status, so that the connection can close). A bidirectional call starts
/// at its HEADERS instead: its task reads the client's messages from a stream this handler feeds as DATA
/// arrives (`GRPCMessageFramer`), finished when the client half-closes, while it sends its own as a
/// server-streaming call does; at most `maxQueuedMessages` wait unread (a client sending more is
/// answered RESOURCE_EXHAUSTED). A call whose plugin
/// completes inline never leaves the loop's thread; a plugin completing on its own thread wakes the
/// loop once. Answers of one loop turn are flushed together, once, after the turn's other jobs: the
/// HTTP/2 handler's flush (which walks its outbound state) and the socket's `writev` run once for all.
///
/// Flow control of what clients send is this handler's: DATA is acknowledged (WINDOW_UPDATE) as it is
/// read, for the connection and for a stream still sending, in batches of `windowUpdateBatch` bytes.
///
/// Graceful shutdown (ChannelShouldQuiesceEvent, from the server's quiescing): GOAWAY naming the last
/// stream this connection accepted, streams opened after it refused (REFUSED_STREAM: the client may
/// retry them elsewhere), server-streaming calls ended, and the connection closed once every accepted
/// call is answered and its answer written.
///
/// Invariants: everything runs on the connection's loop; a stream is in `streams` from its HEADERS
/// until its answer is written or the client resets it, and is answered at most once.
final class GRPCConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private static let responseHeaders: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
    private static let okTrailers: HPACKHeaders = ["grpc-status": "0"]
    /// Below the smallest window a client may have (16 KiB frames in a 64 KiB window): a sender is
    /// never stalled waiting for an update it has earned.
    private static let windowUpdateBatch = 16 * 1024

    /// A class: the handler updates a stream in place through `streams`; as a struct every access copied
    /// it (retaining each of its references), a few dozen retains per unary call.
    private final class Stream {
        /// nil once the request has ended (its call is being served).
        var request: GRPCRequest?
        /// DATA bytes read on this stream and not yet acknowledged.
        var unacknowledged = 0
        /// A server-streaming call's task (cancelled when the call must stop).
        var task: Task<Void, Never>?
        /// A server-streaming call wrote its response HEADERS (its status then goes in trailers).
        var headersSent = false
        /// A bidirectional call's messages from the client, to its task; nil once the client half-closed.
        var inbound: AsyncStream<[UInt8]>.Continuation?
        var framer = GRPCMessageFramer()

        init(request: GRPCRequest?) {
            self.request = request
        }
    }

    /// Client messages a bidirectional call may leave unread before the call is ended.
    private static let maxQueuedMessages = 1024

    private let settings: GRPCCallSettings
    private let executor: EventLoopExecutor
    private var streams: [HTTP2StreamID: Stream] = [:]
    /// DATA bytes read on the connection and not yet acknowledged.
    private var connectionUnacknowledged = 0
    private var flushScheduled = false
    /// The highest stream the client opened; named in GOAWAY.
    private var lastStreamID = HTTP2StreamID.rootStream
    /// Graceful shutdown began: no new stream is accepted; close once `streams` is empty.
    private var quiescing = false

    init(settings: GRPCCallSettings, executor: EventLoopExecutor) {
        self.settings = settings
        self.executor = executor
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let id = frame.streamID
        switch frame.payload {
        case .headers(let headers):
            if streams[id] == nil {
                if id > lastStreamID { lastStreamID = id }
                if quiescing {
                    context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .rstStream(.refusedStream))), promise: nil)
                    flushLater(context)
                    return
                }
                let request = GRPCRequest(headers: headers.headers, settings: settings)
                if let (method, deadline) = request.startsAtHeaders {
                    start(id, method, deadline: deadline, context)
                } else {
                    streams[id] = Stream(request: request)
                }
            }  // else the client's trailers: nothing in them matters here
            if headers.endStream { end(id, context) }
        case .data(let payload):
            acknowledge(payload.data.readableBytes + (payload.paddingBytes.map { $0 + 1 } ?? 0),
                        stream: payload.endStream ? nil : id, context)
            if case .byteBuffer(var bytes) = payload.data, let stream = streams[id] {
                if stream.inbound != nil {
                    receive(id, &bytes, context)
                } else {
                    stream.request?.append(&bytes, limit: settings.maxMessageBytes)
                }
            }
            if payload.endStream { end(id, context) }
        case .rstStream:
            // The client gave up on this call: nobody to answer; a streaming call stops.
            if let stream = streams.removeValue(forKey: id) {
                stream.inbound?.finish()
                stream.task?.cancel()
            }
        default:
            break
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else { return context.fireUserInboundEventTriggered(event) }
        guard !quiescing else { return }
        quiescing = true
        // Streaming calls would keep the connection open for ever: end them (each answers its status).
        for stream in streams.values { stream.task?.cancel() }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream,
                                                 payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))),
                      promise: nil)
        flushLater(context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        for stream in streams.values {
            stream.inbound?.finish()
            stream.task?.cancel()
        }
        streams.removeAll()
        context.fireChannelInactive()
    }

    /// Gives the client back the window its DATA used, in batches.
    private func acknowledge(_ length: Int, stream id: HTTP2StreamID?, _ context: ChannelHandlerContext) {
        guard length > 0 else { return }
        connectionUnacknowledged += length
        if connectionUnacknowledged >= Self.windowUpdateBatch {
            context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: connectionUnacknowledged))),
                          promise: nil)
            connectionUnacknowledged = 0
            flushLater(context)
        }
        guard let id, let stream = streams[id] else { return }
        stream.unacknowledged += length
        if stream.unacknowledged >= Self.windowUpdateBatch {
            context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: stream.unacknowledged))),
                          promise: nil)
            stream.unacknowledged = 0
            flushLater(context)
        }
    }

    /// Starts bidirectional call `id` at its HEADERS: its task reads what `receive` yields.
    private func start(_ id: HTTP2StreamID, _ method: GRPCMethod, deadline: ContinuousClock.Instant?, _ context: ChannelHandlerContext) {
        guard case .bidirectionalStreaming(let serve) = method.body else { return }
        let (requests, inbound) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingOldest(Self.maxQueuedMessages))
        let stream = Stream(request: nil)
        stream.inbound = inbound
        streams[id] = stream
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let send = sender(id, bound, context.eventLoop)
        stream.task = Task(executorPreference: executor) {
            let status = await serve(requests, deadline, send)
            let (handler, context) = bound.value  // on the loop: the task prefers its executor
            handler.finish(id, status, context)
        }
    }

    /// DATA of bidirectional call `id`: each whole message to its task. A bad or unread-too-long stream
    /// ends the call with its status.
    private func receive(_ id: HTTP2StreamID, _ bytes: inout ByteBuffer, _ context: ChannelHandlerContext) {
        guard let stream = streams[id], let inbound = stream.inbound else { return }
        let framed = stream.framer.append(&bytes, limit: settings.maxMessageBytes)
        var failure: GRPCStatus?
        switch framed {
        case .failure(let status):
            failure = status
        case .success(let messages):
            for message in messages {
                if case .dropped = inbound.yield(message) {
                    failure = GRPCStatus(.resourceExhausted, "the client sent more than \(Self.maxQueuedMessages) messages the call has not read")
                    break
                }
            }
        }
        if let failure {
            stream.inbound = nil
            inbound.finish()
            stream.task?.cancel()
            finish(id, failure, context)
        }
    }

    /// The `send` of streaming call `id`: writes on the loop (the task prefers its executor), hopping there
    /// should a caller not be on it.
    private func sender(_ id: HTTP2StreamID, _ bound: NIOLoopBound<(GRPCConnectionHandler, ChannelHandlerContext)>,
                        _ loop: any EventLoop) -> GRPCMethod.Send {
        { message in
            if loop.inEventLoop { return bound.value.0.send(id, message, bound.value.1) }
            return (try? await loop.submit { bound.value.0.send(id, message, bound.value.1) }.get()) ?? false
        }
    }

    /// The request on `id` has ended: answer a refusal, or serve its one message; a bidirectional call's
    /// client half-closed (its messages end).
    private func end(_ id: HTTP2StreamID, _ context: ChannelHandlerContext) {
        guard let stream = streams[id] else { return }
        if let inbound = stream.inbound {
            stream.inbound = nil
            if stream.framer.hasPartialMessage {
                stream.task?.cancel()
                finish(id, GRPCStatus(.internal, "the request stream ended inside a message"), context)
            }
            inbound.finish()
            return
        }
        guard var request = stream.request else { return }
        stream.request = nil
        switch request.end() {
        case .notGRPC:
            streams[id] = nil
            flushLater(context)  // before the stream-closing write: see `answer`
            let headers: HPACKHeaders = [":status": "415", "content-type": "text/plain"]
            context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers)))), promise: nil)
            var body = context.channel.allocator.buffer(capacity: 80)
            body.writeString("molt's app gRPC port takes gRPC only: POST with content-type application/grpc\n")
            context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(body), endStream: true)))),
                          promise: nil)
        case .refuse(let status):
            answer(id, .failure(status), context)
        case .serve(let method, let message, let deadline):
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            switch method.body {
            case .unary(let serve):
                Task(executorPreference: executor) {
                    let outcome = await serve(message, deadline)
                    let (handler, context) = bound.value  // on the loop: the task prefers its executor
                    handler.answer(id, outcome, context)
                }
            case .serverStreaming(let serve):
                let send = sender(id, bound, context.eventLoop)
                stream.task = Task(executorPreference: executor) {
                    let status = await serve(message, deadline, send)
                    let (handler, context) = bound.value  // on the loop: the task prefers its executor
                    handler.finish(id, status, context)
                }
            case .bidirectionalStreaming:
                break  // started at its HEADERS (`start`): never collected
            }
        }
    }

    /// Writes one message of server-streaming call `id` (HEADERS first, with the first message); false when
    /// the call is gone (reset, or the connection closed).
    private func send(_ id: HTTP2StreamID, _ message: [UInt8], _ context: ChannelHandlerContext) -> Bool {
        guard let stream = streams[id] else { return false }
        if !stream.headersSent {
            stream.headersSent = true
            context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: Self.responseHeaders)))), promise: nil)
        }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(framed(message, context)))))),
                      promise: nil)
        flushLater(context)
        return true
    }

    /// Ends server-streaming call `id` with `status`: in trailers after its messages, or trailers-only.
    private func finish(_ id: HTTP2StreamID, _ status: GRPCStatus, _ context: ChannelHandlerContext) {
        guard let stream = streams[id] else { return }  // reset meanwhile, or the connection closed
        guard stream.headersSent else {
            answer(id, .failure(status), context)  // trailers-only, whatever the status
            return
        }
        streams[id] = nil
        flushLater(context)  // before the stream-closing write: see `answer`
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: Self.trailers(status), endStream: true)))),
                      promise: nil)
    }

    /// A message as gRPC frames it: not compressed, its big-endian length, the bytes.
    private func framed(_ message: [UInt8], _ context: ChannelHandlerContext) -> ByteBuffer {
        var buffer = context.channel.allocator.buffer(capacity: 5 + message.count)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(message.count))
        buffer.writeBytes(message)
        return buffer
    }

    private static func trailers(_ status: GRPCStatus) -> HPACKHeaders {
        var headers: HPACKHeaders = ["grpc-status": String(status.code.rawValue)]
        if !status.message.isEmpty { headers.add(name: "grpc-message", value: status.encodedMessage) }
        return headers
    }

    private func answer(_ id: HTTP2StreamID, _ outcome: GRPCMethod.Outcome, _ context: ChannelHandlerContext) {
        guard streams.removeValue(forKey: id) != nil else { return }  // reset meanwhile, or the connection closed
        // Scheduled before the write that closes the stream: during graceful shutdown the connection
        // manager closes the connection one task after the last stream closed, and that task must run
        // after this flush, or the answer is dropped unsent.
        flushLater(context)
        switch outcome {
        case .success(let message):
            context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: Self.responseHeaders)))), promise: nil)
            context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(framed(message, context)))))),
                          promise: nil)
            context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: Self.okTrailers, endStream: true)))),
                          promise: nil)
        case .failure(let status):
            var headers = Self.responseHeaders
            headers.add(contentsOf: Self.trailers(status))
            context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers, endStream: true)))),
                          promise: nil)
        }
    }

    /// One flush for everything written in this loop turn, run after the jobs already queued in it
    /// (the other calls answered in the same turn).
    private func flushLater(_ context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = bound.value
            handler.flushScheduled = false
            context.flush()
            if handler.quiescing && handler.streams.isEmpty {
                // Everything is written (a small answer leaves at once; anything the socket did not
                // take yet is flushed by NIO before a half-close of output completes, then we close).
                context.close(mode: .output).whenComplete { _ in bound.value.1.close(promise: nil) }
            }
        }
    }
}
