import Config
import Engine
import FoundationEssentials
import Logging
import PluginHost
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Watches a directory of component files (molt's format, Dapr Component YAML, Layotto config.json)
/// and applies them through the engine, as the Lifecycle API would:
///
/// - a new or changed file is applied once its content has stayed the same for one scan (so an
///   editor's partial writes are not applied): a single component by a plain apply (in place when
///   the plugin can), several in one batch (all-or-nothing);
/// - a component that disappears from its file, or whose file is deleted, is removed;
/// - a file that does not parse, or whose batch fails, is reported; the running components stay as
///   they are, and the file is tried again when it changes.
///
/// Content is compared by sha256, so atomic-rename replacements and editors that rewrite a file in
/// place are both seen. Hidden files (`.name`) and editor backups (`name~`) are ignored.
public final class FileAgent: Service, Sendable {
    public let directory: String
    private let engine: Engine
    private let interval: Duration
    private let logger: Logger

    public init(directory: String, engine: Engine, interval: Duration = .milliseconds(200), logger: Logger = Logger(label: "molt.agent.file")) {
        self.directory = directory
        self.engine = engine
        self.interval = interval
        self.logger = logger
    }

    /// What the agent knows of one file: its last content seen, and the components it applied from it.
    struct Tracked {
        var digest: String
        /// Content seen at the last scan, not applied yet (nil once applied or failed).
        var pending: Bool
        var components: Set<ComponentKey>
    }

    public func run() async throws {
        logger.info("watching component files", metadata: ["directory": "\(directory)"])
        await cancelWhenGracefulShutdown {
            var tracked: [String: Tracked] = [:]
            while !Task.isCancelled {
                await self.scan(&tracked)
                try? await Task.sleep(for: self.interval)
            }
        }
    }

    /// One pass: picks up new, changed and deleted files.
    func scan(_ tracked: inout [String: Tracked]) async {
        let present = componentFiles()
        for path in tracked.keys where present[path] == nil {
            let removed = tracked.removeValue(forKey: path)!
            await remove(removed.components, because: "\(path) was deleted", stillDefined: tracked)
        }
        for (path, digest) in present.sorted(by: { $0.key < $1.key }) {
            guard var entry = tracked[path] else {
                tracked[path] = Tracked(digest: digest, pending: true, components: [])  // new: apply when stable
                continue
            }
            if entry.digest != digest {
                entry.digest = digest
                entry.pending = true
                tracked[path] = entry
                continue
            }
            guard entry.pending else { continue }
            entry.pending = false
            entry.components = await apply(path, previously: entry.components, others: tracked.filter { $0.key != path })
            tracked[path] = entry
        }
    }

    /// Applies a file's components as one batch; removes those it no longer lists. Returns the
    /// components the file now accounts for (unchanged when it could not be applied).
    private func apply(_ path: String, previously: Set<ComponentKey>, others: [String: Tracked]) async -> Set<ComponentKey> {
        let definitions: [ComponentDefinition]
        do {
            let loaded = try ComponentSources.load(file: path)
            for warning in loaded.warnings { logger.warning("\(warning)") }
            definitions = try loaded.components.map { try $0.definition(catalog: engine.catalog) }
        } catch {
            logger.error("component file not applied; the running components are unchanged", metadata: ["file": "\(path)", "error": "\(error)"])
            return previously
        }
        let keys = Set(definitions.map(\.key))
        if !definitions.isEmpty {
            // One component: a plain apply, which can apply in place. Several: all-or-nothing.
            let batch = definitions.count == 1 ? BatchApplyResult(results: [await engine.apply(definitions[0])])
                                               : await engine.applyBatch(definitions)
            guard batch.succeeded else {
                let reasons = batch.results.filter { $0.failure != .aborted }.map { "\($0.key): \($0.error ?? "failed")" }
                logger.error("component file not applied; the running components are unchanged",
                             metadata: ["file": "\(path)", "error": "\(reasons.joined(separator: "; "))"])
                return previously
            }
            logger.info("component file applied", metadata: ["file": "\(path)",
                                                             "actions": "\(batch.results.map { "\($0.key)=\($0.action.rawValue)" })"])
        }
        await remove(previously.subtracting(keys), because: "\(path) no longer defines it", stillDefined: others)
        return keys
    }

    private func remove(_ keys: Set<ComponentKey>, because reason: String, stillDefined others: [String: Tracked]) async {
        let elsewhere = others.values.reduce(into: Set<ComponentKey>()) { $0.formUnion($1.components) }
        for key in keys.subtracting(elsewhere).sorted() {
            let result = await engine.remove(key)
            logger.info("component removed", metadata: ["component": "\(key)", "reason": "\(reason)", "action": "\(result.action.rawValue)"])
        }
    }

    /// The component files in the directory and the sha256 of their content.
    private func componentFiles() -> [String: String] {
        var files: [String: String] = [:]
        for name in directoryEntryNames(directory) ?? [] {
            guard !name.hasPrefix("."), !name.hasSuffix("~"),
                  name.hasSuffix(".json") || name.hasSuffix(".yaml") || name.hasSuffix(".yml") else { continue }
            let path = "\(directory)/\(name)"
            guard let bytes = readWholeFile(path) else { continue }  // vanished between readdir and open
            files[path] = sha256Hex(bytes)
        }
        return files
    }
}
