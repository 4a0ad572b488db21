// Lua scripts run by Redis (EVALSHA), so every check-and-write is atomic. Dapr's layout: a key is a
// hash with fields `data` (the value's bytes) and `version` (an integer, incremented per write,
// which is the etag); a set with first-write concurrency also stores `first-write` = 0, as Dapr
// does. Keys written as plain strings by old Dapr versions are read as values without an etag and
// are replaced by a hash on the next write.
enum Scripts {
    /// KEYS[1]. Returns {0} (missing), {1, data, version, pttl} (Dapr hash), {2, value, pttl}
    /// (legacy string), or an error for a key of another type or a hash without data/version.
    static let get = """
        local t = redis.call("TYPE", KEYS[1]).ok
        if t == "none" then return {0} end
        local pttl = redis.call("PTTL", KEYS[1])
        if t == "string" then return {2, redis.call("GET", KEYS[1]), pttl} end
        if t ~= "hash" then return redis.error_reply("WRONGTYPE key holds a " .. t .. ", not a Dapr state hash") end
        local f = redis.call("HMGET", KEYS[1], "data", "version")
        if not f[1] or not f[2] then return redis.error_reply("BADSTATE required hash field 'data' or 'version' was not found") end
        return {1, f[1], f[2], pttl}
        """

    /// Applies writes atomically: every check first, then every write, so nothing is written when a
    /// check fails. KEYS[i] is operation i's key; ARGV holds 5 values per operation:
    ///   kind ("S" set, "D" delete), etag ("" none), data, first-write ("1" or "0"),
    ///   ttl ("" keep, "-1" or <= 0 persist, > 0 expire after that many seconds).
    /// A check sees the effect of earlier operations of the same call. Returns the number of
    /// operations, or an error "ETAG_MISMATCH <index> ..." naming the first failing one.
    static let write = """
        local state = {}
        local function current(k)
          local s = state[k]
          if s == nil then
            local t = redis.call("TYPE", k).ok
            local v = false
            if t == "hash" then v = redis.call("HGET", k, "version") end
            s = {exists = (t ~= "none"), version = v}
            state[k] = s
          end
          return s
        end
        for i = 1, #KEYS do
          local b = (i - 1) * 5
          local kind, etag, fw = ARGV[b + 1], ARGV[b + 2], ARGV[b + 4]
          local s = current(KEYS[i])
          if etag ~= "" then
            if s.exists and s.version ~= etag then
              return redis.error_reply("ETAG_MISMATCH " .. (i - 1) .. " etag " .. etag .. " does not match version " .. tostring(s.version))
            end
          elseif kind == "S" and fw == "1" and s.exists then
            return redis.error_reply("ETAG_MISMATCH " .. (i - 1) .. " first-write without an etag, but the key exists")
          end
          if kind == "S" then
            state[KEYS[i]] = {exists = true, version = tostring((tonumber(s.version) or 0) + 1)}
          else
            state[KEYS[i]] = {exists = false, version = false}
          end
        end
        for i = 1, #KEYS do
          local b = (i - 1) * 5
          local k = KEYS[i]
          if ARGV[b + 1] == "D" then
            redis.call("DEL", k)
          else
            if redis.call("TYPE", k).ok ~= "hash" then redis.call("DEL", k) end
            redis.call("HSET", k, "data", ARGV[b + 3])
            if ARGV[b + 4] == "1" then redis.call("HSET", k, "first-write", 0) end
            redis.call("HINCRBY", k, "version", 1)
            local ttl = ARGV[b + 5]
            if ttl ~= "" then
              local n = tonumber(ttl)
              if n > 0 then redis.call("EXPIRE", k, n) else redis.call("PERSIST", k) end
            end
          end
        end
        return #KEYS
        """

    static let getBytes = Array(get.utf8)
    static let writeBytes = Array(write.utf8)
}

/// The scripts by name: each connection loads them all (SCRIPT LOAD) while connecting and keeps
/// their SHA1s, indexed by `rawValue`.
enum Script: Int, CaseIterable {
    case get, write

    var sourceBytes: [UInt8] {
        switch self {
        case .get: return Scripts.getBytes
        case .write: return Scripts.writeBytes
        }
    }
}
