internal import PluginABI
internal import PluginKitEntry
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Registers the plugin's component type. Call it from the one C entry point every PluginKit plugin
/// defines, and nowhere else:
///
///     @_cdecl("molt_pluginkit_component")
///     public func moltComponent() -> UnsafeRawPointer { PluginKit.export(MyLock.self) }
///
/// PluginKit calls that function once, when the host first needs the plugin, and keeps the result
/// (it is deliberately never freed: plugins are never unloaded).
public func export<T: Component>(_ type: T.Type) -> UnsafeRawPointer {
    UnsafeRawPointer(Unmanaged.passRetained(Registration(type)).toOpaque())
}

/// The registered component type and everything derived from it once.
package final class Registration: @unchecked Sendable {
    // @unchecked Sendable: every stored property is set in init and never mutated; the C structs and
    // strings they point to are allocated once, never written afterwards and never freed (the
    // library is never unloaded), so any thread may read them.

    /// The plugin's registration, found through the author's molt_pluginkit_component() on first
    /// use (a Swift global: initialized lazily, once, thread-safely).
    package static let shared: Registration =
        Unmanaged<Registration>.fromOpaque(molt_pluginkit_component()).takeUnretainedValue()

    package let componentType: any Component.Type
    package let stateFormats: StateFormatRange
    let info: UnsafePointer<molt_plugin_identity>
    let configKeys: UnsafePointer<molt_config_key>
    let configKeyCount: UInt32
    let create: @Sendable (Config, HostServices) throws(PluginError) -> UnsafeMutableRawPointer
    let readiness: @Sendable (UnsafeMutableRawPointer) -> Readiness
    let destroy: @Sendable (UnsafeMutableRawPointer) -> Void

    init<T: Component>(_ type: T.Type) {
        componentType = type
        var formats = T._stateFormatRange
        if formats.max == 0 || formats.min > formats.max { formats = .none }
        if formats.min == 0 && formats.max != 0 { formats.min = 1 }  // format 0 means "none" in the ABI
        stateFormats = formats

        let info = UnsafeMutablePointer<molt_plugin_identity>.allocate(capacity: 1)
        info.initialize(to: molt_plugin_identity(
            struct_size: UInt32(MemoryLayout<molt_plugin_identity>.size),
            name: staticCString(T.name),
            version: staticCString(T.version),
            kind: staticCString(T.kind.rawValue),
            description: staticCString(T.description),
            state_format_min: formats.min,
            state_format_max: formats.max,
            flags: T.holdsState ? UInt32(MOLT_PLUGIN_HOLDS_STATE) : 0))
        self.info = UnsafePointer(info)

        let keys = T.configKeys
        let array = UnsafeMutablePointer<molt_config_key>.allocate(capacity: max(keys.count, 1))
        for (i, key) in keys.enumerated() {
            var aliases: UnsafePointer<UnsafePointer<CChar>?>? = nil
            if !key.deprecatedAliases.isEmpty {
                let list = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: key.deprecatedAliases.count + 1)
                for (j, alias) in key.deprecatedAliases.enumerated() { (list + j).initialize(to: staticCString(alias)) }
                (list + key.deprecatedAliases.count).initialize(to: nil)
                aliases = UnsafePointer(list)
            }
            (array + i).initialize(to: molt_config_key(
                name: staticCString(key.name),
                description: staticCString(key.description),
                default_value: key.defaultValue.map(staticCString),
                required: key.required,
                applies_in_place: key.appliesInPlace,
                deprecated_aliases: aliases))
        }
        configKeys = UnsafePointer(array)
        configKeyCount = UInt32(keys.count)

        create = { (config, host) throws(PluginError) in
            Unmanaged.passRetained(try T(config: config, host: host)).toOpaque()
        }
        readiness = { component(at: $0, as: T.self).readiness() }
        destroy = { pointer in
            component(at: pointer, as: T.self).shutdown()
            Unmanaged<T>.fromOpaque(pointer).release()
        }
    }
}

/// The component behind an instance pointer the host passed back. A molt_instance is the author's
/// component object itself, retained once by init and released by destroy.
@inlinable
package func component<T: Component>(at instance: UnsafeMutableRawPointer, as _: T.Type) -> T {
    Unmanaged<T>.fromOpaque(instance).takeUnretainedValue()
}

/// A NUL-terminated copy that lives as long as the library (for the static info and keys).
private func staticCString(_ string: String) -> UnsafePointer<CChar> {
    UnsafePointer(strdup(string)!)
}
