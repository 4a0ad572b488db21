import Glibc

/// Something the timer can expire: a plugin call, a blocking plugin step. Subclasses override `expire`.
/// A class rather than a protocol: the heap moves and re-indexes entries on every schedule and cancel,
/// and a class reference moves without an existential's witness calls and reference counting.
open class TimedCall: @unchecked Sendable {
    // @unchecked: `timerIndex` is read and written only by the timer, under its lock; each subclass
    // states how its own state is kept safe.
    /// Position in the timer's heap; -1: not in it. Unchecked exclusivity: the timer reads and writes it under its
    /// lock; the getter is public for tests, which read it once the timer holds nothing.
    @exclusivity(unchecked) public fileprivate(set) var timerIndex = -1

    public init() {}

    /// Runs on the timer's thread once the deadline passed, outside the timer's lock.
    open func expire() {}
}

/// Expires plugin calls whose caller's deadline passed, and plugin steps that overran their timeout.
/// Cancelling removes an entry at once, so nothing outlives what it times (a dispatch timer, or a
/// cancelled `Task.sleep`, stays allocated until its deadline). One thread sleeps until the earliest deadline;
/// scheduling a deadline later than the one it sleeps towards does not wake it, so a steady stream of
/// calls that complete in time costs no wake-up. Calls that complete before `schedule` (a plugin that
/// completes inline) never reach the timer.
///
/// Thread: `schedule`, `cancel` and `expireAll` from any thread; `TimedCall.expire` on the timer's own.
public final class CallTimer: @unchecked Sendable {
    // @unchecked: every stored var is read and written only under `mutex`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var heap = DeadlineHeap()
    /// The deadline the thread sleeps towards; nil: it sleeps until signalled.
    private var sleepingUntil: ContinuousClock.Instant?
    private var threadStarted = false
    private var stopping = false

    public init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    /// Calls waiting for their deadline.
    public var scheduledCount: Int { locked { heap.count } }

    public func schedule(_ call: TimedCall, at deadline: ContinuousClock.Instant) {
        locked {
            precondition(call.timerIndex < 0, "call scheduled twice")
            heap.insert(call, at: deadline)
            if !threadStarted { startThread() }
            if sleepingUntil.map({ deadline < $0 }) ?? true { pthread_cond_signal(condition) }
        }
    }

    /// Removes `call` if it is scheduled (idempotent).
    public func cancel(_ call: TimedCall) {
        locked { heap.remove(at: call.timerIndex) }
    }

    /// Expires every scheduled call now (shutdown: the drain timeout has passed). Returns how many.
    @discardableResult
    public func expireAll() -> Int {
        let due = locked { heap.removeAll() }
        for call in due { call.expire() }
        return due.count
    }

    /// Ends the timer's thread (its owner is going away); calls still scheduled are expired first.
    public func stop() {
        expireAll()
        locked {
            stopping = true
            pthread_cond_signal(condition)
        }
    }

    // MARK: - The timer thread

    private func startThread() {
        threadStarted = true
        let context = Unmanaged.passRetained(self).toOpaque()  // released by the thread when it ends (`stop`)
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { context in
            Unmanaged<CallTimer>.fromOpaque(context!).takeRetainedValue().runLoop()
            return nil
        }, context)
        precondition(created == 0, "cannot start the call timer thread: \(created)")
        pthread_detach(thread)
    }

    private func runLoop() {
        pthread_mutex_lock(mutex)
        while !stopping {
            let now = ContinuousClock.now
            var due: [TimedCall] = []
            while let first = heap.first, first.deadline <= now {
                due.append(first.call)
                heap.remove(at: 0)
            }
            if !due.isEmpty {
                pthread_mutex_unlock(mutex)
                for call in due { call.expire() }
                pthread_mutex_lock(mutex)
                continue
            }
            if let next = heap.first?.deadline {
                sleepingUntil = next
                var wake = timespec()
                clock_gettime(CLOCK_MONOTONIC, &wake)
                let (seconds, attoseconds) = (next - now).components
                let nanoseconds = Int(wake.tv_nsec) + Int(attoseconds / 1_000_000_000) + 1_000_000  // +1 ms: never wake just early
                wake.tv_sec += Int(seconds) + nanoseconds / 1_000_000_000
                wake.tv_nsec = nanoseconds % 1_000_000_000
                pthread_cond_timedwait(condition, mutex, &wake)
            } else {
                sleepingUntil = nil
                pthread_cond_wait(condition, mutex)
            }
        }
        pthread_mutex_unlock(mutex)
    }

    private func locked<R>(_ body: () -> R) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }
}

/// The timer's deadlines, earliest first (a binary heap); each call's `timerIndex` is its position. A
/// value type mutated in place: its operations work on plain arrays without a dynamic exclusivity check
/// or uniqueness test per element. Deadlines and calls are parallel arrays, so comparing deadlines
/// never copies (retains) a call. Its owner holds the lock.
private struct DeadlineHeap {
    private var deadlines: [ContinuousClock.Instant] = []
    private var calls: [TimedCall] = []

    var count: Int { calls.count }
    var first: (deadline: ContinuousClock.Instant, call: TimedCall)? { calls.isEmpty ? nil : (deadlines[0], calls[0]) }

    mutating func insert(_ call: TimedCall, at deadline: ContinuousClock.Instant) {
        deadlines.append(deadline)
        calls.append(call)
        call.timerIndex = calls.count - 1
        siftUp(calls.count - 1)
    }

    /// Removes the entry at `index`, if there is one.
    mutating func remove(at index: Int) {
        guard index >= 0, index < calls.count else { return }
        calls[index].timerIndex = -1
        let last = calls.count - 1
        if index != last {
            deadlines.swapAt(index, last)
            calls.swapAt(index, last)
            calls[index].timerIndex = index
        }
        deadlines.removeLast()
        calls.removeLast()
        if index < calls.count {
            siftDown(index)
            siftUp(index)
        }
    }

    /// Empties the heap; returns the calls it held.
    mutating func removeAll() -> [TimedCall] {
        let removed = calls
        for call in removed { call.timerIndex = -1 }
        deadlines.removeAll()
        calls.removeAll()
        return removed
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard deadlines[child] < deadlines[parent] else { return }
            swapEntries(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        let count = deadlines.count
        while true {
            let left = 2 * parent + 1
            guard left < count else { return }
            var smallest = deadlines[left] < deadlines[parent] ? left : parent
            if left + 1 < count && deadlines[left + 1] < deadlines[smallest] { smallest = left + 1 }
            guard smallest != parent else { return }
            swapEntries(parent, smallest)
            parent = smallest
        }
    }

    private mutating func swapEntries(_ a: Int, _ b: Int) {
        deadlines.swapAt(a, b)
        calls.swapAt(a, b)
        calls[a].timerIndex = a
        calls[b].timerIndex = b
    }
}

/// When a plugin call must complete, and who to tell when it does not.
public struct CallDeadline: Sendable {
    public let instant: ContinuousClock.Instant
    public let timer: CallTimer
    public let owner: any PluginCallOwner

    public init(_ instant: ContinuousClock.Instant, timer: CallTimer, owner: any PluginCallOwner) {
        self.instant = instant
        self.timer = timer
        self.owner = owner
    }
}

/// Who answers for a plugin instance while a call the caller gave up on is still in the plugin (the
/// engine's lease cell): the instance must not be destroyed until the plugin completes that call.
/// Every `callDetached` is followed by exactly one `detachedCallCompleted`: at once when the call
/// completed before it could be detached, else when the plugin completes it.
public protocol PluginCallOwner: AnyObject, Sendable {
    /// The caller's deadline passed and the call may be detached (timer thread).
    func callDetached()
    /// The detached call is over (any thread).
    func detachedCallCompleted()
}
