import NIOCore
import NIOHTTP1
import ServingCore

/// One connection of an `HTTPServer`, after swift-nio's HTTP/1 request decoder (the only other handler):
/// pipelining and protocol errors are handled here, and answers are written as bytes (`HTTPResponseBytes`).
///
/// Threading: every method runs on the channel's event loop, and so does every request's handler: it
/// runs in a task whose executor preference is that loop (`EventLoopExecutor`), which writes the answer
/// itself. The thread that read a request serves it end to end; only a completion from another thread
/// (a plugin's own I/O thread) wakes the loop.
///
/// Invariants:
/// - One request is served at a time and answers go out in request order. Parts of requests read while
///   one is being answered wait in `backlog`; reading stops only when the backlog is full (`backlogIsFull`),
///   so a connection that sends one request at a time never changes its epoll registration (NIO's
///   `HTTPServerPipelineHandler` stopped reading for every request: two `epoll_ctl` calls per call).
/// - Keep-alive is the default; `Connection: close` (or HTTP/1.0 without keep-alive) closes the
///   connection after the answer.
/// - A body is collected whole before its request is served, up to `maxBodyBytes`; past that the
///   request is served at once with `HTTPServerRequest.Body.tooLarge` and the rest of its body is read
///   and dropped (so a handler that refuses it answers before the whole body has been sent).
/// - A malformed request is answered with a bare 400 `Connection: close` after the answers to the
///   requests before it, then the connection closes.
/// - On quiescing (graceful shutdown) an idle connection closes at once; a busy one answers the request in
///   progress and the complete requests of its backlog, the last answer with `Connection: close`, then closes.
final class HTTPChannelHandler<Responder: HTTPResponder>: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    /// Nothing after this handler writes; answers leave it as bytes.
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The request being read.
    private enum Inbound {
        /// Between requests.
        case idle
        /// Head read, body being collected.
        case collecting(HTTPRequestHead, ByteBuffer)
        /// Body over the limit: the request is already being served; its remaining body parts are dropped.
        case discarding
    }

    /// Reading stops once the backlog holds this many complete requests or this many body bytes.
    static var backlogRequestLimit: Int { 16 }
    static var backlogByteLimit: Int { 64 << 10 }

    private let responder: Responder
    private let maxBodyBytes: Int
    /// The executor of this channel's event loop (shared by every connection on the loop).
    private let executor: EventLoopExecutor
    private var inbound = Inbound.idle
    /// True from the moment a request is handed to its task until its answer is written.
    private var responding = false
    /// Parts of the requests after the one being answered, in order.
    private var backlog = CircularBuffer<HTTPServerRequestPart>()
    /// Complete requests (`.end` parts) and body bytes in `backlog`.
    private var backlogRequests = 0
    private var backlogBytes = 0
    /// A `read` was held back because the backlog was full.
    private var readHeld = false
    /// The client closed its side of the connection: close once everything read is answered.
    private var inputClosed = false
    /// The bytes after the last good request were malformed: answer 400 once everything before is answered.
    private var malformed = false
    /// Graceful shutdown: close once the complete requests read so far are answered.
    private var quiescing = false
    /// The connection is closing or closed: nothing more is read or written.
    private var closing = false
    private var date = HTTPDateCache()

    init(responder: Responder, maxBodyBytes: Int, executor: EventLoopExecutor) {
        self.responder = responder
        self.maxBodyBytes = maxBodyBytes
        self.executor = executor
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing, !malformed else { return }
        let part = unwrapInboundIn(data)
        if !backlog.isEmpty || !acceptsPart {
            enqueue(part)
        } else {
            process(part, context: context)
        }
    }

    func read(context: ChannelHandlerContext) {
        if backlogIsFull || closing {
            readHeld = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed = event as? ChannelEvent {
            // Delivered in order, after the parts of the requests that came before it.
            inputClosed = true
            closeIfDone(context: context)
        } else if event is ChannelShouldQuiesceEvent {
            quiescing = true
            closeIfDone(context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError, !closing, !malformed else {
            if !malformed { close(context: context) }
            return
        }
        malformed = true
        closeIfDone(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        context.fireChannelInactive()
    }

    // MARK: - Requests

    /// True when the next part read can be processed now: no request is being answered, or the one being
    /// answered is still sending the body `process` drops.
    private var acceptsPart: Bool {
        if case .idle = inbound { !responding } else { true }
    }

    private var backlogIsFull: Bool {
        backlogRequests >= Self.backlogRequestLimit || backlogBytes >= Self.backlogByteLimit
    }

    private func enqueue(_ part: HTTPServerRequestPart) {
        switch part {
        case .head: break
        case .body(let chunk): backlogBytes += chunk.readableBytes
        case .end: backlogRequests += 1
        }
        backlog.append(part)
    }

    /// Processes backlog parts until a request is being answered or the backlog is empty, then reads again
    /// if reading was held and closes if nothing is left to do.
    private func drainBacklog(context: ChannelHandlerContext) {
        while !closing, acceptsPart, let part = backlog.popFirst() {
            switch part {
            case .head: break
            case .body(let chunk): backlogBytes -= chunk.readableBytes
            case .end: backlogRequests -= 1
            }
            process(part, context: context)
        }
        closeIfDone(context: context)
        if readHeld && !backlogIsFull && !closing {
            readHeld = false
            context.read()
        }
    }

    private func process(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch (part, inbound) {
        case (.head(let head), .idle):
            inbound = .collecting(head, context.channel.allocator.buffer(capacity: 0))
        case (.body(var chunk), .collecting(let head, var body)):
            inbound = .idle  // releases the enum's reference, so that appending does not copy the buffer
            if body.readableBytes + chunk.readableBytes > maxBodyBytes {
                inbound = .discarding
                serve(HTTPServerRequest(head: head, body: .tooLarge), head: head, context: context)
            } else {
                if body.readableBytes == 0 { body = chunk } else { body.writeBuffer(&chunk) }
                inbound = .collecting(head, body)
            }
        case (.body, .discarding):
            break
        case (.end, .collecting(let head, let body)):
            inbound = .idle
            serve(HTTPServerRequest(head: head, body: .bytes(body)), head: head, context: context)
        case (.end, .discarding):
            inbound = .idle
            closeIfDone(context: context)
        default:
            // The decoder never delivers parts out of order.
            assertionFailure("unexpected HTTP request part in state \(inbound), responding \(responding)")
            close(context: context)
        }
    }

    /// Hands a whole request to a task on this loop's executor, which writes the answer.
    private func serve(_ request: HTTPServerRequest, head: HTTPRequestHead, context: ChannelHandlerContext) {
        responding = true
        let responder = responder
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        Task(executorPreference: executor) {
            let response = await responder.respond(to: request)
            // Back on the channel's loop: the task's executor is the loop (NIOLoopBound checks it).
            let (handler, context) = bound.value
            handler.write(response, to: head, context: context)
        }
    }

    // MARK: - Answers

    /// Writes the answer to the request `head` (the one being served). Adds Content-Length and Date.
    private func write(_ response: HTTPServerResponse, to head: HTTPRequestHead, context: ChannelHandlerContext) {
        responding = false
        guard !closing else { return }
        // The last answer this connection gives: the client asked for it, or nothing complete follows it.
        let last = !head.isKeepAlive || (backlogRequests == 0 && (quiescing || (inputClosed && isIdle)))
        let bodyBytes = response.body?.readableBytes ?? 0
        var answer = HTTPResponseBytes(status: response.status, allocator: context.channel.allocator, capacity: 192 + bodyBytes)
        if let contentType = response.contentType { answer.writeField("Content-Type", contentType) }
        answer.writeFields(response.headers)
        if response.body != nil { answer.writeField("Content-Length", String(bodyBytes)) }
        answer.writeField("Date", date.now())
        if last {
            answer.writeField("Connection", "close")
        } else if head.version == .http1_0 {
            answer.writeField("Connection", "keep-alive")
        }
        let bytes = answer.finish(body: head.method == .HEAD ? nil : response.body)
        guard !last else {
            closeAfterWriting(bytes, context: context)
            return
        }
        context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
        drainBacklog(context: context)
    }

    private var isIdle: Bool {
        if case .idle = inbound { true } else { false }
    }

    /// Once nothing is being answered and no complete request waits: answers a malformed request, or closes
    /// when the client half-closed or the server is quiescing.
    private func closeIfDone(context: ChannelHandlerContext) {
        guard !closing, !responding, backlogRequests == 0 else { return }
        if malformed {
            var answer = HTTPResponseBytes(status: .badRequest, allocator: context.channel.allocator, capacity: 96)
            answer.writeField("Connection", "close")
            answer.writeField("Content-Length", "0")
            closeAfterWriting(answer.finish(body: nil), context: context)
        } else if quiescing || (inputClosed && isIdle && backlog.isEmpty) {
            close(context: context)
        }
    }

    private func closeAfterWriting(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        closing = true
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(bytes)).whenComplete { _ in boundContext.value.close(promise: nil) }
    }

    private func close(context: ChannelHandlerContext) {
        guard !closing else { return }
        closing = true
        context.close(promise: nil)
    }
}
