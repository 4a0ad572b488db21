import Engine
import FoundationEssentials
import Logging
import PluginHost
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The running configuration in the state directory, so that a restart reproduces what ran.
///
/// Every change writes a new snapshot `running-<sequence>.json` (a new file, fsync'd, renamed into
/// place, directory fsync'd): a crash leaves either the previous snapshot or the new one, never a
/// torn file under a final name. A snapshot carries its format version and the sha256 of its
/// components; loading takes the newest snapshot that reads back whole and logs an error for every
/// newer one that does not. The three newest snapshots are kept.
///
/// Format 1 (this one) will always be read by later versions of molt; a snapshot of a newer
/// format is reported and skipped.
public final class RunningConfigStore: ConfigJournal, Sendable {
    public static let currentFormat = 1
    static let kept = 3

    public let directory: String
    private let logger: Logger
    /// Sequence of the last snapshot written (or loaded) and the components removed at run time.
    private let state: Mutex<(sequence: UInt64, removed: Set<ComponentKey>, lastRunning: Set<ComponentKey>)>

    /// Opens (creating it, mode 0700) the state directory.
    public init(directory: String, logger: Logger = Logger(label: "molt.state")) throws {
        self.directory = directory
        self.logger = logger
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw PersistenceError("cannot create state directory \(directory): \(String(cString: strerror(errno)))")
        }
        var status = stat()
        guard stat(directory, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
            throw PersistenceError("state directory \(directory) is not a directory")
        }
        state = Mutex((0, [], []))
    }

    // MARK: - Reading

    /// What a restart restores.
    public struct Snapshot: Sendable {
        public var sequence: UInt64
        public var components: [ComponentDefinition]
        /// Components removed at run time: a bootstrap file that still lists them does not bring them back.
        public var removed: Set<ComponentKey>
    }

    /// The newest snapshot that reads back whole, or nil when there is none. Newer snapshots that
    /// are corrupt, partial or of an unknown format are logged as errors and skipped.
    public func load() -> Snapshot? {
        for (sequence, path) in snapshotFiles().reversed() {
            do {
                let snapshot = try Self.decode(path: path, sequence: sequence)
                state.withLock { $0 = (snapshot.sequence, snapshot.removed, Set(snapshot.components.map(\.key))) }
                return snapshot
            } catch {
                logger.error("skipping a snapshot of the running configuration that does not read back",
                             metadata: ["file": "\(path)", "error": "\(error)"])
            }
        }
        return nil
    }

    /// The definitions to start with: the snapshot's running components, plus the bootstrap
    /// components the snapshot does not know (neither running nor removed at run time). A
    /// component in both runs as the snapshot says: it is what ran last.
    public static func restore(bootstrap: [ComponentDefinition], snapshot: Snapshot?) -> [ComponentDefinition] {
        guard let snapshot else { return bootstrap }
        let known = Set(snapshot.components.map(\.key)).union(snapshot.removed)
        return snapshot.components + bootstrap.filter { !known.contains($0.key) }
    }

    /// Splits restored definitions into those this molt starts and those it refuses, with the reason:
    /// a snapshot written by an older molt may hold names this one does not accept (`ComponentLimits`).
    /// The refused ones are to be reported, not started: no apply could ever add them, so as bootstrap
    /// components they would keep molt not ready for ever.
    public static func startable(_ definitions: [ComponentDefinition]) -> (start: [ComponentDefinition], refused: [(ComponentDefinition, String)]) {
        var start: [ComponentDefinition] = [], refused: [(ComponentDefinition, String)] = []
        for definition in definitions {
            if let problem = ComponentLimits.nameProblem(definition.key.name) { refused.append((definition, problem)) } else { start.append(definition) }
        }
        return (start, refused)
    }

    // MARK: - Writing (ConfigJournal)

    public func committed(_ running: [ComponentDefinition]) throws {
        let (sequence, removed) = state.withLock { state -> (UInt64, Set<ComponentKey>) in
            let current = Set(running.map(\.key))
            state.removed.formUnion(state.lastRunning.subtracting(current))
            state.removed.subtract(current)
            state.lastRunning = current
            state.sequence += 1
            return (state.sequence, state.removed)
        }
        let bytes = try Self.encode(Snapshot(sequence: sequence, components: running, removed: removed))
        try writeAtomically(bytes, to: path(for: sequence))
        pruneOldSnapshots()
    }

    // MARK: - File format

    struct File: Codable {
        struct Component: Codable {
            var kind: String
            var name: String
            var plugin: String?
            var version: String?
            var metadata: [String: String]
            var pin: String?
        }
        struct Removed: Codable, Hashable {
            var kind: String
            var name: String
        }
        var format: Int
        var sequence: UInt64
        var components: [Component]
        var removed: [Removed]
        /// sha256 (hex) of the JSON of `components` and `removed` (sorted keys).
        var sha256: String
    }

    private struct Checksummed: Encodable {
        var components: [File.Component]
        var removed: [File.Removed]
    }

    static func checksum(_ components: [File.Component], _ removed: [File.Removed]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = try encoder.encode(Checksummed(components: components, removed: removed))
        return sha256Hex(bytes)
    }

    static func encode(_ snapshot: Snapshot) throws -> [UInt8] {
        let components = snapshot.components.map { definition in
            File.Component(kind: definition.key.kind.rawValue, name: definition.key.name, plugin: definition.plugin,
                           version: definition.version?.description, metadata: definition.config, pin: definition.pin)
        }
        let removed = snapshot.removed.sorted().map { File.Removed(kind: $0.kind.rawValue, name: $0.name) }
        let file = File(format: currentFormat, sequence: snapshot.sequence, components: components, removed: removed,
                        sha256: try checksum(components, removed))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return Array(try encoder.encode(file))
    }

    static func decode(path: String, sequence: UInt64) throws -> Snapshot {
        guard let bytes = readWholeFile(path) else { throw PersistenceError("cannot read \(path)") }
        try StoredFormat.check(bytes, path: path, is: "a snapshot", readsUpTo: currentFormat)
        let file = try JSONDecoder().decode(File.self, from: Data(bytes))
        guard try checksum(file.components, file.removed) == file.sha256 else {
            throw PersistenceError("\(path): the checksum does not match its content (corrupt)")
        }
        guard file.sequence == sequence else {
            throw PersistenceError("\(path) says it is snapshot \(file.sequence)")
        }
        let components = try file.components.map { component throws(PersistenceError) -> ComponentDefinition in
            guard let kind = ComponentKind(rawValue: component.kind) else {
                throw PersistenceError("\(path): unknown component kind '\(component.kind)'")
            }
            let version = try component.version.map { text throws(PersistenceError) -> SemanticVersion in
                guard let version = SemanticVersion(text) else { throw PersistenceError("\(path): bad version '\(text)'") }
                return version
            }
            return ComponentDefinition(kind: kind, name: component.name, plugin: component.plugin, version: version,
                                       config: component.metadata, pin: component.pin)
        }
        let removed = Set(file.removed.compactMap { entry in ComponentKind(rawValue: entry.kind).map { ComponentKey(kind: $0, name: entry.name) } })
        return Snapshot(sequence: file.sequence, components: components, removed: removed)
    }

    // MARK: - Files

    private func path(for sequence: UInt64) -> String {
        "\(directory)/running-\(String(sequence).leftPadded(to: 20)).json"
    }

    /// (sequence, path) of every snapshot file, oldest first.
    func snapshotFiles() -> [(UInt64, String)] {
        (directoryEntryNames(directory) ?? []).compactMap { name -> (UInt64, String)? in
            guard name.hasPrefix("running-"), name.hasSuffix(".json"),
                  let sequence = UInt64(name.dropFirst("running-".count).dropLast(".json".count)) else { return nil }
            return (sequence, "\(directory)/\(name)")
        }.sorted { $0.0 < $1.0 }
    }

    private func pruneOldSnapshots() {
        for (_, path) in snapshotFiles().dropLast(Self.kept) { unlink(path) }
    }

    private func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        try AtomicFile.write(bytes, to: path, in: directory)
    }
}

/// Durable replacement of a file.
public enum AtomicFile {
    /// A new file (never an existing one) in `directory`, written, fsync'd, renamed to `path` (in the
    /// same directory), directory fsync'd: after a crash `path` holds the old or the new bytes, whole.
    public static func write(_ bytes: [UInt8], to path: String, in directory: String) throws {
        let temporary = "\(directory)/.\(UInt64.random(in: 0...UInt64.max)).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw PersistenceError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var failure: String?
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = "write \(temporary): \(String(cString: strerror(errno)))"
                    return
                }
                offset += written
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = "fsync \(temporary): \(String(cString: strerror(errno)))" }
        close(fd)
        if failure == nil && rename(temporary, path) != 0 { failure = "rename to \(path): \(String(cString: strerror(errno)))" }
        if let failure {
            unlink(temporary)
            throw PersistenceError(failure)
        }
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            fsync(directoryFD)
            close(directoryFD)
        }
    }
}

public struct PersistenceError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
