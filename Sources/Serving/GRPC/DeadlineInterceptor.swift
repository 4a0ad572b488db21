import GRPCCore

/// The client's deadline of the gRPC call being served, from its `grpc-timeout` header; nil when it
/// sent none (the engine then applies its default call timeout).
public enum ClientDeadline {
    @TaskLocal public static var current: ContinuousClock.Instant?
}

/// Sets `ClientDeadline.current` for the handler, so that a call whose client stopped waiting stops
/// holding up drains: the engine detaches it from the plugin at that instant.
public struct DeadlineInterceptor: ServerInterceptor {
    public init() {}

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        guard let header = request.metadata[stringValues: "grpc-timeout"].first(where: { _ in true }),
              let timeout = Self.parse(header) else {
            return try await next(request, context)
        }
        return try await ClientDeadline.$current.withValue(ContinuousClock.now.advanced(by: timeout)) {
            try await next(request, context)
        }
    }

    /// gRPC's `grpc-timeout`: at most 8 digits and a unit (H, M, S, m, u, n).
    static func parse(_ header: String) -> Duration? {
        guard let unit = header.last, header.count >= 2, header.count <= 9, let value = Int64(header.dropLast()), value >= 0 else { return nil }
        switch unit {
        case "H": return .seconds(value * 3600)
        case "M": return .seconds(value * 60)
        case "S": return .seconds(value)
        case "m": return .milliseconds(value)
        case "u": return .microseconds(value)
        case "n": return .nanoseconds(value)
        default: return nil
        }
    }
}
