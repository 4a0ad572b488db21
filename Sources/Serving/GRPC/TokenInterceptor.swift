import GRPCCore
import ServingCore

/// Refuses every call that does not carry the configured token in `header` (UNAUTHENTICATED), as
/// Dapr does for its API token. With no token configured the server is built without it.
public struct TokenInterceptor: ServerInterceptor {
    private let secret: SharedSecret
    private let header: String

    public init(secret: SharedSecret, header: String) {
        self.secret = secret
        self.header = header
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let presented = request.metadata[stringValues: header].first(where: { _ in true })
        guard secret.matches(presented) else {
            throw RPCError(code: .unauthenticated,
                           message: presented == nil ? "missing \(header) metadata" : "\(header) does not match the configured token")
        }
        return try await next(request, context)
    }
}
