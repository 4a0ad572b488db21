import Engine
import GRPCCore
import MoltProtos
import PluginHost

/// Layotto's Lifecycle API: `ApplyConfiguration` pushes the full configuration of an existing
/// component. molt applies it in place when the plugin can, else starts a new generation and
/// switches to it; on any failure the old generation keeps serving and the caller gets the reason
/// (the plugin's message verbatim) as the status message.
///
/// Layotto's message has no plugin field, so it changes existing components only (as in Layotto);
/// molt's Control service creates components and changes plugin versions.
public struct LifecycleService: Spec_Proto_Runtime_V1_Lifecycle.SimpleServiceProtocol {
    private let engine: Engine

    public init(engine: Engine) {
        self.engine = engine
    }

    public func applyConfiguration(request: Spec_Proto_Runtime_V1_DynamicConfiguration,
                                   context: ServerContext) async throws -> Spec_Proto_Runtime_V1_ApplyConfigurationResponse {
        guard request.hasComponentConfig else {
            throw RPCError(code: .invalidArgument, message: "component_config is missing")
        }
        let config = request.componentConfig
        let key = try ControlRequests.componentKey(kind: config.kind, name: config.name)
        guard engine.components.contains(where: { $0.key == key }) else {
            throw RPCError(code: .invalidArgument,
                           message: "component \(key) is not configured; the Lifecycle API changes existing components "
                               + "(create it in the components file or with `molt apply --plugin`)")
        }
        let result = await engine.apply(ComponentDefinition(kind: key.kind, name: key.name, config: config.metadata))
        if let error = RPCError(failedApply: result) { throw error }
        return Spec_Proto_Runtime_V1_ApplyConfigurationResponse()
    }
}

/// Validation shared by the control-plane services.
enum ControlRequests {
    static func componentKey(kind: String, name: String) throws(RPCError) -> ComponentKey {
        guard let componentKind = ComponentKind(rawValue: kind) else {
            throw RPCError(code: .invalidArgument,
                           message: "kind '\(kind)' is not one of \(ComponentKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let problem = ComponentLimits.nameProblem(name) { throw RPCError(code: .invalidArgument, message: problem) }
        return ComponentKey(kind: componentKind, name: name)
    }
}

extension RPCError {
    /// The status for a failed apply (nil when it succeeded). The message is the apply's reason,
    /// which carries the plugin's own message verbatim.
    init?(failedApply result: ApplyResult) {
        guard !result.succeeded else { return nil }
        let code: RPCError.Code
        switch result.failure ?? .rejected {
        case .invalidDefinition, .rejected: code = .invalidArgument
        case .timedOut: code = .deadlineExceeded
        case .busy: code = .unavailable
        case .unknownComponent: code = .notFound
        case .aborted: code = .aborted
        case .stateWouldBeLost, .operationsWouldChange: code = .failedPrecondition
        }
        self.init(code: code, message: result.error ?? "apply failed")
    }
}
