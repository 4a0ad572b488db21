import FoundationEssentials

/// What status APIs show: components, applies in progress, abandoned generations.
extension Engine {
    public struct ComponentStatus: Sendable {
        public let key: ComponentKey
        public let plugin: String
        public let generation: UInt64
        public let paused: Bool
        public let inFlight: Int
        /// The newest abandoned generation of this component, if any (`abandonedGenerations` lists all).
        public let drainingGeneration: UInt64?
        /// Calls the plugin still holds on abandoned generations of this component.
        public let drainingInFlight: Int
        /// Calls that have waited for a stateful handoff (since the component was added).
        public let callsThatWaitedForHandoff: Int
        public let lastApply: ApplyResult?
    }

    public struct ApplyInProgress: Sendable {
        public let keys: [ComponentKey]
        public let step: ApplyStep
        public let elapsed: Duration
        public let startedAt: Date
    }

    public var components: [ComponentStatus] {
        let snapshot = slots.withLock { $0 }
        let applies = recentApplies
        let abandonedByKey = Dictionary(grouping: abandoned.list, by: \.key)
        return snapshot.values.compactMap { slot in
            guard let active = slot.activeCell.current else { return nil }
            let abandoned = abandonedByKey[slot.key] ?? []
            return ComponentStatus(key: slot.key, plugin: active.pluginID, generation: active.number, paused: slot.isPaused,
                                   inFlight: slot.activeCell.waitingLeases,
                                   drainingGeneration: abandoned.last?.generation,
                                   drainingInFlight: abandoned.reduce(0) { $0 + $1.callsOutstanding },
                                   callsThatWaitedForHandoff: slot.waitedForPause.load(ordering: .relaxed),
                                   lastApply: applies.last { $0.key == slot.key })
        }.sorted { $0.key < $1.key }
    }

    /// What the metadata APIs list, on every call: each component's serving plugin and generation,
    /// without the statuses and apply history `components` builds.
    public var registeredComponents: [(key: ComponentKey, plugin: String, generation: UInt64, capabilities: [String])] {
        slots.withLock { Array($0.values) }.compactMap { slot in
            slot.activeCell.current.map { (slot.key, $0.pluginID, $0.number, $0.binary.operationCapabilities) }
        }.sorted { $0.key < $1.key }
    }

    /// Applies (and removals) running now, oldest first.
    public var appliesInProgress: [ApplyInProgress] {
        inProgress.withLock { Array($0.values) }
            .map { ApplyInProgress(keys: $0.keys, step: $0.currentStep, elapsed: $0.elapsed, startedAt: $0.startedAt) }
            .sorted { $0.startedAt < $1.startedAt }
    }

    /// Generations left to calls their plugin never completed, until it does.
    public var abandonedGenerations: [AbandonedGeneration] { abandoned.list }

    /// The active generation's normalized configuration, secret references in place of their values; nil
    /// when the component is not configured.
    public func activeConfig(of key: ComponentKey) -> [String: String]? {
        slots.withLock { $0[key] }?.activeCell.current?.shownConfig
    }

    /// Leases that reached a destroyed generation, across all components. Always 0 unless molt has a bug.
    public var leaseViolations: Int {
        slots.withLock { $0.values.reduce(0) { $0 + $1.violations.load(ordering: .relaxed) } } + retiredViolations.load(ordering: .relaxed)
    }
}
