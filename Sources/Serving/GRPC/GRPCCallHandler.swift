import NIOCore
import NIOHPACK
import NIOHTTP2
import ServingCore

/// What every call of the app gRPC server shares: the routes, the app API token, the message limit.
struct GRPCCallSettings: Sendable {
    let routes: DaprGRPCRoutes
    let apiToken: SharedSecret?
    let maxMessageBytes: Int
}

/// One HTTP/2 stream of the app gRPC server, which is one unary call: it collects the request
/// (HEADERS, DATA until end of stream), then serves it in a task that runs on this stream's event
/// loop (`EventLoopExecutor`) and writes the answer from there: HEADERS, DATA and trailers flushed
/// once, or a trailers-only answer for a failure. A call whose plugin completes inline never leaves
/// the loop's thread; a plugin completing on its own thread wakes the loop once.
///
/// Refusals decided from the headers (unknown method, bad token, oversize message) are answered at
/// the end of the request, so the client's stream ends cleanly. Owned by the stream's pipeline; all
/// state is touched on its event loop only.
final class GRPCCallHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private static let responseHeaders: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
    private static let okTrailers: HPACKHeaders = ["grpc-status": "0"]

    private let settings: GRPCCallSettings
    private let executor: EventLoopExecutor
    private var headersSeen = false
    private var method: GRPCMethod?
    private var refusal: GRPCStatus?
    private var deadline: ContinuousClock.Instant?
    private var body: ByteBuffer?
    private var requestEnded = false
    private var streamOpen = true
    private var notGRPC = false

    init(settings: GRPCCallSettings, executor: EventLoopExecutor) {
        self.settings = settings
        self.executor = executor
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers):
            if !headersSeen {
                headersSeen = true
                start(headers.headers)
            }  // a second HEADERS is the client's trailers: nothing in them matters here
            if headers.endStream { end(context) }
        case .data(let data):
            if refusal == nil, case .byteBuffer(var bytes) = data.data {
                let size = (body?.readableBytes ?? 0) + bytes.readableBytes
                if size > settings.maxMessageBytes + 5 {
                    refusal = GRPCStatus(.resourceExhausted, "the request message is over the limit of \(settings.maxMessageBytes) bytes")
                    body = nil
                } else if body == nil {
                    body = bytes
                } else {
                    body!.writeBuffer(&bytes)
                }
            }
            if data.endStream { end(context) }
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        streamOpen = false
        context.fireChannelInactive()
    }

    /// Resolves the method, checks the token and reads the client's deadline.
    private func start(_ headers: HPACKHeaders) {
        guard headers.first(name: ":method") == "POST",
              headers.first(name: "content-type")?.hasPrefix("application/grpc") == true else {
            notGRPC = true  // answered with HTTP 415 at the end of the request, as gRPC servers do
            return
        }
        let path = headers.first(name: ":path") ?? ""
        guard let method = settings.routes.method(path) else {
            refusal = GRPCStatus(.unimplemented, "Requested RPC isn't implemented by this server: molt does not serve \(path)")
            return
        }
        if let token = settings.apiToken {
            let presented = headers.first(name: TokenHeader.app)
            guard token.matches(presented) else {
                refusal = GRPCStatus(.unauthenticated, presented == nil ? "missing \(TokenHeader.app) metadata"
                                                                        : "\(TokenHeader.app) does not match the configured token")
                return
            }
        }
        if let timeout = headers.first(name: "grpc-timeout").flatMap(GRPCTimeout.parse) {
            deadline = ContinuousClock.now.advanced(by: timeout)
        }
        self.method = method
    }

    /// The request is complete: answer a refusal, or serve the one message it carries.
    private func end(_ context: ChannelHandlerContext) {
        guard !requestEnded else { return }
        requestEnded = true
        if notGRPC {
            let headers: HPACKHeaders = [":status": "415", "content-type": "text/plain"]
            context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
            var body = context.channel.allocator.buffer(capacity: 64)
            body.writeString("molt's app gRPC port takes gRPC only: POST with content-type application/grpc\n")
            context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(body), endStream: true))), promise: nil)
            return
        }
        if let refusal { return answer(.failure(refusal), context) }
        guard let method else { return answer(.failure(GRPCStatus(.internal, "the request has no headers")), context) }
        let message: [UInt8]
        switch Self.singleMessage(&body) {
        case .success(let bytes): message = bytes
        case .failure(let status): return answer(.failure(status), context)
        }
        let deadline = self.deadline
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        Task(executorPreference: executor) {
            let outcome = await method.serve(message, deadline)
            let (handler, context) = bound.value  // on the loop: the task prefers its executor
            handler.answer(outcome, context)
        }
    }

    /// A unary request is exactly one length-prefixed, uncompressed message.
    private static func singleMessage(_ body: inout ByteBuffer?) -> Result<[UInt8], GRPCStatus> {
        guard var buffer = body, let compressed = buffer.readInteger(as: UInt8.self),
              let length = buffer.readInteger(as: UInt32.self) else {
            return .failure(GRPCStatus(.internal, "the request carries no message: a unary call sends exactly one"))
        }
        body = nil
        if compressed != 0 {
            return .failure(GRPCStatus(.unimplemented, "the request message is compressed: molt accepts uncompressed messages only"))
        }
        guard buffer.readableBytes == Int(length) else {
            return .failure(GRPCStatus(.internal, buffer.readableBytes > Int(length)
                ? "the request carries more than one message: a unary call sends exactly one"
                : "the request message is truncated: \(buffer.readableBytes) of \(length) bytes"))
        }
        return .success(buffer.readBytes(length: Int(length)) ?? [])
    }

    private func answer(_ outcome: GRPCMethod.Outcome, _ context: ChannelHandlerContext) {
        guard streamOpen else { return }  // the client reset the stream: nobody to answer
        switch outcome {
        case .success(let message):
            context.write(wrapOutboundOut(.headers(.init(headers: Self.responseHeaders))), promise: nil)
            var buffer = context.channel.allocator.buffer(capacity: 5 + message.count)
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt32(message.count))
            buffer.writeBytes(message)
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(buffer)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: Self.okTrailers, endStream: true))), promise: nil)
        case .failure(let status):
            var headers = Self.responseHeaders
            headers.add(name: "grpc-status", value: String(status.code.rawValue))
            if !status.message.isEmpty { headers.add(name: "grpc-message", value: status.encodedMessage) }
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers, endStream: true))), promise: nil)
        }
    }
}
