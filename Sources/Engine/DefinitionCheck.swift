import PluginHost

/// What applying a definition would do, and what is wrong with it, found without changing anything:
/// `molt config check` against a plugins directory, `molt apply --dry-run` against a running molt.
public struct DefinitionCheck: Sendable {
    public let key: ComponentKey
    /// What is wrong; an apply of this definition would fail.
    public var problems: [String] { findings.map(\.message) }
    /// Each problem with the configuration key it is about, when it is about one.
    public var findings: [(key: String?, message: String)] = []
    public var warnings: [String] = []
    /// The plugin it would run, name@version.
    public var plugin: String?
    /// What an apply would do now, in words ("add", "unchanged", "reload", …); nil with problems.
    public var outcome: String?

    public var passed: Bool { findings.isEmpty }
}

extension Engine {
    /// Configuration keys the host itself reads, whatever the plugin declares: accepted for any plugin
    /// (and applied in place by the host when the plugin does not declare them). The state key prefix is
    /// the only one: Dapr component files' metadata reaches the engine whole (`spec.metadata`), and the
    /// component formats read their other fields (type, version, ignoreErrors, initTimeout, scopes) outside it.
    /// A secret or configuration store's `pollInterval` (how often molt reads the secrets other components
    /// use, or the items apps subscribed to, when the plugin does not report changes) is the host's too.
    static func hostKeys(_ kind: ComponentKind) -> Set<String> {
        switch kind {
        case .state: ["keyPrefix"]
        case .secretstore, .configuration: ["pollInterval"]
        default: []
        }
    }

    /// `check` for async callers (the Control API's dry runs): run where it may block.
    public func checkOffPool(_ definition: ComponentDefinition) async -> DefinitionCheck {
        await planQueue.run { self.check(definition) }
    }

    /// Checks `definition` as an apply would plan it (`plan`: limits, plugin and version, keys the plugin
    /// does not declare, required keys, deprecated aliases, state handoff) without loading anything into
    /// service or touching the running component.
    public func check(_ definition: ComponentDefinition) -> DefinitionCheck {
        var check = DefinitionCheck(key: definition.key)
        let change: Change
        do {
            try ComponentLimits.check(definition)
            change = try plan(definition)
        } catch let failure as StepFailure where !failure.keys.isEmpty {
            // Unknown keys: one finding per key, so each is reported where it was written.
            if let binary = try? resolveBinary(definition, current: slots.withLock { $0[definition.key] }?.activeCell.current).binary {
                let hostKeys = Self.hostKeys(definition.key.kind)
                for key in failure.keys { check.findings.append((key, binary.unknownKeysProblem([key], hostKeys: hostKeys).description)) }
            } else {
                check.findings.append((nil, failure.description))
            }
            return check
        } catch {
            check.findings.append((nil, "\(error)"))
            return check
        }
        guard let binary = change.resolved else { return check }
        check.plugin = binary.info.id
        check.warnings = change.result.warnings
        let declared = Set(binary.info.configKeys.map(\.name)).union(Self.hostKeys(definition.key.kind))
        if !binary.info.honoursDeclaredKeys, !binary.info.configKeys.isEmpty {
            // An ABI 1.0 plugin gets keys it does not declare, as ABI 1.0 hosts gave them: say so.
            for key in change.config.keys.filter({ !declared.contains($0) }).sorted() {
                check.warnings.append("config key '\(key)' is not a key of plugin \(binary.info.id) (ABI 1.0: passed on, as an ABI 1.0 host did)")
            }
        }
        check.outcome = change.changes ? Self.outcome(of: change, to: binary) : "unchanged"
        if let refusal = change.reloadRefusal { check.warnings.append("if the plugin asks for a reload, it is refused: \(refusal)") }
        return check
    }

    private static func outcome(of change: Change, to binary: PluginBinary) -> String {
        guard let current = change.old else { return "add" }
        if binary.info.version != current.binary.info.version {
            return "swap version \(current.binary.info.version) → \(binary.info.version) (new generation)"
        }
        guard binary.sha256 == current.binary.sha256, change.definition.pin == current.pin, binary.symbols.applyConfig != nil else {
            return "reload (new generation)"
        }
        if let blocking = change.blockingKey { return "reload (new generation): '\(blocking)' does not apply in place" }
        return binary.info.honoursDeclaredKeys ? "apply in place" : "apply in place, or reload if the plugin asks for it"
    }
}
