import Config
import Engine
import FoundationEssentials
import Layers
import Logging
import PluginHost
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Watches a directory of component files (molt's format, Dapr Component YAML, Layotto config.json)
/// and feeds them to the local layer of `ComponentLayers` (each file one source), which applies
/// what changed through the engine, as the Lifecycle API would:
///
/// - a new or changed file is applied once its content has stayed the same for one scan (so an
///   editor's partial writes are not applied): its components in one step (all-or-nothing when several);
/// - a component that disappears from its file, or whose file is deleted, is removed, unless another
///   source (another file, the bootstrap files, an etcd layer) still defines it;
/// - a file that does not parse, or whose apply fails, is reported; the running components stay as
///   they are, and the file is tried again when it changes.
///
/// A file's Dapr `kind: Subscription` documents are that file's declarative subscriptions: handed to
/// `subscriptions` once the file applied (the whole set each time; `[]` when the file is deleted), so they
/// start, change and stop with the file.
///
/// Content is compared by sha256, so atomic-rename replacements and editors that rewrite a file in
/// place are both seen. Hidden files (`.name`) and editor backups (`name~`) are ignored.
public final class FileAgent: Service, Sendable {
    public let directory: String
    private let layers: ComponentLayers
    private let interval: Duration
    private let subscriptions: DeclarativeSubscriptions?
    private let logger: Logger

    public init(directory: String, layers: ComponentLayers, subscriptions: DeclarativeSubscriptions? = nil,
                interval: Duration = .milliseconds(200), logger: Logger = Logger(label: "molt.agent.file")) {
        self.directory = directory
        self.layers = layers
        self.subscriptions = subscriptions
        self.interval = interval
        self.logger = logger
    }

    /// What the agent knows of one file: its last content seen, and whether it still has to be applied.
    struct Tracked {
        var digest: String
        /// Content seen at the last scan, not applied yet (false once applied or failed).
        var pending: Bool
    }

    public func run() async throws {
        logger.info("watching component files", metadata: ["directory": "\(directory)"])
        // Files that were applied before a restart and deleted since: their components go.
        let known = layers.layers.sourceNames(.local).filter { $0.hasPrefix(directory + "/") && readWholeFile($0) == nil }
        for path in known {
            report(await layers.update([LayerChange(layer: .local, source: path, components: [])]), file: path,
                   what: "component file deleted while molt was stopped")
        }
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
        for path in tracked.keys.sorted() where present[path] == nil {
            tracked.removeValue(forKey: path)
            let result = await layers.update([LayerChange(layer: .local, source: path, components: [])])
            report(result, file: path, what: "component file deleted")
            await subscriptions?(path, [])
        }
        for (path, digest) in present.sorted(by: { $0.key < $1.key }) {
            guard var entry = tracked[path] else {
                tracked[path] = Tracked(digest: digest, pending: true)  // new: apply when stable
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
            tracked[path] = entry
            await apply(path)
        }
    }

    private func apply(_ path: String) async {
        let loaded: LoadedComponents
        do {
            loaded = try ComponentSources.load(file: path)
            for warning in loaded.warnings { logger.warning("\(warning)") }
        } catch {
            logger.error("component file not applied; the running components are unchanged", metadata: ["file": "\(path)", "error": "\(error)"])
            return
        }
        let result = await layers.update([LayerChange(layer: .local, source: path, components: loaded.components)])
        report(result, file: path, what: "component file applied")
        // All or nothing: a file whose components were refused keeps its previous subscriptions too.
        if result.succeeded { await subscriptions?(path, loaded.subscriptions) }
    }

    private func report(_ result: LayerUpdateResult, file: String, what: String) {
        guard result.succeeded else {
            logger.error("component file not applied; the running components are unchanged",
                         metadata: ["file": "\(file)", "error": "\(result.error ?? "")"])
            return
        }
        logger.info("\(what)", metadata: ["file": "\(file)", "actions": "\((result.applies + result.removals).map { "\($0.key)=\($0.action.rawValue)" })"])
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
