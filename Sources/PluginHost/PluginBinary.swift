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
    /// Lowercase hex sha256 of the bytes that were mapped.
    public let sha256: String
    public let linksSwiftRuntime: Bool
    private let handle: UnsafeMutableRawPointer

    init(info: PluginInfo, symbols: PluginSymbols, sourcePath: String, stagedPath: String, sha256: String,
         linksSwiftRuntime: Bool, handle: UnsafeMutableRawPointer) {
        self.info = info
        self.symbols = symbols
        self.sourcePath = sourcePath
        self.stagedPath = stagedPath
        self.sha256 = sha256
        self.linksSwiftRuntime = linksSwiftRuntime
        self.handle = handle
    }

    deinit {
        // For a RTLD_NODELETE (Swift) library this only drops the reference count; nothing is unmapped.
        dlclose(handle)
    }

    /// Renames deprecated aliases to their current names and checks required keys, so the plugin
    /// receives the config in the shape its declared keys describe. Returns the config and warnings.
    public func normalize(config: [String: String]) throws(ConfigProblem) -> (config: [String: String], warnings: [String]) {
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
        let missing = info.configKeys.filter { $0.required && result[$0.name] == nil }.map(\.name)
        if !missing.isEmpty {
            throw ConfigProblem("missing required config key\(missing.count > 1 ? "s" : "") \(missing.map { "'\($0)'" }.joined(separator: ", ")) for plugin \(info.id)")
        }
        return (result, warnings)
    }
}

/// A configuration the host refused before handing it to a plugin.
public struct ConfigProblem: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
