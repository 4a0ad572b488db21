import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import ServingCore

/// An HTTP/1.1 listener written on swift-nio's server pipeline (no framework between the socket and
/// the responder): each connection is served by an `HTTPChannelHandler` on the event loop that accepted
/// it, and each request's `responder.respond` runs on that loop too. Serves the app API (`makeAppHTTPServer`)
/// and the admin endpoints (`makeAdminHTTPServer`).
struct HTTPServer<Responder: HTTPResponder>: Service {
    /// Names the server in the log: "app HTTP API", "admin HTTP API".
    let name: String
    let responder: Responder
    let address: ListenAddress
    /// The longest body collected; a longer one is not read whole (`HTTPServerRequest.Body.tooLarge`).
    let maxBodyBytes: Int
    let eventLoopGroup: MultiThreadedEventLoopGroup
    let logger: Logger

    /// Binds `address` (a name such as `localhost` is resolved, the first address is used), serves until
    /// graceful shutdown, then stops accepting, quiesces every connection (an idle keep-alive connection
    /// is closed, a busy one after its answer) and returns once all are closed. Cancellation closes the
    /// listener and returns without waiting for the connections.
    func run() async throws {
        let quiescing = ServerQuiescingHelper(group: eventLoopGroup)
        let executors = EventLoopExecutors(eventLoopGroup)
        let (responder, maxBodyBytes) = (responder, maxBodyBytes)
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
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
                    try channel.pipeline.syncOperations.addHandler(HTTPChannelHandler(
                        responder: responder, maxBodyBytes: maxBodyBytes, executor: executors.executor(for: channel.eventLoop)))
                }
            }
            .bind(host: address.host, port: address.port).get()
        let bound = ListenAddress(host: listener.localAddress?.ipAddress ?? address.host, port: listener.localAddress?.port ?? address.port)
        logger.info("\(name) listening", metadata: ["address": "\(bound)"])

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
