public import PluginKit
public import PluginABI

/// A component whose in-memory state a new instance, or a new version of the plugin, can take
/// over on reload. Declare the formats you can both export and import; the host picks the highest
/// format both the old and the new plugin support, asks the old instance to export in it, and the
/// new instance to import it (after init and readiness, before it serves any call). Neither is ever
/// called concurrently with anything else on the instance.
public protocol StateTransferable: Component {
    /// The formats this plugin can both export and import, e.g. 1...2. Formats start at 1.
    static var stateFormats: ClosedRange<UInt32> { get }
    /// Serializes the state in `format` (always within `stateFormats`).
    func exportState(format: UInt32) throws(PluginError) -> [UInt8]
    /// Loads state exported by another instance, possibly of another version, in `format` (always
    /// within `stateFormats`). Throwing aborts the reload; the old instance keeps serving.
    func importState(_ bytes: [UInt8], format: UInt32) throws(PluginError)
}

extension StateTransferable {
    public static var _stateFormatRange: StateFormatRange {
        StateFormatRange(min: stateFormats.lowerBound, max: stateFormats.upperBound)
    }
}

private struct TransferDriver: Sendable {
    let export: @Sendable (UnsafeMutableRawPointer, UInt32) throws(PluginError) -> [UInt8]
    let `import`: @Sendable (UnsafeMutableRawPointer, [UInt8], UInt32) throws(PluginError) -> Void
    init<T: StateTransferable>(_: T.Type) {
        export = { (instance, format) throws(PluginError) in
            try component(at: instance, as: T.self).exportState(format: format)
        }
        `import` = { (instance, bytes, format) throws(PluginError) in
            try component(at: instance, as: T.self).importState(bytes, format: format)
        }
    }
}

private let driver: TransferDriver? =
    (Registration.shared.componentType as? any StateTransferable.Type).map { TransferDriver($0) }

private func checkFormat(_ format: UInt32) throws(PluginError) {
    let formats = Registration.shared.stateFormats
    guard formats.contains(format) else {
        throw .invalidArgument("state format \(format) is outside this plugin's formats \(formats.min)...\(formats.max)")
    }
}

/// molt_plugin_export_state. Public, or release builds drop it.
@_cdecl("molt_plugin_export_state")
public func _moltPluginExportState(
    _ instance: molt_instance?, _ format: UInt32, _ sink: molt_bytes_sink?, _ sinkContext: UnsafeMutableRawPointer?,
    _ messageOut: UnsafeMutablePointer<molt_message>?
) -> molt_status {
    do throws(PluginError) {
        guard let instance, let driver, let sink else {
            throw .unsupported("this plugin's component cannot export state (or instance/sink is NULL)")
        }
        try checkFormat(format)
        let bytes = try driver.export(instance, format)
        // One sink call for the whole state; the host may refuse (e.g. a size limit).
        let refused = bytes.withUnsafeBytes { sink(sinkContext, $0.baseAddress, $0.count) }
        if refused != 0 {
            throw .invalidArgument("the host refused \(bytes.count) bytes of exported state (sink returned \(refused))")
        }
        return MOLT_OK
    } catch {
        writeMessage(error.cMessage, to: messageOut)
        return error.cStatus
    }
}

/// molt_plugin_import_state. Public, or release builds drop it.
@_cdecl("molt_plugin_import_state")
public func _moltPluginImportState(
    _ instance: molt_instance?, _ format: UInt32, _ bytes: UnsafeRawPointer?, _ length: Int,
    _ messageOut: UnsafeMutablePointer<molt_message>?
) -> molt_status {
    do throws(PluginError) {
        guard let instance, let driver else {
            throw .unsupported("this plugin's component cannot import state")
        }
        try checkFormat(format)
        guard bytes != nil || length == 0 else { throw .invalidArgument("import_state: bytes is NULL") }
        let copy = bytes.map { Array(UnsafeRawBufferPointer(start: $0, count: length)) } ?? []
        try driver.import(instance, copy, format)
        return MOLT_OK
    } catch {
        writeMessage(error.cMessage, to: messageOut)
        return error.cStatus
    }
}
