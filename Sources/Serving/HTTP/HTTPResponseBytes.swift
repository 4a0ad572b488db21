import NIOCore
import NIOHTTP1

/// An answer as HTTP/1.1 bytes, in one buffer: status line, the response's fields, the fields the
/// connection adds (Content-Length, Date, Connection), a blank line, the body. `HTTPChannelHandler`
/// writes it with one pipeline write (swift-nio's encoder and header validator took three writes and a
/// second pass over the fields, a tenth of the CPU of a small call).
///
/// Framing is decided by the caller: it writes Content-Length itself (none for a 204) and passes no body
/// to `finish` for a 204 or the answer to a HEAD. A field whose name is not an RFC 9110 token, or whose
/// value holds CR, LF or NUL, is left out, so no value can split the answer; molt's values are
/// constants or legalized (`HTTPHeaders.replaceOrAddLegalized`), so none is expected.
struct HTTPResponseBytes {
    private(set) var buffer: ByteBuffer

    init(status: HTTPResponseStatus, allocator: ByteBufferAllocator, capacity: Int) {
        buffer = allocator.buffer(capacity: capacity)
        buffer.writeStaticString("HTTP/1.1 ")
        buffer.writeString(String(status.code))
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeString(status.reasonPhrase)
        buffer.writeStaticString("\r\n")
    }

    mutating func writeFields(_ headers: HTTPHeaders) {
        for (name, value) in headers where Self.isLegal(name: name, value: value) {
            writeField(name, value)
        }
    }

    mutating func writeField(_ name: String, _ value: String) {
        buffer.writeString(name)
        buffer.writeStaticString(": ")
        buffer.writeString(value)
        buffer.writeStaticString("\r\n")
    }

    /// A field of molt's own, a constant.
    mutating func writeField(_ name: StaticString, _ value: StaticString) {
        buffer.writeStaticString(name)
        buffer.writeStaticString(": ")
        buffer.writeStaticString(value)
        buffer.writeStaticString("\r\n")
    }

    /// Ends the head; appends `body` when there is one to send.
    mutating func finish(body: ByteBuffer?) -> ByteBuffer {
        buffer.writeStaticString("\r\n")
        if var body { buffer.writeBuffer(&body) }
        return buffer
    }

    static func isLegal(name: String, value: String) -> Bool {
        HTTPHeaders.isToken(name)
            && !value.utf8.contains { $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") || $0 == 0 }
    }
}
