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
/// Reading a plugin's info means mapping it. By default this process maps it with `loader`: C binaries
/// are unmapped again right after (nothing holds them); Swift binaries stay mapped, but the loader shares
/// mappings by content, so rescanning unchanged files maps nothing new. `molt serve` reads them in a child
/// process instead (`ChildProcessInspector`), and maps only the plugins its components run.
public final class PluginCatalog: Sendable {
    public let loader: PluginLoader
    private let inspector: PluginInspector
    private let snapshot = Mutex<(entries: [CatalogEntry], problems: [CatalogProblem])>(([], []))
    private let logger: Logger

    /// - Parameter inspector: reads the files' identities; nil: `loader`, in this process.
    public init(loader: PluginLoader, inspector: PluginInspector? = nil, logger: Logger = Logger(label: "molt.catalog")) {
        self.loader = loader
        self.inspector = inspector ?? Self.inspectInProcess(with: loader)
        self.logger = logger
    }

    /// Identities read by mapping each file in this process.
    public static func inspectInProcess(with loader: PluginLoader) -> PluginInspector {
        { paths in
            var results: [String: Result<InspectedPlugin, LoadError>] = [:]
            for path in paths {
                do throws(LoadError) {
                    let binary = try loader.load(path: path)
                    results[path] = .success(InspectedPlugin(path: path, sha256: binary.sha256, info: binary.info,
                                                             linksSwiftRuntime: binary.linksSwiftRuntime))
                } catch {
                    results[path] = .failure(error)
                }
            }
            return results
        }
    }

    public var entries: [CatalogEntry] { snapshot.withLock { $0.entries } }
    public var problems: [CatalogProblem] { snapshot.withLock { $0.problems } }

    /// Re-reads every `*.so` in the plugins directory (not recursive).
    @discardableResult
    public func rescan() -> (entries: [CatalogEntry], problems: [CatalogProblem]) {
        var entries: [CatalogEntry] = []
        var problems: [CatalogProblem] = []
        let paths = Self.sharedObjectNames(in: loader.pluginsDirectory).map { "\(loader.pluginsDirectory)/\($0)" }
        let inspected = inspector(paths)
        for path in paths {
            switch inspected[path] ?? .failure(.inspectionFailed(path: path, reason: "the inspector gave no answer for it")) {
            case .success(let plugin):
                if let conflict = loader.conflict(with: plugin) {
                    problems.append(CatalogProblem(path: path, error: conflict))
                } else if let clash = entries.first(where: { $0.info.name == plugin.info.name && $0.info.version == plugin.info.version }) {
                    if clash.sha256 != plugin.sha256 {
                        problems.append(CatalogProblem(path: path, error: .duplicateNameVersion(path: path, plugin: plugin.info.id, loadedFrom: clash.path)))
                    }
                    // else an identical copy under another name adds nothing
                } else {
                    entries.append(CatalogEntry(path: path, sha256: plugin.sha256, info: plugin.info, linksSwiftRuntime: plugin.linksSwiftRuntime))
                }
            case .failure(let error):
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
