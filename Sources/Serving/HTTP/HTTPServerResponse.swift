import NIOCore
import NIOHTTP1
import ServingCore

/// One answer of an `HTTPServer`, built whole by its responder and written by `HTTPChannelHandler`
/// (which adds Content-Length and Date).
struct HTTPServerResponse: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    /// Written first, apart from `headers`: the JSON answers' type costs no header storage.
    var contentType: StaticString?
    /// nil: no body and no Content-Length (a 204); otherwise sent with its Content-Length.
    var body: ByteBuffer?

    init(status: HTTPResponseStatus, headers: HTTPHeaders, contentType: StaticString? = nil, body: ByteBuffer?) {
        self.status = status
        self.headers = headers
        self.contentType = contentType
        self.body = body
    }

    /// 204, no body: a save, delete or transaction done, a missing key, a healthy probe.
    static let noContent = HTTPServerResponse(status: .noContent, headers: [:], body: nil)

    /// No route for this method and path: 404 with an empty body (Content-Length: 0).
    static let notFound = HTTPServerResponse(status: .notFound, headers: [:], body: ByteBuffer())

    /// `body` as JSON, Content-Type application/json.
    static func json(_ body: some Encodable, status: HTTPResponseStatus = .ok) -> HTTPServerResponse {
        // Our response structs hold only strings, numbers and containers of them: encoding cannot fail.
        let bytes = (try? JSONCoding.encoder.encode(body)).map(Array.init) ?? Array("{}".utf8)
        return json(bytes: bytes, status: status)
    }

    /// Bytes that already are JSON, Content-Type application/json.
    static func json(bytes: [UInt8], status: HTTPResponseStatus = .ok, headers: HTTPHeaders = [:]) -> HTTPServerResponse {
        json(ByteBuffer(bytes: bytes), status: status, headers: headers)
    }

    static func json(_ body: ByteBuffer, status: HTTPResponseStatus = .ok, headers: HTTPHeaders = [:]) -> HTTPServerResponse {
        HTTPServerResponse(status: status, headers: headers, contentType: "application/json", body: body)
    }

    /// Dapr's error answer: `{"errorCode":..,"message":..}` with the failure's HTTP status.
    static func failure(_ failure: APIFailure) -> HTTPServerResponse {
        error(code: failure.daprErrorCode, message: failure.message, status: HTTPResponseStatus(statusCode: failure.httpStatus))
    }

    static func error(code: String, message: String, status: HTTPResponseStatus) -> HTTPServerResponse {
        json(ErrorResponseBody(errorCode: code, message: message), status: status)
    }
}

extension HTTPHeaders {
    /// Sets header `name` to `value` as Hummingbird's HTTPFields did (molt's earlier server): a name that
    /// is not an RFC 9110 token is skipped; in the value, control characters become spaces and surrounding
    /// whitespace is dropped (so that a stored value can never split the response).
    mutating func replaceOrAddLegalized(name: String, value: String) {
        guard Self.isToken(name) else { return }
        replaceOrAdd(name: name, value: Self.legalized(value))
    }

    private static let tokenSymbols = Array("!#$%&'*+-.^_`|~".utf8)

    static func isToken(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
                true
            default:
                tokenSymbols.contains(byte)
            }
        }
    }

    static func legalized(_ value: String) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(value.utf8.count)
        var visibleCount = 0
        for byte in value.utf8 {
            switch byte {
            case 0x21...0x7E, 0x80...0xFF:
                bytes.append(byte)
                visibleCount = bytes.count
            case 0x09, 0x20:
                if !bytes.isEmpty { bytes.append(byte) }
            default:
                if !bytes.isEmpty { bytes.append(0x20) }
            }
        }
        return String(decoding: bytes[..<visibleCount], as: UTF8.self)
    }
}
