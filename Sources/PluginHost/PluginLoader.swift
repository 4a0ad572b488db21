import Glibc
import Logging
import PluginABI
import Synchronization

/// Loads plugin binaries from one trusted directory.
///
/// Every load reads the file once through a descriptor opened without following symlinks, checks
/// who may have written it, hashes the bytes, writes them to a never-reused path in a private 0700
/// staging directory and maps that copy (`RTLD_NOW | RTLD_LOCAL`). So a new version on disk is really
/// loaded (glibc would otherwise return the object already mapped for the same path or inode), and
/// replacing a file in the plugins directory can never corrupt a running mapping.
///
/// Binaries are shared by content: loading bytes that are already mapped returns the same
/// `PluginBinary`. Loads are serialized (they are rare and may run plugin constructors).
public final class PluginLoader: Sendable {
    /// The canonical (symlink-free) plugins directory.
    public let pluginsDirectory: String
    public let stagingDirectory: String
    public static let maximumPluginSize = 256 << 20

    /// Development mode (`molt serve --watch-plugins`): a file holding another build of a name@version
    /// already loaded is loaded as a build of its own instead of refused.
    public let acceptsRebuilds: Bool
    private let logger: Logger
    private let table = Mutex(LoadedTable())

    /// Binaries currently mapped, by sha256. Swift binaries are held strongly (never unmapped, so
    /// reusing their mapping avoids retaining one more copy per load); C binaries weakly, so the
    /// last instance going away unloads them.
    private struct LoadedTable: ~Copyable {
        var retained: [String: PluginBinary] = [:]
        var unretained: [String: WeakBinary] = [:]
        var stagedCount: UInt64 = 0

        func live(_ sha256: String) -> PluginBinary? { retained[sha256] ?? unretained[sha256]?.binary }

        /// A live binary with this name and version but other bytes, if any.
        func conflicting(with info: PluginInfo, sha256: String) -> PluginBinary? {
            let candidates = Array(retained.values) + unretained.values.compactMap(\.binary)
            return candidates.first { $0.info.name == info.name && $0.info.version == info.version && $0.sha256 != sha256 }
        }
    }

    private struct WeakBinary { weak var binary: PluginBinary? }

    /// - Parameters:
    ///   - pluginsDirectory: the only directory plugins are loaded from.
    ///   - stagingParent: where the private staging directory is created (default: $TMPDIR or /tmp).
    ///   - acceptsRebuilds: load another build of a name@version already loaded (see `acceptsRebuilds`).
    public init(pluginsDirectory: String, stagingParent: String? = nil, acceptsRebuilds: Bool = false,
                logger: Logger = Logger(label: "molt.loader")) throws(LoadError) {
        self.acceptsRebuilds = acceptsRebuilds
        guard let canonical = realpath(pluginsDirectory, nil) else {
            throw .unreadable(path: pluginsDirectory, reason: "plugins directory: \(errnoText())")
        }
        self.pluginsDirectory = String(cString: canonical)
        free(canonical)
        let parent = stagingParent ?? (getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp")
        var template = Array("\(parent)/molt-staging-XXXXXX".utf8CString)
        guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw .stagingFailed(reason: "mkdtemp in \(parent): \(errnoText())")
        }
        // mkdtemp creates the directory with mode 0700: only this user can add or replace files.
        self.stagingDirectory = String(cString: created)
        self.logger = logger
    }

    deinit {
        // Staged files are unlinked right after dlopen, so the directory is empty.
        rmdir(stagingDirectory)
    }

    /// Loads (or returns the already-mapped) binary at `path`, relative to the plugins directory
    /// unless absolute. `pin` is an optional sha256 (hex, optionally "sha256:"-prefixed) the bytes
    /// must match.
    public func load(path: String, pin: String? = nil) throws(LoadError) -> PluginBinary {
        let fullPath = path.hasPrefix("/") ? path : "\(pluginsDirectory)/\(path)"
        let resolved = try resolveInsidePluginsDirectory(fullPath)
        let (bytes, identity) = try readTrusted(resolved, displayPath: fullPath)
        let sha256 = sha256Hex(bytes)
        if let pin {
            let expected = (pin.hasPrefix("sha256:") ? String(pin.dropFirst(7)) : pin).lowercased()
            guard expected == sha256 else { throw .pinMismatch(path: fullPath, expected: expected, actual: sha256) }
        }
        return try table.withLock { (table: inout LoadedTable) throws(LoadError) -> PluginBinary in
            if let existing = table.live(sha256) { return existing }
            let binary = try mapNewCopy(bytes: bytes, sha256: sha256, sourcePath: fullPath, identity: identity, table: &table)
            if let conflict = conflict(of: binary.info, sha256: sha256, path: fullPath, in: table) { throw conflict }
            if binary.linksSwiftRuntime {
                table.retained[sha256] = binary
            } else {
                table.unretained[sha256] = WeakBinary(binary: binary)
                table.unretained = table.unretained.filter { $0.value.binary != nil }
            }
            logger.info("loaded plugin", metadata: [
                "plugin": "\(binary.info.id)", "kind": "\(binary.info.kind.rawValue)", "path": "\(fullPath)",
                "sha256": "\(sha256.prefix(16))", "swift": "\(binary.linksSwiftRuntime)",
            ])
            return binary
        }
    }

    /// The refusal `load` gives a file holding `plugin` (inspected elsewhere, `ChildProcessInspector`) because
    /// another build of its name@version is mapped here; nil when there is none, or rebuilds are accepted.
    public func conflict(with plugin: InspectedPlugin) -> LoadError? {
        table.withLock { table in
            table.live(plugin.sha256) == nil ? conflict(of: plugin.info, sha256: plugin.sha256, path: plugin.path, in: table) : nil
        }
    }

    private func conflict(of info: PluginInfo, sha256: String, path: String, in table: borrowing LoadedTable) -> LoadError? {
        guard !acceptsRebuilds, let other = table.conflicting(with: info, sha256: sha256) else { return nil }
        if other.sourcePath == path {
            return .rebuiltVersion(path: path, plugin: info.id, sha256: sha256, loadedSHA256: other.sha256)
        }
        return .duplicateNameVersion(path: path, plugin: info.id, loadedFrom: other.sourcePath)
    }

    /// Binaries that are mapped right now (for status and tests).
    public var mappedBinaries: [PluginBinary] {
        table.withLock { Array($0.retained.values) + $0.unretained.values.compactMap(\.binary) }
    }

    // MARK: - Trust

    private func resolveInsidePluginsDirectory(_ path: String) throws(LoadError) -> String {
        var directoryStatus = stat()
        guard stat(pluginsDirectory, &directoryStatus) == 0 else {
            throw .unreadable(path: pluginsDirectory, reason: errnoText())
        }
        if directoryStatus.st_mode & 0o022 != 0 {
            throw .untrusted(path: path, rule: .pluginsDirectoryWritableByOthers,
                             detail: "\(pluginsDirectory) has mode \(String(directoryStatus.st_mode & 0o777, radix: 8))")
        }
        guard let canonical = realpath(path, nil) else { throw .unreadable(path: path, reason: errnoText()) }
        let resolved = String(cString: canonical)
        free(canonical)
        guard resolved.hasPrefix(pluginsDirectory + "/") else {
            let literal = path.hasPrefix(pluginsDirectory + "/") && !path.contains("/../")
            if literal {
                throw .untrusted(path: path, rule: .symlinkLeavesPluginsDirectory, detail: "resolves to \(resolved)")
            }
            throw .untrusted(path: path, rule: .outsidePluginsDirectory, detail: "resolves to \(resolved), plugins directory is \(pluginsDirectory)")
        }
        return resolved
    }

    /// Reads the whole file through one descriptor and checks the descriptor's owner and mode, so
    /// the bytes vetted are the bytes loaded.
    private func readTrusted(_ path: String, displayPath: String) throws(LoadError) -> ([UInt8], FileIdentity) {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(path: displayPath, reason: errnoText()) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw .unreadable(path: displayPath, reason: errnoText()) }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw .untrusted(path: displayPath, rule: .notRegularFile, detail: "mode \(String(status.st_mode, radix: 8))")
        }
        if status.st_mode & 0o022 != 0 {
            throw .untrusted(path: displayPath, rule: .writableByGroupOrOthers, detail: "mode \(String(status.st_mode & 0o777, radix: 8))")
        }
        if status.st_uid != 0 && status.st_uid != geteuid() {
            throw .untrusted(path: displayPath, rule: .untrustedOwner, detail: "owner uid \(status.st_uid), host uid \(geteuid())")
        }
        guard status.st_size <= Self.maximumPluginSize else {
            throw .untrusted(path: displayPath, rule: .tooLarge, detail: "\(status.st_size) bytes, limit \(Self.maximumPluginSize)")
        }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw .unreadable(path: displayPath, reason: count == 0 ? "file shrank while reading" : errnoText()) }
            done += count
        }
        return (bytes, FileIdentity(status))
    }

    // MARK: - Mapping

    private func mapNewCopy(bytes: [UInt8], sha256: String, sourcePath: String, identity: FileIdentity,
                            table: inout LoadedTable) throws(LoadError) -> PluginBinary {
        let image: ELFImage
        do { image = try ELFImage(bytes: bytes) } catch { throw .notSharedObject(path: sourcePath, reason: error.description) }

        table.stagedCount += 1
        let stagedPath = "\(stagingDirectory)/\(sha256.prefix(16))-\(table.stagedCount).so"
        try writeStagedCopy(bytes, to: stagedPath)
        defer { unlink(stagedPath) }  // the mapping keeps the inode alive; nothing is left behind

        var flags = RTLD_NOW | RTLD_LOCAL
        if image.linksSwiftRuntime { flags |= RTLD_NODELETE }
        guard let handle = dlopen(stagedPath, flags) else {
            throw .dlopenFailed(path: sourcePath, reason: dlerror().map { String(cString: $0) } ?? "unknown dlopen error")
        }
        do {
            let (info, symbols) = try Self.inspect(handle: handle, path: sourcePath)
            return PluginBinary(info: info, symbols: symbols, sourcePath: sourcePath, sourceIdentity: identity, stagedPath: stagedPath,
                                sha256: sha256, linksSwiftRuntime: image.linksSwiftRuntime, handle: handle)
        } catch {
            dlclose(handle)
            // A symbol the file defines but does not export is the usual -fvisibility=hidden mistake: say so.
            if case .missingSymbol(let path, let symbol, let why) = error,
               ELFImage.unexportedDefinitions(in: bytes, among: [symbol]).contains(symbol) {
                throw .missingSymbol(path: path, symbol: symbol, why: "\(why); the library defines it but does not export it (hidden or local "
                    + "symbol): declare it with MOLT_EXPORT (include molt_plugin.h, which does), or build without -fvisibility=hidden")
            }
            throw error
        }
    }

    private func writeStagedCopy(_ bytes: [UInt8], to path: String) throws(LoadError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .stagingFailed(reason: "create \(path): \(errnoText())") }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { unlink(path); throw .stagingFailed(reason: "write \(path): \(errnoText())") }
            done += count
        }
        fchmod(fd, 0o500)
    }

    // MARK: - Symbols and info

    /// Resolves and validates every symbol, ABI version first.
    static func inspect(handle: UnsafeMutableRawPointer, path: String) throws(LoadError) -> (PluginInfo, PluginSymbols) {
        func symbol<T>(_ name: String, as type: T.Type) -> T? {
            dlsym(handle, name).map { unsafeBitCast($0, to: type) }
        }
        func required<T>(_ name: String, as type: T.Type, why: String = "required by ABI v1") throws(LoadError) -> T {
            guard let found = symbol(name, as: type) else { throw .missingSymbol(path: path, symbol: name, why: why) }
            return found
        }

        let abiVersion = try required(MOLT_SYMBOL_ABI_VERSION, as: molt_abi_version_fn.self)
        var major: UInt32 = 0, minor: UInt32 = 0
        abiVersion(&major, &minor)
        guard major == hostABIVersion.major else { throw .abiMajorMismatch(path: path, plugin: (major, minor), host: hostABIVersion) }
        guard minor <= hostABIVersion.minor else { throw .abiMinorTooNew(path: path, plugin: (major, minor), host: hostABIVersion) }

        let infoFunction = try required(MOLT_SYMBOL_PLUGIN_INFO, as: molt_plugin_info_fn.self)
        let initialize = try required(MOLT_SYMBOL_PLUGIN_INIT, as: molt_plugin_init_fn.self)
        let readiness = try required(MOLT_SYMBOL_PLUGIN_READINESS, as: molt_plugin_readiness_fn.self)
        let destroy = try required(MOLT_SYMBOL_PLUGIN_DESTROY, as: molt_plugin_destroy_fn.self)

        guard let rawInfo = infoFunction() else { throw .invalidInfo(path: path, reason: "molt_plugin_info returned NULL") }
        let raw = rawInfo.pointee
        func string(_ pointer: UnsafePointer<CChar>?, _ field: String) throws(LoadError) -> String {
            guard let pointer else { throw .invalidInfo(path: path, reason: "\(field) is NULL") }
            guard let text = String(validatingCString: pointer) else { throw .invalidInfo(path: path, reason: "\(field) is not valid UTF-8") }
            return text
        }
        let minimumInfoSize = MemoryLayout<molt_plugin_identity>.offset(of: \.state_format_min)!
        guard raw.struct_size >= minimumInfoSize else {
            throw .invalidInfo(path: path, reason: "struct_size \(raw.struct_size) is smaller than ABI v1's \(minimumInfoSize)")
        }
        let name = try string(raw.name, "name")
        guard isValidPluginName(name) else {
            throw .invalidInfo(path: path, reason: "name '\(name)' must match [a-z0-9][a-z0-9._-]{0,63}")
        }
        let versionText = try string(raw.version, "version")
        guard let version = SemanticVersion(versionText) else {
            throw .invalidInfo(path: path, reason: "version '\(versionText)' is not a semantic version (MAJOR.MINOR.PATCH)")
        }
        let kindText = try string(raw.kind, "kind")
        guard let kind = ComponentKind(rawValue: kindText) else { throw .unknownKind(path: path, kind: kindText) }
        let description = try string(raw.description, "description")

        // ABI 1.2: declared operations, each checked and its call prepared (never read from older plugins).
        let operations: [PreparedOperation]
        if minor >= 2, let declare = symbol(MOLT_SYMBOL_PLUGIN_OPERATIONS, as: molt_plugin_operations_fn.self) {
            operations = try OperationReader.read(declare, path: path) { dlsym(handle, $0) }
        } else {
            operations = []
        }
        if [.secretstore, .configuration, .pubsub].contains(kind) && minor < 3 {
            throw .invalidInfo(path: path, reason: "kind '\(kind.rawValue)' needs ABI 1.3 (the plugin is built for 1.\(minor))")
        }
        if kind == .binding && operations.isEmpty {
            guard minor >= 2 else { throw .invalidInfo(path: path, reason: "kind 'binding' needs ABI 1.2 (the plugin is built for 1.\(minor))") }
            guard symbol(MOLT_SYMBOL_PLUGIN_OPERATIONS, as: molt_plugin_operations_fn.self) != nil else {
                throw .missingSymbol(path: path, symbol: MOLT_SYMBOL_PLUGIN_OPERATIONS, why: "required for kind 'binding'")
            }
            throw .invalidInfo(path: path, reason: "kind 'binding' declares no operations (\(MOLT_SYMBOL_PLUGIN_OPERATIONS) must declare at least one)")
        }

        let symbols = PluginSymbols(
            info: infoFunction, initialize: initialize, readiness: readiness, destroy: destroy,
            configKeys: symbol(MOLT_SYMBOL_PLUGIN_CONFIG_KEYS, as: molt_plugin_config_keys_fn.self),
            applyConfig: symbol(MOLT_SYMBOL_PLUGIN_APPLY_CONFIG, as: molt_plugin_apply_config_fn.self),
            exportState: symbol(MOLT_SYMBOL_PLUGIN_EXPORT_STATE, as: molt_plugin_export_state_fn.self),
            importState: symbol(MOLT_SYMBOL_PLUGIN_IMPORT_STATE, as: molt_plugin_import_state_fn.self),
            tryLock: symbol(MOLT_SYMBOL_LOCK_TRY_LOCK, as: molt_lock_try_lock_fn.self),
            unlock: symbol(MOLT_SYMBOL_LOCK_UNLOCK, as: molt_lock_unlock_fn.self),
            stateGet: symbol(MOLT_SYMBOL_STATE_GET, as: molt_state_get_fn.self),
            stateBulkGet: symbol(MOLT_SYMBOL_STATE_BULK_GET, as: molt_state_bulk_get_fn.self),
            stateSet: symbol(MOLT_SYMBOL_STATE_SET, as: molt_state_set_fn.self),
            stateDelete: symbol(MOLT_SYMBOL_STATE_DELETE, as: molt_state_delete_fn.self),
            stateTransact: symbol(MOLT_SYMBOL_STATE_TRANSACT, as: molt_state_transact_fn.self),
            secretGet: minor >= 3 ? symbol(MOLT_SYMBOL_SECRET_GET, as: molt_secret_get_fn.self) : nil,
            secretBulkGet: minor >= 3 ? symbol(MOLT_SYMBOL_SECRET_BULK_GET, as: molt_secret_bulk_get_fn.self) : nil,
            configurationGet: minor >= 3 ? symbol(MOLT_SYMBOL_CONFIGURATION_GET, as: molt_configuration_get_fn.self) : nil,
            pubsubPublish: minor >= 3 ? symbol(MOLT_SYMBOL_PUBSUB_PUBLISH, as: molt_pubsub_publish_fn.self) : nil,
            pubsubSubscribe: minor >= 3 ? symbol(MOLT_SYMBOL_PUBSUB_SUBSCRIBE, as: molt_pubsub_subscribe_fn.self) : nil,
            pubsubAck: minor >= 3 ? symbol(MOLT_SYMBOL_PUBSUB_ACK, as: molt_pubsub_ack_fn.self) : nil,
            pubsubUnsubscribe: minor >= 3 ? symbol(MOLT_SYMBOL_PUBSUB_UNSUBSCRIBE, as: molt_pubsub_unsubscribe_fn.self) : nil,
            operations: Dictionary(operations.map { ($0.declaration.name, $0) }, uniquingKeysWith: { first, _ in first }))

        // The operations of the plugin's kind are required.
        let kindOperations: [(String, Bool)]
        switch kind {
        case .lock: kindOperations = [(MOLT_SYMBOL_LOCK_TRY_LOCK, symbols.tryLock != nil), (MOLT_SYMBOL_LOCK_UNLOCK, symbols.unlock != nil)]
        case .state: kindOperations = [(MOLT_SYMBOL_STATE_GET, symbols.stateGet != nil), (MOLT_SYMBOL_STATE_SET, symbols.stateSet != nil),
                                       (MOLT_SYMBOL_STATE_DELETE, symbols.stateDelete != nil)]
        case .binding: kindOperations = []  // only declared operations, checked above
        case .secretstore: kindOperations = [(MOLT_SYMBOL_SECRET_GET, symbols.secretGet != nil)]
        case .configuration: kindOperations = [(MOLT_SYMBOL_CONFIGURATION_GET, symbols.configurationGet != nil)]
        case .pubsub: kindOperations = [(MOLT_SYMBOL_PUBSUB_PUBLISH, symbols.pubsubPublish != nil),
                                        (MOLT_SYMBOL_PUBSUB_SUBSCRIBE, symbols.pubsubSubscribe != nil),
                                        (MOLT_SYMBOL_PUBSUB_ACK, symbols.pubsubAck != nil),
                                        (MOLT_SYMBOL_PUBSUB_UNSUBSCRIBE, symbols.pubsubUnsubscribe != nil)]
        }
        if let (missing, _) = kindOperations.first(where: { !$0.1 }) {
            throw .missingSymbol(path: path, symbol: missing, why: "required for kind '\(kind.rawValue)'")
        }

        var capabilities: Capabilities = []
        if symbols.configKeys != nil { capabilities.insert(.configKeys) }
        if symbols.applyConfig != nil { capabilities.insert(.applyConfig) }
        if kind == .state && symbols.stateBulkGet != nil { capabilities.insert(.bulkGet) }
        if kind == .state && symbols.stateTransact != nil { capabilities.insert(.transactions) }
        if kind == .secretstore && symbols.secretBulkGet != nil { capabilities.insert(.bulkSecrets) }
        var stateFormats: ClosedRange<UInt32>?
        switch (symbols.exportState != nil, symbols.importState != nil) {
        case (true, true):
            guard raw.struct_size >= MemoryLayout<molt_plugin_identity>.offset(of: \.state_format_max)! + MemoryLayout<UInt32>.size else {
                throw .invalidInfo(path: path, reason: "exports state transfer but its info struct has no state formats")
            }
            guard raw.state_format_min >= 1, raw.state_format_min <= raw.state_format_max else {
                throw .invalidInfo(path: path, reason: "state formats [\(raw.state_format_min), \(raw.state_format_max)] must satisfy 1 <= min <= max")
            }
            stateFormats = raw.state_format_min...raw.state_format_max
            capabilities.insert(.stateTransfer)
        case (true, false):
            throw .missingSymbol(path: path, symbol: MOLT_SYMBOL_PLUGIN_IMPORT_STATE, why: "required with \(MOLT_SYMBOL_PLUGIN_EXPORT_STATE)")
        case (false, true):
            throw .missingSymbol(path: path, symbol: MOLT_SYMBOL_PLUGIN_EXPORT_STATE, why: "required with \(MOLT_SYMBOL_PLUGIN_IMPORT_STATE)")
        case (false, false):
            break
        }

        // ABI 1.1 flags: read only when the plugin's identity includes them (an ABI 1.0 one ends before).
        let flags = raw.struct_size >= MemoryLayout<molt_plugin_identity>.offset(of: \.flags)! + MemoryLayout<UInt32>.size ? raw.flags : 0
        let holdsState = flags & UInt32(MOLT_PLUGIN_HOLDS_STATE) != 0

        var configKeys = try readConfigKeys(symbols.configKeys, path: path)
        let open = configKeys.firstIndex { $0.name == ConfigKeySpec.openName }.map { configKeys.remove(at: $0) }
        if let open, open.required || open.defaultValue != nil || !open.deprecatedAliases.isEmpty {
            throw .invalidInfo(path: path, reason: "config key '*' (the plugin's config is open) cannot be required, have a default or aliases")
        }
        let info = PluginInfo(name: name, version: version, kind: kind, description: description,
                              abiVersion: (major, minor), stateFormats: stateFormats,
                              configKeys: configKeys, capabilities: capabilities, openConfig: open, holdsState: holdsState,
                              operations: operations.map(\.declaration))
        return (info, symbols)
    }

    private static func readConfigKeys(_ function: molt_plugin_config_keys_fn?, path: String) throws(LoadError) -> [ConfigKeySpec] {
        guard let function else { return [] }
        var count: UInt32 = 0
        guard let keys = function(&count) else {
            if count == 0 { return [] }
            throw .invalidInfo(path: path, reason: "molt_plugin_config_keys returned NULL with count \(count)")
        }
        guard count <= 4096 else { throw .invalidInfo(path: path, reason: "declares \(count) config keys (limit 4096)") }
        var specs: [ConfigKeySpec] = []
        var seen = Set<String>()
        for index in 0..<Int(count) {
            let key = keys[index]
            guard let namePointer = key.name, let name = String(validatingCString: namePointer), !name.isEmpty else {
                throw .invalidInfo(path: path, reason: "config key #\(index) has no valid name")
            }
            var aliases: [String] = []
            if var alias = key.deprecated_aliases {
                while let pointer = alias.pointee, aliases.count < 64 {
                    aliases.append(String(cString: pointer))
                    alias += 1
                }
            }
            for candidate in [name] + aliases {
                guard seen.insert(candidate).inserted else {
                    throw .invalidInfo(path: path, reason: "config key '\(candidate)' is declared twice")
                }
            }
            specs.append(ConfigKeySpec(
                name: name, description: key.description.map { String(cString: $0) } ?? "",
                defaultValue: key.default_value.map { String(cString: $0) }, required: key.required,
                appliesInPlace: key.applies_in_place, deprecatedAliases: aliases))
        }
        return specs
    }
}

public func isValidPluginName(_ name: String) -> Bool {
    let bytes = Array(name.utf8)
    guard (1...64).contains(bytes.count) else { return false }
    func allowed(_ byte: UInt8, first: Bool) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || (!first && (byte == 0x2E || byte == 0x5F || byte == 0x2D))
    }
    return bytes.enumerated().allSatisfy { allowed($0.element, first: $0.offset == 0) }
}

func errnoText() -> String { String(cString: strerror(errno)) }
