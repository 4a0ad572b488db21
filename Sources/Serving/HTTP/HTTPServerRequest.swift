#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import NIOHTTP1
import ServingCore

/// One request to an `HTTPServer`, whole: `HTTPChannelHandler` collects the head and the body before
/// the request is served. The path and query are kept as sent; they are decoded where they are read,
/// the way Hummingbird's router and `URI` decoded them (molt served on Hummingbird before, and answers
/// the same).
struct HTTPServerRequest: Sendable {
    /// The body as collected.
    enum Body: Sendable {
        case bytes(ByteBuffer)
        /// Longer than the server's `maxBodyBytes`: the rest was discarded, and only a handler that reads
        /// the body refuses the request (a route that ignores bodies serves it).
        case tooLarge
    }

    let method: HTTPMethod
    /// The path of the request target, not percent-decoded; `/` when the target has none.
    let path: Substring
    /// The query of the request target (after `?`, before `#`), not decoded.
    let query: Substring?
    let headers: HTTPHeaders
    let body: Body

    init(head: HTTPRequestHead, body: Body) {
        method = head.method
        headers = head.headers
        self.body = body
        (path, query) = Self.split(target: head.uri[...])
    }

    /// The non-empty segments of the path, as sent: `//v1.0/state/` is `["v1.0", "state"]`.
    var pathSegments: [Substring] {
        // Split on the byte: `/` is ASCII, so every piece starts and ends on a character boundary.
        var segments: [Substring] = []
        segments.reserveCapacity(8)  // every route has at most 5 before the topic: one allocation
        let utf8 = path.utf8
        var start = utf8.startIndex
        var index = start
        while index != utf8.endIndex {
            if utf8[index] == UInt8(ascii: "/") {
                if start != index { segments.append(Substring(utf8[start..<index])) }
                start = utf8.index(after: index)
            }
            index = utf8.index(after: index)
        }
        if start != utf8.endIndex { segments.append(Substring(utf8[start...])) }
        return segments
    }

    /// Path and query of an origin-form (`/p?q`) or absolute-form (`http://host:port/p?q`) target.
    /// Reads bytes: every delimiter is ASCII, so every piece is a whole run of characters.
    private static func split(target: Substring) -> (path: Substring, query: Substring?) {
        var rest = target.utf8[...]
        if rest.first != UInt8(ascii: "/"), let schemeEnd = target.firstRange(of: "://") {
            // Skip the authority: everything up to the path or the query.
            rest = target.utf8[schemeEnd.upperBound...]
            rest = rest[(rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? rest.endIndex)...]
        }
        guard let questionMark = rest.firstIndex(of: UInt8(ascii: "?")) else {
            return (rest.isEmpty ? "/" : Substring(rest), nil)
        }
        let path = rest[..<questionMark]
        let query = rest[rest.index(after: questionMark)...].prefix { $0 != UInt8(ascii: "#") }
        return (path.isEmpty ? "/" : Substring(path), Substring(query))
    }

    /// The value of header `name` (case-insensitive) as Hummingbird's HTTPFields gave it: each field's value
    /// legalized (surrounding whitespace dropped, control characters made spaces), several joined with ", ".
    func header(_ name: String) -> String? {
        let values = headers[name]
        return values.isEmpty ? nil : values.map(HTTPHeaders.legalized).joined(separator: ", ")
    }

    // MARK: - query

    /// The query's items: split on `&`; the name (kept encoded) is what precedes the first `=`, the value
    /// what follows it, percent-decoded (kept as sent when an escape is malformed; bytes that are not
    /// UTF-8 become U+FFFD). An item without `=` is a name with an empty value.
    var queryItems: [(name: Substring, value: String)] {
        guard let query else { return [] }
        return query.split(separator: "&").map { item in
            guard let equals = item.firstIndex(of: "=") else { return (item, "") }
            let value = item[item.index(after: equals)...]
            return (item[..<equals], value.percentDecodedLossy ?? String(value))
        }
    }

    /// The value of the first query parameter named `name` (the name compared as sent).
    func queryValue(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }

    /// Dapr's request metadata in a URL: each `metadata.X=Y` query parameter is metadata X: Y.
    var queryMetadata: [String: String] {
        var metadata: [String: String] = [:]
        for (name, value) in queryItems where name.hasPrefix("metadata.") {
            let key = String(name.dropFirst("metadata.".count))
            metadata[key.percentDecoded ?? key] = value
        }
        return metadata
    }

    // MARK: - body

    /// Decodes the body of an app API request (limit `AppAPILimits.maxHTTPBodyBytes`) as JSON. Every
    /// problem is a 400 ERR_MALFORMED_REQUEST whose message names it (over the size limit, or the field
    /// path and what was wrong).
    func decodeJSON<Value: Decodable>(_ type: Value.Type) throws(APIFailure) -> Value {
        guard case .bytes(let bytes) = body else {
            throw APIFailure.badRequest("HTTP body is larger than \(AppAPILimits.maxHTTPBodyBytes) bytes")
        }
        do {
            return try JSONCoding.decoder.decode(type, from: Data(bytes.readableBytesView))
        } catch let error as DecodingError {
            throw APIFailure.badRequest("failed deserializing HTTP body: \(error.problem)")
        } catch {
            throw APIFailure.badRequest("failed deserializing HTTP body: \(error)")
        }
    }
}

/// A path segment captured by a route (`{store}`, `{key}`), percent-decoded: keys may contain `/` as
/// `%2F`. Escapes that do not decode to UTF-8 (`%FF`) are a bad request, never taken literally.
func pathParameter(_ raw: Substring, name: String) throws(APIFailure) -> String {
    guard let decoded = String(raw).percentDecoded else {
        throw APIFailure.badRequest("the \(name) in the URL path is not valid percent-encoded UTF-8: \(raw.prefix(200))")
    }
    return decoded
}

extension Substring {
    /// `%XX` escapes decoded, bytes that are not UTF-8 replaced by U+FFFD; nil when an escape is malformed.
    var percentDecodedLossy: String? {
        guard utf8.contains(UInt8(ascii: "%")) else { return String(self) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var iterator = utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexDigitValue), let low = iterator.next().flatMap(hexDigitValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
