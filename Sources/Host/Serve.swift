import ArgumentParser
import Engine
import FoundationEssentials
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCServing
import HTTPServing
import Logging
import Metrics
import Persistence
import PluginHost
import Prometheus
import ServiceLifecycle
import ServingCore
import Synchronization

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the sidecar: load plugins, start the bootstrap components, serve the app, control and admin APIs.",
        discussion: """
            App API (Dapr-compatible): gRPC on --grpc-address, HTTP on --http-address. Control plane (Layotto's \
            Lifecycle API and molt's Control API, gRPC) on --control-address, never on an app port. Admin HTTP \
            (/actuator/health/liveness, /actuator/health/readiness, /metrics) on --admin-address.
            On SIGTERM or SIGINT molt stops accepting calls, lets the calls in flight finish, destroys every \
            component and exits 0.
            """)

    @OptionGroup var directory: PluginDirectoryOptions
    @Option(help: "JSON file with the bootstrap components (see examples/demo-components.json).")
    var components: String?
    @Option(help: "App ID reported by the metadata API (env APP_ID).")
    var appID: String = Environment.value("APP_ID") ?? "molt"
    @Option(help: "Dapr app API over gRPC, host:port (env MOLT_GRPC_ADDRESS; DAPR_GRPC_PORT sets the port).")
    var grpcAddress: String = Environment.value("MOLT_GRPC_ADDRESS") ?? "127.0.0.1:\(Environment.value("DAPR_GRPC_PORT") ?? "50001")"
    @Option(help: "Dapr app API over HTTP, host:port (env MOLT_HTTP_ADDRESS; DAPR_HTTP_PORT sets the port).")
    var httpAddress: String = Environment.value("MOLT_HTTP_ADDRESS") ?? "127.0.0.1:\(Environment.value("DAPR_HTTP_PORT") ?? "3500")"
    @Option(help: "Control plane (Lifecycle + molt Control, gRPC), host:port (env MOLT_CONTROL_ADDRESS).")
    var controlAddress: String = Environment.value("MOLT_CONTROL_ADDRESS") ?? "127.0.0.1:34904"
    @Option(help: "Admin HTTP (health, /metrics), host:port (env MOLT_ADMIN_ADDRESS).")
    var adminAddress: String = Environment.value("MOLT_ADMIN_ADDRESS") ?? "127.0.0.1:34999"
    @Option(help: "Token every app call must carry as dapr-api-token (env DAPR_API_TOKEN); health endpoints are exempt.")
    var apiToken: String = Environment.value("DAPR_API_TOKEN") ?? ""
    @Option(help: "Token every control call must carry as molt-control-token (env MOLT_CONTROL_TOKEN); required off loopback.")
    var controlToken: String = Environment.value("MOLT_CONTROL_TOKEN") ?? ""
    @Option(help: """
        Directory where molt keeps the running configuration (env MOLT_STATE_DIR). Every change is written \
        there before it is acknowledged, and a restart restores it: the components that ran last, as they \
        ran, plus bootstrap components it has never seen. Without it nothing is persisted.
        """)
    var stateDir: String? = Environment.value("MOLT_STATE_DIR")
    @Option(help: "Milliseconds a new instance may take to become ready.") var readinessTimeoutMs = 10_000
    @Option(help: "Milliseconds a switched-out generation may take to finish its calls.") var drainTimeoutMs = 30_000
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (env MOLT_LOG_LEVEL).")
    var logLevel: String = Environment.value("MOLT_LOG_LEVEL") ?? "info"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown log level '\(logLevel)'") }
        Molt.bootstrapLogging(level: level)
        let logger = Logger(label: "molt")
        let addresses = try parseAddresses()
        let controlSecret = SharedSecret(controlToken)
        if controlSecret == nil && !addresses.control.isLoopback {
            throw ValidationError("--control-address \(addresses.control) is not a loopback address: set --control-token "
                + "(or MOLT_CONTROL_TOKEN) so that only holders of the token can reconfigure molt")
        }
        let bootstrapDefinitions = try components.map(ComponentsFile.load) ?? []
        var definitions = bootstrapDefinitions
        var store: RunningConfigStore?
        if let stateDir {
            let opened = try RunningConfigStore(directory: stateDir)
            let snapshot = opened.load()
            definitions = RunningConfigStore.restore(bootstrap: bootstrapDefinitions, snapshot: snapshot)
            logger.info("state directory", metadata: ["directory": "\(stateDir)", "restored_snapshot": "\(snapshot?.sequence ?? 0)",
                                                      "restored_components": "\(snapshot?.components.count ?? 0)"])
            store = opened
        }

        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        var settings = EngineSettings()
        settings.readinessTimeout = .milliseconds(readinessTimeoutMs)
        settings.drainTimeout = .milliseconds(drainTimeoutMs)
        let catalog = PluginCatalog(loader: try PluginLoader(pluginsDirectory: directory.pluginsDirectory))
        let (entries, problems) = catalog.rescan()
        logger.info("plugins", metadata: ["directory": "\(catalog.loader.pluginsDirectory)", "available": "\(entries.map(\.info.id))",
                                          "skipped": "\(problems.count)"])
        let engine = Engine(catalog: catalog, settings: settings, journal: store)
        let telemetry = Telemetry(engine: engine)
        let lifecycle = SidecarLifecycle(engine: engine, telemetry: telemetry, applyResults: engine.applyResults(),
                                         definitions: definitions, logger: logger)
        let readiness: @Sendable () -> Bool = { lifecycle.isReady }

        let apiSecret = SharedSecret(apiToken)
        let appGRPC = GRPCServerService(
            name: "app gRPC", address: addresses.grpc, logger: logger,
            services: [DaprService(engine: engine, telemetry: telemetry, appID: appID)],
            interceptors: apiSecret.map { [TokenInterceptor(secret: $0, header: TokenHeader.app)] } ?? [])
        let control = GRPCServerService(
            name: "control gRPC", address: addresses.control, logger: logger,
            services: [LifecycleService(engine: engine), ControlService(engine: engine)],
            interceptors: controlSecret.map { [TokenInterceptor(secret: $0, header: TokenHeader.control)] } ?? [])
        let appHTTP = makeAppHTTPServer(engine: engine, telemetry: telemetry, address: addresses.http, apiToken: apiSecret,
                                        readiness: readiness, logger: logger, appID: appID)
        let admin = makeAdminHTTPServer(engine: engine, telemetry: telemetry, registry: registry, address: addresses.admin,
                                        readiness: readiness, logger: logger)
        logger.info("listening", metadata: ["grpc": "\(addresses.grpc)", "http": "\(addresses.http)", "control": "\(addresses.control)",
                                            "admin": "\(addresses.admin)", "app_token": "\(apiSecret != nil)",
                                            "control_token": "\(controlSecret != nil)"])

        // Graceful shutdown runs from the last service to the first, each after the previous one
        // returned: readiness goes DOWN, the app servers stop accepting and finish their calls, the
        // control and admin servers stop, then the engine drains and destroys every component.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: ([lifecycle, admin, control, appHTTP, appGRPC, ReadinessGate(lifecycle: lifecycle)] as [any Service]).map {
                .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup)
            },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        logger.info("stopped")
    }

    private func parseAddresses() throws -> (grpc: ListenAddress, http: ListenAddress, control: ListenAddress, admin: ListenAddress) {
        do {
            return (try ListenAddress(parsing: grpcAddress, option: "--grpc-address"),
                    try ListenAddress(parsing: httpAddress, option: "--http-address"),
                    try ListenAddress(parsing: controlAddress, option: "--control-address"),
                    try ListenAddress(parsing: adminAddress, option: "--admin-address"))
        } catch {
            throw ValidationError(error.description)
        }
    }
}

/// Owns the engine for the life of the process: starts the bootstrap components, counts applies,
/// and on graceful shutdown (after every server stopped) drains and destroys all components.
final class SidecarLifecycle: Service, Sendable {
    let engine: Engine
    private let telemetry: Telemetry
    private let applyResults: AsyncStream<ApplyResult>
    private let definitions: [ComponentDefinition]
    private let logger: Logger
    /// Set when shutdown begins: readiness reports DOWN from then on.
    let stopping = Atomic<Bool>(false)

    init(engine: Engine, telemetry: Telemetry, applyResults: AsyncStream<ApplyResult>, definitions: [ComponentDefinition], logger: Logger) {
        self.engine = engine
        self.telemetry = telemetry
        self.applyResults = applyResults
        self.definitions = definitions
        self.logger = logger
    }

    var isReady: Bool { engine.isReady && !stopping.load(ordering: .relaxed) }

    func run() async throws {
        let telemetry = self.telemetry, results = applyResults
        let counting = Task { await telemetry.observeApplies(results) }
        for result in await engine.bootstrap(definitions) where !result.succeeded {
            logger.error("bootstrap component failed; molt serves the others and stays not ready",
                         metadata: ["component": "\(result.key)", "error": "\(result.error ?? "")"])
        }
        logger.info("serving", metadata: ["ready": "\(engine.isReady)",
                                          "components": "\(engine.components.map { "\($0.key)=\($0.plugin)#g\($0.generation)" })"])
        try? await gracefulShutdown()
        logger.info("shutting down: draining and destroying components")
        await engine.shutdown()
        counting.cancel()
    }
}

/// The first service to see graceful shutdown: marks the sidecar not ready, then returns so the
/// servers shut down next.
struct ReadinessGate: Service {
    let lifecycle: SidecarLifecycle

    func run() async throws {
        try? await gracefulShutdown()
        lifecycle.stopping.store(true, ordering: .relaxed)
    }
}

/// A grpc-swift server run as a service: on graceful shutdown it stops accepting new calls and
/// returns once the calls in flight have finished.
struct GRPCServerService: Service {
    let name: String
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let logger: Logger

    init(name: String, address: ListenAddress, logger: Logger, services: [any RegistrableRPCService], interceptors: [any ServerInterceptor]) {
        self.name = name
        self.logger = logger
        let host = address.host == "localhost" ? "127.0.0.1" : address.host
        let socketAddress: GRPCNIOTransportCore.SocketAddress = host.contains(":") ? .ipv6(host: host, port: address.port)
                                                                                    : .ipv4(host: host, port: address.port)
        server = GRPCServer(transport: .http2NIOPosix(address: socketAddress, transportSecurity: .plaintext),
                            services: services, interceptors: interceptors)
    }

    func run() async throws {
        do {
            try await withGracefulShutdownHandler {
                try await server.serve()
            } onGracefulShutdown: {
                server.beginGracefulShutdown()
            }
        } catch {
            logger.critical("\(name) server failed", metadata: ["error": "\(error)"])
            throw error
        }
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
            try component.definition(context: "components file \(path): components[\(index)]")
        }
    }
}

extension ComponentsFile.Component {
    func definition(context: String) throws -> ComponentDefinition {
        guard let componentKind = ComponentKind(rawValue: kind) else {
            throw ValidationError("\(context).kind '\(kind)' is not one of \(ComponentKind.allCases.map(\.rawValue))")
        }
        var semanticVersion: SemanticVersion?
        if let version {
            guard let parsed = SemanticVersion(version) else {
                throw ValidationError("\(context).version '\(version)' is not a semantic version")
            }
            semanticVersion = parsed
        }
        return ComponentDefinition(kind: componentKind, name: name, plugin: plugin, version: semanticVersion,
                                   config: metadata ?? [:], pin: pin)
    }
}
