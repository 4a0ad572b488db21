import PluginHost

/// Calls of declared operations (ABI 1.2), through the component's lease like every other call (`Calls.swift`):
/// drains, reloads, version swaps and in-place applies treat them as they treat a try_lock.
///
/// Thread: the caller's. An inline operation runs and completes on it; a blocking one runs on a worker thread
/// (`PluginInstance.invoke`) while the caller is suspended, bounded by the call's deadline.
extension Engine {
    /// Calls `operation` of component `key` with named `arguments`; returns the named results.
    /// Errors: `.unknownComponent`; `.invalidRequest` for an operation the serving plugin does not declare (the
    /// message lists those it does) or arguments that do not match its declaration (the argument named);
    /// `.plugin` for the plugin's failure or results the host refuses; `.deadlineExceeded`.
    public func invoke(_ key: ComponentKey, operation: String, arguments: [String: OperationValue],
                       deadline: ContinuousClock.Instant? = nil) async throws(CallError) -> Served<[String: OperationValue]> {
        try await withLease(key, deadline: deadline) { generation, deadline throws(CallError) in
            do throws(OperationCallError) {
                return try await generation.instance.invoke(operation: operation, arguments: arguments, deadline: deadline)
            } catch {
                switch error {
                case .invalidRequest(let message):
                    guard generation.binary.info.operation(named: operation) == nil else { throw .invalidRequest(message) }
                    let declared = generation.binary.info.operations.map(\.name)
                    throw .invalidRequest("\(key) has no operation '\(operation)' (operations: "
                        + "\(declared.isEmpty ? "none" : declared.joined(separator: ", ")))")
                case .plugin(let failure):
                    throw .plugin(failure)
                }
            }
        }
    }

    /// The component an app's binding name means: the `binding` component of that name, else the one component
    /// of any kind with that name that declares operations. Unknown (or two such components): `.invalidRequest`
    /// listing the components that declare operations.
    public func operationsComponent(named name: String) throws(CallError) -> (key: ComponentKey, operations: [OperationDeclaration]) {
        // The common case, on every call: a binding component of that name (one slot lookup, no scan).
        let bindingKey = ComponentKey(kind: .binding, name: name)
        if let operations = slots.withLock({ $0[bindingKey] })?.activeCell.current?.binary.info.operations, !operations.isEmpty {
            return (bindingKey, operations)
        }
        let serving = componentOperations
        if let binding = serving.first(where: { $0.key == ComponentKey(kind: .binding, name: name) }) { return binding }
        let named = serving.filter { $0.key.name == name }
        if named.count == 1 { return named[0] }
        let listed = serving.map { "\($0.key)" }.joined(separator: ", ")
        if named.count > 1 {
            throw .invalidRequest("binding \(name) is ambiguous: \(named.map { "\($0.key)" }.joined(separator: " and ")) both declare "
                + "operations (name a binding component \(name), or rename one)")
        }
        throw .invalidRequest("binding \(name) is not found (components with operations: \(listed.isEmpty ? "none" : listed))")
    }

    /// Every serving component that declares operations, with them, sorted by key (for the metadata APIs).
    public var componentOperations: [(key: ComponentKey, operations: [OperationDeclaration])] {
        slots.withLock { Array($0.values) }.compactMap { slot in
            guard let operations = slot.activeCell.current?.binary.info.operations, !operations.isEmpty else { return nil }
            return (slot.key, operations)
        }.sorted { $0.key < $1.key }
    }
}
