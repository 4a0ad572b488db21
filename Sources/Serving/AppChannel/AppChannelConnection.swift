import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP/1.1 connection to the app, carrying one request at a time (no pipelining) and kept alive between
/// them. Its pipeline is NIO's client codec then an `AppExchangeHandler`, all on the connection's event loop.
struct AppChannelConnection: Sendable {
    let channel: any Channel

    var isActive: Bool { channel.isActive }

    /// Connects on one of `group`'s loops within `limits.connectTimeout`.
    static func connect(host: String, port: Int, address: String, limits: AppChannelLimits,
                        group: any EventLoopGroup) async throws(AppChannelError) -> AppChannelConnection {
        let maxBodyBytes = limits.maxResponseBodyBytes
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(limits.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(AppExchangeHandler(address: address, maxBodyBytes: maxBodyBytes))
                }
            }
        do {
            return AppChannelConnection(channel: try await bootstrap.connect(host: host, port: port).get())
        } catch {
            throw AppChannelError(.connectFailed, address: address, "cannot connect (\(error)); is the app listening?")
        }
    }

    /// Sends one request and returns its whole answer; past `timeout` (or when the calling task is cancelled)
    /// the connection is closed and the call fails. Suspends the caller without blocking any thread.
    func exchange(_ head: HTTPRequestHead, body: ByteBuffer, timeout: TimeAmount, address: String) async throws(AppChannelError) -> AppChannelResponse {
        let channel = self.channel
        let answer = channel.eventLoop.makePromise(of: AppChannelResponse.self)
        // A promise completes once; whichever of the answer, the timer, a write failure or a cancellation comes
        // first wins, and the others are ignored.
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            answer.fail(AppChannelError(.timedOut, address: address, "no answer within \(timeout.nanoseconds / 1_000_000) ms"))
            channel.close(promise: nil)
        }
        answer.futureResult.whenComplete { _ in timer.cancel() }
        channel.writeAndFlush(AppExchange(head: head, body: body, answer: answer)).whenFailure { error in
            answer.fail(AppChannelError(.closedBeforeAnswer, address: address, "the request could not be sent (\(error))"))
        }
        do {
            return try await withTaskCancellationHandler {
                try await answer.futureResult.get()
            } onCancel: {
                answer.fail(AppChannelError(.cancelled, address: address, "the call was cancelled"))
                channel.close(promise: nil)
            }
        } catch let error as AppChannelError {
            throw error
        } catch {
            throw AppChannelError(.connectionFailed, address: address, "\(error)")
        }
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// A request and the promise of its answer, written into the channel as one outbound message.
struct AppExchange: Sendable {
    let head: HTTPRequestHead
    let body: ByteBuffer
    let answer: EventLoopPromise<AppChannelResponse>
}

/// Turns an `AppExchange` into request parts and collects the answer's parts into an `AppChannelResponse`.
/// Every method runs on the connection's event loop (NIO calls them there).
final class AppExchangeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = AppExchange
    typealias OutboundOut = HTTPClientRequestPart

    private let address: String
    private let maxBodyBytes: Int
    private var pending: EventLoopPromise<AppChannelResponse>?
    private var head: HTTPResponseHead?
    private var body: ByteBuffer?

    init(address: String, maxBodyBytes: Int) {
        self.address = address
        self.maxBodyBytes = maxBodyBytes
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let exchange = unwrapOutboundIn(data)
        guard pending == nil else {
            // The pool gives a connection to one request at a time; this is a molt bug, not the app's.
            exchange.answer.fail(AppChannelError(.connectionFailed, address: address, "connection already busy"))
            promise?.fail(ChannelError.inappropriateOperationForState)
            return
        }
        pending = exchange.answer
        head = nil
        body = nil
        context.write(wrapOutboundOut(.head(exchange.head)), promise: nil)
        if exchange.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(exchange.body))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let received):
            head = received
            body = context.channel.allocator.buffer(capacity: 0)
        case .body(var part):
            guard var collected = body else { return }
            guard collected.readableBytes + part.readableBytes <= maxBodyBytes else {
                fail(.answerTooLarge, "the answer's body is longer than \(maxBodyBytes) bytes")
                context.close(promise: nil)
                return
            }
            body = nil  // keep the buffer uniquely referenced while appending
            collected.writeBuffer(&part)
            body = collected
        case .end:
            guard let answer = pending, let head else { return }
            pending = nil
            let bytes = body.map { Array($0.readableBytesView) } ?? []
            self.head = nil
            body = nil
            answer.succeed(AppChannelResponse(status: Int(head.status.code), headers: head.headers.map { (name: $0.name, value: $0.value) },
                                              body: bytes, keepAlive: head.isKeepAlive))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if head == nil {
            fail(.closedBeforeAnswer, "the app closed the connection before answering")
        } else {
            fail(.connectionFailed, "the app closed the connection in the middle of its answer")
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(head == nil ? .closedBeforeAnswer : .connectionFailed, "connection failed: \(error)")
        context.close(promise: nil)
    }

    private func fail(_ reason: AppChannelError.Reason, _ detail: String) {
        guard let answer = pending else { return }
        pending = nil
        answer.fail(AppChannelError(reason, address: address, detail))
    }
}
