// One operation in flight: the commands it sends, the replies it waits for, its attempts.
import PluginKit

/// The SHA1s of the scripts a connection loaded, indexed by `Script.rawValue` (nil: use EVAL).
typealias ScriptSHAs = [[UInt8]?]

/// What a connection attempt or a sent command failed with.
struct ConnectionFailure: Error {
    var error: PluginError
    /// The call's commands were never sent (connecting failed): safe to retry any command.
    var notSent: Bool
    /// Authentication or database selection was refused: retrying will not help.
    var permanent: Bool = false
}

/// An operation's Redis side: `encode` writes its commands (pipelined, all on one connection),
/// and `finish` gets their replies in order, or the failure.
final class Call: @unchecked Sendable {
    // @unchecked Sendable: created on the thread of the operation and handed to one loop (directly
    // or through a timer), and from then on touched only on that loop; the closures are @Sendable.
    let idempotent: Bool
    private let encode: @Sendable (inout CommandBuffer, ScriptSHAs) -> Void
    private let finish: @Sendable (Result<[RedisValue], PluginError>) -> Void
    /// Retries so far (maxRetries).
    var attempt = 0
    /// While on a connection: how many replies the commands get, those received, when they were sent.
    private(set) var expected = 0
    private(set) var replies: [RedisValue] = []
    private(set) var sentAt = ContinuousClock.Instant.now
    /// While waiting for a connection: since when (poolTimeout).
    var waitingSince = ContinuousClock.Instant.now
    /// While waiting to be retried.
    var retryTimer: HostTimer?

    init(idempotent: Bool,
         encode: @escaping @Sendable (inout CommandBuffer, ScriptSHAs) -> Void,
         finish: @escaping @Sendable (Result<[RedisValue], PluginError>) -> Void) {
        self.idempotent = idempotent
        self.encode = encode
        self.finish = finish
    }

    /// Appends the call's commands (with the connection's scripts) and starts waiting for replies.
    func encode(into buffer: inout CommandBuffer, scripts: ScriptSHAs, now: ContinuousClock.Instant) {
        let before = buffer.count
        encode(&buffer, scripts)
        expected = buffer.count - before
        replies = []
        replies.reserveCapacity(expected)
        sentAt = now
    }

    /// Takes one reply; true once every reply is in.
    func received(_ reply: RedisValue) -> Bool {
        replies.append(reply)
        return replies.count >= expected
    }

    /// A Redis that forgot the scripts (SCRIPT FLUSH, a restart without persistence) answers NOSCRIPT.
    var needsScriptsAgain: Bool { replies.contains { $0.isNoScript } }

    func succeed() { finish(.success(replies)) }

    func fail(_ error: PluginError) { finish(.failure(error)) }
}

/// A first-in first-out queue (an array and a head index), for one loop.
struct FIFO<Element> {
    private var items: [Element?] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }
    var first: Element? { isEmpty ? nil : items[head] }

    mutating func append(_ element: Element) { items.append(element) }

    mutating func popFirst() -> Element? {
        guard !isEmpty else { return nil }
        let element = items[head]
        items[head] = nil
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 64 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return element
    }

    /// Empties the queue and returns what it held, in order.
    mutating func removeAll() -> [Element] {
        let rest = items[head...].map { $0! }
        items.removeAll()
        head = 0
        return rest
    }
}
