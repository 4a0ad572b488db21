import PluginHost

/// Step 1 of the apply pipeline (`ApplyPipeline.swift`): what one definition needs. Unchanged, tried in
/// place, or a new generation; the binary resolved, the configuration normalized against the plugin's
/// declared keys, dropped and changed keys named, the state handoff decided (or refused when state would
/// be lost), a swap that would remove or change a declared operation refused (`OperationCompatibility.swift`).
/// Also what `check` (config check, dry runs) runs.
extension Engine {
    /// Step 1 for one definition: what it needs (also `check`, for config check and dry runs).
    /// `secrets`: the configuration given with every secret reference resolved (`resolveSecrets`); nil checks
    /// the definition with the references standing in for their values (`check`).
    func plan(_ definition: ComponentDefinition, secrets: ResolvedSecrets? = nil) throws -> Change {
        let slot = slots.withLock { $0[definition.key] }
        let old = slot?.activeCell.current
        var change = Change(result: ApplyResult(key: definition.key, action: .failed), definition: definition, slot: old == nil ? nil : slot, old: old)
        change.result.oldGeneration = old?.number
        change.result.oldPlugin = old?.pluginID
        let binary: PluginBinary
        let resolveWarning: String?
        do {
            (binary, resolveWarning) = try resolveBinary(definition, current: old)
        } catch {
            throw StepFailure(.invalidDefinition, "\(error)")
        }
        change.result.newPlugin = binary.info.id
        change.resolved = binary
        let hostKeys = Self.hostKeys(definition.key.kind)
        do throws(ConfigProblem) {
            let given = givenConfig(definition, old: old)
            if let secrets { change.references = secrets.references } else { change.references = try SecretReference.references(in: given) }
            change.normalized = try binary.normalize(config: secrets?.config ?? given, hostKeys: hostKeys)
            change.result.warnings = change.normalized.warnings + (resolveWarning.map { [$0] } ?? [])
        } catch {
            throw StepFailure(.invalidDefinition, "\(error)", keys: error.keys)
        }
        if let old {
            // Dropped: given before, not now (a declared default may take its place); changed: any other key
            // whose running value changes.
            let (running, given) = (old.config, old.explicitConfig)
            change.result.droppedKeys = given.keys.filter { change.normalized.explicit[$0] == nil }.sorted()
            change.result.changedKeys = running.keys.filter {
                given[$0] == nil || change.normalized.explicit[$0] != nil
            }.filter { change.config[$0] != nil && change.config[$0] != running[$0] }.sorted()
            if !change.result.droppedKeys.isEmpty {
                change.result.warnings.append("keys of the running configuration dropped: \(change.result.droppedKeys.joined(separator: ", "))")
            }
        }
        if let old, binary.sha256 == old.binary.sha256, change.config == old.config, definition.pin == old.pin {
            change.result.action = .unchanged
            change.result.newGeneration = old.number
            return change
        }
        change.binary = binary
        if let old, binary.info.id == old.binary.info.id, binary.sha256 != old.binary.sha256 {
            change.result.warnings.append("a new build of \(binary.info.id): sha256 \(old.binary.sha256.prefix(16)) -> \(binary.sha256.prefix(16))")
        }
        if let old { change.blockingKey = binary.keyBlockingInPlace(from: old.config, to: change.config, hostKeys: hostKeys) }
        if let old, let warning = try Self.checkOperations(of: definition.key, from: old.binary, to: binary,
                                                           accept: definition.acceptOperationChanges) {
            change.result.warnings.append(warning)
        }
        if let old {
            do {
                change.handoffFormat = try Self.handoffFormat(of: definition.key, from: old.binary, to: binary,
                                                              acceptStateLoss: definition.acceptStateLoss)
            } catch {
                // A change the running instance may apply in place loses nothing: refused only if it reloads.
                let mayApplyInPlace = binary.sha256 == old.binary.sha256 && definition.pin == old.pin && change.blockingKey == nil
                    && old.binary.symbols.applyConfig != nil
                guard mayApplyInPlace else { throw error }
                change.reloadRefusal = error
            }
            if change.handoffFormat == nil, change.reloadRefusal == nil, old.binary.info.holdsState || old.binary.info.stateFormats != nil {
                change.result.warnings.append("the in-memory state of \(old.pluginID) is dropped if it reloads (accept_state_loss)")
            }
        }
        return change
    }
}
