import Engine
import FoundationEssentials
import Logging
import PluginHost

#if canImport(Glibc)
import Glibc
#endif

/// A pub/sub subscription added through the Control API, as the state directory keeps it (Dapr's
/// `kind: Subscription` fields; the routing rules are carried as given).
public struct StoredSubscription: Codable, Sendable, Equatable {
    public struct Rule: Codable, Sendable, Equatable {
        public var match: String
        public var path: String
        public init(match: String, path: String) { (self.match, self.path) = (match, path) }
    }
    public var name: String
    public var pubsubname: String
    public var topic: String
    public var defaultRoute: String
    public var rules: [Rule]
    public var deadLetterTopic: String
    public var metadata: [String: String]
    public var scopes: [String]

    public init(name: String, pubsubname: String, topic: String, defaultRoute: String, rules: [Rule] = [], deadLetterTopic: String = "",
                metadata: [String: String] = [:], scopes: [String] = []) {
        (self.name, self.pubsubname, self.topic, self.defaultRoute, self.rules, self.deadLetterTopic, self.metadata, self.scopes) =
            (name, pubsubname, topic, defaultRoute, rules, deadLetterTopic, metadata, scopes)
    }
}

/// The Control API's subscriptions in the state directory (`subscriptions.json`), so that a restart delivers
/// them again. Only these are kept: those of files and etcd keys come back from their sources.
///
/// Every change replaces the whole file (`AtomicFile`: a new file fsync'd, renamed, directory fsync'd) on this
/// store's own serial thread, in the order the changes were saved; a crash leaves the old set or the new one.
/// The file carries its format version and the sha256 of its subscriptions; one that does not read back whole is
/// logged and restores nothing (it is replaced on the next change).
///
/// Thread: `save` suspends while the thread writes; `load` reads at start, before serving.
public final class SubscriptionStore: Sendable {
    public static let currentFormat = 1
    public static let fileName = "subscriptions.json"

    public let directory: String
    private let logger: Logger
    private let queue = BlockingWorkQueue(label: "molt.state.subscriptions", serial: true)

    /// Opens (creating it, mode 0700) the state directory.
    public init(directory: String, logger: Logger = Logger(label: "molt.state")) throws {
        (self.directory, self.logger) = (directory, logger)
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw PersistenceError("cannot create state directory \(directory): \(String(cString: strerror(errno)))")
        }
    }

    public var path: String { "\(directory)/\(Self.fileName)" }

    struct File: Codable {
        var format: Int
        var subscriptions: [StoredSubscription]
        /// sha256 (hex) of the JSON of `subscriptions` (sorted keys).
        var sha256: String
    }

    /// The subscriptions kept, in name order; none when there is no file. A file that does not read back whole
    /// is logged as an error and restores none.
    public func load() -> [StoredSubscription] {
        guard let bytes = readWholeFile(path) else { return [] }
        do {
            return try Self.decode(bytes, path: path)
        } catch {
            logger.error("the Control API's subscriptions in the state directory do not read back; none restored",
                         metadata: ["file": "\(path)", "error": "\(error)"])
            return []
        }
    }

    /// Replaces the kept set with `subscriptions`; returns once it is durable.
    public func save(_ subscriptions: [StoredSubscription]) async throws {
        let bytes = try Self.encode(subscriptions)
        let (path, directory) = (self.path, self.directory)
        try await queue.run { try AtomicFile.write(bytes, to: path, in: directory) }
    }

    static func checksum(_ subscriptions: [StoredSubscription]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return sha256Hex(try encoder.encode(subscriptions))
    }

    static func encode(_ subscriptions: [StoredSubscription]) throws -> [UInt8] {
        let sorted = subscriptions.sorted { $0.name < $1.name }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return Array(try encoder.encode(File(format: currentFormat, subscriptions: sorted, sha256: try checksum(sorted))))
    }

    static func decode(_ bytes: [UInt8], path: String) throws -> [StoredSubscription] {
        try StoredFormat.check(bytes, path: path, is: "a subscriptions file", readsUpTo: currentFormat)
        let file = try JSONDecoder().decode(File.self, from: Data(bytes))
        guard try checksum(file.subscriptions) == file.sha256 else {
            throw PersistenceError("\(path): the checksum does not match its content (corrupt)")
        }
        return file.subscriptions
    }
}
