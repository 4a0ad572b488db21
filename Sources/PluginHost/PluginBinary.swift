import Glibc
import PluginABI

/// Entry points resolved from one loaded binary. Function pointers stay valid for as long as the
/// `PluginBinary` that holds them is alive (it owns the mapping).
public struct PluginSymbols: @unchecked Sendable {
    // @unchecked: C function pointers are immutable addresses; the struct is never mutated.
    public let info: molt_plugin_info_fn
    public let initialize: molt_plugin_init_fn
    public let readiness: molt_plugin_readiness_fn
    public let destroy: molt_plugin_destroy_fn
    public let configKeys: molt_plugin_config_keys_fn?
    public let applyConfig: molt_plugin_apply_config_fn?
    public let exportState: molt_plugin_export_state_fn?
    public let importState: molt_plugin_import_state_fn?
    public let tryLock: molt_lock_try_lock_fn?
    public let unlock: molt_lock_unlock_fn?
    public let stateGet: molt_state_get_fn?
    public let stateBulkGet: molt_state_bulk_get_fn?
    public let stateSet: molt_state_set_fn?
    public let stateDelete: molt_state_delete_fn?
    public let stateTransact: molt_state_transact_fn?
    public let secretGet: molt_secret_get_fn?
    public let secretBulkGet: molt_secret_bulk_get_fn?
    public let configurationGet: molt_configuration_get_fn?
    public let pubsubPublish: molt_pubsub_publish_fn?
    public let pubsubSubscribe: molt_pubsub_subscribe_fn?
    public let pubsubAck: molt_pubsub_ack_fn?
    public let pubsubUnsubscribe: molt_pubsub_unsubscribe_fn?
    /// Declared operations (ABI 1.2) by name, each with its call prepared at load.
    let operations: [String: PreparedOperation]
}

/// One mapping of one plugin binary (identified by the sha256 of its bytes), shared by every
/// instance created from it. Instances hold a strong reference, so the mapping outlives them.
///
/// Unloading: a C plugin is `dlclose`d when the last reference goes (deinit). A plugin that links
/// the Swift runtime was opened with RTLD_NODELETE and is never unmapped: the runtime keeps
/// pointers into every loaded Swift image.
public final class PluginBinary: @unchecked Sendable {
    // @unchecked: every stored property is immutable after init; `handle` is used only by deinit.
    public let info: PluginInfo
    public let symbols: PluginSymbols
    /// The file in the plugins directory this binary was read from.
    public let sourcePath: String
    /// The private copy that was actually mapped (unlinked right after dlopen; the mapping keeps it).
    public let stagedPath: String
    /// The source file as it was when these bytes were read from it.
    public let sourceIdentity: FileIdentity
    /// Lowercase hex sha256 of the bytes that were mapped.
    public let sha256: String
    /// What the metadata APIs list for the declared operations ("operation <signature>"), built once.
    public let operationCapabilities: [String]
    public let linksSwiftRuntime: Bool
    private let handle: UnsafeMutableRawPointer

    init(info: PluginInfo, symbols: PluginSymbols, sourcePath: String, sourceIdentity: FileIdentity, stagedPath: String,
         sha256: String, linksSwiftRuntime: Bool, handle: UnsafeMutableRawPointer) {
        self.info = info
        self.symbols = symbols
        self.sourcePath = sourcePath
        self.sourceIdentity = sourceIdentity
        self.operationCapabilities = info.operations.map { "operation \($0.signature)" }
        self.stagedPath = stagedPath
        self.sha256 = sha256
        self.linksSwiftRuntime = linksSwiftRuntime
        self.handle = handle
    }

    /// The sha256 of the bytes the source file holds now when they are not these (a rebuild or another
    /// file copied over it); nil when the file is unchanged, holds the same bytes, or is gone. Reads and
    /// hashes the file only when its identity changed.
    public func otherBuildAtSource() -> String? {
        guard FileIdentity.of(path: sourcePath) != sourceIdentity, let bytes = readWholeFile(sourcePath) else { return nil }
        let current = sha256Hex(bytes)
        return current == sha256 ? nil : current
    }

    deinit {
        // For a RTLD_NODELETE (Swift) library this only drops the reference count; nothing is unmapped.
        dlclose(handle)
    }

    /// Prepares a configuration for the plugin as its declared keys describe it: deprecated aliases renamed
    /// to their current names, then (when the host honours the declarations, `PluginInfo.honoursDeclaredKeys`)
    /// keys the plugin does not declare refused, unless it declares `*` or the host reads them itself
    /// (`hostKeys`), then required keys checked, then (honoured declarations) absent keys with a default
    /// filled in. `config` is what the plugin gets; `explicit` the same without the filled defaults.
    public func normalize(config: [String: String], hostKeys: Set<String> = []) throws(ConfigProblem) -> NormalizedConfig {
        var result = config
        var warnings: [String] = []
        for key in info.configKeys {
            for alias in key.deprecatedAliases {
                guard let value = result.removeValue(forKey: alias) else { continue }
                if let current = result[key.name] {
                    if current != value {
                        throw ConfigProblem("config key '\(alias)' is a DEPRECATED alias of '\(key.name)', and both are set to different values ('\(value)' and '\(current)')")
                    }
                    warnings.append("config key '\(alias)' is DEPRECATED and duplicates '\(key.name)'; remove it")
                } else {
                    result[key.name] = value
                    warnings.append("config key '\(alias)' is DEPRECATED, use '\(key.name)' (plugin \(info.id))")
                }
            }
        }
        if info.honoursDeclaredKeys && info.openConfig == nil {
            let declared = Set(info.configKeys.map(\.name))
            let unknown = result.keys.filter { !declared.contains($0) && !hostKeys.contains($0) }.sorted()
            if !unknown.isEmpty { throw unknownKeysProblem(unknown, hostKeys: hostKeys) }
        }
        let missing = info.configKeys.filter { $0.required && result[$0.name] == nil }.map(\.name)
        if !missing.isEmpty {
            throw ConfigProblem("missing required config key\(missing.count > 1 ? "s" : "") \(missing.map { "'\($0)'" }.joined(separator: ", ")) for plugin \(info.id)")
        }
        let explicit = result
        if info.honoursDeclaredKeys {
            for key in info.configKeys where result[key.name] == nil {
                if let value = key.defaultValue { result[key.name] = value }
            }
        }
        return NormalizedConfig(config: result, explicit: explicit, warnings: warnings)
    }

    /// The refusal of `keys`, which the plugin does not declare, naming the keys it knows.
    public func unknownKeysProblem(_ keys: [String], hostKeys: Set<String> = []) -> ConfigProblem {
        let known = Set(info.configKeys.map(\.name)).union(hostKeys).sorted().joined(separator: ", ")
        let listed = keys.map { "'\($0)'" }.joined(separator: ", ")
        let what = keys.count == 1 ? "config key \(listed) is not a key" : "config keys \(listed) are not keys"
        return ConfigProblem("\(what) of plugin \(info.id) (known: \(known.isEmpty ? "none" : known))", keys: keys)
    }

    /// The first (bytewise smallest) key that differs between two normalized configurations (added,
    /// removed or changed) and does not apply in place, when the host honours the declarations; nil when
    /// the change may go to apply_config. A key the host reads itself (`hostKeys`) and the plugin does
    /// not declare applies in place (the host takes the new value); a key accepted through `*` applies in
    /// place when the `*` entry says so.
    public func keyBlockingInPlace(from old: [String: String], to new: [String: String], hostKeys: Set<String> = []) -> String? {
        guard info.honoursDeclaredKeys else { return nil }
        let declared = Dictionary(info.configKeys.map { ($0.name, $0.appliesInPlace) }, uniquingKeysWith: { first, _ in first })
        let changed = Set(old.keys).union(new.keys).filter { old[$0] != new[$0] }.sorted()
        return changed.first { key in
            if let inPlace = declared[key] { return !inPlace }
            if hostKeys.contains(key) { return false }
            return !(info.openConfig?.appliesInPlace ?? false)
        }
    }
}

/// A configuration as the plugin gets it (`PluginBinary.normalize`).
public struct NormalizedConfig: Sendable, Equatable {
    /// What the plugin gets: aliases renamed, declared defaults filled in.
    public var config: [String: String]
    /// The same without the filled defaults: what was given (aliases renamed), for restarts and applies
    /// that keep the running configuration (another version may declare other defaults).
    public var explicit: [String: String]
    public var warnings: [String]

    public init(config: [String: String], explicit: [String: String], warnings: [String] = []) {
        self.config = config
        self.explicit = explicit
        self.warnings = warnings
    }
}

/// A configuration the host refused before handing it to a plugin.
public struct ConfigProblem: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    /// The configuration keys the problem is about, when it names some (unknown keys).
    public var keys: [String] = []
    public init(_ description: String, keys: [String] = []) { self.description = description; self.keys = keys }
}
