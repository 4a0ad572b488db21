/// What an `HTTPServer` serves: the answer to one whole request (`AppHTTPResponder`, `AdminHTTPResponder`).
///
/// `respond` runs in a task on the event loop of the request's connection (`HTTPChannelHandler`), one
/// request of a connection at a time; the answer is written as soon as it returns. It cannot fail: every
/// error is an answer.
protocol HTTPResponder: Sendable {
    func respond(to request: HTTPServerRequest) async -> HTTPServerResponse
}
