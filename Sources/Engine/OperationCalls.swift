import PluginHost

/// Calls of declared operations (ABI 1.2), through the component's lease like every other call.
extension Engine {
    /// Calls `operation` of component `key` with named `arguments`; returns the named results.
    /// STUB until the operation call path lands: always refuses.
    public func invoke(_ key: ComponentKey, operation: String, arguments: [String: OperationValue],
                       deadline: ContinuousClock.Instant? = nil) async throws(CallError) -> Served<[String: OperationValue]> {
        throw CallError.invalidRequest("operations are not implemented yet")
    }

    /// The component an app's binding name means: the `binding` component of that name, else the one component
    /// of any kind with that name that declares operations. STUB: always refuses.
    public func operationsComponent(named name: String) throws(CallError) -> (key: ComponentKey, operations: [OperationDeclaration]) {
        throw CallError.invalidRequest("binding \(name) is not found")
    }

    /// Every serving component that declares operations, with them (for the metadata APIs). STUB: none.
    public var componentOperations: [(key: ComponentKey, operations: [OperationDeclaration])] { [] }
}
