import AppChannel
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// A local HTTP/1.1 app for the tests: answers each request with `status` and the request's path and body
/// (`POST /x` with `abc` → `/x abc`), or never answers when `silent`; counts the connections it accepted.
private final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func add() { value.add(1, ordering: .relaxed) }
    func load() -> Int { value.load(ordering: .relaxed) }
}

private final class LocalApp: Sendable {
    let channel: any Channel
    let connections: Counter

    init(status: Int = 200, silent: Bool = false) async throws {
        let connections = Counter()
        self.connections = connections
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                connections.add()
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Echo(status: status, silent: silent))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    var port: Int { channel.localAddress!.port! }

    func close() async throws { try await channel.close() }

    private final class Echo: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let status: Int
        let silent: Bool
        var path = ""
        var body = ""

        init(status: Int, silent: Bool) {
            self.status = status
            self.silent = silent
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): path = head.uri; body = ""
            case .body(let buffer): body += String(buffer: buffer)
            case .end:
                guard !silent else { return }
                let answer = ByteBuffer(string: "\(path) \(body)")
                var headers = HTTPHeaders()
                headers.add(name: "Content-Length", value: "\(answer.readableBytes)")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers))),
                              promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(answer))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

@Suite struct AppChannelTests {
    @Test func postReturnsTheAppsStatusAndBodyAndReusesItsConnection() async throws {
        let app = try await LocalApp(status: 201)
        let channel = AppChannel(host: "127.0.0.1", port: app.port)
        for index in 0..<3 {
            let response = try await channel.post(path: "/configuration/store/key\(index)", body: Array("{}".utf8))
            #expect(response.status == 201)
            #expect(String(decoding: response.body, as: UTF8.self) == "/configuration/store/key\(index) {}")
        }
        #expect(app.connections.load() == 1, "sequential requests share one keep-alive connection")
        channel.close()
        try await app.close()
    }

    @Test func concurrentRequestsUseAtMostTheConnectionLimit() async throws {
        let app = try await LocalApp()
        var limits = AppChannelLimits()
        limits.maxConnections = 2
        let channel = AppChannel(host: "127.0.0.1", port: app.port, limits: limits)
        try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<20 {
                group.addTask { try await channel.post(path: "/p\(index)", body: []).status }
            }
            for try await status in group { #expect(status == 200) }
        }
        #expect(app.connections.load() <= 2)
        channel.close()
        try await app.close()
    }

    @Test func anAppThatIsDownFailsNamingItsAddress() async throws {
        let app = try await LocalApp()
        let port = app.port
        try await app.close()
        let channel = AppChannel(host: "127.0.0.1", port: port)
        let error = await #expect(throws: AppChannelError.self) { try await channel.post(path: "/x", body: []) }
        #expect(error?.reason == .connectFailed)
        #expect(error?.description.hasPrefix("app channel 127.0.0.1:\(port): ") == true, "\(String(describing: error))")
    }

    @Test func anAppThatNeverAnswersTimesOut() async throws {
        let app = try await LocalApp(silent: true)
        var limits = AppChannelLimits()
        limits.requestTimeout = .milliseconds(300)
        let channel = AppChannel(host: "127.0.0.1", port: app.port, limits: limits)
        let started = ContinuousClock.now
        let error = await #expect(throws: AppChannelError.self) { try await channel.post(path: "/x", body: []) }
        #expect(error?.reason == .timedOut)
        #expect(ContinuousClock.now - started < .seconds(5))
        channel.close()
        try await app.close()
    }
}
