import NIOCore
import NIOHPACK
import ServingCore

/// What every call of the app gRPC server shares: the routes, the app API token, the message limit.
struct GRPCCallSettings: Sendable {
    let routes: DaprGRPCRoutes
    let apiToken: SharedSecret?
    let maxMessageBytes: Int
}

/// One unary call's request as it arrives on its HTTP/2 stream: HEADERS, then DATA until the end of
/// the stream. Refusals decided from the headers (not gRPC, unknown method, bad token) or while the
/// body arrives (over the message limit) are kept and answered once the request has ended, so the
/// client's stream ends cleanly. Plain data: the connection handler owns it, on its event loop.
struct GRPCRequest {
    /// What to do once the request has ended.
    enum Disposition {
        /// Not a gRPC request (method or content type): HTTP 415.
        case notGRPC
        case refuse(GRPCStatus)
        case serve(GRPCMethod, message: [UInt8], deadline: ContinuousClock.Instant?)
    }

    private var method: GRPCMethod?
    private var refusal: GRPCStatus?
    private var notGRPC = false
    private var deadline: ContinuousClock.Instant?
    private var body: ByteBuffer?

    /// Resolves the method, checks the token and reads the client's deadline.
    init(headers: HPACKHeaders, settings: GRPCCallSettings) {
        guard headers.first(name: ":method") == "POST",
              headers.first(name: "content-type")?.hasPrefix("application/grpc") == true else {
            notGRPC = true
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

    /// A bidirectional-streaming call accepted by its headers starts at once, before its messages arrive:
    /// its method and deadline; nil for every other call (served, or refused, once the request has ended).
    var startsAtHeaders: (method: GRPCMethod, deadline: ContinuousClock.Instant?)? {
        guard refusal == nil, !notGRPC, let method, case .bidirectionalStreaming = method.body else { return nil }
        return (method, deadline)
    }

    /// Appends DATA; past the limit the body is dropped and the call will be refused.
    mutating func append(_ bytes: inout ByteBuffer, limit: Int) {
        guard refusal == nil, !notGRPC else { return }
        let size = (body?.readableBytes ?? 0) + bytes.readableBytes
        if size > limit + 5 {
            refusal = GRPCStatus(.resourceExhausted, "the request message is over the limit of \(limit) bytes")
            body = nil
        } else if body == nil {
            body = bytes
        } else {
            body!.writeBuffer(&bytes)
        }
    }

    /// The request has ended: what to answer.
    mutating func end() -> Disposition {
        if notGRPC { return .notGRPC }
        if let refusal { return .refuse(refusal) }
        guard let method else { return .refuse(GRPCStatus(.internal, "the request has no headers")) }
        switch singleMessage() {
        case .success(let message): return .serve(method, message: message, deadline: deadline)
        case .failure(let status): return .refuse(status)
        }
    }

    /// A unary request is exactly one length-prefixed, uncompressed message.
    private mutating func singleMessage() -> Result<[UInt8], GRPCStatus> {
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
}

/// The messages of a streaming request as its DATA arrives: each length-prefixed, uncompressed message,
/// whole, in order. Plain data, owned by the connection handler on its event loop.
struct GRPCMessageFramer {
    private var buffer: ByteBuffer?

    /// Appends `bytes`; the messages they complete, or why the call must end (a compressed message, or one
    /// over `limit`).
    mutating func append(_ bytes: inout ByteBuffer, limit: Int) -> Result<[[UInt8]], GRPCStatus> {
        if buffer == nil { buffer = bytes } else { buffer!.writeBuffer(&bytes) }
        var messages: [[UInt8]] = []
        while let header = buffer!.getBytes(at: buffer!.readerIndex, length: 5) {
            let length = Int(header[1]) << 24 | Int(header[2]) << 16 | Int(header[3]) << 8 | Int(header[4])
            if header[0] != 0 {
                return .failure(GRPCStatus(.unimplemented, "the request message is compressed: molt accepts uncompressed messages only"))
            }
            if length > limit {
                return .failure(GRPCStatus(.resourceExhausted, "the request message is over the limit of \(limit) bytes"))
            }
            guard buffer!.readableBytes >= 5 + length else { break }
            buffer!.moveReaderIndex(forwardBy: 5)
            messages.append(buffer!.readBytes(length: length) ?? [])
        }
        if buffer!.readableBytes == 0 { buffer = nil } else { buffer!.discardReadBytes() }
        return .success(messages)
    }

    /// The stream ended in the middle of a message.
    var hasPartialMessage: Bool { buffer != nil }
}
