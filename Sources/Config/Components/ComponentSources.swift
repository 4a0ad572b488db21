import Engine
import FoundationEssentials

/// Components read from files, with the warnings reading them produced.
public struct LoadedComponents: Sendable, Equatable {
    /// In source order: files in the order given, a directory's files sorted by name, each file's
    /// components in file order.
    public var components: [ComponentSpec]
    /// Dapr declarative subscriptions (`kind: Subscription`), in source order.
    public var subscriptions: [SubscriptionSpec]
    public var warnings: [ConfigWarning]

    public init(components: [ComponentSpec] = [], subscriptions: [SubscriptionSpec] = [], warnings: [ConfigWarning] = []) {
        self.components = components
        self.subscriptions = subscriptions
        self.warnings = warnings
    }
}

/// Loads component definitions from files and directories of any supported format, detected by
/// content: Dapr Component YAML (documents with `apiVersion` and `kind`), Layotto config.json (a
/// top-level `servers`), otherwise molt's components format (JSON or YAML).
public enum ComponentSources {
    /// Reads every path (a file, or a directory whose `*.json`, `*.yaml`, `*.yml` files are read in
    /// name order, hidden files skipped). A kind/name defined twice is an error naming both places.
    /// Under `strict`, an unknown key is an error instead of a warning.
    public static func load(paths: [String], strict: Bool = false) throws -> LoadedComponents {
        var loaded = LoadedComponents()
        for path in paths {
            for file in try files(at: path) {
                let fromFile = try load(file: file)
                loaded.components += fromFile.components
                loaded.subscriptions += fromFile.subscriptions
                loaded.warnings += fromFile.warnings
            }
        }
        var firstOrigin: [ComponentKey: ConfigOrigin] = [:]
        for component in loaded.components {
            let origin = component.origin ?? ConfigOrigin(file: "?")
            if let first = firstOrigin[component.key] {
                throw ConfigError(origin: origin, keyPath: "",
                                  message: "component \(component.key) is defined twice: at \(first) and at \(origin)")
            }
            firstOrigin[component.key] = origin
        }
        try checkComponentCount(loaded.components)
        loaded.warnings = try loaded.warnings.enforcingStrict(strict)
        return loaded
    }

    /// The engine's `ComponentLimits` on what files define, refused here to name the file and line:
    /// every component's name and metadata, and the number of components.
    static func checkLimits(_ components: [ComponentSpec], file: String) throws {
        for component in components {
            if let problem = ComponentLimits.nameProblem(component.name) ?? ComponentLimits.metadataProblem(component.metadata, of: component.key) {
                throw ConfigError(origin: component.origin ?? ConfigOrigin(file: file), keyPath: "", message: problem)
            }
        }
        try checkComponentCount(components)
    }

    static func checkComponentCount(_ components: [ComponentSpec]) throws {
        guard components.count > ComponentLimits.maxComponents else { return }
        let first = components[ComponentLimits.maxComponents]
        throw ConfigError(origin: first.origin ?? ConfigOrigin(file: "?"), keyPath: "",
                          message: "component \(first.key) is one too many: \(components.count) components are defined, over the limit of "
                              + "\(ComponentLimits.maxComponents) per molt")
    }

    /// Reads one file.
    public static func load(file: String) throws -> LoadedComponents {
        try parse(try SourceNode.readText(of: file), file: file)
    }

    /// Reads the text of one file; `file` names it in messages.
    public static func parse(_ text: String, file: String) throws -> LoadedComponents {
        let documents = try SourceNode.documents(of: text, file: file)
        guard let first = documents.first else {
            return LoadedComponents(warnings: [ConfigWarning(origin: ConfigOrigin(file: file), keyPath: "", kind: .ignored,
                                                             message: "the file is empty")])
        }
        let read: (components: [ComponentSpec], warnings: [ConfigWarning])
        var subscriptions: [SubscriptionSpec] = []
        if documents.contains(where: DaprComponentFormat.recognizes) {
            let dapr = try DaprComponentFormat.read(documents)
            read = (dapr.components, dapr.warnings)
            subscriptions = dapr.subscriptions
        } else if documents.count > 1 {
            throw ConfigError(origin: documents[1].origin, keyPath: "",
                              message: "several YAML documents, but not Dapr resources (apiVersion/kind): a molt components file is one document")
        } else if LayottoConfigFormat.recognizes(first) {
            read = try LayottoConfigFormat.read(first)
        } else {
            read = try MoltComponentsFormat.read(first)
        }
        try checkLimits(read.components, file: file)
        return LoadedComponents(components: read.components, subscriptions: subscriptions, warnings: read.warnings)
    }

    /// Whether `text` is a component file (Dapr resources, a Layotto config.json, or molt's components
    /// format, whose `components` lists mappings) rather than a bootstrap configuration (whose
    /// `components` lists paths). Text that does not parse counts as neither: false.
    public static func isComponentFile(_ text: String, file: String) -> Bool {
        guard let documents = try? SourceNode.documents(of: text, file: file), let first = documents.first else { return false }
        if documents.contains(where: DaprComponentFormat.recognizes) || LayottoConfigFormat.recognizes(first) { return true }
        guard let components = try? first.child("components"), let items = try? components.items() else { return false }
        return items.contains { (try? $0.entries()) != nil }
    }

    static let fileExtensions: Set<String> = ["json", "yaml", "yml"]

    /// The files a path stands for: itself, or a directory's component files in name order.
    static func files(at path: String) throws -> [String] {
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ConfigError(origin: ConfigOrigin(file: path), keyPath: "", message: "no such file or directory")
        }
        guard isDirectory else { return [path] }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw ConfigError(origin: ConfigOrigin(file: path), keyPath: "", message: "cannot list the directory: \(error)")
        }
        let directory = path.hasSuffix("/") ? String(path.dropLast()) : path
        return names.filter { name in
            !name.hasPrefix(".") && fileExtensions.contains(name.split(separator: ".").last.map { $0.lowercased() } ?? "")
        }.sorted().map { "\(directory)/\($0)" }
    }
}
