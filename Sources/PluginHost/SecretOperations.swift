import PluginABI

/// A secret: its values by name (a plain key/value secret has one, named as the secret).
public typealias SecretValues = [String: String]

/// The limits on what a secret store answers (README, "Limits"): larger answers are refused, the app
/// gets an error naming the limit, and the store keeps serving.
public enum SecretLimits {
    /// Bytes of one secret's names and values together.
    public static let secretBytes = 1 << 20
    /// Bytes of a bulk answer's names and values together.
    public static let bulkBytes = 16 << 20
}

extension PluginInstance {
    /// The secret `key`'s values. A missing secret fails with `notFound`.
    public func secret(key: String, metadata: [String: String] = [:], deadline: CallDeadline? = nil) async throws(PluginError) -> SecretValues {
        guard let get = binary.symbols.secretGet else { throw Self.unsupported("secret get", binary) }
        let handle = instanceHandle
        let secrets = try await PendingCall<[String: SecretValues]>.run("secret get", deadline: deadline) { call, context in
            let arena = call.arena
            let (pairs, count) = arena.keyValues(metadata)
            let request = arena.value(molt_secret_request(
                struct_size: UInt32(MemoryLayout<molt_secret_request>.size), key: arena.string(key),
                metadata_count: count, metadata: pairs))
            get(handle, request, { context, result in
                PendingCall.finish(context, secretsOutcome(result, operation: "secret get", limit: SecretLimits.secretBytes))
            }, context)
        }.get()
        guard secrets.count == 1, let values = secrets[key] else {
            throw PluginError(.internal, "\(binary.info.id) answered a get of secret '\(key)' with \(secrets.count == 1 ? "another secret" : "\(secrets.count) secrets")")
        }
        return values
    }

    /// Every secret the store holds, by name.
    public func bulkSecrets(metadata: [String: String] = [:], deadline: CallDeadline? = nil) async throws(PluginError) -> [String: SecretValues] {
        guard let bulkGet = binary.symbols.secretBulkGet else { throw Self.unsupported("secret bulk get", binary) }
        let handle = instanceHandle
        return try await PendingCall<[String: SecretValues]>.run("secret bulk get", deadline: deadline) { call, context in
            let arena = call.arena
            let (pairs, count) = arena.keyValues(metadata)
            let request = arena.value(molt_secret_request(
                struct_size: UInt32(MemoryLayout<molt_secret_request>.size), key: nil,
                metadata_count: count, metadata: pairs))
            bulkGet(handle, request, { context, result in
                PendingCall.finish(context, secretsOutcome(result, operation: "secret bulk get", limit: SecretLimits.bulkBytes))
            }, context)
        }.get()
    }
}

/// Copies a secret result out of the plugin's memory (inside `done`), refusing one over `limit` bytes,
/// a secret without a name or values, and names given twice. Messages never carry values.
private func secretsOutcome(_ result: UnsafePointer<molt_secret_result>?, operation: String, limit: Int) -> Result<[String: SecretValues], PluginError> {
    guard let result, result.pointee.status == MOLT_OK else {
        return .failure(failure(result?.pointee.status ?? MOLT_ERR_INTERNAL, result?.pointee.message, operation: operation))
    }
    var secrets: [String: SecretValues] = [:]
    var bytes = 0
    let count = Int(result.pointee.secret_count)
    guard count == 0 || result.pointee.secrets != nil else { return .failure(PluginError(.internal, "\(operation): \(count) secrets at a NULL array")) }
    for index in 0..<count {
        let secret = result.pointee.secrets[index]
        guard let name = copiedString(secret.key), !name.isEmpty else { return .failure(PluginError(.internal, "\(operation): secret #\(index) has no name")) }
        guard secret.value_count > 0, let values = secret.values else {
            return .failure(PluginError(.internal, "\(operation): secret '\(name)' has no values"))
        }
        var copied: SecretValues = [:]
        for valueIndex in 0..<Int(secret.value_count) {
            let pair = values[valueIndex]
            guard let valueName = copiedString(pair.key), let value = copiedString(pair.value) else {
                return .failure(PluginError(.internal, "\(operation): secret '\(name)' has a value #\(valueIndex) with a NULL name or value"))
            }
            guard copied.updateValue(value, forKey: valueName) == nil else {
                return .failure(PluginError(.internal, "\(operation): secret '\(name)' names its value '\(valueName)' twice"))
            }
            bytes += valueName.utf8.count + value.utf8.count
        }
        bytes += name.utf8.count
        guard bytes <= limit else {
            return .failure(PluginError(.invalidArgument, "\(operation): the answer exceeds molt's limit of \(limit) bytes (secret '\(name)')"))
        }
        guard secrets.updateValue(copied, forKey: name) == nil else {
            return .failure(PluginError(.internal, "\(operation): secret '\(name)' answered twice"))
        }
    }
    return .success(secrets)
}
