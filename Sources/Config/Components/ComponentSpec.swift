import Engine
import PluginHost

/// Which plugin version a component asks for.
public enum VersionRequirement: Sendable, Hashable, CustomStringConvertible {
    /// The newest version in the catalog (molt format without `version`, Dapr without `spec.version`).
    case any
    case exact(SemanticVersion)
    /// The newest version with this major (Dapr's `spec.version: v1`).
    case major(Int)

    public var description: String {
        switch self {
        case .any: return "any"
        case .exact(let version): return version.description
        case .major(let major): return "v\(major)"
        }
    }
}

/// The inner model of one component, whatever format it was written in (molt's components file,
/// Dapr Component YAML, Layotto's config.json). Two specs are equal when they define the same
/// component: `origin` only says where it was read, for messages, and is not compared.
public struct ComponentSpec: Sendable, Equatable, CustomStringConvertible {
    public var kind: ComponentKind
    public var name: String
    public var plugin: String
    public var version: VersionRequirement
    /// The plugin's configuration, every value a string (as plugins receive it).
    public var metadata: [String: String]
    /// Optional sha256 the plugin binary must have.
    public var pin: String?
    public var origin: ConfigOrigin?
    /// Where each metadata key was written, and its field path (`spec.metadata[2]`), for messages; not compared.
    public var metadataOrigins: [String: (origin: ConfigOrigin, path: String)] = [:]

    public init(kind: ComponentKind, name: String, plugin: String, version: VersionRequirement = .any,
                metadata: [String: String] = [:], pin: String? = nil, origin: ConfigOrigin? = nil) {
        self.kind = kind
        self.name = name
        self.plugin = plugin
        self.version = version
        self.metadata = metadata
        self.pin = pin
        self.origin = origin
    }

    public var key: ComponentKey { ComponentKey(kind: kind, name: name) }

    public static func == (a: Self, b: Self) -> Bool {
        (a.kind, a.name, a.plugin, a.version, a.metadata, a.pin) == (b.kind, b.name, b.plugin, b.version, b.metadata, b.pin)
    }

    public var description: String {
        var text = "\(key) plugin=\(plugin) version=\(version)"
        if let pin { text += " pin=\(pin)" }
        return text + " metadata=\(metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })"
    }

    /// The engine's definition, for `.any` and `.exact`. A `.major` requirement needs the catalog:
    /// use `definition(resolvingMajorWith:)` or `definition(catalog:)`.
    public func definition() throws -> ComponentDefinition {
        try definition { _, _ in nil }
    }

    /// The engine's definition; `resolveMajor(plugin, major)` names the newest version of `plugin`
    /// with that major, or nil when there is none (then this throws, naming the component's origin).
    public func definition(resolvingMajorWith resolveMajor: (String, Int) -> SemanticVersion?) throws -> ComponentDefinition {
        let exact: SemanticVersion?
        switch version {
        case .any: exact = nil
        case .exact(let version): exact = version
        case .major(let major):
            guard let resolved = resolveMajor(plugin, major) else {
                throw ConfigError(origin: origin ?? ConfigOrigin(file: "component \(key)"), keyPath: "version",
                                  message: "no version of plugin \(plugin) with major version \(major) is available")
            }
            exact = resolved
        }
        return ComponentDefinition(kind: kind, name: name, plugin: plugin, version: exact, config: metadata, pin: pin)
    }

    /// The engine's definition, resolving a major requirement to the newest matching version in `catalog`.
    public func definition(catalog: PluginCatalog) throws -> ComponentDefinition {
        try definition { plugin, major in
            catalog.versions(of: plugin).filter { $0.major == UInt64(major) && $0.prerelease.isEmpty }.max()
        }
    }
}
