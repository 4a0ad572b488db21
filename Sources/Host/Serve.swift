import ArgumentParser
import Dispatch
import Engine
import FoundationEssentials
import Logging
import PluginHost

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the sidecar: load plugins, start the bootstrap components, serve until SIGTERM/SIGINT.",
        discussion: "On SIGTERM or SIGINT every component drains its calls and is destroyed, then molt exits 0.")

    @OptionGroup var directory: PluginDirectoryOptions
    @Option(help: "JSON file with the bootstrap components (see examples/demo-components.json).")
    var components: String?
    @Option(help: "Milliseconds a new instance may take to become ready.") var readinessTimeoutMs = 10_000
    @Option(help: "Milliseconds a switched-out generation may take to finish its calls.") var drainTimeoutMs = 30_000
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = Environment.value("MOLT_LOG_LEVEL") ?? "info"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown log level '\(logLevel)'") }
        Molt.bootstrapLogging(level: level)
        let logger = Logger(label: "molt")
        let definitions = try components.map(ComponentsFile.load) ?? []

        var settings = EngineSettings()
        settings.readinessTimeout = .milliseconds(readinessTimeoutMs)
        settings.drainTimeout = .milliseconds(drainTimeoutMs)
        let catalog = PluginCatalog(loader: try PluginLoader(pluginsDirectory: directory.pluginsDirectory))
        let (entries, problems) = catalog.rescan()
        logger.info("plugins", metadata: ["directory": "\(catalog.loader.pluginsDirectory)", "available": "\(entries.map(\.info.id))",
                                          "skipped": "\(problems.count)"])
        let engine = Engine(catalog: catalog, settings: settings)

        let signals = SignalWaiter([SIGTERM, SIGINT])
        let results = await engine.bootstrap(definitions)
        for result in results where !result.succeeded {
            logger.error("bootstrap component failed; molt keeps serving the others", metadata: ["component": "\(result.key)", "error": "\(result.error ?? "")"])
        }
        logger.info("serving", metadata: ["ready": "\(engine.isReady)", "components": "\(engine.components.map { "\($0.key)=\($0.plugin)#g\($0.generation)" })"])

        let signal = await signals.next()
        logger.info("shutting down", metadata: ["signal": "\(signal)"])
        await engine.shutdown()
        logger.info("stopped")
    }
}

/// The bootstrap components file: `{"components": [{"kind", "name", "plugin", "version"?, "metadata"?, "pin"?}]}`.
enum ComponentsFile {
    struct File: Decodable { let components: [Component] }
    struct Component: Decodable {
        let kind: String
        let name: String
        let plugin: String
        let version: String?
        let metadata: [String: String]?
        let pin: String?
    }

    static func load(_ path: String) throws -> [ComponentDefinition] {
        guard let data = readWholeFile(path) else { throw ValidationError("cannot read components file \(path)") }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: Data(data))
        } catch {
            throw ValidationError("components file \(path): \(error)")
        }
        return try file.components.enumerated().map { index, component in
            guard let kind = ComponentKind(rawValue: component.kind) else {
                throw ValidationError("components file \(path): components[\(index)].kind '\(component.kind)' is not one of \(ComponentKind.allCases.map(\.rawValue))")
            }
            var version: SemanticVersion?
            if let text = component.version {
                guard let parsed = SemanticVersion(text) else {
                    throw ValidationError("components file \(path): components[\(index)].version '\(text)' is not a semantic version")
                }
                version = parsed
            }
            return ComponentDefinition(kind: kind, name: component.name, plugin: component.plugin, version: version,
                                       config: component.metadata ?? [:], pin: component.pin)
        }
    }
}

/// Delivers the first of the given signals to async code (the default action is disabled).
final class SignalWaiter {
    private let stream: AsyncStream<Int32>
    private let sources: [any DispatchSourceSignal]

    init(_ signals: [Int32]) {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        self.stream = stream
        self.sources = signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
    }

    func next() async -> Int32 {
        for await number in stream { return number }
        return 0
    }
}

#if canImport(Glibc)
import Glibc
#endif
