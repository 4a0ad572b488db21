import Agents
import AppCallback
import AppChannel
import ArgumentParser
import Config
import Engine
import FoundationEssentials
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCServing
import HTTPServing
import Layers
import Logging
import Metrics
import Persistence
import PluginHost
import Prometheus
import ServiceLifecycle
import ServingCore
import Synchronization
import UnixSignals

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the sidecar: load plugins, start the bootstrap components, serve the app, control and admin APIs.",
        discussion: """
            App API (Dapr-compatible): gRPC on --grpc-address, HTTP on --http-address. Control plane (Layotto's \
            Lifecycle API and molt's Control API, gRPC) on --control-address, never on an app port. Admin HTTP \
            (/actuator/health/liveness, /actuator/health/readiness, /metrics) on --admin-address.
            On SIGTERM or SIGINT molt stops accepting calls on every listener at once, lets the calls in flight \
            finish for up to the drain timeout (then answers those a plugin still holds with DEADLINE_EXCEEDED and \
            abandons their generations, logging them), destroys every component and exits 0. On SIGHUP it re-reads \
            the bootstrap configuration and the --components files and applies the differences to the components \
            and the timeouts (other settings need a restart, and say so in the log).
            """)

    // Declared for --help and for ArgumentParser's validation; the values are read by
    // `BootstrapConfig.load`, which applies defaults < config file < environment < arguments.
    @Option(help: "Bootstrap config file, JSON or YAML (env MOLT_CONFIG); see `molt config check`.") var config: String?
    @Option(help: "Format version of settings given without one (env MOLT_CONFIG_VERSION; default 1).") var configVersion: Int?
    @Option(help: "Directory plugins are loaded from (env MOLT_PLUGINS_DIRECTORY; default plugins.d).") var pluginsDirectory: String?
    @Option(name: .customLong("plugins-dir"), help: ArgumentHelp("DEPRECATED: --plugins-directory.", visibility: .hidden))
    var pluginsDir: String?
    @Option(help: "Component files or directories: molt's format, Dapr Component YAML, Layotto config.json (repeatable).")
    var components: [String] = []
    @Option(help: "App ID reported by the metadata API and used in state key prefixes (env MOLT_APP_ID or APP_ID).")
    var appID: String?
    @Option(help: "Dapr app API over gRPC, host:port (env MOLT_GRPC_ADDRESS; DAPR_GRPC_PORT sets the port; default 127.0.0.1:50001).")
    var grpcAddress: String?
    @Option(help: "Dapr app API over HTTP, host:port (env MOLT_HTTP_ADDRESS; DAPR_HTTP_PORT sets the port; default 127.0.0.1:3500).")
    var httpAddress: String?
    @Option(help: "Control plane (Lifecycle + molt Control, gRPC), host:port (env MOLT_CONTROL_ADDRESS; default 127.0.0.1:34904).")
    var controlAddress: String?
    @Option(help: "Admin HTTP (health, /metrics), host:port (env MOLT_ADMIN_ADDRESS; default 127.0.0.1:34999).")
    var adminAddress: String?
    @Option(help: """
        The app's port (env MOLT_APP_PORT or APP_PORT), 1-65535: molt calls the app there, as Dapr's app \
        channel, to deliver pub/sub events (and, over http, configuration subscriptions). Without it there is no app channel.
        """)
    var appPort: Int?
    @Option(help: """
        How molt calls the app on --app-port (env MOLT_APP_PROTOCOL; default http): http (Dapr's HTTP app channel) or \
        grpc (plaintext HTTP/2 to the app's dapr.proto.runtime.v1.AppCallback: ListTopicSubscriptions, OnTopicEvent; \
        HTTP configuration subscriptions are then refused, use gRPC SubscribeConfiguration).
        """)
    var appProtocol: String?
    @Option(help: "The app's host for --app-port (env MOLT_APP_HOST; default 127.0.0.1; Dapr's --app-channel-address).")
    var appHost: String?
    @Option(help: "Token every app call must carry as dapr-api-token (env MOLT_API_TOKEN or DAPR_API_TOKEN); health is exempt.")
    var apiToken: String?
    @Option(help: "Token every control call must carry as molt-control-token (env MOLT_CONTROL_TOKEN); required off loopback.")
    var controlToken: String?
    @Option(help: """
        Directory where molt keeps the running configuration (env MOLT_STATE_DIRECTORY). Every change is \
        written there before it is acknowledged, and a restart restores it: the components that ran last, as \
        they ran, plus bootstrap components it has never seen. Without it nothing is persisted.
        """)
    var stateDirectory: String?
    @Option(help: "Milliseconds a new instance may take to become ready (default 10000).") var readinessTimeoutMs: Int?
    @Option(help: "Milliseconds a switched-out generation may take to finish its calls, and calls in flight at shutdown (default 30000).")
    var drainTimeoutMs: Int?
    @Option(help: "Milliseconds an app call may wait for its plugin when the client set no deadline (default 30000).") var callTimeoutMs: Int?
    @Option(help: "Milliseconds a plugin's init may take (default 10000).") var initTimeoutMs: Int?
    @Option(help: "Milliseconds a plugin's apply_config may take (default 10000).") var applyConfigTimeoutMs: Int?
    @Option(help: "Milliseconds a plugin's state export, and its import, may each take (default 10000).") var stateTransferTimeoutMs: Int?
    @Option(help: "Milliseconds a plugin's destroy may take before it is left running on its thread (default 10000).")
    var destroyTimeoutMs: Int?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (env MOLT_LOG_LEVEL).") var logLevel: String?
    @Flag(help: "Unknown configuration keys are errors, not warnings (env MOLT_STRICT).") var strict = false
    @Flag(help: """
        Development: watch the plugins directory; when a plugin file is rebuilt in place (same name@version, other \
        bytes), reload the components running it onto the new build (env MOLT_WATCH_PLUGINS).
        """)
    var watchPlugins = false
    @Option(help: """
        Directory of component files (any format --components reads) that molt watches and applies: a new or \
        changed file is applied all-or-nothing, a deleted one removes its components (env MOLT_AGENTS_FILE_DIRECTORY).
        """)
    var agentsFileDirectory: String?
    @Option(help: """
        etcd v3 endpoint host:port molt watches for component definitions (repeatable; env \
        MOLT_AGENTS_ETCD_ENDPOINTS). Keys <prefix>common/<id> are the fleet-wide layer, <prefix>apps/<app-id>/<id> \
        this app's layer; each value is a component file in any format --components reads.
        """)
    var agentsEtcdEndpoints: [String] = []
    @Option(help: "Key prefix the etcd agent watches (env MOLT_AGENTS_ETCD_PREFIX; default /molt/).") var agentsEtcdPrefix: String?

    func run() async throws {
        // The options as given, for the configuration loader (ArgumentParser has validated them).
        let options = Array(CommandLine.arguments.drop(while: { $0 != "serve" }).dropFirst())
        let loaded: LoadedBootstrapConfig
        do {
            loaded = try await BootstrapConfig.load(arguments: options, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError("\(error)")
        }
        let settings = loaded.config
        Molt.bootstrapLogging(level: settings.logLevel)
        let logger = Logger(label: "molt")
        for warning in loaded.warnings { logger.warning("\(warning)") }
        let addresses = try parseAddresses(settings)
        let controlSecret = SharedSecret(settings.controlToken)
        if controlSecret == nil && !addresses.control.isLoopback {
            throw ValidationError("--control-address \(addresses.control) is not a loopback address: set --control-token "
                + "(or MOLT_CONTROL_TOKEN) so that only holders of the token can reconfigure molt")
        }

        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        let engineSettings = EngineSettings(settings)
        let loader = try PluginLoader(pluginsDirectory: settings.pluginsDirectory, acceptsRebuilds: settings.watchPlugins)
        // Plugin identities are read in a child process: molt maps only the plugins its components run. Reading
        // them is a plugin step like init: bounded by the init timeout.
        let inspector = ChildProcessInspector(command: ["/proc/self/exe", "plugin", "identify", "--plugins-directory", loader.pluginsDirectory],
                                              timeout: engineSettings.initTimeout)
        let catalog = PluginCatalog(loader: loader, inspector: { inspector.inspect($0) })
        let (entries, problems) = catalog.rescan()
        logger.info("plugins", metadata: ["directory": "\(catalog.loader.pluginsDirectory)", "available": "\(entries.map(\.info.id))",
                                          "skipped": "\(problems.count)"])
        let bootstrapFiles = try ComponentFiles.load(settings.components, strict: settings.strict, logger: logger)
        let bootstrapSpecs = bootstrapFiles.components
        let bootstrapDefinitions = try ComponentFiles.definitions(bootstrapSpecs, catalog: catalog)
        var definitions = bootstrapDefinitions
        var store: RunningConfigStore?
        if let stateDirectory = settings.stateDirectory {
            let opened = try RunningConfigStore(directory: stateDirectory)
            let snapshot = opened.load()
            definitions = RunningConfigStore.restore(bootstrap: bootstrapDefinitions, snapshot: snapshot)
            let (start, refused) = RunningConfigStore.startable(definitions)
            for (definition, problem) in refused {
                logger.error("a component restored from the state directory is not started", metadata: [
                    "component": "\(definition.key)", "plugin": "\(definition.plugin ?? "?")", "error": "\(problem)"])
            }
            definitions = start
            logger.info("state directory", metadata: ["directory": "\(stateDirectory)", "restored_snapshot": "\(snapshot?.sequence ?? 0)",
                                                      "restored_components": "\(snapshot?.components.count ?? 0)"])
            store = opened
        }
        let engine = Engine(catalog: catalog, settings: engineSettings, journal: store)
        let telemetry = Telemetry(engine: engine)
        // The agents feed the layers (common < app < local); the bootstrap files are the local layer's base.
        let layers = ComponentLayers(engine: engine, bootstrap: bootstrapSpecs,
                                     store: settings.stateDirectory.map { LayerStore(directory: $0) })
        // The app channel (Dapr's), when the app has a port: molt's HTTP client to the app, or with
        // --app-protocol grpc its gRPC client to the app's AppCallback service (one connection, run as a service).
        let appChannel = settings.appProtocol == "http" ? settings.appPort.map { AppChannel(host: settings.appHost, port: $0) } : nil
        let appCallback = try settings.appProtocol == "grpc" ? settings.appPort.map { try AppCallbackChannel(host: settings.appHost, port: $0) } : nil
        let subscriberTransport = appChannel.map(AppSubscriberTransport.http) ?? appCallback.map(AppSubscriberTransport.grpc)
        // Classic pub/sub subscriptions (programmatic and declarative), delivered through the app channel; the
        // declarative ones of each source (bootstrap files, agent files, etcd keys, the Control API) change while molt
        // runs, through the registry (which keeps the Control API's in the state directory).
        let subscriptionStore = try settings.stateDirectory.map { try SubscriptionStore(directory: $0) }
        let restoredSubscriptions = subscriptionStore?.load() ?? []
        let appSubscriptions = subscriberTransport.map { transport in
            AppSubscriptions(engine: engine, transport: transport, logger: logger,
                             declarative: ComponentFiles.appSubscriptions(
                                SubscriptionRegistry.effective(bootstrapFiles.subscriptions, overriddenBy: Set(restoredSubscriptions.map(\.name))),
                                appID: settings.appID, logger: logger))
        }
        if appSubscriptions == nil && !bootstrapFiles.subscriptions.isEmpty {
            logger.warning("declarative subscriptions need an app to deliver to: set --app-port; they are not run",
                           metadata: ["subscriptions": "\(bootstrapFiles.subscriptions.map(\.name))"])
        }
        let subscriptionRegistry = SubscriptionRegistry(app: appSubscriptions, appID: settings.appID, bootstrap: bootstrapFiles.subscriptions,
                                                        restored: restoredSubscriptions, store: subscriptionStore, logger: logger)
        let declarativeSubscriptions: DeclarativeSubscriptions = { source, specs in
            await subscriptionRegistry.declared(source: source, specs)
        }
        var agents: [any Service] = []
        if let directory = settings.agents.fileDirectory {
            agents.append(FileAgent(directory: directory, layers: layers, subscriptions: declarativeSubscriptions))
        }
        if settings.watchPlugins { agents.append(PluginWatcher(engine: engine)) }
        var readinessGates: [@Sendable () -> Bool] = []
        if let etcd = settings.agents.etcd {
            let agent = EtcdAgent(endpoints: etcd.endpoints, prefix: etcd.prefix, appID: settings.appID, layers: layers,
                                  subscriptions: declarativeSubscriptions, initialSyncTimeout: .milliseconds(settings.readinessTimeoutMs))
            agents.append(agent)
            readinessGates.append { agent.initialSyncDone }
        }
        let lifecycle = SidecarLifecycle(engine: engine, telemetry: telemetry, applyResults: engine.applyResults(),
                                         definitions: definitions, readinessGates: readinessGates, logger: logger)
        let readiness: @Sendable () -> Bool = { lifecycle.isReady }

        let apiSecret = SharedSecret(settings.apiToken)
        let secretScopes = SecretScopes(Dictionary(uniqueKeysWithValues: settings.secretScopes.map { scope in
            (scope.storeName, SecretScopes.Scope(defaultAccess: scope.defaultAccess == .deny ? .deny : .allow,
                                                 allowedSecrets: Set(scope.allowedSecrets), deniedSecrets: Set(scope.deniedSecrets)))
        }))
        let appGRPC = AppGRPCServer(service: DaprService(engine: engine, telemetry: telemetry, appID: settings.appID, secretScopes: secretScopes),
                                    address: addresses.grpc, apiToken: apiSecret, logger: logger)
        let control = GRPCServerService(
            name: "control gRPC", address: addresses.control, logger: logger,
            services: [LifecycleService(engine: engine),
                       ControlService(engine: engine, subscriptions: appSubscriptions == nil ? nil : subscriptionRegistry)],
            interceptors: controlSecret.map { [TokenInterceptor(secret: $0, header: TokenHeader.control)] } ?? [])
        let appHTTP = makeAppHTTPServer(engine: engine, telemetry: telemetry, address: addresses.http, apiToken: apiSecret,
                                        readiness: readiness, logger: logger, appID: settings.appID, secretScopes: secretScopes,
                                        appChannel: appChannel)
        let admin = makeAdminHTTPServer(engine: engine, telemetry: telemetry, registry: registry, address: addresses.admin,
                                        readiness: readiness, logger: logger)
        logger.info("listening", metadata: ["grpc": "\(addresses.grpc)", "http": "\(addresses.http)", "control": "\(addresses.control)",
                                            "admin": "\(addresses.admin)", "app_channel": "\(appChannel?.address ?? appCallback.map { "grpc \($0.address)" } ?? "none")",
                                            "app_token": "\(apiSecret != nil)",
                                            "control_token": "\(controlSecret != nil)"])

        // The gRPC app channel stops after the subscriptions that use it (graceful shutdown runs in reverse order).
        let appSubscriptionServices: [any Service] = (appCallback.map { [$0] } ?? []) + (appSubscriptions.map { [$0] } ?? [])
        let appServers = AppServers(grpc: appGRPC, http: appHTTP, engine: engine, drainTimeout: engineSettings.drainTimeout, logger: logger)
        let hangup = HangupReloader(options: options, running: settings, engine: engine, layers: layers,
                                     subscriptions: declarativeSubscriptions, logger: logger)

        // Graceful shutdown runs from the last service to the first, each after the previous one
        // returned: readiness goes DOWN, both app servers stop accepting at once and finish their calls
        // (bounded by the drain timeout), the control and admin servers stop, then the engine drains and
        // destroys every component. The group's own limit is a backstop past every timeout involved.
        var configuration = ServiceGroupConfiguration(
            services: ([lifecycle, subscriptionRegistry] + agents + [admin, control, hangup, appServers] + appSubscriptionServices + [ReadinessGate(lifecycle: lifecycle)] as [any Service]).map {
                .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup)
            },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        configuration.maximumGracefulShutdownDuration = .milliseconds(2 * settings.drainTimeoutMs + 2 * settings.destroyTimeoutMs + 5_000)
        configuration.maximumCancellationDuration = .seconds(5)
        try await ServiceGroup(configuration: configuration).run()
        appChannel?.close()
        logger.info("stopped")
    }

    private func parseAddresses(_ settings: BootstrapConfig) throws -> (grpc: ListenAddress, http: ListenAddress, control: ListenAddress, admin: ListenAddress) {
        do {
            return (try ListenAddress(parsing: settings.grpcAddress, option: "--grpc-address"),
                    try ListenAddress(parsing: settings.httpAddress, option: "--http-address"),
                    try ListenAddress(parsing: settings.controlAddress, option: "--control-address"),
                    try ListenAddress(parsing: settings.adminAddress, option: "--admin-address"))
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
    /// Further conditions for readiness (the etcd agent's first sync).
    private let readinessGates: [@Sendable () -> Bool]
    private let logger: Logger
    /// Set when shutdown begins: readiness reports DOWN from then on.
    let stopping = Atomic<Bool>(false)

    init(engine: Engine, telemetry: Telemetry, applyResults: AsyncStream<ApplyResult>, definitions: [ComponentDefinition],
         readinessGates: [@Sendable () -> Bool] = [], logger: Logger) {
        self.engine = engine
        self.telemetry = telemetry
        self.applyResults = applyResults
        self.definitions = definitions
        self.readinessGates = readinessGates
        self.logger = logger
    }

    var isReady: Bool { engine.isReady && !stopping.load(ordering: .relaxed) && readinessGates.allSatisfy { $0() } }

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
        for abandoned in await engine.shutdown() {
            logger.warning("shutdown: generation abandoned to calls its plugin never completed; not destroyed",
                           metadata: ["component": "\(abandoned.key)", "generation": "\(abandoned.generation)",
                                      "plugin": "\(abandoned.plugin)", "calls": "\(abandoned.callsOutstanding)"])
        }
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

/// Both app APIs (gRPC and HTTP) as one service, so that graceful shutdown stops both from accepting at
/// once. Calls in flight then get up to the drain timeout; calls still waiting for a plugin after it are
/// expired (DEADLINE_EXCEEDED, their generations abandoned to the plugin), so the servers can finish.
struct AppServers: Service {
    let grpc: any Service
    let http: any Service
    let engine: Engine
    let drainTimeout: Duration
    let logger: Logger

    private enum Member { case server, watchdog }

    func run() async throws {
        try await withThrowingTaskGroup(of: Member.self) { group in
            group.addTask { try await grpc.run(); return .server }
            group.addTask { try await http.run(); return .server }
            group.addTask {
                // Ends early (cancelled) when the servers finish first.
                try await gracefulShutdown()
                try await Task.sleep(for: drainTimeout)
                let expired = engine.expireCallsInFlight()
                if expired > 0 {
                    logger.warning("shutdown: calls still waiting for their plugin after the drain timeout answered DEADLINE_EXCEEDED",
                                   metadata: ["calls": "\(expired)", "drain_timeout": "\(drainTimeout)"])
                }
                return .watchdog
            }
            var serversRunning = 2
            while serversRunning > 0, let member = try await group.next() {
                if member == .server { serversRunning -= 1 }
            }
            group.cancelAll()
        }
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
        let socketAddress: GRPCNIOTransportCore.SocketAddress = host.utf8.contains(UInt8(ascii: ":")) ? .ipv6(host: host, port: address.port)
                                                                                    : .ipv4(host: host, port: address.port)
        let config = HTTP2ServerTransport.Posix.Config.defaults { config in
            config.rpc.maxRequestPayloadSize = AppAPILimits.maxGRPCMessageBytes
        }
        server = GRPCServer(transport: .http2NIOPosix(address: socketAddress, transportSecurity: .plaintext, config: config),
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

/// Component definitions from files or directories in any format molt reads (see `ComponentSources`).
enum ComponentFiles {
    /// Loads the files; warnings (deprecated keys, legacy sources) are logged, errors name file and key path.
    static func specs(_ paths: [String], strict: Bool, logger: Logger?) throws -> [ComponentSpec] {
        try load(paths, strict: strict, logger: logger).components
    }

    /// Components and declarative subscriptions; warnings are logged.
    static func load(_ paths: [String], strict: Bool, logger: Logger?) throws -> LoadedComponents {
        guard !paths.isEmpty else { return LoadedComponents() }
        do {
            let loaded = try ComponentSources.load(paths: paths, strict: strict)
            for warning in loaded.warnings { logger?.warning("\(warning)") }
            return loaded
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The declarative subscriptions that apply to `appID` (Dapr's scopes), as the app channel delivers them.
    static func appSubscriptions(_ specs: [SubscriptionSpec], appID: String, logger: Logger) -> [AppSubscription] {
        specs.compactMap { spec in
            guard spec.applies(to: appID) else {
                logger.info("declarative subscription not scoped to this app; skipped", metadata: [
                    "subscription": "\(spec.name)", "scopes": "\(spec.scopes)", "app_id": "\(appID)"])
                return nil
            }
            return AppSubscription(pubsub: spec.pubsub, topic: spec.topic, route: spec.route, rules: spec.rules,
                                   deadLetterTopic: spec.deadLetterTopic, metadata: spec.metadata,
                                   source: "declarative '\(spec.name)' (\(spec.origin.map { "\($0)" } ?? "?"))")
        }
    }

    /// The engine's definitions; a `.major` version requirement needs the catalog.
    static func definitions(_ specs: [ComponentSpec], catalog: PluginCatalog?) throws -> [ComponentDefinition] {
        do {
            return try specs.map { spec in
                if let catalog { return try spec.definition(catalog: catalog) }
                return try spec.definition()
            }
        } catch {
            throw ValidationError("\(error)")
        }
    }

    static func definitions(_ paths: [String], strict: Bool, catalog: PluginCatalog?, logger: Logger?) throws -> [ComponentDefinition] {
        try definitions(try specs(paths, strict: strict, logger: logger), catalog: catalog)
    }
}
