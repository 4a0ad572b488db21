import PluginHost
import Synchronization

/// Where calls find a component's generation. A slot has two cells (Erlang's current and old code):
/// the active one, and the idle one a new generation is prepared in (or the old one drains from).
///
/// Lease protocol (the hot path takes no lock):
///   caller:  w = word.load; if paused, wait; c = cell[w.index]; c.leases += 1;
///            if word.load != w or cell[w.index] != c → undo, retry
///   writer:  install the new generation in the idle cell; word.store(new index); wait until the old
///            cell's leases are all detached calls; destroy the old generation, or abandon the cell
/// Both sides use sequentially consistent operations, so either the caller's increment is visible to
/// the writer's drain (which then waits for it), or the caller sees the new word and backs out before
/// touching the generation. If the word returns to the same value (ABA) the cell holds the *new*
/// generation, published before the word, and the caller's lease is valid for it.
///
/// A cell whose generation the plugin never lets go of (calls it never completes) is *abandoned*: the
/// slot gets a fresh cell in its place and the old cell lives on, alone with its generation, until its
/// last lease ends; then the generation is destroyed. Abandoned cells are never freed (a caller that
/// read the old cell pointer may still back out of it); each is a few dozen bytes.
final class ComponentSlot: Sendable {
    static let pausedBit: UInt64 = 0b10
    static let removedBit: UInt64 = 0b100

    let key: ComponentKey
    /// The two cells, +1 retained each (abandoned cells keep that reference forever).
    private let cellReference0: Atomic<Unmanaged<LeaseCell>>
    private let cellReference1: Atomic<Unmanaged<LeaseCell>>
    /// Bit 0: active cell index; pausedBit: new calls wait; removedBit: new calls fail.
    let word = Atomic<UInt64>(0)
    private let waiters = Mutex<[UnsafeContinuation<Void, Never>]>([])
    /// Counts leases that reached a destroyed generation. Must stay 0 (asserted by the tests).
    let violations = Atomic<Int>(0)
    /// Calls that waited for a stateful handoff to finish (they proceed on the new generation).
    let waitedForPause = Atomic<Int>(0)

    init(key: ComponentKey, first: Generation) {
        self.key = key
        let cell0 = LeaseCell(), cell1 = LeaseCell()
        cell0.install(first)
        cellReference0 = Atomic(Unmanaged.passRetained(cell0))
        cellReference1 = Atomic(Unmanaged.passRetained(cell1))
    }

    /// A lease on one generation. Holds no reference counts: the cell keeps the generation alive
    /// until its drain, and the drain waits for this lease.
    struct Lease {
        unowned(unsafe) let cell: LeaseCell
        let reference: Unmanaged<Generation>

        var generation: Generation { reference.takeUnretainedValue() }
    }

    /// The hot path: a lease now, or nil when the slot is paused. No lock, no reference counting:
    /// two atomic read-modify-writes per call (this increment and the release's decrement).
    @inline(__always)
    func tryAcquire() throws(CallError) -> Lease? {
        while true {
            let observed = word.load(ordering: .sequentiallyConsistent)
            if observed & Self.removedBit != 0 { throw .unknownComponent(key) }
            if observed & Self.pausedBit != 0 { return nil }
            let index = Int(observed & 1)
            let cellPointer = cellPointer(index)
            let cell = cellPointer.takeUnretainedValue()
            cell.leases.wrappingAdd(1, ordering: .sequentiallyConsistent)
            if word.load(ordering: .sequentiallyConsistent) == observed,
               self.cellPointer(index).toOpaque() == cellPointer.toOpaque(),
               let generation = cell.generation.load(ordering: .acquiring) {
                if generation.takeUnretainedValue().destroyed.load(ordering: .relaxed) { violations.add(1, ordering: .relaxed) }
                return Lease(cell: cell, reference: generation)
            }
            cell.endLease()
        }
    }

    /// Takes a lease on the active generation, waiting (never failing) while the slot is paused.
    func acquire() async throws(CallError) -> Lease {
        while true {
            if let lease = try tryAcquire() { return lease }
            waitedForPause.add(1, ordering: .relaxed)
            await waitWhilePaused()
        }
    }

    @inline(__always)
    func release(_ lease: Lease) {
        if lease.generation.destroyed.load(ordering: .relaxed) { violations.add(1, ordering: .relaxed) }
        lease.cell.endLease()
    }

    // MARK: - Writer side (callers hold the component's apply lock)

    @inline(__always)
    private func cellPointer(_ index: Int) -> Unmanaged<LeaseCell> {
        index == 0 ? cellReference0.load(ordering: .acquiring) : cellReference1.load(ordering: .acquiring)
    }

    var activeIndex: Int { Int(word.load(ordering: .sequentiallyConsistent) & 1) }
    var activeCell: LeaseCell { cellPointer(activeIndex).takeUnretainedValue() }
    var idleCell: LeaseCell { cellPointer(1 - activeIndex).takeUnretainedValue() }

    /// Puts a fresh cell where the idle `cell` was; `cell` keeps its +1 forever (see the type's comment).
    func replaceIdleCell(_ cell: LeaseCell) {
        let index = 1 - activeIndex
        precondition(cellPointer(index).toOpaque() == Unmanaged.passUnretained(cell).toOpaque(), "only the idle cell is replaced")
        let fresh = Unmanaged.passRetained(LeaseCell())
        if index == 0 {
            _ = cellReference0.exchange(fresh, ordering: .sequentiallyConsistent)
        } else {
            _ = cellReference1.exchange(fresh, ordering: .sequentiallyConsistent)
        }
    }

    /// Makes the idle cell active (clearing the pause) and wakes calls that waited.
    func switchToIdleCell() {
        word.store(UInt64(1 - activeIndex), ordering: .sequentiallyConsistent)
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
}

/// One cell of a slot: the generation it holds and the leases on it.
///
/// `leases` counts the calls holding a lease, plus one for each call the caller gave up on (deadline)
/// that the plugin still holds; `detached` counts the latter. Once the cell is abandoned, `leases` also
/// carries `abandonedBit`, and whoever brings it down to exactly that bit (a lease ending, a late
/// completion, or the abandoning writer finding no lease) runs `onAbandonedEmpty`, once.
final class LeaseCell: PluginCallOwner, Sendable {
    static let abandonedBit = 1 << 62

    let leases = Atomic<Int>(0)
    let detached = Atomic<Int>(0)
    /// The generation the cell holds: +1 retained while installed, released by `clear`.
    let generation = Atomic<Unmanaged<Generation>?>(nil)
    private let onAbandonedEmpty = Mutex<(@Sendable () -> Void)?>(nil)

    func install(_ generation: Generation) {
        let previous = self.generation.exchange(Unmanaged.passRetained(generation), ordering: .releasing)
        precondition(previous == nil, "cell already holds a generation")
    }

    func clear() {
        generation.exchange(nil, ordering: .acquiringAndReleasing)?.release()
    }

    var current: Generation? { generation.load(ordering: .acquiring)?.takeUnretainedValue() }

    /// Leases held by calls still waiting for the plugin (detached ones excluded). Reads `leases`
    /// first: a detach in between only makes it smaller, a late completion never larger than true.
    var waitingLeases: Int {
        let held = leases.load(ordering: .sequentiallyConsistent) & ~Self.abandonedBit
        return held - detached.load(ordering: .sequentiallyConsistent)
    }

    @inline(__always)
    func endLease() {
        if leases.wrappingSubtract(1, ordering: .sequentiallyConsistent).newValue == Self.abandonedBit { abandonedCellEmptied() }
    }

    /// Marks the cell abandoned; `whenEmpty` runs once its last lease ends (now, if it has none).
    func abandon(whenEmpty: @escaping @Sendable () -> Void) {
        onAbandonedEmpty.withLock { $0 = whenEmpty }
        if leases.bitwiseOr(Self.abandonedBit, ordering: .sequentiallyConsistent).oldValue == 0 { abandonedCellEmptied() }
    }

    private func abandonedCellEmptied() {
        let action = onAbandonedEmpty.withLock { action in
            defer { action = nil }
            return action
        }
        action?()
    }

    // MARK: - PluginCallOwner: a detached call keeps a lease of its own until the plugin completes it

    func callDetached() {
        leases.wrappingAdd(1, ordering: .sequentiallyConsistent)
        detached.wrappingAdd(1, ordering: .sequentiallyConsistent)
    }

    func detachedCallCompleted() {
        detached.wrappingSubtract(1, ordering: .sequentiallyConsistent)
        endLease()
    }
}
