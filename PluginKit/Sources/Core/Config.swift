package import PluginABI

/// The full configuration of a component (never a delta), copied out of the host's `molt_config`,
/// so it may be kept and used from any thread. Keys are unique; deprecated aliases declared in
/// `configKeys` have already been renamed by the host.
public struct Config: Sendable, Equatable {
    /// The component's name, e.g. "statestore"; for your logs.
    public var componentName: String
    /// Every key/value pair.
    public var values: [String: String]

    public init(componentName: String = "", values: [String: String] = [:]) {
        self.componentName = componentName
        self.values = values
    }

    /// The value for `key`, or nil when absent.
    public subscript(key: String) -> String? { values[key] }

    /// The value for `key`, or `defaultValue` when absent.
    public func string(_ key: String, default defaultValue: String) -> String { values[key] ?? defaultValue }

    /// The value for `key`; throws INVALID_ARGUMENT naming the key when it is absent or empty.
    public func require(_ key: String) throws(PluginError) -> String {
        guard let value = values[key], !value.isEmpty else {
            throw .invalidArgument("configuration key '\(key)' is required")
        }
        return value
    }

    /// The value for `key` as an integer in `range` (or `defaultValue` when absent); throws
    /// INVALID_ARGUMENT naming the key and the value when it is not one.
    public func integer(
        _ key: String, default defaultValue: Int, in range: ClosedRange<Int> = Int.min...Int.max
    ) throws(PluginError) -> Int {
        guard let text = values[key] else { return defaultValue }
        guard let value = Int(text), range.contains(value) else {
            throw .invalidArgument(
                "configuration key '\(key)': '\(text)' is not an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    /// The value for `key` as a boolean ("true"/"false", "1"/"0", "yes"/"no"), or `defaultValue`.
    public func bool(_ key: String, default defaultValue: Bool) throws(PluginError) -> Bool {
        guard let text = values[key] else { return defaultValue }
        switch text.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw .invalidArgument("configuration key '\(key)': '\(text)' is not a boolean")
        }
    }
}

extension Config {
    /// Copies a host-owned `molt_config` (borrowed for the call); NULL gives an empty config.
    package init(_ config: UnsafePointer<molt_config>?) {
        self.init()
        guard let config else { return }
        let c = config.pointee
        if let entries = c.entries {
            values.reserveCapacity(Int(c.entry_count))
            for i in 0..<Int(c.entry_count) {
                let kv = entries[i]
                guard let key = kv.key else { continue }
                values[String(cString: key)] = kv.value.map { String(cString: $0) } ?? ""
            }
        }
        if ABILayout.configHasComponentName(c.struct_size), let name = c.component_name {
            componentName = String(cString: name)
        }
    }
}
