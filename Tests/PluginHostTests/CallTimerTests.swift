import PluginHost
import Synchronization
import Testing

/// The deadline heap behind every plugin call's timeout: calls expire in deadline order, once, and a
/// cancelled call never does, wherever it sits in the heap.
@Suite struct CallTimerTests {
    /// The ids of the calls that expired, in order.
    final class ExpiryLog: Sendable {
        let ids = Mutex<[Int]>([])
    }

    /// A call that records when it expired.
    final class Probe: TimedCall, @unchecked Sendable {
        // @unchecked: immutable; the log is a Mutex.
        let id: Int
        let expired: ExpiryLog

        init(_ id: Int, _ expired: ExpiryLog) {
            self.id = id
            self.expired = expired
        }

        override func expire() {
            expired.ids.withLock { $0.append(id) }
        }
    }

    @Test func callsExpireInDeadlineOrderAndCancelledOnesNever() async throws {
        let timer = CallTimer()
        defer { timer.stop() }
        let expired = ExpiryLog()
        let start = ContinuousClock.now + .milliseconds(100)
        // Deadlines 1 ms apart, scheduled out of order (97 and 300 are coprime: every id once); every third one
        // cancelled afterwards in yet another order, so that removals hit the root, leaves and inner nodes of the heap.
        let order = (0..<300).map { $0 * 97 % 300 }
        var probes: [Int: Probe] = [:]
        for id in order {
            let probe = Probe(id, expired)
            probes[id] = probe
            timer.schedule(probe, at: start + .milliseconds(id))
        }
        #expect(timer.scheduledCount == 300)
        let cancelled = Set(order.filter { $0 % 3 == 0 })
        for id in cancelled.sorted(by: { $0 * 53 % 300 < $1 * 53 % 300 }) {
            timer.cancel(probes[id]!)
            timer.cancel(probes[id]!)  // idempotent
        }
        #expect(timer.scheduledCount == 200)

        let deadline = ContinuousClock.now + .seconds(10)
        while expired.ids.withLock({ $0.count }) < 200 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(50))  // anything expiring twice or cancelled would show by now
        let seen = expired.ids.withLock { $0 }
        #expect(seen == (0..<300).filter { !cancelled.contains($0) })
        #expect(timer.scheduledCount == 0)
        #expect(probes.values.allSatisfy { $0.timerIndex == -1 })
    }
}
