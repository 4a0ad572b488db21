import Config
import Engine
import FoundationEssentials
import Persistence
import PluginHost

/// The configuration layers' sources (etcd keys, watched files) as last applied, kept in
/// `<state-directory>/layers.json` beside the running snapshots, so that after a restart the agents
/// can tell what changed while molt was down (an etcd key deleted meanwhile is removed at the first
/// sync). Written atomically after every layer change (after the running snapshot: a crash between
/// the two leaves this file one change behind, which the next sync corrects, as an apply of what
/// already runs changes nothing). Format 1, with a sha256 of its content; an unreadable file is
/// reported and treated as empty.
public struct LayerStore: Sendable {
    public static let currentFormat = 1
    public let path: String
    private let directory: String

    public init(directory: String) {
        self.directory = directory
        self.path = "\(directory)/layers.json"
    }

    private struct File: Codable {
        var format: Int
        var sources: [Source]
        var sha256: String
    }

    private struct Source: Codable {
        var layer: String
        var source: String
        var components: [Component]
    }

    private struct Component: Codable {
        var kind: String
        var name: String
        var plugin: String
        /// "any", "1.2.0" or "v1".
        var version: String
        var metadata: [String: String]
        var pin: String?
    }

    public func save(_ layers: LayeredComponents, excluding excluded: Set<String> = []) throws {
        var sources: [Source] = []
        for layer in ConfigLayer.allCases {
            for source in layers.sourceNames(layer) where !excluded.contains(source) {
                sources.append(Source(layer: layer.description, source: source, components: layers.components(layer, source: source).map { spec in
                    Component(kind: spec.kind.rawValue, name: spec.name, plugin: spec.plugin, version: spec.version.description,
                              metadata: spec.metadata, pin: spec.pin)
                }))
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let file = File(format: Self.currentFormat, sources: sources, sha256: try Self.checksum(sources))
        try AtomicFile.write(Array(try encoder.encode(file)), to: path, in: directory)
    }

    /// The stored layers; nil when there is no file. Throws for an unreadable, corrupt or newer file.
    public func load() throws -> LayeredComponents? {
        guard let bytes = readWholeFile(path) else { return nil }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: Data(bytes))
        } catch {
            throw PersistenceError("\(path) is not a layers file (partial or corrupt): \(error)")
        }
        guard file.format <= Self.currentFormat else {
            throw PersistenceError("\(path) has format \(file.format), written by a newer molt (this one reads up to \(Self.currentFormat))")
        }
        guard try Self.checksum(file.sources) == file.sha256 else {
            throw PersistenceError("\(path): the checksum does not match its content (corrupt)")
        }
        var layers = LayeredComponents()
        for source in file.sources {
            guard let layer = ConfigLayer.allCases.first(where: { $0.description == source.layer }) else {
                throw PersistenceError("\(path): unknown layer '\(source.layer)'")
            }
            let specs = try source.components.map { component throws(PersistenceError) -> ComponentSpec in
                guard let kind = ComponentKind(rawValue: component.kind) else {
                    throw PersistenceError("\(path): unknown component kind '\(component.kind)'")
                }
                let version: VersionRequirement
                if component.version == "any" {
                    version = .any
                } else if component.version.hasPrefix("v"), let major = Int(component.version.dropFirst()) {
                    version = .major(major)
                } else if let exact = SemanticVersion(component.version) {
                    version = .exact(exact)
                } else {
                    throw PersistenceError("\(path): bad version '\(component.version)'")
                }
                return ComponentSpec(kind: kind, name: component.name, plugin: component.plugin, version: version,
                                     metadata: component.metadata, pin: component.pin, origin: ConfigOrigin(file: source.source))
            }
            layers.set(layer, source: source.source, components: specs)
        }
        return layers
    }

    private static func checksum(_ sources: [Source]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return sha256Hex(try encoder.encode(sources))
    }
}
