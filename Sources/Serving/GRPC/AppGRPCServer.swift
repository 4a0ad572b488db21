import Logging
import NIOCore
import NIOExtras
import NIOHTTP2
import NIOPosix
import ServiceLifecycle
import ServingCore

/// The app API over gRPC (h2c, Dapr's `dapr.proto.runtime.v1.Dapr`), served on swift-nio-http2
/// directly: each connection lives on one event loop of `eventLoopGroup`, and each call on it is
/// decoded, served and answered on that loop's thread (see `GRPCConnectionHandler`).
///
/// On graceful shutdown it stops accepting, sends GOAWAY on every connection, and returns once every
/// connection closed, that is once the calls in flight were answered (their deadline, or the
/// engine's expiry after the drain timeout, bounds them).
public struct AppGRPCServer: Service {
    private let settings: GRPCCallSettings
    private let address: ListenAddress
    private let eventLoopGroup: MultiThreadedEventLoopGroup
    private let logger: Logger

    public init(service: DaprService, address: ListenAddress, apiToken: SharedSecret?, logger: Logger,
                eventLoopGroup: MultiThreadedEventLoopGroup = .singleton) {
        settings = GRPCCallSettings(routes: DaprGRPCRoutes(service), apiToken: apiToken, maxMessageBytes: AppAPILimits.maxGRPCMessageBytes)
        self.address = address
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    public func run() async throws {
        let quiescing = ServerQuiescingHelper(group: eventLoopGroup)
        let settings = self.settings
        let executors = EventLoopExecutors(eventLoopGroup)
        let host = address.host == "localhost" ? "127.0.0.1" : address.host
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                    }
                }
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try Self.configureConnection(channel, settings, executors.executor(for: channel.eventLoop)) }
                }
                .bind(host: host, port: address.port).get()
        } catch {
            logger.critical("app gRPC server cannot listen", metadata: ["address": "\(address)", "error": "\(error)"])
            throw error
        }
        // Completed by the quiescing (every connection closed) or, on cancellation, at once: never
        // left pending (NIO's debug builds trap on a promise that is never completed).
        let stopped = eventLoopGroup.next().makePromise(of: Void.self)
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await stopped.futureResult.get()
            } onGracefulShutdown: {
                quiescing.initiateShutdown(promise: stopped)
            }
        } onCancel: {
            channel.close(promise: nil)
            stopped.succeed()  // ignored when the shutdown completed it first
        }
    }

    /// HTTP/2, then one `GRPCConnectionHandler` for every stream of the connection (it also answers
    /// quiescing: GOAWAY, then close once its calls are answered).
    private static func configureConnection(_ channel: any Channel, _ settings: GRPCCallSettings, _ executor: EventLoopExecutor) throws {
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(NIOHTTP2Handler(mode: .server))
        try sync.addHandler(GRPCConnectionHandler(settings: settings, executor: executor))
    }
}
