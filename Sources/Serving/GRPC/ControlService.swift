import Engine
import FoundationEssentials
import GRPCCore
import ServiceLifecycle
import MoltProtos
import PluginHost

/// molt's own control plane (`molt.control.v1.Control`): applies that name the plugin and version,
/// the full result of each apply, component status, removal and a stream of apply events; and the app's
/// pub/sub subscriptions (ControlService+Subscriptions.swift).
public struct ControlService: Molt_Control_V1_Control.SimpleServiceProtocol {
    private let engine: Engine
    /// The app's subscriptions (ControlService+Subscriptions.swift); nil without an app channel.
    let subscriptions: (any ControlSubscriptions)?

    public init(engine: Engine, subscriptions: (any ControlSubscriptions)? = nil) {
        self.engine = engine
        self.subscriptions = subscriptions
    }

    public func apply(request: Molt_Control_V1_ApplyRequest, context: ServerContext) async throws -> Molt_Control_V1_ApplyResponse {
        var response = Molt_Control_V1_ApplyResponse()
        let definition = try Self.definition(request)
        response.result = request.dryRun ? Self.dryRunResult(await engine.checkOffPool(definition))
                                         : Molt_Control_V1_ApplyResult(await engine.apply(definition))
        return response
    }

    static func dryRunResult(_ check: DefinitionCheck) -> Molt_Control_V1_ApplyResult {
        var result = Molt_Control_V1_ApplyResult()
        result.kind = check.key.kind.rawValue
        result.name = check.key.name
        result.newPlugin = check.plugin ?? ""
        result.warnings = check.warnings
        if check.passed {
            result.action = "dry-run"
            result.dryRunOutcome = check.outcome ?? ""
        } else {
            result.action = "failed"
            result.failure = ApplyFailure.invalidDefinition.rawValue
            result.error = check.problems.joined(separator: "; ")
        }
        return result
    }

    public func applyBatch(request: Molt_Control_V1_ApplyBatchRequest,
                           context: ServerContext) async throws -> Molt_Control_V1_ApplyBatchResponse {
        guard !request.applies.isEmpty else { throw RPCError(code: .invalidArgument, message: "the batch is empty") }
        if request.applies.contains(where: \.dryRun) {
            var response = Molt_Control_V1_ApplyBatchResponse()
            for apply in request.applies {
                response.results.append(Self.dryRunResult(await engine.checkOffPool(try Self.definition(apply))))
            }
            response.succeeded = !response.results.contains { $0.action == "failed" }
            return response
        }
        let batch = await engine.applyBatch(try request.applies.map(Self.definition))
        var response = Molt_Control_V1_ApplyBatchResponse()
        response.results = batch.results.map(Molt_Control_V1_ApplyResult.init)
        response.succeeded = batch.succeeded
        response.pauseMs = batch.pauseDuration.milliseconds
        return response
    }

    /// A control request as the engine's definition; malformed fields are INVALID_ARGUMENT.
    static func definition(_ request: Molt_Control_V1_ApplyRequest) throws(RPCError) -> ComponentDefinition {
        let key = try ControlRequests.componentKey(kind: request.kind, name: request.name)
        var version: SemanticVersion?
        if !request.version.isEmpty {
            guard let parsed = SemanticVersion(request.version) else {
                throw RPCError(code: .invalidArgument, message: "version '\(request.version)' of \(key) is not a semantic version (like 1.2.0)")
            }
            version = parsed
        }
        var definition = ComponentDefinition(kind: key.kind, name: key.name, plugin: request.plugin.isEmpty ? nil : request.plugin,
                                             version: version, config: request.metadata, pin: request.pin.isEmpty ? nil : request.pin)
        definition.keepsRunningConfig = request.metadata.isEmpty && !request.replaceMetadata
        definition.acceptStateLoss = request.acceptStateLoss
        definition.acceptOperationChanges = request.acceptOperationChanges
        return definition
    }

    /// Configuration keys whose values status APIs never show.
    static func isSecret(_ key: String) -> Bool {
        let lowered = key.lowercased()
        return ["password", "secret", "token", "credential"].contains { lowered.firstRange(of: $0) != nil } || lowered.hasSuffix("key")
    }

    /// A secret reference (`secretKeyRef(...)`) is shown as it is: it names the secret, it is not one.
    static func redacted(_ config: [String: String]) -> [String: String] {
        config.reduce(into: [:]) { shown, entry in
            let isReference = (try? SecretReference.parse(entry.value)) != nil
            shown[entry.key] = isSecret(entry.key) && !isReference ? "<redacted>" : entry.value
        }
    }

    public func listComponents(request: Molt_Control_V1_ListComponentsRequest,
                               context: ServerContext) async throws -> Molt_Control_V1_ListComponentsResponse {
        var response = Molt_Control_V1_ListComponentsResponse()
        if !request.kind.isEmpty, ComponentKind(rawValue: request.kind) == nil {
            throw RPCError(code: .invalidArgument, message: "kind '\(request.kind)' is not one of \(ComponentKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let history = request.includeHistory ? engine.recentApplies : []
        response.components = engine.components.filter { status in
            (request.name.isEmpty || status.key.name == request.name) && (request.kind.isEmpty || status.key.kind.rawValue == request.kind)
        }.map { status in
            var component = Molt_Control_V1_ComponentStatus(status)
            component.metadata = Self.redacted(engine.activeConfig(of: status.key) ?? [:])
            component.history = history.filter { $0.key == status.key }.map(Molt_Control_V1_ApplyResult.init)
            return component
        }
        response.abandoned = engine.abandonedGenerations.map { abandoned in
            var generation = Molt_Control_V1_AbandonedGeneration()
            generation.kind = abandoned.key.kind.rawValue
            generation.name = abandoned.key.name
            generation.generation = abandoned.generation
            generation.plugin = abandoned.plugin
            generation.callsOutstanding = UInt32(clamping: abandoned.callsOutstanding)
            generation.sinceUnixMs = Int64(abandoned.since.timeIntervalSince1970 * 1000)
            return generation
        }
        response.appliesInProgress = engine.appliesInProgress.map { apply in
            var entry = Molt_Control_V1_ApplyInProgress()
            entry.kind = apply.keys.first?.kind.rawValue ?? ""
            entry.name = apply.keys.first?.name ?? ""
            entry.step = apply.step.rawValue
            entry.elapsedMs = Optional(apply.elapsed).milliseconds
            entry.components = UInt32(clamping: apply.keys.count)
            return entry
        }
        return response
    }

    public func removeComponent(request: Molt_Control_V1_RemoveComponentRequest,
                                context: ServerContext) async throws -> Molt_Control_V1_ApplyResponse {
        let key = try ControlRequests.componentKey(kind: request.kind, name: request.name)
        let result = await engine.remove(key)
        if result.failure == .unknownComponent { throw RPCError(code: .notFound, message: result.error ?? "component \(key) is not configured") }
        var response = Molt_Control_V1_ApplyResponse()
        response.result = Molt_Control_V1_ApplyResult(result)
        return response
    }

    public func watchApplies(request: Molt_Control_V1_WatchAppliesRequest, response: RPCWriter<Molt_Control_V1_ApplyResult>,
                             context: ServerContext) async throws {
        // Subscribe before reading the history, so no apply falls between the two (one that
        // finishes in between is sent twice rather than never).
        let results = engine.applyResults()
        if request.includeRecent {
            for result in engine.recentApplies { try await response.write(Molt_Control_V1_ApplyResult(result)) }
        }
        // The stream ends when the client goes away or the sidecar shuts down (the server's graceful
        // shutdown waits for every RPC, so an endless one would hold SIGTERM up for ever).
        let (stop, stopping) = AsyncStream<Void>.makeStream()
        await withRPCCancellationHandler {
            await withGracefulShutdownHandler {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await result in results {
                            do { try await response.write(Molt_Control_V1_ApplyResult(result)) } catch { return }
                        }
                    }
                    group.addTask { for await _ in stop {} }
                    await group.next()
                    group.cancelAll()
                }
            } onGracefulShutdown: {
                stopping.finish()
            }
        } onCancelRPC: {
            stopping.finish()
        }
    }
}

extension Molt_Control_V1_ApplyResult {
    init(_ result: ApplyResult) {
        self.init()
        kind = result.key.kind.rawValue
        name = result.key.name
        action = result.action.rawValue
        oldGeneration = result.oldGeneration ?? 0
        newGeneration = result.newGeneration ?? 0
        oldPlugin = result.oldPlugin ?? ""
        newPlugin = result.newPlugin ?? ""
        initMs = result.initDuration.milliseconds
        readinessMs = result.readinessDuration.milliseconds
        pauseMs = result.pauseDuration.milliseconds
        drainMs = result.drainDuration.milliseconds
        switchMs = result.switchDuration.milliseconds
        totalMs = Optional(result.totalDuration).milliseconds
        callsStillDraining = UInt32(clamping: result.callsStillDraining)
        warnings = result.warnings
        error = result.error ?? ""
        failure = result.failure?.rawValue ?? ""
        finishedUnixMs = Int64(result.finishedAt.timeIntervalSince1970 * 1000)
        droppedKeys = result.droppedKeys
        changedKeys = result.changedKeys
    }
}

extension Molt_Control_V1_ComponentStatus {
    init(_ status: Engine.ComponentStatus) {
        self.init()
        kind = status.key.kind.rawValue
        name = status.key.name
        plugin = status.plugin
        generation = status.generation
        state = status.paused ? "paused" : "serving"
        inFlight = UInt32(clamping: status.inFlight)
        drainingGeneration = status.drainingGeneration ?? 0
        drainingInFlight = UInt32(clamping: status.drainingInFlight)
        if let last = status.lastApply { lastResult = Molt_Control_V1_ApplyResult(last) }
    }
}

extension Optional where Wrapped == Duration {
    /// Milliseconds as a Double; 0 for a step that did not run.
    var milliseconds: Double {
        guard let duration = self else { return 0 }
        let (seconds, attoseconds) = duration.components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
