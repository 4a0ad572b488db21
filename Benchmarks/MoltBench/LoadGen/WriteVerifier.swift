import CHiredis
import Glibc

/// Reads every acknowledged save back from the Redis servers a run wrote to (directly, with hiredis),
/// so "nothing lost" is checked, not assumed. A write is found when any server holds exactly the
/// acknowledged value in the hash field `data` of the stored key (the state store's layout); a key that
/// exists everywhere only with another value is mismatched; otherwise it is missing. Keys are unique per
/// write, so a later write never legitimately replaces an earlier one.
struct WriteVerifier {
    let servers: [String]
    let storedKeyPrefix: String
    /// Commands pipelined per round trip.
    var batch = 500

    func verify(_ acked: [(key: String, value: String)]) throws -> VerifySummary {
        // found[i]: some server holds the acked value; seen[i]: some server holds another value.
        var found = [Bool](repeating: false, count: acked.count)
        var seen = [Bool](repeating: false, count: acked.count)
        for server in servers {
            let (host, port) = try Self.split(server)
            guard let context = redisConnect(host, port), context.pointee.err == 0 else {
                throw BenchError("--verify-redis \(server): cannot connect")
            }
            defer { redisFree(context) }
            var start = 0
            while start < acked.count {
                let end = min(acked.count, start + batch)
                for index in start..<end where !found[index] {
                    try append(context, ["HGET", storedKeyPrefix + acked[index].key, "data"], server: server)
                }
                for index in start..<end where !found[index] {
                    var raw: UnsafeMutableRawPointer?
                    guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                        throw BenchError("--verify-redis \(server): \(String(cString: withUnsafePointer(to: context.pointee.errstr) { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }))")
                    }
                    defer { freeReplyObject(raw) }
                    let reply = raw.assumingMemoryBound(to: redisReply.self).pointee
                    switch reply.type {
                    case REDIS_REPLY_STRING:
                        let bytes = UnsafeRawBufferPointer(start: reply.str, count: reply.len)
                        if bytes.elementsEqual(acked[index].value.utf8) { found[index] = true } else { seen[index] = true }
                    case REDIS_REPLY_NIL:
                        break
                    default:
                        throw BenchError("--verify-redis \(server): unexpected reply type \(reply.type) for HGET")
                    }
                }
                start = end
            }
        }
        var summary = VerifySummary(checked: acked.count, found: 0, missing: 0, mismatched: 0, examples: [])
        for index in acked.indices {
            if found[index] {
                summary.found += 1
                continue
            }
            if seen[index] { summary.mismatched += 1 } else { summary.missing += 1 }
            if summary.examples.count < 20 {
                summary.examples.append("\(seen[index] ? "mismatched" : "missing"): \(storedKeyPrefix + acked[index].key)")
            }
        }
        return summary
    }

    private func append(_ context: UnsafeMutablePointer<redisContext>, _ arguments: [String], server: String) throws {
        let pointers = arguments.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        let lengths = arguments.map { $0.utf8.count }
        var argv = pointers.map { UnsafePointer<CChar>($0) }
        let status = argv.withUnsafeMutableBufferPointer { argvBuffer in
            lengths.withUnsafeBufferPointer { redisAppendCommandArgv(context, Int32(arguments.count), argvBuffer.baseAddress, $0.baseAddress) }
        }
        guard status == REDIS_OK else { throw BenchError("--verify-redis \(server): cannot queue a command") }
    }

    static func split(_ address: String) throws -> (String, Int32) {
        guard let colon = address.lastIndex(of: ":"), let port = Int32(address[address.index(after: colon)...]), port > 0, port < 65536 else {
            throw BenchError("'\(address)' is not HOST:PORT")
        }
        return (String(address[..<colon]), port)
    }
}
