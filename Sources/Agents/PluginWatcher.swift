import Engine
import Logging
import PluginHost
import ServiceLifecycle

/// `molt serve --watch-plugins`, for plugin development: watches the plugins directory and moves the
/// components whose plugin file was rebuilt in place (same name@version, other bytes) to the new build
/// (`Engine.reloadRebuiltPlugins`). A build that fails to load, init or become ready leaves the running
/// one serving; the failure is logged and the file is tried again when it changes. New files only enter
/// the catalog (apply them by version as usual).
///
/// A change is acted on once every file's identity (inode, size, mtime) has stayed the same for one
/// scan, so a linker or `cp` still writing is not read half-way.
public final class PluginWatcher: Service, Sendable {
    private let engine: Engine
    private let interval: Duration
    private let logger: Logger
    /// Rescans map plugin files (running their constructors): never on the cooperative pool.
    private let scanQueue = BlockingWorkQueue(label: "molt.plugin-watcher", serial: true)

    public init(engine: Engine, interval: Duration = .milliseconds(250), logger: Logger = Logger(label: "molt.plugin-watcher")) {
        self.engine = engine
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        logger.info("watching plugin files: a rebuilt version reloads the components running it",
                    metadata: ["directory": "\(engine.loader.pluginsDirectory)"])
        await cancelWhenGracefulShutdown {
            var seen = self.identities()
            var changed = false
            while !Task.isCancelled {
                try? await Task.sleep(for: self.interval)
                let now = self.identities()
                if now != seen {
                    (seen, changed) = (now, true)  // still being written, perhaps: wait one more scan
                } else if changed {
                    changed = false
                    await self.reloadRebuilds()
                }
            }
        }
    }

    private func reloadRebuilds() async {
        let catalog = engine.catalog
        await scanQueue.run { _ = catalog.rescan() }
        for result in await engine.reloadRebuiltPlugins() {
            if result.succeeded {
                logger.notice("component reloaded onto a rebuilt plugin", metadata: [
                    "component": "\(result.key)", "plugin": "\(result.newPlugin ?? "?")", "action": "\(result.action.rawValue)",
                    "generation": "\(result.oldGeneration.map(String.init) ?? "?") -> \(result.newGeneration.map(String.init) ?? "?")",
                    "warnings": "\(result.warnings.joined(separator: "; "))"])
            } else {
                logger.error("rebuilt plugin not applied; the running build keeps serving", metadata: [
                    "component": "\(result.key)", "plugin": "\(result.newPlugin ?? "?")", "error": "\(result.error ?? "")"])
            }
        }
    }

    private func identities() -> [String: FileIdentity] {
        let directory = engine.loader.pluginsDirectory
        var identities: [String: FileIdentity] = [:]
        for name in directoryEntryNames(directory) ?? [] where name.hasSuffix(".so") && !name.hasPrefix(".") {
            identities[name] = FileIdentity.of(path: "\(directory)/\(name)")
        }
        return identities
    }
}
