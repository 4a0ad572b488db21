import Synchronization

/// The one-shot completion of an operation: call `succeed(_:)` or `fail(_:)` exactly once, from
/// any thread, either before your operation method returns (in-memory work) or later from your own
/// thread (I/O: never block the calling thread). Only the first completion counts; later ones are
/// ignored and return false. If the last reference to a reply is dropped without a completion, the
/// host is told INTERNAL ("the plugin dropped the operation"), so a call never hangs.
///
/// Everything the request held was copied into Swift values before your method was called, so
/// nothing needs to stay alive for the host; results are copied for the host by PluginKit.
public final class Reply<Value: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: `done` and `context` are the host's opaque completion function and token,
    // which the ABI lets any thread use, exactly once; `completed` (atomic) guarantees the once.
    // `deliver` is a @Sendable function. Nothing else is stored.
    @usableFromInline
    package typealias Deliver = @Sendable (
        _ done: UnsafeRawPointer?, _ context: UnsafeMutableRawPointer?, _ result: Result<Value, PluginError>
    ) -> Void

    // Inlinable, so that each operation module gets code specialized for its result type.
    @usableFromInline let deliver: Deliver
    @usableFromInline let done: UnsafeRawPointer?
    @usableFromInline let context: UnsafeMutableRawPointer?
    @usableFromInline let completed = Atomic<Bool>(false)

    /// `deliver` marshals a result and calls the C `done` (erased to a raw pointer) with `context`.
    @inlinable
    package init(done: UnsafeRawPointer?, context: UnsafeMutableRawPointer?, deliver: @escaping Deliver) {
        self.deliver = deliver
        self.done = done
        self.context = context
    }

    /// A reply that hands its result to a Swift closure (default implementations built on other
    /// operations, and unit tests of components).
    public convenience init(_ handler: @escaping @Sendable (Result<Value, PluginError>) -> Void) {
        self.init(done: nil, context: nil, deliver: { _, _, result in handler(result) })
    }

    deinit {
        if !completed.load(ordering: .acquiring) {
            deliver(done, context, .failure(.internalError("the plugin dropped the operation without completing it")))
        }
    }

    /// Whether the operation has been completed already.
    @inlinable
    public var isCompleted: Bool { completed.load(ordering: .acquiring) }

    /// Completes the operation with `result`. Returns false (and does nothing) if it was already completed.
    @discardableResult
    @inlinable
    public func complete(_ result: Result<Value, PluginError>) -> Bool {
        guard !completed.exchange(true, ordering: .acquiringAndReleasing) else { return false }
        deliver(done, context, result)
        return true
    }

    /// Completes the operation successfully.
    @discardableResult
    @inlinable
    public func succeed(_ value: Value) -> Bool { complete(.success(value)) }

    /// Completes the operation with an error.
    @discardableResult
    @inlinable
    public func fail(_ error: PluginError) -> Bool { complete(.failure(error)) }

    /// Completes the operation with an error.
    @discardableResult
    @inlinable
    public func fail(_ code: ErrorCode, _ message: String) -> Bool { complete(.failure(PluginError(code, message))) }

    /// Convenience for async code: runs `operation` in a new unstructured Task and completes with
    /// its outcome. This costs a Task per call; the callback path above is the cheap one.
    public func complete(
        with operation: sending @escaping @isolated(any) () async throws(PluginError) -> Value
    ) {
        Task {
            do throws(PluginError) {
                self.succeed(try await operation())
            } catch {
                self.fail(error)
            }
        }
    }
}

extension Reply where Value == Void {
    /// Completes the operation successfully.
    @discardableResult
    @inlinable
    public func succeed() -> Bool { complete(.success(())) }
}
