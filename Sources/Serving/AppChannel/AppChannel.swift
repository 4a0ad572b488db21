import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// molt's HTTP/1.1 client to the app on its app port (Dapr's app channel): how molt calls the app, to
/// deliver HTTP configuration subscription updates and pub/sub events, and to ask for the app's
/// subscriptions (`GET /dapr/subscribe`).
///
/// Connections: up to `limits.maxConnections`, each carrying one request at a time and kept alive for the
/// next (a connection the app closed is dropped and replaced). Requests beyond the connections wait for one
/// in arrival order; beyond `limits.maxInFlightRequests` in flight or waiting a request fails at once.
///
/// Threads: the connections live on `group`'s event loops (molt's shared loops, those the HTTP server runs
/// on); `post` suspends its caller while a loop does the I/O, so it never blocks a loop or the cooperative
/// pool. Callable from any task.
public final class AppChannel: Sendable {
    /// host:port, as errors and logs name it.
    public let address: String
    public let limits: AppChannelLimits
    private let host: String
    private let port: Int
    private let group: any EventLoopGroup
    private let pool = Mutex(Pool())

    /// Which connection a request gets: an idle one, or the right to open one.
    private enum Lease: Sendable {
        case reuse(AppChannelConnection)
        case open
    }

    private struct Pool {
        var idle: [AppChannelConnection] = []
        /// Connections open or being opened (idle ones included).
        var open = 0
        /// Requests admitted (in flight or waiting).
        var admitted = 0
        /// In arrival order (few: at most `maxInFlightRequests`).
        var waiters: [CheckedContinuation<Lease, any Error>] = []
        var closed = false
    }

    public init(host: String, port: Int, limits: AppChannelLimits = AppChannelLimits(),
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.host = host
        self.port = port
        self.address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        self.limits = limits
        self.group = group
    }

    /// POSTs `body` to `path` (e.g. `/configuration/store/key`, already percent-encoded) and returns the app's
    /// answer, whatever its status. `headers` are added as given; without a `Content-Type` among them the body
    /// is sent as `application/json`.
    public func post(path: String, body: [UInt8], headers: [(name: String, value: String)] = []) async throws(AppChannelError) -> AppChannelResponse {
        try await send(.POST, path: path, body: body, headers: headers)
    }

    /// GETs `path` (e.g. `/dapr/subscribe`) and returns the app's answer, whatever its status.
    public func get(path: String, headers: [(name: String, value: String)] = []) async throws(AppChannelError) -> AppChannelResponse {
        try await send(.GET, path: path, body: [], headers: headers)
    }

    private func send(_ method: HTTPMethod, path: String, body: [UInt8], headers: [(name: String, value: String)]) async throws(AppChannelError) -> AppChannelResponse {
        try admit()
        defer { pool.withLock { $0.admitted -= 1 } }

        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path.hasPrefix("/") ? path : "/" + path)
        head.headers.add(name: "Host", value: address)
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        if method == .POST, !head.headers.contains(name: "Content-Type") { head.headers.add(name: "Content-Type", value: "application/json") }
        head.headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
        let buffer = ByteBuffer(bytes: body)

        var resent = false
        while true {
            let lease = try await acquire()
            let connection: AppChannelConnection
            switch lease {
            case .reuse(let idle):
                connection = idle
            case .open:
                do throws(AppChannelError) {
                    connection = try await AppChannelConnection.connect(host: host, port: port, address: address, limits: limits, group: group)
                } catch {
                    release(nil)
                    throw error
                }
            }
            do throws(AppChannelError) {
                let response = try await connection.exchange(head, body: buffer, timeout: limits.requestTimeout, address: address)
                release(response.keepAlive && connection.isActive ? connection : nil, closing: connection)
                return response
            } catch {
                release(nil, closing: connection)
                // A kept-alive connection the app closed while it was idle fails before any answer: send the
                // request once more, on a fresh connection (what Go's and most HTTP clients do).
                guard case .reuse = lease, error.reason == .closedBeforeAnswer, !resent else { throw error }
                resent = true
            }
        }
    }

    /// Closes the idle connections and refuses new requests; requests in flight finish or fail on their own.
    public func close() {
        let (idle, waiters) = pool.withLock { pool in
            pool.closed = true
            defer { pool.idle = []; pool.waiters = [] }
            return (pool.idle, pool.waiters)
        }
        for connection in idle { connection.close() }
        for waiter in waiters { waiter.resume(throwing: AppChannelError(.closed, address: address, "the app channel is closed")) }
    }

    // MARK: - the pool

    private func admit() throws(AppChannelError) {
        let refusal: AppChannelError? = pool.withLock { pool in
            if pool.closed { return AppChannelError(.closed, address: address, "the app channel is closed") }
            guard pool.admitted < limits.maxInFlightRequests else {
                return AppChannelError(.overloaded, address: address,
                                       "\(limits.maxInFlightRequests) requests to the app are already in flight or waiting")
            }
            pool.admitted += 1
            return nil
        }
        if let refusal { throw refusal }
    }

    /// An idle connection, else the right to open one, else waits (in arrival order) for one of those.
    private func acquire() async throws(AppChannelError) -> Lease {
        let address = self.address
        do {
            return try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Lease, any Error>) in
                pool.withLock { pool in
                    if pool.closed {
                        waiter.resume(throwing: AppChannelError(.closed, address: address, "the app channel is closed"))
                        return
                    }
                    while let idle = pool.idle.popLast() {
                        if idle.isActive {
                            waiter.resume(returning: .reuse(idle))
                            return
                        }
                        pool.open -= 1  // the app closed it while idle
                    }
                    if pool.open < limits.maxConnections {
                        pool.open += 1
                        waiter.resume(returning: .open)
                        return
                    }
                    pool.waiters.append(waiter)
                }
            }
        } catch let error as AppChannelError {
            throw error
        } catch {
            throw AppChannelError(.connectionFailed, address: address, "\(error)")
        }
    }

    /// Gives back a request's connection: `reusable` goes to the next waiter or the idle list; otherwise
    /// `closing` (if any) is closed and its slot goes to the next waiter, who opens a new connection.
    private func release(_ reusable: AppChannelConnection?, closing: AppChannelConnection? = nil) {
        if reusable == nil { closing?.close() }
        pool.withLock { pool in
            if let reusable, !pool.closed {
                if !pool.waiters.isEmpty {
                    let waiter = pool.waiters.removeFirst()
                    waiter.resume(returning: .reuse(reusable))
                } else {
                    pool.idle.append(reusable)
                }
                return
            }
            if let reusable { reusable.close() }
            if !pool.closed, !pool.waiters.isEmpty {
                pool.waiters.removeFirst().resume(returning: .open)  // the slot passes on
            } else {
                pool.open -= 1
            }
        }
    }
}
