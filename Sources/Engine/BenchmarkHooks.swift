extension Engine {
    /// Benchmark hook (molt-bench `lease`), not for production use: `iterations` uncontended lease
    /// acquire + release pairs on the active generation of `key`, with no call in between; returns
    /// the total time. `synchronous: false` takes each lease with `ComponentSlot.acquire()` (async);
    /// `true` with its synchronous fast path `tryAcquire()` alone. `.zero` when the component is not
    /// configured, was removed meanwhile, or (synchronous) is paused.
    public func _benchmarkLeaseRelease(_ key: ComponentKey, iterations: Int, synchronous: Bool = false) async -> Duration {
        guard let slot = slots.withLock({ $0[key] }) else { return .zero }
        let clock = ContinuousClock()
        let start = clock.now
        if synchronous {
            for _ in 0..<iterations {
                guard let lease = try? slot.tryAcquire() else { return .zero }
                slot.release(lease)
            }
        } else {
            for _ in 0..<iterations {
                guard let lease = try? await slot.acquire() else { return .zero }
                slot.release(lease)
            }
        }
        return clock.now - start
    }
}
