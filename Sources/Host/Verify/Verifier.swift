import PluginHost

#if canImport(Glibc)
import Glibc
#endif

/// The checks of `molt plugin verify`, in order:
///
/// 1. **load**: the loader's checks (trust, ELF, ABI version, required symbols, identity, declared keys);
///    with `--previous`, the older binary too (same kind);
/// 2. **config**: `--metadata` normalized as the host does (unknown keys, required keys, declared defaults);
/// 3. **init**: init with that config, readiness polled until READY (engine timeouts);
/// 4. the kind's semantics on that instance (`LockChecks`, `StateChecks`, `SecretStoreChecks`,
///    `ConfigurationStoreChecks`, `PubsubChecks`), calls from several loops at once
///    (`ConcurrencyCheck`), then its **destroy**;
/// 5. **holds state**: whether MOLT_PLUGIN_HOLDS_STATE says the truth (`HoldsStateCheck`);
/// 6. **apply_config** round trip when exported (`LifecycleChecks`);
/// 7. **state transfer** when exported (`TransferChecks`), with `--previous` both ways;
/// 8. **init/destroy cycles** with the RSS growth (`LifecycleChecks`).
///
/// Every blocking plugin step runs on a thread of its own (`VerifyHarness`); operations run on the task
/// that calls `run` (an event loop's, see `PluginCommand.Verify`).
struct Verifier: Sendable {
    let path: String
    let previousPath: String?
    let metadata: [String: String]
    let change: (key: String, value: String)?
    let cycles: Int
    let rssLimitMiB: Double
    let harness: VerifyHarness

    /// Names unique to this run: resources and keys the checks use (a store may be shared).
    private let prefix = "molt-verify-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"

    func run(streaming: Bool) async -> VerifyReport {
        let binary: PluginBinary
        do {
            binary = try loadStandalone(path)
        } catch {
            let report = VerifyReport(plugin: path, streaming: streaming)
            report.record(CheckResult(name: "load", status: .fail, detail: error.description))
            return report
        }
        let report = VerifyReport(plugin: binary.info.id, streaming: streaming)
        report.record(CheckResult(name: "load", status: .ok, detail: Self.describe(binary)))
        var previous: TransferChecks.Subject?
        if let previousPath {
            previous = loadPrevious(previousPath, kind: binary.info.kind, report)
        }
        let normalized: NormalizedConfig
        do {
            normalized = try binary.normalize(config: metadata(for: binary), hostKeys: binary.info.kind == .state ? ["keyPrefix"] : [])
        } catch {
            report.record(CheckResult(name: "config", status: .fail, detail: configHint(error.description, binary)))
            return report
        }
        report.record(CheckResult(name: "config", status: .ok, detail: Self.describe(normalized) + shortened(binary)))

        let clock = ContinuousClock(), started = clock.now
        let instance: TestInstance
        do {
            instance = try await harness.start(binary, config: normalized.config)
            report.record(CheckResult(name: "init", status: .ok, detail: "READY after \(milliseconds(clock.now - started)) ms"))
        } catch {
            if case .fail(let why) = error { report.record(CheckResult(name: "init", status: .fail, detail: why)) }
            return report
        }
        switch binary.info.kind {
        case .lock: await LockChecks(instance: instance, prefix: "\(prefix)-lock").run(report)
        case .state: await StateChecks(instance: instance, prefix: "\(prefix)||").run(report)
        case .binding:
            report.record(CheckResult(name: "operations", status: .skip,
                                      detail: "kind binding: its \(binary.info.operations.count) declared operations are not exercised by verify"))
        case .secretstore: await SecretStoreChecks(instance: instance, prefix: prefix).run(report)
        case .configuration: await ConfigurationStoreChecks(instance: instance, prefix: prefix).run(report)
        case .pubsub: await PubsubChecks(instance: instance, prefix: "\(prefix)-topic").run(report)
        }
        if instance.heldCalls == 0 { await ConcurrencyCheck(instance: instance, prefix: prefix).run(report) }
        if instance.heldCalls > 0 {
            instance.abandon()
            report.record(CheckResult(name: "remaining checks", status: .skip,
                                      detail: "the plugin never completed a call (above): every operation must call done exactly once"))
            return report
        }
        await report.check("destroy") { () throws(CheckOutcome) in
            let start = clock.now
            try await harness.destroy(instance)
            return "returned after \(milliseconds(clock.now - start)) ms"
        }

        await HoldsStateCheck(harness: harness, binary: binary, config: normalized.config, prefix: "\(prefix)-holds").run(report)
        let lifecycle = LifecycleChecks(harness: harness, binary: binary, config: normalized, change: change, cycles: cycles,
                                        rssLimitMiB: rssLimitMiB, prefix: "\(prefix)-life")
        await lifecycle.runApplyConfig(report)
        await TransferChecks(harness: harness, subject: .init(binary: binary, config: normalized.config), previous: previous,
                             prefix: "\(prefix)-transfer").run(report)
        await lifecycle.runCycles(report)
        return report
    }

    /// The older binary and its config (the same --metadata, normalized by its own declarations), or nil
    /// after recording why it cannot be used.
    private func loadPrevious(_ path: String, kind: ComponentKind, _ report: VerifyReport) -> TransferChecks.Subject? {
        let binary: PluginBinary
        do {
            binary = try loadStandalone(path)
        } catch {
            report.record(CheckResult(name: "load previous", status: .fail, detail: error.description))
            return nil
        }
        guard binary.info.kind == kind else {
            report.record(CheckResult(name: "load previous", status: .fail,
                                      detail: "\(binary.info.id) is of kind \(binary.info.kind.rawValue), not \(kind.rawValue)"))
            return nil
        }
        do {
            let config = try binary.normalize(config: metadata(for: binary), hostKeys: kind == .state ? ["keyPrefix"] : []).config
            report.record(CheckResult(name: "load previous", status: .ok, detail: Self.describe(binary)))
            return TransferChecks.Subject(binary: binary, config: config)
        } catch {
            report.record(CheckResult(name: "load previous", status: .fail, detail: "config: \(error.description)"))
            return nil
        }
    }

    /// --metadata, plus, for a pubsub plugin, short redelivery delays for the keys it declares and
    /// --metadata does not give (`PubsubChecks.fastDelays`), so that RETRY comes back within the run.
    private func metadata(for binary: PluginBinary) -> [String: String] {
        var config = metadata
        for (key, value) in fastDelays(binary) { config[key] = value }
        return config
    }

    private func fastDelays(_ binary: PluginBinary) -> [(key: String, value: String)] {
        guard binary.info.kind == .pubsub else { return [] }
        let declared = Set(binary.info.configKeys.map(\.name))
        return PubsubChecks.fastDelays.filter { declared.contains($0.key) && metadata[$0.key] == nil }.sorted { $0.key < $1.key }
    }

    private func shortened(_ binary: PluginBinary) -> String {
        let keys = fastDelays(binary).map(\.key)
        return keys.isEmpty ? "" : " (\(keys.joined(separator: ", ")) shortened by verify; --metadata overrides)"
    }

    static func describe(_ binary: PluginBinary) -> String {
        let info = binary.info
        var parts = ["\(info.id) (kind \(info.kind.rawValue), ABI \(info.abiVersion.major).\(info.abiVersion.minor), "
                     + "\(binary.linksSwiftRuntime ? "Swift" : "C"))"]
        parts.append(info.stateFormats.map { "state formats \($0.lowerBound)...\($0.upperBound)" } ?? "no state transfer")
        if info.holdsState { parts.append("holds state") }
        let optional = info.capabilities.symbolNames.filter { $0 != "molt_plugin_export_state" && $0 != "molt_plugin_import_state" }
        if !optional.isEmpty { parts.append("exports \(optional.joined(separator: ", "))") }
        return parts.joined(separator: "; ")
    }

    static func describe(_ config: NormalizedConfig) -> String {
        guard !config.config.isEmpty else { return "no keys" }
        return config.config.sorted { $0.key < $1.key }.map { key, value in
            "\(key)=\(value)\(config.explicit[key] == nil ? " (default)" : "")"
        }.joined(separator: ", ")
    }

    /// The host's refusal, with what to do about a missing required key.
    private func configHint(_ problem: String, _ binary: PluginBinary) -> String {
        let missing = binary.info.configKeys.filter { $0.required && metadata[$0.name] == nil }.map(\.name)
        guard problem.firstRange(of: "missing required") != nil, let first = missing.first else { return problem }
        return "\(problem): give it with --metadata \(first)=VALUE"
    }
}
