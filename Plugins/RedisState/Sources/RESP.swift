// RESP, the Redis protocol, as far as this plugin needs it: commands are arrays of bulk strings
// (built here: "*<n>\r\n" then "$<length>\r\n<bytes>\r\n" per argument), replies are parsed by
// hiredis's redisReader (used as a codec only: the host's streams do the I/O).
import CHiredis

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

    var isNoScript: Bool {
        if case .error(let message) = self { return message.hasPrefix("NOSCRIPT") }
        return false
    }
}

/// Commands encoded in RESP, back to back (pipelined), ready for one write.
struct CommandBuffer {
    private(set) var bytes: [UInt8] = []
    /// How many commands the buffer holds (= how many replies they will get).
    private(set) var count = 0

    init(capacity: Int = 128) { bytes.reserveCapacity(capacity) }

    /// Appends one command: its name and arguments, binary-safe.
    mutating func command(_ name: StaticString, _ arguments: [[UInt8]]) {
        header(arguments.count + 1)
        name.withUTF8Buffer { argument($0) }
        for value in arguments { value.withUnsafeBufferPointer { argument($0) } }
    }

    /// Appends one command made of strings.
    mutating func command(_ words: [String]) {
        header(words.count)
        for word in words { argument(Array(word.utf8)) }
    }

    /// Runs `script` by its SHA when the connection loaded it (`sha`), else by its text.
    mutating func eval(_ script: Script, sha: [UInt8]?, keys: [String], args: [[UInt8]] = []) {
        header(3 + keys.count + args.count)
        if let sha {
            argument(Array("EVALSHA".utf8))
            argument(sha)
        } else {
            argument(Array("EVAL".utf8))
            argument(script.sourceBytes)
        }
        argument(Array(String(keys.count).utf8))
        for key in keys { argument(Array(key.utf8)) }
        for value in args { argument(value) }
    }

    private mutating func header(_ arguments: Int) {
        count += 1
        bytes.append(UInt8(ascii: "*"))
        bytes.append(contentsOf: String(arguments).utf8)
        bytes.append(contentsOf: [13, 10])
    }

    private mutating func argument(_ value: [UInt8]) { value.withUnsafeBufferPointer { argument($0) } }

    private mutating func argument(_ value: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "$"))
        bytes.append(contentsOf: String(value.count).utf8)
        bytes.append(contentsOf: [13, 10])
        bytes.append(contentsOf: value)
        bytes.append(contentsOf: [13, 10])
    }
}

/// hiredis's incremental reply parser: feed bytes as they arrive, take complete replies out.
/// Used on one loop only (by the connection that owns it).
final class ReplyReader {
    private let reader: UnsafeMutablePointer<redisReader>

    init?() {
        guard let reader = redisReaderCreate() else { return nil }
        self.reader = reader
    }

    deinit { redisReaderFree(reader) }

    /// Appends received bytes. False when hiredis refused them (out of memory, or an earlier error).
    func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        return redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), bytes.count) == REDIS_OK
    }

    /// The next complete reply, nil when more bytes are needed; a failure is a protocol error
    /// (the stream cannot be trusted any more).
    func next() -> Result<RedisValue?, ReaderError> {
        var raw: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &raw) == REDIS_OK else { return .failure(ReaderError(message: errorText)) }
        guard let raw else { return .success(nil) }
        defer { freeReplyObject(raw) }
        return .success(RedisValue(raw.assumingMemoryBound(to: redisReply.self)))
    }

    private var errorText: String {
        withUnsafeBytes(of: reader.pointee.errstr) { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            let end = bytes.firstIndex(of: 0) ?? bytes.count
            let text = String(decoding: bytes[..<end], as: UTF8.self)
            return text.isEmpty ? "error \(reader.pointee.err)" : text
        }
    }
}

struct ReaderError: Error {
    let message: String
}
