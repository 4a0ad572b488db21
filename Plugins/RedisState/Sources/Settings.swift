// The configuration of the RedisState plugin: Dapr's state.redis metadata keys, with Dapr's names,
// defaults and meanings. Keys are split into what a running instance can take in place (timeouts,
// retries, default TTL) and what needs a new connection pool (where and as whom it connects).
import PluginKit

/// Where and how the pool connects. Any change needs a new instance (NEEDS_RELOAD).
struct Endpoint: Equatable, Sendable {
    var host: String
    var port: Int32
    var database: Int
    var username: String
    var password: String
    var poolSize: Int

    /// "host:port" as configured, for messages.
    var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// What a running instance applies in place.
struct Tunables: Equatable, Sendable {
    var dialTimeout: Duration
    /// nil: no timeout ("-1").
    var readTimeout: Duration?
    var writeTimeout: Duration?
    /// How often a failed read is retried (0: never).
    var maxRetries: Int
    /// Backoff between retries: from minRetryInterval, doubling, at most maxRetryBackoff (nil: no backoff).
    var minRetryInterval: Duration?
    var maxRetryBackoff: Duration?
    /// A call that waited longer than this for a connection to be up fails with TIMEOUT.
    var poolTimeout: Duration
    /// The component's default TTL when a set has none: > 0 expires, <= 0 persists (Dapr); nil: none.
    var defaultTTL: Int64?

    /// How long a connection waits for the oldest reply before it fails the calls awaiting replies
    /// with TIMEOUT and reconnects (one timeout covers sending and answering): the larger of the two.
    var commandTimeout: Duration? {
        guard let readTimeout, let writeTimeout else { return nil }
        return max(readTimeout, writeTimeout)
    }

    func backoff(attempt: Int) -> Duration {
        guard let minimum = minRetryInterval, let maximum = maxRetryBackoff else { return .zero }
        var delay = minimum
        for _ in 1..<max(attempt, 1) where delay < maximum { delay = delay * 2 }
        return min(delay, maximum)
    }
}

/// A parsed configuration: the endpoint, the tunables, and the warnings operators must see.
struct Settings: Sendable {
    var endpoint: Endpoint
    var tunables: Tunables
    var warnings: [String]

    /// Keys that only change where or as whom the pool connects: a change reloads.
    static let reloadKeys: Set<String> = [
        "redisHost", "redisPassword", "redisUsername", "redisDB", "enableTLS", "clientCert", "clientKey",
        "failover", "sentinelMasterName", "poolSize", "redisType", "useEntraID",
    ]

    init(_ config: Config) throws(PluginError) {
        var warnings: [String] = []
        let (host, port) = try Settings.parseHost(try config.require("redisHost"))

        // Refused: options whose value would change behaviour in ways this plugin cannot honour yet.
        if try config.bool("enableTLS", default: false) {
            throw .unsupported("enableTLS=true is not supported by redis-state yet (the host's streams are plain TCP); connect over a trusted network or a TLS proxy and set enableTLS=false")
        }
        for key in ["clientCert", "clientKey"] where !(config[key] ?? "").isEmpty {
            throw .unsupported("'\(key)' is set, but redis-state does not support TLS yet; remove it")
        }
        if try config.bool("failover", default: false) {
            throw .unsupported("failover=true (Redis Sentinel) is not supported by redis-state yet; point redisHost at the master and set failover=false")
        }
        if try config.bool("useEntraID", default: false) {
            throw .unsupported("useEntraID=true is not supported by redis-state; use redisUsername/redisPassword")
        }
        switch (config["redisType"] ?? "node").lowercased() {
        case "", "node": break
        case "cluster": throw .unsupported("redisType=cluster is not supported by redis-state yet; use a single node (redisType=node)")
        case let other: throw .invalidArgument("configuration key 'redisType': '\(other)' is not one of node, cluster")
        }
        if let master = config["sentinelMasterName"], !master.isEmpty {
            warnings.append("WARNING: 'sentinelMasterName' is ignored: failover is off (and not supported by redis-state yet)")
        }

        endpoint = Endpoint(
            host: host, port: port,
            database: try config.integer("redisDB", default: 0, in: 0...Int(Int32.max)),
            username: config["redisUsername"] ?? "",
            password: config["redisPassword"] ?? "",
            poolSize: try config.integer("poolSize", default: 4, in: 1...256))

        // Dapr: redisMaxRetries and redisMaxRetryInterval win over maxRetries and maxRetryBackoff.
        let retries = try config.integer("redisMaxRetries", default: try config.integer("maxRetries", default: 3, in: -1...1000), in: -1...1000)
        let maxBackoffKey = config["redisMaxRetryInterval"] != nil ? "redisMaxRetryInterval" : "maxRetryBackoff"
        let readTimeout = try Settings.duration(config, "readTimeout", default: .seconds(3), allowDisable: true)
        var defaultTTL: Int64? = nil
        if config["ttlInSeconds"] != nil {
            defaultTTL = Int64(try config.integer("ttlInSeconds", default: 0, in: Int(Int32.min)...Int(Int32.max)))
        }
        tunables = Tunables(
            dialTimeout: try Settings.duration(config, "dialTimeout", default: .seconds(5), allowDisable: false)!,
            readTimeout: readTimeout,
            writeTimeout: config["writeTimeout"] == nil
                ? readTimeout : try Settings.duration(config, "writeTimeout", default: .seconds(3), allowDisable: true),
            maxRetries: max(retries, 0),
            minRetryInterval: try Settings.duration(config, "redisMinRetryInterval", default: .milliseconds(8), allowDisable: true),
            maxRetryBackoff: try Settings.duration(config, maxBackoffKey, default: .seconds(2), allowDisable: true),
            poolTimeout: try Settings.duration(config, "poolTimeout", default: (readTimeout ?? .seconds(3)) + .seconds(1), allowDisable: false)!,
            defaultTTL: defaultTTL)
        if let read = readTimeout, let write = tunables.writeTimeout, read != write {
            warnings.append("WARNING: redis-state has one timeout per command, from sending it to its reply: readTimeout and writeTimeout differ, both use \(max(read, write))")
        }
        if (readTimeout == nil) != (tunables.writeTimeout == nil) {
            warnings.append("WARNING: redis-state has one timeout per command, from sending it to its reply: one of readTimeout/writeTimeout is -1 (none), so neither has a timeout")
        }

        // Accepted but without effect here: say so, never silently.
        let ignored: [(String, String)] = [
            ("maxConnAge", "connections are kept open until they fail"),
            ("minIdleConns", "every connection of the pool (poolSize) stays open"),
            ("idleCheckFrequency", "idle connections are not reaped"),
            ("idleTimeout", "idle connections are not closed"),
            ("redeliverInterval", "it is a Dapr pub/sub setting"),
            ("processingTimeout", "it is a Dapr pub/sub setting"),
            ("actorStateStore", "it is a Dapr runtime setting and molt has no actors"),
            ("queryIndexes", "molt's state ABI has no query API"),
        ]
        for (key, why) in ignored where config[key] != nil {
            warnings.append("WARNING: configuration key '\(key)' is ignored by redis-state: \(why)")
        }
        // keyPrefix is the host's (it prefixes state keys as Dapr does) and reaches us with the rest.
        let known = Set(RedisStateStore.configKeys.map(\.name)).union(["keyPrefix"])
        for key in config.values.keys.sorted() where !known.contains(key) {
            warnings.append("WARNING: configuration key '\(key)' is unknown to redis-state and ignored")
        }
        self.warnings = warnings
    }

    /// "host:port", "[v6]:port"; Dapr requires the port, and so do we.
    static func parseHost(_ text: String) throws(PluginError) -> (String, Int32) {
        var host = Substring(text)
        guard let colon = host.lastIndex(of: ":") else {
            throw .invalidArgument("configuration key 'redisHost': '\(text)' is not host:port (e.g. localhost:6379)")
        }
        let portText = host[host.index(after: colon)...]
        host = host[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty, let port = Int32(portText), (1...65535).contains(port) else {
            throw .invalidArgument("configuration key 'redisHost': '\(text)' is not host:port with a port in 1...65535")
        }
        return (String(host), port)
    }

    /// Dapr durations: Go syntax ("500ms", "3s", "1m30s"), or a plain integer number of seconds (as
    /// Dapr's metadata decoder falls back to); a negative number ("-1") disables (nil) where
    /// `allowDisable`.
    static func duration(_ config: Config, _ key: String, default value: Duration, allowDisable: Bool) throws(PluginError) -> Duration? {
        guard let text = config[key]?.trimmingSpaces, !text.isEmpty else { return value }
        let invalid = PluginError.invalidArgument(
            "configuration key '\(key)': '\(text)' is not a duration (e.g. 500ms, 3s, 1m30s, or whole seconds)"
                + (allowDisable ? "; -1 disables" : ""))
        if let number = Int64(text) {
            if number < 0 {
                guard allowDisable else { throw invalid }
                return nil
            }
            return .seconds(number)
        }
        var total = Duration.zero
        var rest = Substring(text)
        if rest.hasPrefix("-") {
            guard allowDisable else { throw invalid }
            return nil
        }
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isNumber || $0 == "." }
            guard !digits.isEmpty, let amount = Double(digits) else { throw invalid }
            rest = rest.dropFirst(digits.count)
            let unit = rest.prefix { !$0.isNumber && $0 != "." }
            rest = rest.dropFirst(unit.count)
            let nanoseconds: Double
            switch unit {
            case "ns": nanoseconds = 1
            case "us", "µs": nanoseconds = 1_000
            case "ms": nanoseconds = 1_000_000
            case "s": nanoseconds = 1_000_000_000
            case "m": nanoseconds = 60_000_000_000
            case "h": nanoseconds = 3_600_000_000_000
            default: throw invalid
            }
            total += .nanoseconds(Int64(amount * nanoseconds))
        }
        return total
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s = s.dropFirst() }
        while s.last?.isWhitespace == true { s = s.dropLast() }
        return String(s)
    }
}
