import Engine
import Logging
import PluginHost
import Synchronization

/// Runs a plugin's instances the way the engine does, without an engine: `PluginInstance` (the host
/// services with the I/O of NIO's singleton loops, as `molt serve`), the blocking steps (init,
/// readiness, apply_config, export, import, destroy) on threads of their own through `PluginSteps`,
/// each bounded by the engine's default timeout, and operations with a deadline (`CallTimer`).
///
/// Thread: the harness is called from the verify task (which runs on an event loop); only the steps
/// leave it, for their own threads.
struct VerifyHarness: Sendable {
    let settings: EngineSettings
    /// How long an operation may take before the check fails (the plugin keeps the call).
    let callTimeout: Duration
    let logger: Logger
    let steps: PluginSteps
    let timer: CallTimer

    /// Operations get `settings.initTimeout` (molt serve's step timeout), at most 5 s.
    init(settings: EngineSettings = EngineSettings(), logger: Logger) {
        self.settings = settings
        self.callTimeout = min(settings.initTimeout, .seconds(5))
        self.logger = logger
        self.timer = CallTimer()
        self.steps = PluginSteps(label: "molt.verify.plugin-step", timer: timer)
    }

    /// init with `config`, then readiness polled until READY (engine timeouts). Throws what went wrong,
    /// naming the step; nothing is left running then.
    func start(_ binary: PluginBinary, config: [String: String], name: String = "verify") async throws(CheckOutcome) -> TestInstance {
        let (logger, settings) = (logger, settings)
        let created = await steps.run(timeout: settings.initTimeout, late: { (late: Result<PluginInstance, PluginError>) in
            if case .success(let instance) = late { instance.destroy() }
        }) {
            Result { () throws(PluginError) in try PluginInstance(binary: binary, componentName: name, config: config, logger: logger) }
        }
        let instance: PluginInstance
        switch created {
        case nil: throw .fail("init did not return within \(settings.initTimeout)")
        case .failure(let error)?: throw .fail("init failed (\(error.status.rawValue)): \(error.message)")
        case .success(let value)?: instance = value
        }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: settings.readinessTimeout)
        var last = ""
        while true {
            let remaining = max(deadline - clock.now, .milliseconds(1))
            guard let readiness = await steps.run(timeout: remaining, late: { _ in instance.destroy() }, { instance.readiness() }) else {
                throw .fail("readiness did not return within \(settings.readinessTimeout) (it must answer without blocking)")
            }
            let failure: String
            switch readiness {
            case .ready:
                return TestInstance(instance, harness: self)
            case .failed(let message):
                failure = "readiness FAILED: \(message)"
            case .notReady(let message):
                last = message
                guard clock.now >= deadline else {
                    try? await Task.sleep(for: .milliseconds(10))
                    continue
                }
                failure = "not READY after \(settings.readinessTimeout)" + (last.isEmpty ? "" : ": \(last)")
            }
            _ = await steps.run(timeout: settings.destroyTimeout) { instance.destroy() }
            throw .fail(failure)
        }
    }

    /// Runs `body` with a new READY instance (`role` names it in a failure to start), then destroys it,
    /// also when `body` threw.
    func withInstance<Value>(_ binary: PluginBinary, config: [String: String], role: String,
                             _ body: (TestInstance) async throws(CheckOutcome) -> Value) async throws(CheckOutcome) -> Value {
        let instance: TestInstance
        do {
            instance = try await start(binary, config: config)
        } catch {
            if case .fail(let why) = error { throw .fail("setup: \(role) \(binary.info.id): \(why)") }
            throw error
        }
        let value: Value
        do {
            value = try await body(instance)
        } catch {
            await discard(instance)
            throw error
        }
        try await destroy(instance)
        return value
    }

    /// Destroys `instance` on a thread of its own, unless the plugin still holds a call (then it is left
    /// alone, as the engine abandons such a generation: destroying it could free what the plugin uses).
    func destroy(_ instance: TestInstance) async throws(CheckOutcome) {
        let held = instance.heldCalls
        guard held == 0 else {
            instance.abandon()
            throw .fail("not destroyed: the plugin still holds \(held) call\(held == 1 ? "" : "s") it never completed")
        }
        let plugin = instance.plugin
        guard await steps.run(timeout: settings.destroyTimeout, { plugin.destroy() }) != nil else {
            throw .fail("destroy did not return within \(settings.destroyTimeout)")
        }
    }

    /// `destroy`, for instances whose check already has its result: what goes wrong is only logged.
    func discard(_ instance: TestInstance) async {
        do { try await destroy(instance) } catch { logger.warning("\(error)") }
    }

    func applyConfig(_ instance: TestInstance, _ config: [String: String]) async throws(CheckOutcome) -> ApplyOutcome? {
        let plugin = instance.plugin
        guard let outcome = await steps.run(timeout: settings.applyConfigTimeout, { plugin.applyConfig(config) }) else {
            throw .fail("apply_config did not return within \(settings.applyConfigTimeout)")
        }
        return outcome
    }

    func exportState(_ instance: TestInstance, format: UInt32) async throws(CheckOutcome) -> [UInt8] {
        let (plugin, limit) = (instance.plugin, settings.stateTransferLimit)
        guard let exported = await steps.run(timeout: settings.stateTransferTimeout, {
            Result { () throws(PluginError) in try plugin.exportState(format: format, limit: limit) }
        }) else {
            throw .fail("\(plugin.binary.info.id) export_state (format \(format)) did not return within \(settings.stateTransferTimeout)")
        }
        switch exported {
        case .success(let bytes): return bytes
        case .failure(let error): throw .fail("\(plugin.binary.info.id) export_state (format \(format)) failed (\(error.status.rawValue)): \(error.message)")
        }
    }

    /// The plugin's refusal, or nil when it imported.
    func importState(_ instance: TestInstance, _ bytes: [UInt8], format: UInt32) async throws(CheckOutcome) -> PluginError? {
        let plugin = instance.plugin
        guard let imported = await steps.run(timeout: settings.stateTransferTimeout, {
            Result { () throws(PluginError) in try plugin.importState(bytes, format: format) }
        }) else {
            throw .fail("\(plugin.binary.info.id) import_state (format \(format)) did not return within \(settings.stateTransferTimeout)")
        }
        if case .failure(let error) = imported { return error }
        return nil
    }
}

/// One instance under test. It is the owner of its calls' deadlines: a call the plugin does not complete
/// in time fails its check, and the instance is then never destroyed while the plugin holds the call.
final class TestInstance: PluginCallOwner {
    let plugin: PluginInstance
    let harness: VerifyHarness
    /// Calls whose deadline passed and that the plugin has not completed yet.
    private let detached = Atomic<Int>(0)

    init(_ plugin: PluginInstance, harness: VerifyHarness) {
        self.plugin = plugin
        self.harness = harness
    }

    var id: String { plugin.binary.info.id }
    var heldCalls: Int { detached.load(ordering: .acquiring) }

    func callDetached() { detached.add(1, ordering: .acquiringAndReleasing) }
    func detachedCallCompleted() { detached.subtract(1, ordering: .acquiringAndReleasing) }

    /// Keeps an instance whose plugin still holds a call alive until the process exits (its deinit would destroy it).
    func abandon() { Self.abandoned.withLock { $0.append(plugin) } }
    private static let abandoned = Mutex<[PluginInstance]>([])

    /// The deadline of a call starting now.
    var deadline: CallDeadline { CallDeadline(ContinuousClock.now.advanced(by: harness.callTimeout), timer: harness.timer, owner: self) }

    /// A plugin that never completed a call on this instance is not called again (each call would wait
    /// for its deadline in turn).
    private func notHung(_ what: String) throws(CheckOutcome) {
        let held = heldCalls
        guard held > 0 else { return }
        throw .fail("\(what) not tried: the plugin never completed \(held) earlier call\(held == 1 ? "" : "s") on this instance")
    }

    /// Runs one operation; its failure (or overrun) becomes the check's failure, naming `what`.
    func call<Value>(_ what: String, _ body: (CallDeadline) async throws(PluginError) -> Value) async throws(CheckOutcome) -> Value {
        try notHung(what)
        do {
            return try await body(deadline)
        } catch where error.status == .deadlineExceeded {
            throw .fail("\(what) did not complete within \(harness.callTimeout) (done never called)")
        } catch {
            throw .fail("\(what) failed (\(error.status.rawValue)): \(error.message)")
        }
    }

    /// The plugin's own failure of an operation that should succeed is a check failure; an expected
    /// refusal is returned instead by `refusal`.
    func refusal(_ what: String, _ body: (CallDeadline) async throws(PluginError) -> Void) async throws(CheckOutcome) -> PluginError? {
        try notHung(what)
        do {
            try await body(deadline)
            return nil
        } catch where error.status == .deadlineExceeded {
            throw .fail("\(what) did not complete within \(harness.callTimeout) (done never called)")
        } catch {
            return error
        }
    }
}
