import Glibc
import Logging
import Synchronization

/// One plugin file found in the plugins directory.
public struct CatalogEntry: Sendable {
    public let path: String
    public let sha256: String
    public let info: PluginInfo
    public let linksSwiftRuntime: Bool
}

/// A file in the plugins directory that could not be used, and why.
public struct CatalogProblem: Sendable, CustomStringConvertible {
    public let path: String
    public let error: LoadError
    public var description: String { error.description }
}

/// The plugins available in the plugins directory, indexed by kind, name and version. Several
/// versions of one plugin live side by side. `rescan()` re-reads the directory on demand.
///
/// Reading a plugin's info means mapping it: C binaries are unmapped again right after (nothing
/// holds them); Swift binaries stay mapped, but the loader shares mappings by content, so
/// rescanning unchanged files maps nothing new.
public final class PluginCatalog: Sendable {
    public let loader: PluginLoader
    private let snapshot = Mutex<(entries: [CatalogEntry], problems: [CatalogProblem])>(([], []))
    private let logger: Logger

    public init(loader: PluginLoader, logger: Logger = Logger(label: "molt.catalog")) {
        self.loader = loader
        self.logger = logger
    }

    public var entries: [CatalogEntry] { snapshot.withLock { $0.entries } }
    public var problems: [CatalogProblem] { snapshot.withLock { $0.problems } }

    /// Re-reads every `*.so` in the plugins directory (not recursive).
    @discardableResult
    public func rescan() -> (entries: [CatalogEntry], problems: [CatalogProblem]) {
        var entries: [CatalogEntry] = []
        var problems: [CatalogProblem] = []
        for name in Self.sharedObjectNames(in: loader.pluginsDirectory) {
            let path = "\(loader.pluginsDirectory)/\(name)"
            do {
                let binary = try loader.load(path: path)
                if let clash = entries.first(where: { $0.info.name == binary.info.name && $0.info.version == binary.info.version }) {
                    if clash.sha256 != binary.sha256 {
                        problems.append(CatalogProblem(path: path, error: .duplicateNameVersion(path: path, plugin: binary.info.id, loadedFrom: clash.path)))
                    }
                    continue  // an identical copy under another name adds nothing
                }
                entries.append(CatalogEntry(path: path, sha256: binary.sha256, info: binary.info, linksSwiftRuntime: binary.linksSwiftRuntime))
            } catch {
                problems.append(CatalogProblem(path: path, error: error))
            }
        }
        entries.sort { ($0.info.kind.rawValue, $0.info.name, $0.info.version) < ($1.info.kind.rawValue, $1.info.name, $1.info.version) }
        for problem in problems { logger.warning("plugin skipped", metadata: ["path": "\(problem.path)", "error": "\(problem.error)"]) }
        snapshot.withLock { $0 = (entries, problems) }
        return (entries, problems)
    }

    /// The entry for `name` of `kind`: the exact version when given, else the newest.
    public func find(kind: ComponentKind, name: String, version: SemanticVersion? = nil) -> CatalogEntry? {
        let candidates = entries.filter { $0.info.kind == kind && $0.info.name == name }
        if let version { return candidates.first { $0.info.version == version } }
        return candidates.max { $0.info.version < $1.info.version }
    }

    /// Versions available for one plugin, oldest first.
    public func versions(of name: String) -> [SemanticVersion] {
        entries.filter { $0.info.name == name }.map(\.info.version).sorted()
    }

    static func sharedObjectNames(in directory: String) -> [String] {
        (directoryEntryNames(directory) ?? []).filter { $0.hasSuffix(".so") && !$0.hasPrefix(".") }
    }
}
