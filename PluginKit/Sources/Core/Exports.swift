// The C symbols every plugin exports (molt_plugin.h, "Always required", plus config_keys, which is
// harmless to always export: a plugin without keys reports an empty list). They must stay `public`,
// or release builds drop them.
public import PluginABI

/// molt_abi_version: the ABI version PluginKit was built against. Touches nothing else.
@_cdecl("molt_abi_version")
public func _moltAbiVersion(_ majorOut: UnsafeMutablePointer<UInt32>?, _ minorOut: UnsafeMutablePointer<UInt32>?) {
    majorOut?.pointee = UInt32(MOLT_ABI_VERSION_MAJOR)
    minorOut?.pointee = UInt32(MOLT_ABI_VERSION_MINOR)
}

/// molt_plugin_info: the static identity, built once from the component type.
@_cdecl("molt_plugin_info")
public func _moltPluginInfo() -> UnsafePointer<molt_plugin_identity> {
    Registration.shared.info
}

/// molt_plugin_config_keys: the static list of declared keys (possibly empty).
@_cdecl("molt_plugin_config_keys")
public func _moltPluginConfigKeys(_ countOut: UnsafeMutablePointer<UInt32>?) -> UnsafePointer<molt_config_key> {
    let registration = Registration.shared
    countOut?.pointee = registration.configKeyCount
    return registration.configKeys
}

/// molt_plugin_init: runs the component's init(config:host:).
@_cdecl("molt_plugin_init")
public func _moltPluginInit(
    _ config: UnsafePointer<molt_config>?,
    _ host: UnsafePointer<molt_host_services>?,
    _ instanceOut: UnsafeMutablePointer<molt_instance?>?,
    _ errorOut: UnsafeMutablePointer<molt_message>?
) -> molt_status {
    guard let instanceOut else {
        writeMessage("molt_plugin_init: instance_out is NULL", to: errorOut)
        return MOLT_ERR_INVALID_ARGUMENT
    }
    do throws(PluginError) {
        instanceOut.pointee = try Registration.shared.create(Config(config), HostServices(host))
        return MOLT_OK
    } catch {
        writeMessage(error.cMessage, to: errorOut)
        return error.cStatus
    }
}

/// molt_plugin_readiness: the component's readiness().
@_cdecl("molt_plugin_readiness")
public func _moltPluginReadiness(_ instance: molt_instance?, _ messageOut: UnsafeMutablePointer<molt_message>?)
    -> molt_readiness
{
    guard let instance else {
        writeMessage("molt_plugin_readiness: instance is NULL", to: messageOut)
        return MOLT_FAILED
    }
    switch Registration.shared.readiness(instance) {
    case .ready:
        return MOLT_READY
    case .notReady(let message):
        writeMessage(message.isEmpty ? "not ready yet" : message, to: messageOut)
        return MOLT_NOT_READY
    case .failed(let message):
        writeMessage(message.isEmpty ? "failed" : message, to: messageOut)
        return MOLT_FAILED
    }
}

/// molt_plugin_destroy: the component's shutdown(), then releases the instance.
@_cdecl("molt_plugin_destroy")
public func _moltPluginDestroy(_ instance: molt_instance?) {
    guard let instance else { return }
    Registration.shared.destroy(instance)
}
