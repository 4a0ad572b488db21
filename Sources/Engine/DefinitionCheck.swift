import PluginHost

/// What applying a definition would do, and what is wrong with it, found without changing anything:
/// `molt config check` against a plugins directory, `molt apply --dry-run` against a running molt.
public struct DefinitionCheck: Sendable {
    public let key: ComponentKey
    /// What is wrong; an apply of this definition would fail (or, for unknown keys, pass them to a
    /// plugin that ignores them).
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
    /// Configuration keys the host itself reads, whatever the plugin declares.
    static func hostKeys(_ kind: ComponentKind) -> Set<String> { kind == .state ? ["keyPrefix"] : [] }

    /// Checks `definition` as an apply would plan it (`plan`: limits, plugin and version, required keys,
    /// deprecated aliases, state handoff), plus keys the plugin does not declare, without loading
    /// anything into service or touching the running component.
    public func check(_ definition: ComponentDefinition) -> DefinitionCheck {
        var check = DefinitionCheck(key: definition.key)
        let change: Change
        do {
            try ComponentLimits.check(definition)
            change = try plan(definition)
        } catch {
            check.findings.append((nil, "\(error)"))
            return check
        }
        guard let binary = change.resolved else { return check }
        check.plugin = binary.info.id
        check.warnings = change.result.warnings
        let declared = binary.info.configKeys
        if !declared.isEmpty {
            let known = Set(declared.map(\.name)).union(Self.hostKeys(definition.key.kind))
            for key in change.config.keys.filter({ !known.contains($0) }).sorted() {
                check.findings.append((key, "unknown config key '\(key)' for plugin \(binary.info.id), which declares "
                    + declared.map(\.name).sorted().joined(separator: ", ")))
            }
        }
        guard check.passed else { return check }
        check.outcome = change.changes ? Self.outcome(from: change.old, to: binary, config: change.config, pin: definition.pin) : "unchanged"
        return check
    }

    private static func outcome(from current: Generation?, to binary: PluginBinary, config: [String: String], pin: String?) -> String {
        guard let current else { return "add" }
        if binary.info.version != current.binary.info.version {
            return "swap version \(current.binary.info.version) → \(binary.info.version) (new generation)"
        }
        guard binary.sha256 == current.binary.sha256, pin == current.pin, binary.symbols.applyConfig != nil else { return "reload (new generation)" }
        let running = current.config
        let changed = Set(running.keys).union(config.keys).filter { running[$0] != config[$0] }.sorted()
        let declared = Dictionary(binary.info.configKeys.map { ($0.name, $0.appliesInPlace) }, uniquingKeysWith: { a, _ in a })
        guard !declared.isEmpty else { return "apply in place, or reload if the plugin asks for it" }
        if let blocking = changed.first(where: { declared[$0] != true }) {
            return "reload (new generation): '\(blocking)' does not apply in place"
        }
        return "apply in place"
    }
}
