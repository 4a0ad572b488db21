import PluginHost

/// Layotto's `config.json`, read as a legacy source: only the `state` and `lock` sections of its
/// `grpc_config` objects (found anywhere in the tree; Layotto nests them in
/// `servers[].listeners[].config.filter_chains[].filters[].config`):
///
///     "grpc_config": {
///       "state": { "statestore": { "type": "redis", "metadata": { "redisHost": "localhost:6379" } } },
///       "lock":  { "lockstore":  { "type": "in-memory", "metadata": {} } }
///     }
///
/// Older Layotto releases had no `type`: the key was both the component's name and its type
/// (`"state": {"redis": {"metadata": {…}}}`). Types map to plugins through `ComponentTypeTable` as
/// `state.<type>` / `lock.<type>`. Every component read here carries a DEPRECATED warning.
enum LayottoConfigFormat {
    static func recognizes(_ document: SourceNode) -> Bool {
        (try? document.child("servers")) != nil
    }

    static func read(_ document: SourceNode) throws -> (components: [ComponentSpec], warnings: [ConfigWarning]) {
        var components: [ComponentSpec] = []
        var warnings: [ConfigWarning] = []
        let grpcConfigs = try findGRPCConfigs(in: document)
        if grpcConfigs.isEmpty {
            warnings.append(ConfigWarning(origin: document.origin, keyPath: "", kind: .ignored,
                                          message: "no grpc_config object found: this Layotto config defines no components"))
        }
        for grpcConfig in grpcConfigs {
            for (section, value) in try grpcConfig.entries() {
                guard let kind = ComponentKind(rawValue: section), kind != .binding else {  // a legacy source: state and lock only
                    warnings.append(ConfigWarning(origin: value.origin, keyPath: value.path, kind: .ignored,
                                                  message: "Layotto section '\(section)' is not read by molt (it reads state and lock); ignored"))
                    continue
                }
                guard !value.isNull else { continue }
                for (key, component) in try value.entries() {
                    components.append(try readComponent(kind: kind, key: key, component, warnings: &warnings))
                }
            }
        }
        return (components, warnings)
    }

    private static func readComponent(kind: ComponentKind, key: String, _ component: SourceNode,
                                      warnings: inout [ConfigWarning]) throws -> ComponentSpec {
        for (name, value) in try component.entries() where !["type", "metadata"].contains(name) {
            warnings.append(ConfigWarning(origin: value.origin, keyPath: value.path, kind: .unknownKey, message: "unknown key '\(name)'"))
        }
        let typeNode = try component.child("type")
        let type = try typeNode?.string() ?? key
        let daprType = "\(kind.rawValue).\(type)"
        guard let (_, plugin) = ComponentTypeTable.plugin(forDaprType: daprType) else {
            throw ConfigError(origin: (typeNode ?? component).origin, keyPath: typeNode?.path ?? component.path,
                              message: "Layotto \(kind.rawValue) type '\(type)' has no molt plugin")
        }
        var metadata: [String: String] = [:]
        for (name, value) in try component.child("metadata")?.entries() ?? [] { metadata[name] = try value.scalarText() }
        warnings.append(ConfigWarning(
            origin: component.origin, keyPath: component.path, kind: .deprecated,
            message: "Layotto config.json is a legacy source: write \(kind.rawValue) '\(key)' in molt's components format or as Dapr Component YAML"
                + (typeNode == nil ? " (and this entry has no 'type': its key '\(key)' was taken as both name and type)" : "")))
        return ComponentSpec(kind: kind, name: key, plugin: plugin, metadata: metadata, origin: component.origin)
    }

    /// Every `grpc_config` mapping in the tree, depth first in file order.
    private static func findGRPCConfigs(in node: SourceNode) throws -> [SourceNode] {
        switch node.node {
        case .mapping:
            var found: [SourceNode] = []
            for (key, value) in try node.entries() {
                if key == "grpc_config", case .mapping = value.node { found.append(value) } else { found += try findGRPCConfigs(in: value) }
            }
            return found
        case .sequence:
            return try node.items().flatMap(findGRPCConfigs)
        default:
            return []
        }
    }
}
