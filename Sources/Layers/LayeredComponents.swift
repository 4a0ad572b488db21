import Config
import Engine

/// Where a component definition comes from, lowest precedence first.
///
/// - `common`: fleet-wide defaults (etcd `<prefix>common/…`);
/// - `app`: this app's settings (etcd `<prefix>apps/<app-id>/…`);
/// - `local`: this sidecar's own files (`--components`, the file agent's directory).
public enum ConfigLayer: Int, Sendable, Hashable, Comparable, CaseIterable, CustomStringConvertible {
    case common = 0
    case app = 1
    case local = 2

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { ["common", "app", "local"][rawValue] }
}

/// The component definitions of every layer, by source (a file path, an etcd key), and the merged
/// result. Merge rule, per component (kind/name):
/// - the plugin, version requirement and pin come from the highest layer that defines the component;
/// - metadata is merged key by key, a higher layer's value replacing a lower one's;
/// - within one layer, sources are merged in the order of their names (a later one wins);
/// - a component exists while at least one source in one layer defines it.
/// A value type: callers build a candidate, apply it, and keep it only if the apply succeeded.
public struct LayeredComponents: Sendable, Equatable {
    private var sources: [ConfigLayer: [String: [ComponentSpec]]] = [:]

    public init() {}

    /// Replaces what `source` in `layer` defines; an empty list forgets the source.
    public mutating func set(_ layer: ConfigLayer, source: String, components: [ComponentSpec]) {
        if components.isEmpty {
            sources[layer]?.removeValue(forKey: source)
        } else {
            sources[layer, default: [:]][source] = components
        }
    }

    /// What `source` in `layer` defines now (empty when nothing).
    public func components(_ layer: ConfigLayer, source: String) -> [ComponentSpec] {
        sources[layer]?[source] ?? []
    }

    /// The names of the sources of a layer, sorted.
    public func sourceNames(_ layer: ConfigLayer) -> [String] {
        (sources[layer] ?? [:]).keys.sorted()
    }

    /// Every component some layer defines.
    public var keys: Set<ComponentKey> {
        sources.values.reduce(into: Set()) { keys, bySource in
            for specs in bySource.values { keys.formUnion(specs.map(\.key)) }
        }
    }

    /// The merged definition of a component, or nil when no layer defines it.
    public func effective(_ key: ComponentKey) -> ComponentSpec? {
        var merged: ComponentSpec?
        for layer in ConfigLayer.allCases {
            guard let bySource = sources[layer] else { continue }
            for source in bySource.keys.sorted() {
                for spec in bySource[source]! where spec.key == key {
                    guard var result = merged else { merged = spec; continue }
                    result.plugin = spec.plugin
                    result.version = spec.version
                    result.pin = spec.pin
                    result.metadata.merge(spec.metadata) { _, higher in higher }
                    result.origin = spec.origin
                    merged = result
                }
            }
        }
        return merged
    }

    /// The layers (and sources) that define a component, lowest first: for messages and status.
    public func contributors(_ key: ComponentKey) -> [(layer: ConfigLayer, source: String)] {
        ConfigLayer.allCases.flatMap { layer in
            (sources[layer] ?? [:]).keys.sorted().filter { source in sources[layer]![source]!.contains { $0.key == key } }
                .map { (layer, $0) }
        }
    }
}
