// How many host callbacks the plugin is still owed: streams whose `closed` has not come yet, timers
// neither fired nor cancelled. destroy waits for zero, so that nothing of the instance runs after it.
#if canImport(Glibc)
import Glibc
#endif

final class CallbackCount: @unchecked Sendable {
    // @unchecked Sendable: `count` is read and written only with the pthread mutex `lock` held;
    // `zero` is signalled under it.
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let zero = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var count = 0

    init() {
        pthread_mutex_init(lock, nil)
        pthread_cond_init(zero, nil)
    }

    deinit {
        pthread_cond_destroy(zero)
        pthread_mutex_destroy(lock)
        zero.deallocate()
        lock.deallocate()
    }

    /// One more callback owed (before asking the host for it).
    func add() {
        pthread_mutex_lock(lock)
        count += 1
        pthread_mutex_unlock(lock)
    }

    /// A callback delivered (call it last in the callback) or cancelled.
    func remove() {
        pthread_mutex_lock(lock)
        count -= 1
        if count == 0 { pthread_cond_broadcast(zero) }
        pthread_mutex_unlock(lock)
    }

    /// Blocks until nothing is owed. Never on a loop: the callbacks it waits for run there.
    func waitForZero() {
        pthread_mutex_lock(lock)
        while count > 0 { pthread_cond_wait(zero, lock) }
        pthread_mutex_unlock(lock)
    }
}
