public import PluginKit

/// A component that declares operations apps call by name (Dapr's output bindings API: gRPC
/// InvokeBinding, HTTP POST /v1.0/bindings/{component}). Any kind may: a lock or a state store
/// conforms to this beside its kind protocol; a component with nothing else is a `BindingComponent`.
///
///     static let operations: [Operation<TextTools>] = [
///         Operation("slugify", "Lowercases and dashes a text", TextTools.slugify, parameters: ["text"], results: ["slug"]),
///     ]
///
/// At most 16 operations (PluginKit exports 16 entry points). A declaration PluginKit finds wrong (see
/// `operationProblems`) is declared to the host under a name stating the problem, so the host refuses
/// the plugin at load with that message; test `operationProblems.isEmpty` in your unit tests.
public protocol OperationProvider: Component {
    static var operations: [Operation<Self>] { get }
}

/// A component of kind "binding": nothing but declared operations.
public protocol BindingComponent: OperationProvider {}

extension BindingComponent {
    public static var kind: ComponentKind { .binding }
}

extension OperationProvider {
    /// What is wrong with `operations` (names, counts, the number of names against the method's), one
    /// message per problem naming the operation; empty when the host can load them.
    public static var operationProblems: [String] {
        let problems = OperationTable.problems(of: operations)
        return kind == .binding && operations.isEmpty ? ["a binding must declare at least one operation"] + problems : problems
    }
}
