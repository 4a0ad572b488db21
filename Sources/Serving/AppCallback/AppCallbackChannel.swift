import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import MoltProtos
import ServiceLifecycle
import SwiftProtobuf

/// molt's gRPC client to an app served with `--app-protocol grpc` (Dapr's gRPC app channel): it calls the app's
/// `dapr.proto.runtime.v1.AppCallback` service (ListTopicSubscriptions, OnTopicEvent) at host:port, plaintext.
///
/// Connection: one HTTP/2 connection, opened at the first call and opened again (with backoff) after it drops; a
/// call made while the app is not reachable fails at once with UNAVAILABLE (no wait for the app: the callers
/// retry). Every call has a deadline (`callTimeout`). `run()` runs the connection for the sidecar's life; at
/// graceful shutdown it lets the calls in flight finish, then closes.
///
/// Threads: the I/O runs on NIO's event loops (the transport's); callers suspend, from any task.
public final class AppCallbackChannel: Service, Sendable {
    /// host:port, as logs name it.
    public let address: String
    public let callTimeout: Duration
    private let client: GRPCClient<HTTP2ClientTransport.Posix>

    public init(host: String, port: Int, callTimeout: Duration = .seconds(60)) throws {
        address = host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]:\(port)" : "\(host):\(port)"
        self.callTimeout = callTimeout
        var config = HTTP2ClientTransport.Posix.Config.defaults
        config.backoff = .init(initial: .milliseconds(100), max: .seconds(2), multiplier: 2, jitter: 0.1)
        client = GRPCClient(transport: try HTTP2ClientTransport.Posix(target: .dns(host: host, port: port),
                                                                       transportSecurity: .plaintext, config: config))
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await client.runConnections()
        } onGracefulShutdown: {
            self.client.beginGracefulShutdown()
        }
    }

    private var options: CallOptions {
        var options = CallOptions.defaults
        options.timeout = callTimeout
        options.waitForReady = false
        return options
    }

    /// The app's programmatic subscriptions. Throws the app's `RPCError` (UNIMPLEMENTED: it lists none).
    public func listTopicSubscriptions() async throws -> Dapr_Proto_Runtime_V1_ListTopicSubscriptionsResponse {
        try await Dapr_Proto_Runtime_V1_AppCallback.Client(wrapping: client)
            .listTopicSubscriptions(Google_Protobuf_Empty(), options: options)
    }

    /// Hands the app one event; returns its answer. Throws the call's `RPCError`.
    public func onTopicEvent(_ request: Dapr_Proto_Runtime_V1_TopicEventRequest) async throws -> Dapr_Proto_Runtime_V1_TopicEventResponse {
        try await Dapr_Proto_Runtime_V1_AppCallback.Client(wrapping: client).onTopicEvent(request, options: options)
    }
}
