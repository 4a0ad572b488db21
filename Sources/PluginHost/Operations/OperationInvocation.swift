import Dispatch
import PluginABI

/// Calls of declared operations (ABI 1.2) on an instance.
///
/// Threads: an operation without MOLT_OPERATION_BLOCKING runs inline on the caller's thread (usually the
/// event loop that read the app's request; the header requires it to return quickly). A blocking one runs
/// on a thread of libdispatch's overcommitting pool (a serial queue of its own, as `PluginSteps` does),
/// never on the cooperative pool or an event loop; the caller is suspended until it returns or until the
/// deadline, whichever comes first. Past the deadline the caller gets `deadlineExceeded` and the call is
/// detached: the worker keeps the instance (and its binary) alive until the function returns, and the
/// deadline's owner (the engine's lease) hears when it does, as for any call a plugin holds.
extension PluginInstance {
    /// Calls `operation` with named `arguments`; returns the named results.
    public func invoke(operation name: String, arguments: [String: OperationValue],
                       deadline: CallDeadline? = nil) async throws(OperationCallError) -> [String: OperationValue] {
        guard let prepared = binary.symbols.operations[name] else {
            let known = binary.info.operations.map(\.name)
            throw .invalidRequest("\(binary.info.id) has no operation '\(name)' (operations: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
        }
        let ordered = try prepared.declaration.orderedArguments(arguments)
        guard prepared.declaration.blocking else {
            return try prepared.call(instanceHandle, ordered).mapError(OperationCallError.plugin).get()
        }
        let outcome = await PendingCall<[String: OperationValue]>.run("a blocking operation", deadline: deadline) { _, context in
            let call = UInt(bitPattern: context)  // the PendingCall's retained reference, released by `finish`
            DispatchQueue(label: "molt.operation.\(name)").async {
                // `self` is captured: the instance, and the binary whose code runs, outlive the function.
                let outcome = prepared.call(self.instanceHandle, ordered)
                PendingCall.finish(UnsafeMutableRawPointer(bitPattern: call), outcome)
            }
        }
        return try outcome.mapError(OperationCallError.plugin).get()
    }
}
