import MoltProtos
import ServingCore
import SwiftProtobuf

/// One method of the app API: decodes the request message and serves it, either unary (one answer),
/// server streaming (messages sent one by one, then a status) or bidirectional streaming (the client's
/// messages arrive while the server sends its own).
struct GRPCMethod: Sendable {
    typealias Outcome = Result<[UInt8], GRPCStatus>
    /// Sends one message of a server stream; false when the client is gone (it reset the stream or the
    /// connection closed), after which nothing more is sent.
    typealias Send = @Sendable (_ message: [UInt8]) async -> Bool

    enum Body: Sendable {
        case unary(@Sendable (_ message: [UInt8], _ deadline: ContinuousClock.Instant?) async -> Outcome)
        /// Runs until the call ends and answers its final status. Its task is cancelled when the client
        /// goes away or the server shuts down; it should then return promptly.
        case serverStreaming(@Sendable (_ message: [UInt8], _ deadline: ContinuousClock.Instant?, _ send: @escaping Send) async -> GRPCStatus)
        /// Starts when the call's HEADERS arrive; `requests` yields each message the client sends and ends when
        /// the client half-closes. Runs until the call ends and answers its final status; cancelled as a
        /// server-streaming call is.
        case bidirectionalStreaming(@Sendable (_ requests: AsyncStream<[UInt8]>, _ deadline: ContinuousClock.Instant?,
                                               _ send: @escaping Send) async -> GRPCStatus)
    }

    let body: Body

    static func unary<Request: Message, Response: Message>(
        _ handler: @escaping @Sendable (Request, ContinuousClock.Instant?) async throws(APIFailure) -> Response
    ) -> GRPCMethod {
        GRPCMethod(body: .unary { bytes, deadline in
            let request: Request
            switch decode(Request.self, bytes) {
            case .success(let decoded): request = decoded
            case .failure(let status): return .failure(status)
            }
            let response: Response
            do throws(APIFailure) {
                response = try await handler(request, deadline)
            } catch {
                return .failure(GRPCStatus(error))
            }
            do {
                return .success(try response.serializedBytes())
            } catch {
                return .failure(GRPCStatus(.internal, "cannot encode \(Response.self): \(error)"))
            }
        })
    }

    /// A server-streaming method: `handler` sends its messages with the `send` it is given (false: the client
    /// is gone, stop) and returns when the stream is over (OK), or throws before or between messages.
    static func serverStreaming<Request: Message, Response: Message>(
        _ handler: @escaping @Sendable (Request, ContinuousClock.Instant?, _ send: @Sendable (Response) async -> Bool) async throws(APIFailure) -> Void
    ) -> GRPCMethod {
        GRPCMethod(body: .serverStreaming { bytes, deadline, send in
            let request: Request
            switch decode(Request.self, bytes) {
            case .success(let decoded): request = decoded
            case .failure(let status): return status
            }
            do throws(APIFailure) {
                try await handler(request, deadline) { response in
                    // Our responses hold strings and maps of them: encoding cannot fail.
                    guard let message: [UInt8] = try? response.serializedBytes() else { return false }
                    return await send(message)
                }
                return GRPCStatus(.ok, "")
            } catch {
                return GRPCStatus(error)
            }
        })
    }

    /// A bidirectional-streaming method: `handler` reads the client's messages from `requests` and sends its
    /// own with `send` (false: the client is gone, stop); it returns when the call is over (OK) or throws.
    static func bidirectionalStreaming<Request: Message, Response: Message>(
        _ handler: @escaping @Sendable (_ requests: GRPCRequestMessages<Request>, ContinuousClock.Instant?,
                                        _ send: @escaping @Sendable (Response) async -> Bool) async throws(APIFailure) -> Void
    ) -> GRPCMethod {
        GRPCMethod(body: .bidirectionalStreaming { requests, deadline, send in
            do throws(APIFailure) {
                try await handler(GRPCRequestMessages(requests), deadline) { response in
                    guard let message: [UInt8] = try? response.serializedBytes() else { return false }
                    return await send(message)
                }
                return GRPCStatus(.ok, "")
            } catch {
                return GRPCStatus(error)
            }
        })
    }

    fileprivate static func decode<Request: Message>(_ type: Request.Type, _ bytes: [UInt8]) -> Result<Request, GRPCStatus> {
        do {
            return .success(try Request(serializedBytes: bytes))
        } catch {
            return .failure(GRPCStatus(.invalidArgument, "Can't deserialize to message of type \(Request.self): \(error)"))
        }
    }
}

/// The client's messages of a bidirectional call, decoded one by one.
struct GRPCRequestMessages<Request: Message>: Sendable {
    private let messages: AsyncStream<[UInt8]>

    init(_ messages: AsyncStream<[UInt8]>) { self.messages = messages }

    /// Each message in turn; ends when the client half-closes (or the call ends). A message that does not
    /// decode ends the call with INVALID_ARGUMENT.
    func makeIterator() -> Iterator { Iterator(base: messages.makeAsyncIterator()) }

    struct Iterator {
        var base: AsyncStream<[UInt8]>.Iterator

        mutating func next() async throws(APIFailure) -> Request? {
            guard let bytes = await base.next() else { return nil }
            switch GRPCMethod.decode(Request.self, bytes) {
            case .success(let request): return request
            case .failure(let status): throw APIFailure.badRequest(status.message)
            }
        }
    }
}

/// The app API's gRPC methods by HTTP/2 `:path` (`/dapr.proto.runtime.v1.Dapr/GetState`, ...).
struct DaprGRPCRoutes: Sendable {
    private let methods: [String: GRPCMethod]

    init(_ service: DaprService) {
        let prefix = "/dapr.proto.runtime.v1.Dapr/"
        methods = [
            prefix + "GetState": .unary(service.getState),
            prefix + "GetBulkState": .unary(service.getBulkState),
            prefix + "SaveState": .unary(service.saveState),
            prefix + "DeleteState": .unary(service.deleteState),
            prefix + "DeleteBulkState": .unary(service.deleteBulkState),
            prefix + "ExecuteStateTransaction": .unary(service.executeStateTransaction),
            prefix + "TryLockAlpha1": .unary(service.tryLockAlpha1),
            prefix + "UnlockAlpha1": .unary(service.unlockAlpha1),
            prefix + "InvokeBinding": .unary(service.invokeBinding),
            prefix + "GetSecret": .unary(service.getSecret),
            prefix + "GetBulkSecret": .unary(service.getBulkSecret),
            // Dapr serves the Alpha1 names of the configuration API as the same methods (the Python SDK's
            // subscribe_configuration uses SubscribeConfigurationAlpha1).
            prefix + "GetConfiguration": .unary(service.getConfiguration),
            prefix + "GetConfigurationAlpha1": .unary(service.getConfiguration),
            prefix + "SubscribeConfiguration": .serverStreaming(service.subscribeConfiguration),
            prefix + "SubscribeConfigurationAlpha1": .serverStreaming(service.subscribeConfiguration),
            prefix + "UnsubscribeConfiguration": .unary(service.unsubscribeConfiguration),
            prefix + "UnsubscribeConfigurationAlpha1": .unary(service.unsubscribeConfiguration),
            prefix + "PublishEvent": .unary(service.publishEvent),
            // Dapr serves BulkPublishEvent under both names (the Python SDK's publish_events uses the Alpha1 one).
            prefix + "BulkPublishEvent": .unary(service.bulkPublishEvent),
            prefix + "BulkPublishEventAlpha1": .unary(service.bulkPublishEvent),
            prefix + "SubscribeTopicEventsAlpha1": .bidirectionalStreaming(service.subscribeTopicEventsAlpha1),
            prefix + "GetMetadata": .unary(service.getMetadata),
        ]
    }

    func method(_ path: String) -> GRPCMethod? { methods[path] }
}
