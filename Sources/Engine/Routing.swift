import PluginHost
import Synchronization

/// One instance of a component's plugin, numbered per component.
final class Generation: Sendable {
    let number: UInt64
    let instance: PluginInstance
    /// The normalized config this generation runs with (updated by in-place applies, which are
    /// serialized per component, hence the mutex is uncontended).
    let config: Mutex<[String: String]>
    let pin: String?
    /// Set just before the plugin's destroy runs. A lease that observes it has reached (or is about
    /// to reach) a destroyed instance: counted as a violation, which must never happen.
    let destroyed = Atomic<Bool>(false)

    init(number: UInt64, instance: PluginInstance, config: [String: String], pin: String?) {
        self.number = number
        self.instance = instance
        self.config = Mutex(config)
        self.pin = pin
    }

    var binary: PluginBinary { instance.binary }
    var pluginID: String { instance.binary.info.id }
}

/// Where calls find a generation. A slot has two immortal cells (Erlang's current and old code):
/// the active one, and the one a new generation is prepared in (or the old one drains from).
///
/// Lease protocol (the hot path takes no lock):
///   caller:  w = word.load; if paused, wait; cell[w.index].inFlight += 1; if word.load != w → undo, retry
///   writer:  install new generation in the idle cell; word.store(new index); wait old cell inFlight == 0;
///            destroy old generation; clear the cell
/// Both sides use sequentially consistent operations, so either the caller's increment is visible to
/// the writer's drain (which then waits for it), or the caller sees the new word and backs out before
/// touching the generation. If the word returns to the same value (ABA) the cell holds the *new*
/// generation, published before the word, and the caller's lease is valid for it.
final class ComponentSlot: Sendable {
    final class Cell: Sendable {
        /// Leases taken (plus transient attempts that back out) on this cell.
        let inFlight = Atomic<Int>(0)
        /// The generation the cell holds: +1 retained while installed, released by the writer after
        /// the drain.
        let generation = Atomic<Unmanaged<Generation>?>(nil)

        func install(_ generation: Generation) {
            let previous = self.generation.exchange(Unmanaged.passRetained(generation), ordering: .releasing)
            precondition(previous == nil, "cell already holds a generation")
        }

        func clear() {
            generation.exchange(nil, ordering: .acquiringAndReleasing)?.release()
        }

        var current: Generation? { generation.load(ordering: .acquiring)?.takeUnretainedValue() }
    }

    static let pausedBit: UInt64 = 0b10
    static let removedBit: UInt64 = 0b100

    let key: ComponentKey
    /// The two cells, as plain stored properties (reading an array element would retain it).
    let cell0 = Cell()
    let cell1 = Cell()
    /// Bit 0: active cell index; pausedBit: new calls wait; removedBit: new calls fail.
    let word = Atomic<UInt64>(0)
    private let waiters = Mutex<[UnsafeContinuation<Void, Never>]>([])
    /// Counts leases that reached a destroyed generation. Must stay 0 (asserted by the tests).
    let violations = Atomic<Int>(0)
    /// Calls that waited for a stateful handoff to finish (they proceed on the new generation).
    let waitedForPause = Atomic<Int>(0)

    init(key: ComponentKey, first: Generation) {
        self.key = key
        cell0.install(first)
    }

    /// A lease on one generation. Holds no reference counts: the cell keeps the generation alive
    /// until its drain, and the drain waits for this lease's in-flight count.
    struct Lease {
        unowned(unsafe) let cell: Cell
        let reference: Unmanaged<Generation>

        var generation: Generation { reference.takeUnretainedValue() }
    }

    /// Takes a lease on the active generation, waiting (never failing) while the slot is paused.
    @inline(__always)
    func acquire() async throws(CallError) -> Lease {
        if let lease = try tryAcquire() { return lease }
        return try await acquireAfterPause()
    }

    /// The hot path: a lease now, or nil when the slot is paused. No lock, no reference counting:
    /// two atomic read-modify-writes per call (this increment and the release's decrement).
    @inline(__always)
    func tryAcquire() throws(CallError) -> Lease? {
        while true {
            let observed = word.load(ordering: .sequentiallyConsistent)
            if observed & Self.removedBit != 0 { throw .unknownComponent(key) }
            if observed & Self.pausedBit != 0 { return nil }
            let cell = observed & 1 == 0 ? cell0 : cell1
            cell.inFlight.wrappingAdd(1, ordering: .sequentiallyConsistent)
            if word.load(ordering: .sequentiallyConsistent) == observed, let reference = cell.generation.load(ordering: .acquiring) {
                if reference.takeUnretainedValue().destroyed.load(ordering: .relaxed) { violations.add(1, ordering: .relaxed) }
                return Lease(cell: cell, reference: reference)
            }
            cell.inFlight.wrappingSubtract(1, ordering: .sequentiallyConsistent)
        }
    }

    func acquireAfterPause() async throws(CallError) -> Lease {
        while true {
            if let lease = try tryAcquire() { return lease }
            waitedForPause.add(1, ordering: .relaxed)
            await waitWhilePaused()
        }
    }

    @inline(__always)
    func release(_ lease: Lease) {
        if lease.generation.destroyed.load(ordering: .relaxed) { violations.add(1, ordering: .relaxed) }
        lease.cell.inFlight.wrappingSubtract(1, ordering: .sequentiallyConsistent)
    }

    // MARK: - Writer side (callers hold the component's apply lock)

    var activeIndex: Int { Int(word.load(ordering: .sequentiallyConsistent) & 1) }
    var activeCell: Cell { activeIndex == 0 ? cell0 : cell1 }
    var idleCell: Cell { activeIndex == 0 ? cell1 : cell0 }

    /// Makes the idle cell active (clearing the pause) and wakes calls that waited.
    func switchToIdleCell() {
        let next = UInt64(1 - activeIndex)
        word.store(next, ordering: .sequentiallyConsistent)
        wakeWaiters()
    }

    /// New calls wait from now on; calls already leased continue.
    func pause() {
        word.store(word.load(ordering: .sequentiallyConsistent) | Self.pausedBit, ordering: .sequentiallyConsistent)
    }

    func resume() {
        word.store(word.load(ordering: .sequentiallyConsistent) & ~Self.pausedBit, ordering: .sequentiallyConsistent)
        wakeWaiters()
    }

    /// New calls fail with unknownComponent from now on.
    func markRemoved() {
        word.store(word.load(ordering: .sequentiallyConsistent) | Self.removedBit, ordering: .sequentiallyConsistent)
        wakeWaiters()
    }

    var isPaused: Bool { word.load(ordering: .sequentiallyConsistent) & Self.pausedBit != 0 }

    private func waitWhilePaused() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            // Checked under the waiters lock; writers change the word before taking it, so a
            // wake-up cannot be lost between the check and the append.
            let waitNow = waiters.withLock { list in
                guard self.isPaused else { return false }
                list.append(continuation)
                return true
            }
            if !waitNow { continuation.resume() }
        }
    }

    private func wakeWaiters() {
        let woken = waiters.withLock { list in
            defer { list.removeAll() }
            return list
        }
        for continuation in woken { continuation.resume() }
    }

    /// Waits until `cell` has no lease, up to `timeout`. Returns the calls still in flight (0 = drained).
    func drain(_ cell: Cell, timeout: Duration) async -> Int {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var spins = 0
        while true {
            let count = cell.inFlight.load(ordering: .sequentiallyConsistent)
            if count == 0 { return 0 }
            if clock.now >= deadline { return count }
            spins += 1
            // In-memory calls finish within microseconds: yield first, sleep only if it takes longer.
            if spins < 64 {
                await Task.yield()
            } else {
                try? await Task.sleep(for: .microseconds(200))
            }
        }
    }
}
