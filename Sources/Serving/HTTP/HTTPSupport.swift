#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Hummingbird
import ServingCore

/// HTTPTypes' `HTTPField.Name`, reached through the type Hummingbird re-exports (this target does not
/// depend on swift-http-types directly).
typealias HeaderName = HTTPFields.Element.Name

extension Response {
    /// `body` as JSON, Content-Type application/json.
    static func json(_ body: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        // Our response structs hold only strings, numbers and containers of them: encoding cannot fail.
        let bytes = (try? JSONCoding.encoder.encode(body)).map(Array.init) ?? Array("{}".utf8)
        return json(bytes: bytes, status: status)
    }

    /// Bytes that already are JSON, Content-Type application/json.
    static func json(bytes: [UInt8], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// Dapr's error answer: `{"errorCode":..,"message":..}` with the failure's HTTP status.
    static func failure(_ failure: APIFailure) -> Response {
        error(code: failure.daprErrorCode, message: failure.message, status: HTTPResponse.Status(code: failure.httpStatus))
    }

    static func error(code: String, message: String, status: HTTPResponse.Status) -> Response {
        json(ErrorResponseBody(errorCode: code, message: message), status: status)
    }
}

extension Request {
    /// The value of query parameter `name`, percent-decoded.
    func queryValue(_ name: String) -> String? {
        uri.queryParameters[name[...]].map(String.init)
    }

    /// Dapr's request metadata in a URL: each `metadata.X=Y` query parameter is metadata X: Y.
    var queryMetadata: [String: String] {
        var metadata: [String: String] = [:]
        for (name, value) in uri.queryParameters where name.hasPrefix("metadata.") {
            let key = String(name.dropFirst("metadata.".count))
            metadata[key.percentDecoded ?? key] = String(value)
        }
        return metadata
    }

    /// Reads the whole body (at most `AppAPILimits.maxHTTPBodyBytes`) and decodes it as JSON. Every problem is a
    /// 400 ERR_MALFORMED_REQUEST whose message names it (field path and what was wrong).
    func decodeJSON<Body: Decodable>(_ type: Body.Type) async throws(APIFailure) -> Body {
        var bytes: [UInt8] = []
        do {
            for try await chunk in body {
                guard bytes.count + chunk.readableBytes <= AppAPILimits.maxHTTPBodyBytes else {
                    throw APIFailure.badRequest("HTTP body is larger than \(AppAPILimits.maxHTTPBodyBytes) bytes")
                }
                bytes += chunk.readableBytesView
            }
        } catch let failure as APIFailure {
            throw failure
        } catch {
            throw APIFailure.badRequest("failed reading HTTP body: \(error)")
        }
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let error as DecodingError {
            throw APIFailure.badRequest("failed deserializing HTTP body: \(error.problem)")
        } catch {
            throw APIFailure.badRequest("failed deserializing HTTP body: \(error)")
        }
    }
}

extension RequestContext {
    /// A path parameter of the matched route, percent-decoded (keys may contain `/` as `%2F`).
    /// Escapes that do not decode to UTF-8 (`%FF`) are a bad request, never taken literally.
    func pathParameter(_ name: String) throws(APIFailure) -> String {
        let raw = parameters.get(name) ?? ""
        guard let decoded = raw.percentDecoded else {
            throw APIFailure.badRequest("the \(name) in the URL path is not valid percent-encoded UTF-8: \(raw.prefix(200))")
        }
        return decoded
    }
}

extension DecodingError {
    /// Where in the body and what: `[0].options.concurrency: Expected to decode String but found number instead.`
    var problem: String {
        func path(_ codingPath: [any CodingKey]) -> String {
            let text = codingPath.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }.joined()
            return text.isEmpty ? "body" : text.hasPrefix(".") ? String(text.dropFirst()) : text
        }
        switch self {
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])): required field is missing"
        case .valueNotFound(_, let context), .typeMismatch(_, let context), .dataCorrupted(let context):
            let cause = context.underlyingError.map { " (\($0))" } ?? ""
            return "\(path(context.codingPath)): \(context.debugDescription)\(cause)"
        @unknown default:
            return "\(self)"
        }
    }
}

extension String {
    /// `%XX` escapes decoded as UTF-8; nil when an escape is malformed or the bytes are not UTF-8.
    var percentDecoded: String? {
        guard utf8.contains(UInt8(ascii: "%")) else { return self }
        func hexValue(_ digit: UInt8) -> UInt8? {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var iterator = utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
