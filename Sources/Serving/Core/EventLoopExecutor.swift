import NIOCore
import NIOPosix

/// Runs a task's jobs on one NIO event loop, so that an app call served by a task with this
/// preference stays on the thread that read its request: a job enqueued from the loop itself (a
/// plugin that completed inline, the next step after an await) is queued without waking anything,
/// and only a completion from another thread (a plugin's I/O thread) wakes the loop, once.
///
/// Every job must be short: the loop also serves every other connection assigned to it. Blocking
/// plugin work (init, destroy, export/import, apply_config) runs on the engine's threads, never here.
public final class EventLoopExecutor: TaskExecutor, Sendable {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}

/// One `EventLoopExecutor` per loop of a group, made once: every connection on a loop shares its loop's.
public struct EventLoopExecutors: Sendable {
    private let executors: [ObjectIdentifier: EventLoopExecutor]

    public init(_ group: MultiThreadedEventLoopGroup) {
        var executors: [ObjectIdentifier: EventLoopExecutor] = [:]
        for loop in group.makeIterator() { executors[ObjectIdentifier(loop)] = EventLoopExecutor(loop) }
        self.executors = executors
    }

    public func executor(for loop: any EventLoop) -> EventLoopExecutor {
        executors[ObjectIdentifier(loop)] ?? EventLoopExecutor(loop)
    }
}
