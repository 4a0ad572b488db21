import PluginABI

/// One item of a configuration store (Dapr's ConfigurationItem).
public struct ConfigurationItem: Sendable, Equatable {
    public var key: String
    public var value: String
    /// "" when the store keeps no versions.
    public var version: String
    public var metadata: [String: String]

    public init(key: String, value: String, version: String = "", metadata: [String: String] = [:]) {
        (self.key, self.value, self.version, self.metadata) = (key, value, version, metadata)
    }
}

/// The limit on what a configuration store answers (README, "Limits"): a larger answer is refused, the app
/// gets an error naming the limit, and the store keeps serving.
public enum ConfigurationLimits {
    /// Bytes of an answer's keys, values, versions and metadata together.
    public static let answerBytes = 16 << 20
}

extension PluginInstance {
    /// The items of `keys` that exist, by key (every item when `keys` is empty).
    public func configuration(keys: [String], metadata: [String: String] = [:], deadline: CallDeadline? = nil) async throws(PluginError) -> [String: ConfigurationItem] {
        guard let get = binary.symbols.configurationGet else { throw Self.unsupported("configuration get", binary) }
        let handle = instanceHandle
        let items = try await PendingCall<[String: ConfigurationItem]>.run("configuration get", deadline: deadline) { call, context in
            let arena = call.arena
            let (pairs, count) = arena.keyValues(metadata)
            let keyArray = arena.array(keys.map { Optional(arena.string($0)) })
            let request = arena.value(molt_configuration_request(
                struct_size: UInt32(MemoryLayout<molt_configuration_request>.size), key_count: UInt32(keys.count),
                keys: keyArray, metadata_count: count, metadata: pairs))
            get(handle, request, { context, result in PendingCall.finish(context, configurationOutcome(result)) }, context)
        }.get()
        if !keys.isEmpty, let stranger = items.keys.sorted().first(where: { !keys.contains($0) }) {
            throw PluginError(.internal, "\(binary.info.id) answered configuration item '\(stranger)', which was not asked for")
        }
        return items
    }
}

/// Copies a configuration result out of the plugin's memory (inside `done`), refusing one over the limit,
/// an item without a key or value, and a key answered twice.
private func configurationOutcome(_ result: UnsafePointer<molt_configuration_result>?) -> Result<[String: ConfigurationItem], PluginError> {
    let operation = "configuration get"
    guard let result, result.pointee.status == MOLT_OK else {
        return .failure(failure(result?.pointee.status ?? MOLT_ERR_INTERNAL, result?.pointee.message, operation: operation))
    }
    let count = Int(result.pointee.item_count)
    guard count == 0 || result.pointee.items != nil else { return .failure(PluginError(.internal, "\(operation): \(count) items at a NULL array")) }
    var items: [String: ConfigurationItem] = [:]
    var bytes = 0
    for index in 0..<count {
        let raw = result.pointee.items[index]
        guard let key = copiedString(raw.key), !key.isEmpty, let value = copiedString(raw.value) else {
            return .failure(PluginError(.internal, "\(operation): item #\(index) has no key or a NULL value"))
        }
        let item = ConfigurationItem(key: key, value: value, version: copiedString(raw.version) ?? "",
                                     metadata: copiedKeyValues(raw.metadata, raw.metadata_count))
        bytes += key.utf8.count + value.utf8.count + item.version.utf8.count + item.metadata.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        guard bytes <= ConfigurationLimits.answerBytes else {
            return .failure(PluginError(.invalidArgument, "\(operation): the answer exceeds molt's limit of \(ConfigurationLimits.answerBytes) bytes"))
        }
        guard items.updateValue(item, forKey: key) == nil else {
            return .failure(PluginError(.internal, "\(operation): item '\(key)' answered twice"))
        }
    }
    return .success(items)
}
