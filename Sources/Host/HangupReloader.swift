import Agents
import Config
import Engine
import FoundationEssentials
import HTTPServing
import Layers
import Logging
import ServiceLifecycle
import UnixSignals

/// On every SIGHUP until graceful shutdown: re-reads the bootstrap configuration (file, environment and
/// the original arguments) and the component files, then applies the differences: the components
/// through the layers (as the file agent does: changed ones applied, new ones added, ones gone from the
/// files removed) and the engine's timeouts at once. Other settings (addresses, tokens, directories,
/// agents) need a restart; the log names them. The files' Dapr `kind: Subscription` documents are reconciled
/// with the running ones (source `AppSubscriptions.bootstrapSource`) once the components applied.
final class HangupReloader: Service, Sendable {
    private let options: [String]
    /// The configuration molt started with: settings that need a restart still have its values.
    private let started: BootstrapConfig
    private let engine: Engine
    private let layers: ComponentLayers
    private let subscriptions: DeclarativeSubscriptions
    private let logger: Logger

    init(options: [String], running: BootstrapConfig, engine: Engine, layers: ComponentLayers,
         subscriptions: @escaping DeclarativeSubscriptions, logger: Logger) {
        self.subscriptions = subscriptions
        self.options = options
        self.started = running
        self.engine = engine
        self.layers = layers
        self.logger = logger
    }

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            await reload()
        }
    }

    /// The settings applied without a restart: the components, and the engine's timeouts.
    private static let liveSettings: Set<String> = ["components", "readinessTimeoutMs", "drainTimeoutMs", "callTimeoutMs", "initTimeoutMs",
                                                    "applyConfigTimeoutMs", "stateTransferTimeoutMs", "destroyTimeoutMs"]

    func reload() async {
        logger.info("SIGHUP: re-reading the bootstrap configuration and component files")
        let reloaded: BootstrapConfig
        let files: LoadedComponents
        do {
            let loaded = try await BootstrapConfig.load(arguments: options, environment: ProcessInfo.processInfo.environment)
            for warning in loaded.warnings { logger.warning("\(warning)") }
            reloaded = loaded.config
            files = try ComponentFiles.load(reloaded.components, strict: reloaded.strict, logger: logger)
        } catch {
            logger.error("SIGHUP: the configuration cannot be read; nothing changed", metadata: ["error": "\(error)"])
            return
        }
        let needRestart = started.changedSettings(in: reloaded).filter { !Self.liveSettings.contains($0) }
        if !needRestart.isEmpty {
            logger.warning("SIGHUP: these settings changed and take effect only after a restart", metadata: ["settings": "\(needRestart)"])
        }
        let timeouts = engine.updateTimeouts(from: EngineSettings(reloaded))
        let result = await layers.update([LayerChange(layer: .local, source: ComponentLayers.bootstrapSource, components: files.components)])
        let metadata: Logger.Metadata = ["applied": "\(result.applies.map { "\($0.key)=\($0.action.rawValue)" })",
                                         "removed": "\(result.removals.map { "\($0.key)" })", "timeouts": "\(timeouts)"]
        if let error = result.error {
            logger.error("SIGHUP: the component files were NOT applied; the running components are unchanged",
                         metadata: metadata.merging(["error": "\(error)"]) { $1 })
        } else {
            logger.info("SIGHUP: configuration reloaded", metadata: metadata)
            await subscriptions(AppSubscriptions.bootstrapSource, files.subscriptions)
        }
    }
}

extension EngineSettings {
    /// The engine's settings from the bootstrap configuration.
    init(_ config: BootstrapConfig) {
        self.init()
        readinessTimeout = .milliseconds(config.readinessTimeoutMs)
        drainTimeout = .milliseconds(config.drainTimeoutMs)
        callTimeout = .milliseconds(config.callTimeoutMs)
        initTimeout = .milliseconds(config.initTimeoutMs)
        applyConfigTimeout = .milliseconds(config.applyConfigTimeoutMs)
        stateTransferTimeout = .milliseconds(config.stateTransferTimeoutMs)
        destroyTimeout = .milliseconds(config.destroyTimeoutMs)
        appID = config.appID
    }
}
