// The operation symbols (molt_plugin.h "Declared operations"): molt_plugin_operations and the 16 thunks
// its declarations name, molt_pluginkit_operation_0 ... _15, each in the values form. Thunk i calls
// operation i of the registered component (OperationTable). Public, or release builds drop them.
public import PluginABI
import PluginKit

/// molt_plugin_operations: the static declarations (values form), built once from `operations`.
@_cdecl("molt_plugin_operations")
public func _moltPluginOperations(_ countOut: UnsafeMutablePointer<UInt32>?) -> UnsafePointer<molt_operation>? {
    let table = OperationTable.shared
    countOut?.pointee = table?.count ?? 0
    return table?.declarations
}

/// What every thunk does: operation `index` of the registered component, or a refusal.
private func callOperation(
    _ index: Int, _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?,
    _ results: UnsafeMutablePointer<molt_value>?, _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status {
    guard let table = OperationTable.shared else {
        writeMessage("this plugin's component declares no operations", to: message)
        return MOLT_ERR_UNSUPPORTED
    }
    return table.call(index, instance, parameters, results, message)
}

/// The thunks by index, as the C functions the host calls (for PluginKit's tests).
package let operationThunks: [@convention(c) (
    molt_instance?, UnsafePointer<molt_value>?, UnsafeMutablePointer<molt_value>?, UnsafeMutablePointer<molt_message>?
) -> molt_status] = [
    _moltPluginKitOperation0,
    _moltPluginKitOperation1,
    _moltPluginKitOperation2,
    _moltPluginKitOperation3,
    _moltPluginKitOperation4,
    _moltPluginKitOperation5,
    _moltPluginKitOperation6,
    _moltPluginKitOperation7,
    _moltPluginKitOperation8,
    _moltPluginKitOperation9,
    _moltPluginKitOperation10,
    _moltPluginKitOperation11,
    _moltPluginKitOperation12,
    _moltPluginKitOperation13,
    _moltPluginKitOperation14,
    _moltPluginKitOperation15,
]

@_cdecl("molt_pluginkit_operation_0")
public func _moltPluginKitOperation0(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(0, instance, parameters, results, message) }

@_cdecl("molt_pluginkit_operation_1")
public func _moltPluginKitOperation1(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(1, instance, parameters, results, message) }

@_cdecl("molt_pluginkit_operation_2")
public func _moltPluginKitOperation2(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(2, instance, parameters, results, message) }

@_cdecl("molt_pluginkit_operation_3")
public func _moltPluginKitOperation3(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(3, instance, parameters, results, message) }

@_cdecl("molt_pluginkit_operation_4")
public func _moltPluginKitOperation4(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(4, instance, parameters, results, message) }

@_cdecl("molt_pluginkit_operation_5")
public func _moltPluginKitOperation5(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(5, instance, parameters, results, message) }

@_cdecl("molt_pluginkit_operation_6")
public func _moltPluginKitOperation6(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(6, instance, parameters, results, message) }

@_cdecl("molt_pluginkit_operation_7")
public func _moltPluginKitOperation7(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(7, instance, parameters, results, message) }

@_cdecl("molt_pluginkit_operation_8")
public func _moltPluginKitOperation8(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(8, instance, parameters, results, message) }

@_cdecl("molt_pluginkit_operation_9")
public func _moltPluginKitOperation9(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(9, instance, parameters, results, message) }

@_cdecl("molt_pluginkit_operation_10")
public func _moltPluginKitOperation10(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(10, instance, parameters, results, message) }

@_cdecl("molt_pluginkit_operation_11")
public func _moltPluginKitOperation11(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(11, instance, parameters, results, message) }

@_cdecl("molt_pluginkit_operation_12")
public func _moltPluginKitOperation12(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(12, instance, parameters, results, message) }

@_cdecl("molt_pluginkit_operation_13")
public func _moltPluginKitOperation13(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(13, instance, parameters, results, message) }

@_cdecl("molt_pluginkit_operation_14")
public func _moltPluginKitOperation14(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(14, instance, parameters, results, message) }

@_cdecl("molt_pluginkit_operation_15")
public func _moltPluginKitOperation15(
    _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?, _ results: UnsafeMutablePointer<molt_value>?,
    _ message: UnsafeMutablePointer<molt_message>?
) -> molt_status { callOperation(15, instance, parameters, results, message) }
