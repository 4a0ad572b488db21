import PluginHost

/// Step 1 of the apply pipeline for declared operations (ABI 1.2): apps call a component's operations by
/// name and signature, so a swap to a plugin that removes one or changes its parameters or results breaks
/// them. Such a swap is refused at plan, before anything starts, unless the apply accepts it. Added
/// operations, and changes apps cannot see (description, symbol, blocking, the values form), are fine.
extension Engine {
    /// Each operation `old` declares that `new` lacks or declares with another signature, in `old`'s order:
    /// "name(…) -> (…) removed" or "name(…) -> (…) changed to name(…) -> (…)".
    static func operationChanges(from old: PluginInfo, to new: PluginInfo) -> [String] {
        old.operations.compactMap { before in
            guard let after = new.operation(named: before.name) else { return "\(before.signature) removed" }
            return after.signature == before.signature ? nil : "\(before.signature) changed to \(after.signature)"
        }
    }

    /// Refuses (`operationsWouldChange`) a swap of `key` from `old` to `new` that would break the apps calling
    /// its operations, unless `accept`; then returns the warning the result carries (nil: nothing changes).
    static func checkOperations(of key: ComponentKey, from old: PluginBinary, to new: PluginBinary,
                                accept: Bool) throws(StepFailure) -> String? {
        guard old.sha256 != new.sha256 else { return nil }
        let changes = operationChanges(from: old.info, to: new.info)
        guard !changes.isEmpty else { return nil }
        let listed = changes.joined(separator: "; ")
        if accept { return "operations of \(key) changed by \(old.info.id) -> \(new.info.id) (accepted): \(listed)" }
        throw StepFailure(.operationsWouldChange, "swapping \(key) from \(old.info.id) to \(new.info.id) would break apps calling its "
            + "operations: \(listed); apply with accept_operation_changes (molt apply --accept-operation-changes) to swap anyway")
    }
}
