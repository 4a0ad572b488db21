import FoundationEssentials
import Logging
import Synchronization

/// The results of finished applies: the recent ones (bounded), their subscribers, and their log lines.
final class ApplyHistory: Sendable {
    private let limit: Int
    private let logger: Logger
    private let recent = Mutex<[ApplyResult]>([])
    /// Subscribers to apply results (control-plane streams, metrics), by subscription id.
    private let subscribers = Mutex<(next: Int, byID: [Int: AsyncStream<ApplyResult>.Continuation])>((0, [:]))

    init(limit: Int, logger: Logger) {
        self.limit = limit
        self.logger = logger
    }

    var results: [ApplyResult] { recent.withLock { $0 } }

    /// Every result from now on, in the order applies finish, until the consumer stops iterating.
    /// A consumer that falls 1024 results behind loses the oldest ones.
    func subscribe() -> AsyncStream<ApplyResult> {
        let (stream, continuation) = AsyncStream<ApplyResult>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let id = subscribers.withLock { subscribers in
            subscribers.next += 1
            subscribers.byID[subscribers.next] = continuation
            return subscribers.next
        }
        continuation.onTermination = { [weak self] _ in _ = self?.subscribers.withLock { $0.byID.removeValue(forKey: id) } }
        return stream
    }

    /// Stamps `result` with its finishing time, publishes it (subscribers, history, log) and returns the
    /// stamped copy, which is what the caller must hand back.
    func record(_ result: ApplyResult) -> ApplyResult {
        var result = result
        result.finishedAt = Date()
        for continuation in subscribers.withLock({ Array($0.byID.values) }) { continuation.yield(result) }
        recent.withLock { recent in
            recent.append(result)
            if recent.count > limit { recent.removeFirst(recent.count - limit) }
        }
        var metadata: Logger.Metadata = ["component": "\(result.key)", "action": "\(result.action.rawValue)"]
        if let old = result.oldGeneration { metadata["old_generation"] = "\(old)" }
        if let new = result.newGeneration { metadata["new_generation"] = "\(new)" }
        if let plugin = result.newPlugin { metadata["plugin"] = "\(plugin)" }
        if let error = result.error { metadata["error"] = "\(error)" }
        for (name, duration) in [("init", result.initDuration), ("readiness", result.readinessDuration), ("pause", result.pauseDuration),
                                 ("drain", result.drainDuration), ("switch", result.switchDuration)] {
            if let duration { metadata["\(name)_us"] = "\(duration.microseconds)" }
        }
        metadata["total_us"] = "\(result.totalDuration.microseconds)"
        if !result.warnings.isEmpty { metadata["warnings"] = "\(result.warnings.joined(separator: "; "))" }
        logger.log(level: result.succeeded ? .info : .warning, "apply", metadata: metadata)
        return result
    }
}

extension Engine {
    /// Every apply result from now on (see `ApplyHistory.subscribe`).
    public func applyResults() -> AsyncStream<ApplyResult> { history.subscribe() }

    public var recentApplies: [ApplyResult] { history.results }

    /// Publishes a finished apply's result; a component that now serves counts for readiness.
    func record(_ result: ApplyResult) -> ApplyResult {
        if result.action == .added { readiness.served(result.key) }
        return history.record(result)
    }
}
