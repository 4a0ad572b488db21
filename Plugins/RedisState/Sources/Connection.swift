// One blocking hiredis connection, used only by the worker thread that owns it. hiredis speaks
// RESP; this file only turns its replies into Swift values and its errors into PluginErrors.
import CHiredis
import PluginKit
#if canImport(Glibc)
import Glibc
#endif

/// A reply, copied out of hiredis's redisReply.
enum RedisValue: Sendable, Equatable {
    case bytes([UInt8])
    case status(String)
    case error(String)
    case integer(Int64)
    case array([RedisValue])
    case null

    init(_ reply: UnsafePointer<redisReply>) {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            self = .bytes(r.str.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(r.len))) } ?? [])
        case REDIS_REPLY_STATUS:
            self = .status(r.str.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: Int(r.len)), as: UTF8.self) } ?? "")
        case REDIS_REPLY_ERROR:
            self = .error(r.str.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: Int(r.len)), as: UTF8.self) } ?? "ERR")
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(r.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisValue] = []
            if let element = r.element {
                items.reserveCapacity(Int(r.elements))
                for i in 0..<Int(r.elements) {
                    if let child = element[i] { items.append(RedisValue(UnsafePointer(child))) } else { items.append(.null) }
                }
            }
            self = .array(items)
        default:
            self = .null
        }
    }

    var text: String? {
        switch self {
        case .bytes(let b): return String(decoding: b, as: UTF8.self)
        case .status(let s): return s
        case .integer(let i): return String(i)
        default: return nil
        }
    }
}

/// What a connection attempt or command failed with.
struct ConnectionFailure: Error {
    var error: PluginError
    /// The command was never sent (connecting failed): safe to retry any command.
    var notSent: Bool
    /// Authentication or database selection was refused: retrying will not help.
    var permanent: Bool = false
}

final class Connection {
    private var context: UnsafeMutablePointer<redisContext>?
    let endpoint: Endpoint
    private(set) var appliedTimeout: Duration?? = .none
    /// SHA1s of the scripts loaded on this connection (SCRIPT LOAD), by script text.
    private var scriptSHAs: [String: String] = [:]

    init(endpoint: Endpoint) { self.endpoint = endpoint }
    deinit { close() }

    var isConnected: Bool { context != nil }

    func close() {
        if let context { redisFree(context) }
        context = nil
        scriptSHAs = [:]
        appliedTimeout = .none
    }

    /// Dials, authenticates, selects the database and checks with PING.
    func connect(_ tunables: Tunables) -> ConnectionFailure? {
        close()
        let where_ = "redis at \(endpoint.address)"
        guard let c = redisConnectWithTimeout(endpoint.host, endpoint.port, timeval(tunables.dialTimeout)) else {
            return ConnectionFailure(error: .unavailable("cannot connect to \(where_): out of memory"), notSent: true)
        }
        if c.pointee.err != 0 {
            let why = errorString(c)
            let timedOut = why.contains("timed out") || why.contains("Operation now in progress")
            redisFree(c)
            return ConnectionFailure(
                error: PluginError(timedOut ? .timeout : .unavailable,
                                   "cannot connect to \(where_): \(why)\(timedOut ? " (dialTimeout \(tunables.dialTimeout))" : "")"),
                notSent: true)
        }
        context = c
        applyTimeout(tunables)
        var handshake: [[String]] = []
        if !endpoint.password.isEmpty {
            handshake.append(endpoint.username.isEmpty ? ["AUTH", endpoint.password] : ["AUTH", endpoint.username, endpoint.password])
        }
        if endpoint.database != 0 { handshake.append(["SELECT", String(endpoint.database)]) }
        handshake.append(["PING"])
        for command in handshake {
            switch run([command.map { Array($0.utf8) }]) {
            case .failure(var failure):
                failure.notSent = true
                close()
                return failure
            case .success(let replies):
                if case .error(let message) = replies[0] {
                    close()
                    let what = command[0] == "AUTH" ? "authentication (redisUsername/redisPassword)" : command[0] == "SELECT" ? "selecting redisDB \(endpoint.database)" : "PING"
                    return ConnectionFailure(error: .unavailable("\(where_) refused \(what): \(message)"), notSent: true,
                                             permanent: command[0] != "PING")
                }
            }
        }
        return nil
    }

    /// Whether the server has closed this (idle) connection: its FIN is already in the socket, so
    /// a command sent now would be lost. Checked before each use, so a write is not sent into a
    /// connection that is known dead (and then fail) but on a fresh one. One poll(2), no blocking.
    func peerHasClosed() -> Bool {
        guard let context else { return false }
        var descriptor = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, 0) > 0 else { return false }
        if descriptor.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 { return true }
        var byte: UInt8 = 0
        let received = recv(context.pointee.fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return received == 0 || (received < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    }

    /// Sets the socket timeout when the tunables changed since the last time.
    func applyTimeout(_ tunables: Tunables) {
        guard let context, appliedTimeout != .some(tunables.commandTimeout) else { return }
        redisSetTimeout(context, timeval(tunables.commandTimeout ?? .zero))
        appliedTimeout = .some(tunables.commandTimeout)
    }

    /// Sends `commands` pipelined and reads one reply each. An I/O failure closes the connection.
    func run(_ commands: [[[UInt8]]]) -> Result<[RedisValue], ConnectionFailure> {
        guard let context else {
            return .failure(ConnectionFailure(error: .unavailable("not connected to redis at \(endpoint.address)"), notSent: true))
        }
        for command in commands {
            let status = withArgv(command) { argc, argv, lengths in redisAppendCommandArgv(context, argc, argv, lengths) }
            if status != REDIS_OK { return .failure(ioFailure(notSent: true)) }
        }
        var replies: [RedisValue] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            if redisGetReply(context, &raw) != REDIS_OK || raw == nil {
                return .failure(ioFailure(notSent: false))
            }
            replies.append(RedisValue(raw!.assumingMemoryBound(to: redisReply.self)))
            freeReplyObject(raw)
        }
        return .success(replies)
    }

    /// Runs a Lua script by its SHA (loading it once per connection), falling back to EVAL.
    func evalCommand(_ script: String, keys: [String], args: [[UInt8]]) -> [[UInt8]] {
        var command: [[UInt8]]
        if let sha = scriptSHAs[script] {
            command = [Array("EVALSHA".utf8), Array(sha.utf8)]
        } else {
            command = [Array("EVAL".utf8), Array(script.utf8)]
        }
        command.append(Array(String(keys.count).utf8))
        command += keys.map { Array($0.utf8) }
        command += args
        return command
    }

    /// Loads `scripts` (SCRIPT LOAD) so evalCommand uses EVALSHA.
    func loadScripts(_ scripts: [String]) -> ConnectionFailure? {
        switch run(scripts.map { [Array("SCRIPT".utf8), Array("LOAD".utf8), Array($0.utf8)] }) {
        case .failure(let failure): return failure
        case .success(let replies):
            for (script, reply) in zip(scripts, replies) {
                if case .bytes(let sha) = reply { scriptSHAs[script] = String(decoding: sha, as: UTF8.self) }
            }
            return nil
        }
    }

    func forgetScripts() { scriptSHAs = [:] }

    private func ioFailure(notSent: Bool) -> ConnectionFailure {
        let why = context.map(errorString) ?? "connection closed"
        let code = context?.pointee.err
        close()
        let timedOut = code == REDIS_ERR_IO && (why.contains("temporarily unavailable") || why.contains("timed out"))
        if timedOut {
            return ConnectionFailure(error: .timeout("redis at \(endpoint.address) did not answer in time (readTimeout/writeTimeout): \(why)"), notSent: notSent)
        }
        return ConnectionFailure(error: .unavailable("connection to redis at \(endpoint.address) failed: \(why)"), notSent: notSent)
    }
}

private func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
    withUnsafeBytes(of: context.pointee.errstr) { raw in
        let bytes = raw.bindMemory(to: UInt8.self)
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        let text = String(decoding: bytes[..<end], as: UTF8.self)
        return text.isEmpty ? "error \(context.pointee.err)" : text
    }
}

private func timeval(_ duration: Duration) -> timeval {
    let (seconds, attoseconds) = duration.components
    return Glibc.timeval(tv_sec: Int(max(seconds, 0)), tv_usec: Int(max(attoseconds, 0) / 1_000_000_000_000))
}

/// Calls `body` with C argv/argvlen arrays over `command`'s byte strings (binary-safe).
private func withArgv<R>(_ command: [[UInt8]], _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R) -> R {
    let count = command.count
    let total = command.reduce(0) { $0 + $1.count }
    let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: max(total, 1))
    defer { storage.deallocate() }
    let argv = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: max(count, 1))
    defer { argv.deallocate() }
    let lengths = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1))
    defer { lengths.deallocate() }
    var offset = 0
    for (i, argument) in command.enumerated() {
        argument.withUnsafeBufferPointer { buffer in
            if let base = buffer.baseAddress { (storage + offset).update(from: base, count: buffer.count) }
        }
        argv[i] = UnsafeRawPointer(storage + offset).assumingMemoryBound(to: CChar.self)
        lengths[i] = argument.count
        offset += argument.count
    }
    return body(Int32(count), argv, lengths)
}
