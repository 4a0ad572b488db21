import PluginHost

/// A configuration with its secret references resolved: what the plugin gets, and the references.
struct ResolvedSecrets: Sendable {
    let config: [String: String]
    let references: [String: SecretReference]
}

/// Secret references (`SecretReference`) in component configurations are resolved when a component is
/// applied: each value is read from its secret store through the store's running generation, like an
/// app's GetSecret. A store that is not configured yet is waited for (up to the readiness timeout, so
/// that a store and the components using it can arrive in any order at start); the apply then fails
/// naming the store and the secret. Values stay in memory: status, the journal and logs see references.
extension Engine {
    /// The configuration an apply of `definition` starts from: the one given, or the running one (with
    /// its references, never their values) when the apply keeps it. The defaults the host filled in
    /// are the running version's own, so they are not part of it.
    func givenConfig(_ definition: ComponentDefinition, old: Generation?) -> [String: String] {
        definition.keepsRunningConfig ? (old?.shownExplicitConfig ?? definition.config) : definition.config
    }

    /// Reads the value of every secret reference of `definition`'s configuration (none: the configuration as given).
    func resolveSecrets(of definition: ComponentDefinition) async throws(StepFailure) -> ResolvedSecrets {
        let old = slots.withLock { $0[definition.key] }?.activeCell.current
        let given = givenConfig(definition, old: old)
        let references: [String: SecretReference]
        do {
            references = try SecretReference.references(in: given)
        } catch {
            throw StepFailure(.invalidDefinition, error.description, keys: error.keys)
        }
        guard !references.isEmpty else { return ResolvedSecrets(config: given, references: [:]) }
        var config = given
        for (configKey, reference) in references.sorted(by: { $0.key < $1.key }) {
            config[configKey] = try await secretValue(reference, for: configKey, of: definition.key)
        }
        return ResolvedSecrets(config: config, references: references)
    }

    /// One reference's value. Never puts the value in a message.
    func secretValue(_ reference: SecretReference, for configKey: String, of key: ComponentKey) async throws(StepFailure) -> String {
        let what = "config key '\(configKey)' of \(key): secret '\(reference.name)' (value '\(reference.key)') from secret store '\(reference.store)'"
        if key.kind == .secretstore && reference.store == key.name {
            throw StepFailure(.invalidDefinition, "\(what): a secret store cannot read its own configuration from itself")
        }
        let storeKey = ComponentKey(kind: .secretstore, name: reference.store)
        let clock = ContinuousClock()
        let waitUntil = clock.now.advanced(by: settings.readinessTimeout)
        var announced = false
        while slots.withLock({ $0[storeKey] }) == nil {
            guard clock.now < waitUntil else {
                throw StepFailure(.rejected, "\(what): the secret store is not configured (waited \(settings.readinessTimeout))")
            }
            if !announced {
                logger.info("waiting for secret store", metadata: ["component": "\(key)", "secret_store": "\(reference.store)"])
                announced = true
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        let values: SecretValues
        do {
            values = try await getSecret(store: reference.store, key: reference.name).value
        } catch {
            switch error {
            case .plugin(let failure) where failure.status == .notFound:
                throw StepFailure(.rejected, "\(what): no such secret (\(failure.message))")
            default:
                throw StepFailure(.rejected, "\(what): \(error)")
            }
        }
        guard let value = values[reference.key] else {
            throw StepFailure(.rejected, "\(what): the secret has no value '\(reference.key)' (it has: \(values.keys.sorted().joined(separator: ", ")))")
        }
        return value
    }
}
