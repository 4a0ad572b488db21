// molt_state_transact, for state stores that apply several writes atomically. A separate module so
// that only plugins that really have transactions export the symbol (capability = presence).
public import PluginABI
public import PluginKit
public import PluginKitState

/// One write of a transaction.
public enum StateOperation: Sendable, Equatable {
    case set(SetRequest)
    case delete(DeleteRequest)
}

public struct TransactRequest: Sendable, Equatable {
    public var operations: [StateOperation]
    public var metadata: [String: String]
    public init(operations: [StateOperation], metadata: [String: String] = [:]) {
        self.operations = operations
        self.metadata = metadata
    }
}

/// A state store that applies all operations of a transaction atomically, or none of them (then
/// fail with the reason).
public protocol TransactionalStateComponent: StateComponent {
    func transact(_ request: TransactRequest, reply: WriteReply)
}

private struct TransactDriver: Sendable {
    let transact: @Sendable (UnsafeMutableRawPointer, TransactRequest, WriteReply) -> Void
    init<T: TransactionalStateComponent>(_: T.Type) {
        transact = { component(at: $0, as: T.self).transact($1, reply: $2) }
    }
}

private let driver: TransactDriver? =
    (Registration.shared.componentType as? any TransactionalStateComponent.Type).map { TransactDriver($0) }

private let transactRequestEnd = ABILayout.end(of: \molt_state_transact_request.metadata)

extension TransactRequest {
    init(_ request: UnsafePointer<molt_state_transact_request>?) throws(PluginError) {
        guard let request, Int(request.pointee.struct_size) >= transactRequestEnd else {
            throw .invalidArgument("transact request is NULL or too small (struct_size)")
        }
        let r = request.pointee
        var operations: [StateOperation] = []
        if r.operation_count > 0 {
            guard let list = r.operations else { throw .invalidArgument("transact request without operations") }
            operations.reserveCapacity(Int(r.operation_count))
            for i in 0..<Int(r.operation_count) {
                let op = list[i]
                switch op.type {
                case MOLT_STATE_OPERATION_SET: operations.append(.set(try SetRequest(op.set_request)))
                case MOLT_STATE_OPERATION_DELETE: operations.append(.delete(try DeleteRequest(op.delete_request)))
                default: throw .unsupported("transaction operation \(i) has unknown type \(op.type)")
                }
            }
        }
        self.init(operations: operations, metadata: swiftDictionary(r.metadata, count: r.metadata_count))
    }
}

/// molt_state_transact. Public, or release builds drop it.
@_cdecl("molt_state_transact")
public func _moltStateTransact(
    _ instance: molt_instance?, _ request: UnsafePointer<molt_state_transact_request>?,
    _ done: molt_state_write_done?, _ callContext: UnsafeMutableRawPointer?
) {
    guard let done else { return }
    let reply = WriteReply(done: unsafeBitCast(done, to: UnsafeRawPointer.self), context: callContext, deliver: deliverWrite)
    guard let instance, let driver else {
        reply.fail(.unsupported("molt_state_transact: this plugin's component has no transactions"))
        return
    }
    do throws(PluginError) { driver.transact(instance, try TransactRequest(request), reply) } catch { reply.fail(error) }
}
