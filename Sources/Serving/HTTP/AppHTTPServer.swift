import Engine
import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import ServingCore

/// The app API over HTTP, on Dapr's paths and with Dapr's bodies (default port 3500).
///
/// Health routes are always open; with `apiToken` every other route needs the `dapr-api-token` header.
/// Every store call goes through `telemetry.call`; requests refused before one are counted with
/// `telemetry.rejected`. The returned Service serves until graceful shutdown, then stops accepting, lets
/// the requests in flight finish and returns. `appID` is the `id` of `GET /v1.0/metadata` (omitted when nil).
public func makeAppHTTPServer(engine: Engine, telemetry: Telemetry, address: ListenAddress, apiToken: SharedSecret?,
                              readiness: @escaping @Sendable () -> Bool, logger: Logger, appID: String? = nil,
                              eventLoopGroup: MultiThreadedEventLoopGroup = .singleton) -> AppHTTPServer {
    let responder = AppHTTPResponder(api: AppHTTPAPI(engine: engine, telemetry: telemetry), apiToken: apiToken,
                                     readiness: readiness, appID: appID, logger: logger)
    return AppHTTPServer(responder: responder, address: address, eventLoopGroup: eventLoopGroup, logger: logger)
}

/// The app HTTP API's listener, written on swift-nio's HTTP/1.1 server pipeline (no framework between
/// the socket and the handlers): each connection is served by an `AppHTTPChannelHandler` on the event
/// loop that accepted it, and each request's handler runs on that loop too.
public struct AppHTTPServer: Service {
    let responder: AppHTTPResponder
    let address: ListenAddress
    let eventLoopGroup: MultiThreadedEventLoopGroup
    let logger: Logger

    /// Binds `address` (a name such as `localhost` is resolved, the first address is used), serves until
    /// graceful shutdown, then stops accepting, quiesces every connection (an idle keep-alive connection
    /// is closed, a busy one after its answer) and returns once all are closed. Cancellation closes the
    /// listener and returns without waiting for the connections.
    public func run() async throws {
        let quiescing = ServerQuiescingHelper(group: eventLoopGroup)
        let executors = EventLoopExecutors(eventLoopGroup)
        let responder = responder
        let listener = try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // A client may send its request and shut down its side: the answer is still written.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        AppHTTPChannelHandler(responder: responder, executor: executors.executor(for: channel.eventLoop)))
                }
            }
            .bind(host: address.host, port: address.port).get()
        let bound = ListenAddress(host: listener.localAddress?.ipAddress ?? address.host, port: listener.localAddress?.port ?? address.port)
        logger.info("app HTTP API listening", metadata: ["address": "\(bound)"])

        let closed = eventLoopGroup.any().makePromise(of: Void.self)
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await closed.futureResult.get()
            } onGracefulShutdown: {
                quiescing.initiateShutdown(promise: closed)
            }
        } onCancel: {
            listener.close(promise: nil)
            closed.succeed()  // ignored when shutdown completed first
        }
    }
}

/// One `EventLoopExecutor` per loop of a group, made once: every connection on a loop shares its loop's.
struct EventLoopExecutors: Sendable {
    private let executors: [ObjectIdentifier: EventLoopExecutor]

    init(_ group: MultiThreadedEventLoopGroup) {
        var executors: [ObjectIdentifier: EventLoopExecutor] = [:]
        for loop in group.makeIterator() { executors[ObjectIdentifier(loop)] = EventLoopExecutor(loop) }
        self.executors = executors
    }

    func executor(for loop: any EventLoop) -> EventLoopExecutor {
        executors[ObjectIdentifier(loop)] ?? EventLoopExecutor(loop)
    }
}
