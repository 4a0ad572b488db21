import GRPCCore
import MoltProtos

/// What the Control API's subscription calls act on: the host's registry of declarative subscriptions (which
/// knows the app channel, the configuration formats and the state directory). Errors are `RPCError`s with the
/// code the caller gets (INVALID_ARGUMENT naming the field and line, NOT_FOUND, FAILED_PRECONDITION).
public protocol ControlSubscriptions: Sendable {
    func apply(_ request: Molt_Control_V1_ApplySubscriptionRequest) async throws(RPCError) -> Molt_Control_V1_ApplySubscriptionResponse
    func remove(name: String) async throws(RPCError) -> Molt_Control_V1_RemoveSubscriptionResponse
    func list() async -> Molt_Control_V1_ListSubscriptionsResponse
}

extension ControlService {
    /// Without an app channel there is nothing to deliver to: every subscription call says so.
    static let noAppChannel = RPCError(code: .failedPrecondition, message:
        "subscriptions need an app channel: this molt runs without --app-port (MOLT_APP_PORT), so it delivers no events to an app")

    public func applySubscription(request: Molt_Control_V1_ApplySubscriptionRequest,
                                  context: ServerContext) async throws -> Molt_Control_V1_ApplySubscriptionResponse {
        guard let subscriptions else { throw Self.noAppChannel }
        return try await subscriptions.apply(request)
    }

    public func removeSubscription(request: Molt_Control_V1_RemoveSubscriptionRequest,
                                   context: ServerContext) async throws -> Molt_Control_V1_RemoveSubscriptionResponse {
        guard let subscriptions else { throw Self.noAppChannel }
        guard !request.name.isEmpty else { throw RPCError(code: .invalidArgument, message: "name is empty: give the subscription's name") }
        return try await subscriptions.remove(name: request.name)
    }

    public func listSubscriptions(request: Molt_Control_V1_ListSubscriptionsRequest,
                                  context: ServerContext) async throws -> Molt_Control_V1_ListSubscriptionsResponse {
        guard let subscriptions else { throw Self.noAppChannel }
        return await subscriptions.list()
    }
}
