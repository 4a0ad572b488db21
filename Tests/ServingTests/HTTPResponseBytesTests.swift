@testable import HTTPServing
import NIOCore
import NIOHTTP1
import Testing

/// Answers leave `HTTPChannelHandler` as the bytes `HTTPResponseBytes` writes: a status line, the fields,
/// a blank line and the body; a field that could split the answer is never written.
@Suite struct HTTPResponseBytesTests {
    private func text(_ buffer: ByteBuffer) -> String { String(buffer: buffer) }

    @Test func anAnswerIsTheStatusLineFieldsBlankLineAndBody() {
        var answer = HTTPResponseBytes(status: .ok, allocator: ByteBufferAllocator(), capacity: 16)
        answer.writeFields(["Content-Type": "application/json", "ETag": "\"1\""])
        answer.writeField("Content-Length", "2")
        #expect(text(answer.finish(body: ByteBuffer(string: "{}")))
            == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"1\"\r\nContent-Length: 2\r\n\r\n{}")
    }

    @Test func noBodyEndsAtTheBlankLine() {
        var answer = HTTPResponseBytes(status: .noContent, allocator: ByteBufferAllocator(), capacity: 16)
        answer.writeField("Date", "Sun, 06 Dec 2026 12:00:00 GMT")
        #expect(text(answer.finish(body: nil)) == "HTTP/1.1 204 No Content\r\nDate: Sun, 06 Dec 2026 12:00:00 GMT\r\n\r\n")
    }

    @Test func aFieldThatCouldSplitTheAnswerIsLeftOut() {
        var headers = HTTPHeaders()
        headers.add(name: "X-Ok", value: "fine")
        headers.add(name: "X-Split", value: "a\r\nSet-Cookie: stolen")
        headers.add(name: "X-Newline", value: "a\nb")
        headers.add(name: "X-Nul", value: "a\u{0}b")
        headers.add(name: "Bad Name", value: "x")
        var answer = HTTPResponseBytes(status: .ok, allocator: ByteBufferAllocator(), capacity: 16)
        answer.writeFields(headers)
        #expect(text(answer.finish(body: nil)) == "HTTP/1.1 200 OK\r\nX-Ok: fine\r\n\r\n")
    }

    @Test func anUnnamedStatusKeepsItsCode() {
        var answer = HTTPResponseBytes(status: HTTPResponseStatus(statusCode: 599), allocator: ByteBufferAllocator(), capacity: 16)
        #expect(text(answer.finish(body: nil)).hasPrefix("HTTP/1.1 599 "))
    }
}
