import NIOCore
import NIOHTTP1
import ServingCore

/// One connection of an `HTTPServer`, last in a pipeline made by `configureHTTPServerPipeline`
/// (HTTP/1.1 codec, `HTTPServerPipelineHandler`, `HTTPServerProtocolErrorHandler`).
///
/// Threading: every method runs on the channel's event loop, and so does every request's handler: it
/// runs in a task whose executor preference is that loop (`EventLoopExecutor`), which writes the answer
/// itself. The thread that read a request serves it end to end; only a completion from another thread
/// (a plugin's own I/O thread) wakes the loop.
///
/// Invariants:
/// - One request at a time: `HTTPServerPipelineHandler` holds back a pipelined request (and stops
///   reading) until the answer to the previous one has been written to its `.end`, so answers go out
///   in request order. Keep-alive is the default; `Connection: close` (or HTTP/1.0 without keep-alive)
///   closes the connection after the answer.
/// - A body is collected whole before its request is served, up to `maxBodyBytes`; past that the
///   request is served at once with `HTTPServerRequest.Body.tooLarge` and the rest of its body is read
///   and dropped (so a handler that refuses it answers before the whole body has been sent).
/// - A malformed request is answered 400 `Connection: close` by `HTTPServerProtocolErrorHandler`; the
///   error then reaches `errorCaught` here, which closes the connection. Nothing is written after that.
/// - On quiescing (graceful shutdown) `HTTPServerPipelineHandler` closes an idle connection at once and
///   a busy one after the answer in progress.
final class HTTPChannelHandler<Responder: HTTPResponder>: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The request being read.
    private enum Inbound {
        /// Between requests.
        case idle
        /// Head read, body being collected.
        case collecting(HTTPRequestHead, ByteBuffer)
        /// Body over the limit: the request is already being served; its remaining body parts are dropped.
        case discarding
    }

    private let responder: Responder
    private let maxBodyBytes: Int
    /// The executor of this channel's event loop (shared by every connection on the loop).
    private let executor: EventLoopExecutor
    private var inbound = Inbound.idle
    /// True from the moment a request is handed to its task until its answer is written.
    private var responding = false
    /// The client closed its side of the connection: close once the answer in progress is written.
    private var inputClosed = false
    /// The connection is closing or closed: nothing more is read or written.
    private var closing = false
    private var date = HTTPDateCache()

    init(responder: Responder, maxBodyBytes: Int, executor: EventLoopExecutor) {
        self.responder = responder
        self.maxBodyBytes = maxBodyBytes
        self.executor = executor
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        switch (unwrapInboundIn(data), inbound) {
        case (.head(let head), .idle) where !responding:
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
            closeIfInputClosed(context: context)
        default:
            // HTTPServerPipelineHandler and the decoder never deliver parts out of order.
            assertionFailure("unexpected HTTP request part in state \(inbound), responding \(responding)")
            close(context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed = event as? ChannelEvent {
            // Delivered in order, after the parts of the requests that came before it.
            inputClosed = true
            closeIfInputClosed(context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        close(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        context.fireChannelInactive()
    }

    // MARK: -

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

    /// Writes the answer to the request `head` (the one being served). Adds Content-Length and Date.
    private func write(_ response: HTTPServerResponse, to head: HTTPRequestHead, context: ChannelHandlerContext) {
        responding = false
        guard !closing else { return }
        var headers = response.headers
        if let body = response.body { headers.add(name: "Content-Length", value: String(body.readableBytes)) }
        headers.add(name: "Date", value: date.now())
        let keepAlive = head.isKeepAlive
        if keepAlive && head.version == .http1_0 { headers.add(name: "Connection", value: "keep-alive") }

        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))),
                      promise: nil)
        if let body = response.body, body.readableBytes > 0, head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        guard keepAlive, !(inputClosed && isIdle) else {
            closing = true
            let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in boundContext.value.close(promise: nil) }
            return
        }
        // May deliver the next pipelined request to `channelRead` before it returns.
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    private var isIdle: Bool {
        if case .idle = inbound { true } else { false }
    }

    /// After the client half-closed: closes once no answer is pending and no request is being read.
    private func closeIfInputClosed(context: ChannelHandlerContext) {
        if inputClosed && !responding && isIdle { close(context: context) }
    }

    private func close(context: ChannelHandlerContext) {
        guard !closing else { return }
        closing = true
        context.close(promise: nil)
    }
}
