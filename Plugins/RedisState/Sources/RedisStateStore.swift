// redis-state: a Dapr-compatible Redis state store (Dapr's state.redis layout and metadata keys),
// talking RESP over streams the host runs on its event loops (Pool.swift), with no threads of its own.
import PluginKit
import PluginKitInPlace
import PluginKitState
import PluginKitStateTransact
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

final class RedisStateStore: TransactionalStateComponent, InPlaceConfigurable {
    static let name = "redis-state"
    static let version = "1.0.0"
    static let description = "Dapr-compatible Redis state store (state.redis layout: hash with data and version)"

    static let configKeys: [ConfigKey] = [
        ConfigKey("redisHost", description: "host:port of the Redis server", required: true),
        ConfigKey("redisPassword", description: "password (AUTH); empty: none"),
        ConfigKey("redisUsername", description: "ACL user name (Redis 6+); empty: default user"),
        ConfigKey("redisDB", description: "database selected after connecting", default: "0"),
        ConfigKey("enableTLS", description: "TLS to Redis (not supported yet: true is refused)", default: "false"),
        ConfigKey("clientCert", description: "TLS client certificate (not supported yet)"),
        ConfigKey("clientKey", description: "TLS client key (not supported yet)"),
        ConfigKey("failover", description: "Redis Sentinel failover (not supported yet: true is refused)", default: "false"),
        ConfigKey("sentinelMasterName", description: "Sentinel master name (ignored: failover not supported)"),
        ConfigKey("redisType", description: "node or cluster (cluster is not supported yet)", default: "node"),
        ConfigKey("useEntraID", description: "Azure Entra ID authentication (not supported: true is refused)", default: "false"),
        ConfigKey("poolSize", description: "connections, spread over the host's event loops (at least one per loop)", default: "4"),
        ConfigKey("maxRetries", description: "retries of a command after a connection failure; -1: none", default: "3", appliesInPlace: true),
        ConfigKey("redisMaxRetries", description: "overrides maxRetries when set", appliesInPlace: true),
        ConfigKey("maxRetryBackoff", description: "largest backoff between retries; -1: no backoff", default: "2s", appliesInPlace: true),
        ConfigKey("redisMaxRetryInterval", description: "overrides maxRetryBackoff when set", appliesInPlace: true),
        ConfigKey("redisMinRetryInterval", description: "first backoff between retries; -1: no backoff", default: "8ms", appliesInPlace: true),
        ConfigKey("dialTimeout", description: "timeout for connecting", default: "5s", appliesInPlace: true),
        ConfigKey("readTimeout", description: "timeout for socket reads; -1: none", default: "3s", appliesInPlace: true),
        ConfigKey("writeTimeout", description: "timeout for socket writes; default: readTimeout", appliesInPlace: true),
        ConfigKey("poolTimeout", description: "how long a call may wait for a free connection; default readTimeout + 1s", appliesInPlace: true),
        ConfigKey("ttlInSeconds", description: "default TTL of a set without one; <= 0: persist", appliesInPlace: true),
        ConfigKey("maxConnAge", description: "ignored (with a warning)", appliesInPlace: true),
        ConfigKey("minIdleConns", description: "ignored (with a warning)", appliesInPlace: true),
        ConfigKey("idleCheckFrequency", description: "ignored (with a warning)", appliesInPlace: true),
        ConfigKey("idleTimeout", description: "ignored (with a warning)", appliesInPlace: true),
        ConfigKey("redeliverInterval", description: "pub/sub only: ignored (with a warning)", appliesInPlace: true),
        ConfigKey("processingTimeout", description: "pub/sub only: ignored (with a warning)", appliesInPlace: true),
        ConfigKey("actorStateStore", description: "Dapr runtime setting: ignored (with a warning)", appliesInPlace: true),
        ConfigKey("queryIndexes", description: "query API: not supported, ignored (with a warning)", appliesInPlace: true),
    ]

    private let host: HostServices
    private let settings: Mutex<Settings>
    private let pool: Pool

    init(config: Config, host: HostServices) throws(PluginError) {
        let settings = try Settings(config)
        self.host = host
        self.settings = Mutex(settings)
        for warning in settings.warnings { host.log(.warning, "redis-state (\(config.componentName)): \(warning)") }
        pool = try Pool(endpoint: settings.endpoint, tunables: settings.tunables, host: host)
        try pool.start()
        host.log(.info, "redis-state (\(config.componentName)): connecting to redis at \(settings.endpoint.address) db \(settings.endpoint.database) with \(pool.connectionCount) connections on \(pool.loopCount) event loops")
    }

    func readiness() -> Readiness { pool.readiness }

    func shutdown() { pool.stop() }

    func apply(config: Config) -> ApplyOutcome {
        let new: Settings
        do throws(PluginError) { new = try Settings(config) } catch { return .rejected(error.message) }
        let old = settings.withLock { $0 }
        if new.endpoint != old.endpoint {
            let changed = Settings.reloadKeys.sorted().filter { key in
                switch key {
                case "redisHost": return new.endpoint.host != old.endpoint.host || new.endpoint.port != old.endpoint.port
                case "redisDB": return new.endpoint.database != old.endpoint.database
                case "redisUsername": return new.endpoint.username != old.endpoint.username
                case "redisPassword": return new.endpoint.password != old.endpoint.password
                case "poolSize": return new.endpoint.poolSize != old.endpoint.poolSize
                default: return false
                }
            }
            return .needsReload("\(changed.joined(separator: ", ")) changed: redis-state needs a new connection pool")
        }
        settings.withLock { $0 = new }
        pool.context.update(new.tunables)
        for warning in new.warnings { host.log(.warning, "redis-state (\(config.componentName)): \(warning)") }
        return .applied
    }

    private var defaultTTL: Int64? { pool.context.tunables.defaultTTL }

    // MARK: - Operations

    /// A Dapr hash is read with two plain commands, pipelined (`HMGET key data version`, `PTTL key`):
    /// for Redis a fraction of running the get script, which the same Redis work took before. A reply
    /// those two cannot settle (a legacy string key answers WRONGTYPE, a hash lacking a field, a key
    /// created between them) is settled by the get script, which reads every layout atomically.
    func get(_ request: GetRequest, reply: GetReply) {
        guard !request.key.isEmpty else { reply.fail(.invalidArgument("get: the key is empty")); return }
        let key = request.key
        pool.submit(Call(idempotent: true) { commands, _ in
            let keyBytes = Array(key.utf8)
            commands.command("HMGET", [keyBytes, Self.dataField, Self.versionField])
            commands.command("PTTL", [keyBytes])
        } finish: { [self] result in
            switch result.map({ decodeHashGet($0, key: key) }) {
            case .success(.settled(let outcome)): reply.complete(outcome)
            case .success(.needsScript): getByScript(key, reply: reply)
            case .failure(let error): reply.fail(error)
            }
        })
    }

    private static let dataField = Array("data".utf8)
    private static let versionField = Array("version".utf8)

    private func getByScript(_ key: String, reply: GetReply) {
        submit(reply, idempotent: true) { commands, scripts in
            commands.eval(.get, sha: scripts[Script.get.rawValue], keys: [key])
        } decode: { replies in
            decodeGet(replies[0], key: key)
        }
    }

    func bulkGet(_ request: BulkGetRequest, reply: BulkGetReply) {
        if request.keys.isEmpty { reply.succeed([]); return }
        let keys = request.keys
        submit(reply, idempotent: true) { commands, scripts in
            for key in keys { commands.eval(.get, sha: scripts[Script.get.rawValue], keys: [key]) }
        } decode: { replies in
            .success(zip(keys, replies).map { key, value in
                switch decodeGet(value, key: key) {
                case .success(let item?): return BulkGetItem(key: key, outcome: .found(item))
                case .success(nil): return BulkGetItem(key: key, outcome: .notFound)
                case .failure(let error): return BulkGetItem(key: key, outcome: .failed(error.message))
                }
            })
        }
    }

    func set(_ request: SetRequest, reply: WriteReply) { write([.set(request)], reply: reply) }

    func delete(_ request: DeleteRequest, reply: WriteReply) { write([.delete(request)], reply: reply) }

    func transact(_ request: TransactRequest, reply: WriteReply) {
        if request.operations.isEmpty { reply.succeed(); return }
        write(request.operations, reply: reply)
    }

    /// Every write is one atomic script call (a single set or delete is a one-operation transaction).
    private func write(_ operations: [StateOperation], reply: WriteReply) {
        var keys: [String] = []
        var args: [[UInt8]] = []
        let defaultTTL = self.defaultTTL
        for (index, operation) in operations.enumerated() {
            let prefix = operations.count > 1 ? "operation \(index): " : ""
            do throws(PluginError) {
                switch operation {
                case .set(let set):
                    guard !set.key.isEmpty else { throw .invalidArgument("\(prefix)set: the key is empty") }
                    // Dapr: last-write ignores the etag; otherwise a given etag must be the version.
                    let etag = set.concurrency == .lastWrite ? "" : try checkedEtag(set.etag, prefix)
                    var ttl = ""
                    switch set.ttl {
                    case .seconds(let seconds)?: ttl = String(seconds)
                    case .never?: ttl = "-1"
                    case nil: ttl = defaultTTL.map { String($0 > 0 ? $0 : -1) } ?? ""
                    }
                    keys.append(set.key)
                    args += [Array("S".utf8), Array(etag.utf8), set.value, Array((set.concurrency == .firstWrite ? "1" : "0").utf8), Array(ttl.utf8)]
                case .delete(let delete):
                    guard !delete.key.isEmpty else { throw .invalidArgument("\(prefix)delete: the key is empty") }
                    let etag = delete.concurrency == .lastWrite ? "" : try checkedEtag(delete.etag, prefix)
                    keys.append(delete.key)
                    args += [Array("D".utf8), Array(etag.utf8), [], Array("0".utf8), []]
                }
            } catch {
                reply.fail(error)
                return
            }
        }
        let count = operations.count
        let (opKeys, opArgs) = (keys, args)
        let redis = pool.context.redis
        submit(reply, idempotent: false) { commands, scripts in
            commands.eval(.write, sha: scripts[Script.write.rawValue], keys: opKeys, args: opArgs)
        } decode: { replies -> Result<Void, PluginError> in
            switch replies[0] {
            case .integer: return .success(())
            case .error(let message) where message.hasPrefix("ETAG_MISMATCH"):
                var words = message.split(separator: " ", maxSplits: 2).dropFirst()
                let index = Int(words.popFirst() ?? "") ?? 0
                let why = words.first.map(String.init) ?? "etag mismatch"
                let which = count > 1 ? "transaction operation \(index) (key '\(opKeys[index])')" : "key '\(opKeys[index])'"
                return .failure(PluginError(.etagMismatch, "\(which): \(why)"))
            case .error(let message):
                return .failure(.internalError("\(redis) refused the write: \(message)"))
            default:
                return .failure(.internalError("unexpected reply from redis to a write: \(replies[0])"))
            }
        }
    }

    /// Sends the commands `encode` writes (pipelined on one connection) and completes `reply` with
    /// what `decode` makes of their replies, on the loop that received them. `idempotent` calls are
    /// retried after any connection failure; the others only when their commands were not sent.
    private func submit<V: Sendable>(
        _ reply: Reply<V>, idempotent: Bool,
        encode: @escaping @Sendable (inout CommandBuffer, ScriptSHAs) -> Void,
        decode: @escaping @Sendable ([RedisValue]) -> Result<V, PluginError>
    ) {
        pool.submit(Call(idempotent: idempotent, encode: encode) { result in reply.complete(result.flatMap(decode)) })
    }
}

/// Dapr's etags are the integer version; "" means none.
private func checkedEtag(_ etag: String?, _ prefix: String) throws(PluginError) -> String {
    guard let etag, !etag.isEmpty else { return "" }
    guard let number = Int64(etag), number >= 0 else {
        throw PluginError(.etagInvalid, "\(prefix)etag '\(etag)' is not a valid redis-state etag (an integer version)")
    }
    return String(number)
}

/// What `HMGET key data version` and `PTTL key` tell of a key.
private enum HashGet {
    case settled(Result<StateItem?, PluginError>)
    /// Not a Dapr hash with both fields, nor surely missing: the get script decides.
    case needsScript
}

private func decodeHashGet(_ replies: [RedisValue], key: String) -> HashGet {
    guard replies.count == 2 else { return .settled(.failure(.internalError("key '\(key)': unexpected replies from redis: \(replies)"))) }
    switch (replies[0], replies[1]) {
    case (.array(let fields), let pttl) where fields.count == 2:
        switch (fields[0], fields[1]) {
        case (.bytes(let data), .bytes(let version)):
            return .settled(.success(StateItem(value: data, etag: String(decoding: version, as: UTF8.self), metadata: ttlMetadata(pttl))))
        case (.null, .null) where pttl == .integer(-2):
            return .settled(.success(nil))  // no such key
        default:
            return .needsScript
        }
    case (.error(let message), _) where message.hasPrefix("WRONGTYPE"):
        return .needsScript
    case (.error(let message), _):
        return .settled(.failure(.internalError("key '\(key)': \(message)")))
    default:
        return .settled(.failure(.internalError("key '\(key)': unexpected reply from redis: \(replies[0])")))
    }
}

private func ttlMetadata(_ value: RedisValue?) -> [String: String] {
    guard case .integer(let pttl)? = value, pttl >= 0 else { return [:] }
    return ["ttlExpireTime": rfc3339(millisecondsFromNow: pttl)]
}

private func decodeGet(_ value: RedisValue, key: String) -> Result<StateItem?, PluginError> {
    switch value {
    case .array(let fields):
        guard case .integer(let kind)? = fields.first else { break }
        switch (kind, fields.count) {
        case (0, _): return .success(nil)
        case (1, 4):
            guard case .bytes(let data) = fields[1], let version = fields[2].text else { break }
            return .success(StateItem(value: data, etag: version, metadata: ttlMetadata(fields[3])))
        case (2, 3):
            guard case .bytes(let data) = fields[1] else { break }
            return .success(StateItem(value: data, etag: nil, metadata: ttlMetadata(fields[2])))
        default: break
        }
    case .error(let message):
        return .failure(.internalError("key '\(key)': \(message)"))
    default: break
    }
    return .failure(.internalError("key '\(key)': unexpected reply from redis: \(value)"))
}

/// Now plus `ms` milliseconds as RFC 3339 UTC, as Dapr reports ttlExpireTime.
private func rfc3339(millisecondsFromNow ms: Int64) -> String {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    var seconds = time_t(Int64(now.tv_sec) + (Int64(now.tv_nsec) / 1_000_000 + ms) / 1000)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func pad(_ n: Int32, _ width: Int) -> String {
        let s = String(n)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
    return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))Z"
}

@_cdecl("molt_pluginkit_component")
public func moltComponent() -> UnsafeRawPointer { PluginKit.export(RedisStateStore.self) }
