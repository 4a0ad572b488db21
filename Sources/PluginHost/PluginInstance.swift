import Glibc
import Logging
import PluginABI
import Synchronization

public enum Readiness: Equatable, Sendable {
    case ready
    case notReady(String)
    case failed(String)
}

public enum ApplyOutcome: Equatable, Sendable {
    case applied
    case needsReload(String)
    case rejected(String)
}

public enum UnlockStatus: Int32, Sendable {
    case success = 0, lockDoesNotExist = 1, lockBelongsToOthers = 2, internalError = 3
}

/// One live instance of a plugin. Holds its binary, so the code it runs stays mapped until the
/// instance is gone.
///
/// The caller (the engine) guarantees the ABI's rules: operations may run concurrently;
/// `exportState`, `importState` and `destroy` run with no operation in flight; nothing is called
/// after `destroy`.
public final class PluginInstance: @unchecked Sendable {
    // @unchecked: `handle` and `hostServices` are written once in init and freed once, in
    // `destroy` (guarded by the atomic `destroyed`); everything else is immutable.
    public let binary: PluginBinary
    public let componentName: String
    private let handle: molt_instance
    private let hostServices: UnsafeMutablePointer<molt_host_services>
    private let destroyed = Atomic<Bool>(false)

    /// Creates an instance: `init` with the full (already normalized) config.
    public init(binary: PluginBinary, componentName: String, config: [String: String], logger: Logger) throws(PluginError) {
        self.binary = binary
        self.componentName = componentName
        var pluginLogger = logger
        pluginLogger[metadataKey: "component"] = "\(componentName)"
        pluginLogger[metadataKey: "plugin"] = "\(binary.info.id)"
        let services = UnsafeMutablePointer<molt_host_services>.allocate(capacity: 1)
        services.initialize(to: HostServicesContext.services(logger: pluginLogger, io: .shared))
        var instance: molt_instance?
        let (status, message) = withMessageBuffer { buffer in
            withCConfig(config, componentName: componentName) { binary.symbols.initialize($0, services, &instance, buffer) }
        }
        guard status == MOLT_OK, let instance else {
            Self.release(services)
            let reason = status == MOLT_OK ? "init returned OK without an instance" : message
            throw PluginError(code: status == MOLT_OK ? MOLT_ERR_INTERNAL : status, message: reason)
        }
        self.handle = instance
        self.hostServices = services
    }

    deinit {
        // An instance dropped without destroy() is still stopped: no operation can be in flight,
        // since each one keeps the instance alive until it completes.
        destroy()
    }

    /// Routes the plugin's `changed` reports (ABI 1.3) to `handler` (nil: drops them). The handler runs on
    /// the plugin's thread: it must only note the change and return.
    public func onChange(_ handler: (@Sendable (String?) -> Void)?) {
        guard !destroyed.load(ordering: .acquiring), let context = hostServices.pointee.host_context else { return }
        Unmanaged<HostServicesContext>.fromOpaque(context).takeUnretainedValue().changeHandler.withLock { $0 = handler }
    }

    public func readiness() -> Readiness {
        let (state, message) = withMessageBuffer { binary.symbols.readiness(handle, $0) }
        switch state {
        case MOLT_READY: return .ready
        case MOLT_NOT_READY: return .notReady(message)
        case MOLT_FAILED: return .failed(message.isEmpty ? "readiness FAILED" : message)
        default: return .failed("readiness returned unknown value \(state)")
        }
    }

    /// nil when the plugin has no apply_config (every change reloads).
    public func applyConfig(_ config: [String: String]) -> ApplyOutcome? {
        guard let apply = binary.symbols.applyConfig else { return nil }
        let (outcome, message) = withMessageBuffer { buffer in
            withCConfig(config, componentName: componentName) { apply(handle, $0, buffer) }
        }
        switch outcome {
        case MOLT_APPLIED: return .applied
        case MOLT_NEEDS_RELOAD: return .needsReload(message)
        default: return .rejected(message.isEmpty ? "apply_config refused the config" : message)
        }
    }

    /// Exports state in `format`; at most `limit` bytes.
    public func exportState(format: UInt32, limit: Int = 1 << 30) throws(PluginError) -> [UInt8] {
        guard let export = binary.symbols.exportState else {
            throw PluginError(.unsupported, "\(binary.info.id) does not export state")
        }
        let sink = ByteSink(limit: limit)
        let (status, message) = withMessageBuffer { buffer in
            export(handle, format, { context, bytes, length in
                let sink = Unmanaged<ByteSink>.fromOpaque(context!).takeUnretainedValue()
                guard length <= sink.limit - sink.bytes.count else { sink.overflowed = true; return 1 }
                if length > 0, let bytes { sink.bytes.append(contentsOf: UnsafeRawBufferPointer(start: bytes, count: length)) }
                return 0
            }, Unmanaged.passUnretained(sink).toOpaque(), buffer)
        }
        if sink.overflowed {
            throw PluginError(.internal, "exported state exceeds the \(limit)-byte limit")
        }
        guard status == MOLT_OK else { throw PluginError(code: status, message: message) }
        return withExtendedLifetime(sink) { sink.bytes }
    }

    public func importState(_ bytes: [UInt8], format: UInt32) throws(PluginError) {
        guard let importState = binary.symbols.importState else {
            throw PluginError(.unsupported, "\(binary.info.id) does not import state")
        }
        let (status, message) = withMessageBuffer { buffer in
            bytes.withUnsafeBytes { importState(handle, format, $0.baseAddress, $0.count, buffer) }
        }
        guard status == MOLT_OK else { throw PluginError(code: status, message: message.isEmpty ? "import_state refused" : message) }
    }

    /// Calls the plugin's destroy (once; later calls do nothing).
    public func destroy() {
        guard !destroyed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        binary.symbols.destroy(handle)
        Self.release(hostServices)
    }

    private static func release(_ services: UnsafeMutablePointer<molt_host_services>) {
        Unmanaged<HostServicesContext>.fromOpaque(services.pointee.host_context).release()
        services.deinitialize(count: 1)
        services.deallocate()
    }

    // MARK: - Lock operations

    public func tryLock(resource: String, owner: String, expiryInSeconds: Int32, deadline: CallDeadline? = nil) async throws(PluginError) -> Bool {
        guard let tryLock = binary.symbols.tryLock else { throw Self.unsupported("try_lock", binary) }
        return try await PendingCall<Bool>.run("try_lock", deadline: deadline) { call, context in
            let arena = call.arena
            let request = arena.value(molt_lock_request(
                struct_size: UInt32(MemoryLayout<molt_lock_request>.size), resource_id: arena.string(resource),
                lock_owner: arena.string(owner), expiry_in_seconds: expiryInSeconds))
            tryLock(handle, request, { context, result in
                let outcome: Result<Bool, PluginError> = if let result, result.pointee.status == MOLT_OK {
                    .success(result.pointee.acquired)
                } else {
                    .failure(failure(result?.pointee.status ?? MOLT_ERR_INTERNAL, result?.pointee.message, operation: "try_lock"))
                }
                PendingCall.finish(context, outcome)
            }, context)
        }.get()
    }

    public func unlock(resource: String, owner: String, deadline: CallDeadline? = nil) async throws(PluginError) -> UnlockStatus {
        guard let unlock = binary.symbols.unlock else { throw Self.unsupported("unlock", binary) }
        return try await PendingCall<UnlockStatus>.run("unlock", deadline: deadline) { call, context in
            let arena = call.arena
            let request = arena.value(molt_lock_request(
                struct_size: UInt32(MemoryLayout<molt_lock_request>.size), resource_id: arena.string(resource),
                lock_owner: arena.string(owner), expiry_in_seconds: 0))
            unlock(handle, request, { context, result in
                let outcome: Result<UnlockStatus, PluginError> = if let result, result.pointee.status == MOLT_OK {
                    .success(UnlockStatus(rawValue: result.pointee.unlock_status) ?? .internalError)
                } else {
                    .failure(failure(result?.pointee.status ?? MOLT_ERR_INTERNAL, result?.pointee.message, operation: "unlock"))
                }
                PendingCall.finish(context, outcome)
            }, context)
        }.get()
    }

    static func unsupported(_ operation: String, _ binary: PluginBinary) -> PluginError {
        PluginError(.unsupported, "\(binary.info.id) (kind \(binary.info.kind.rawValue)) has no \(operation)")
    }

    /// The raw instance handle, for the state operations in this module.
    var instanceHandle: molt_instance { handle }
}

/// Receives exported state; used only during one export call on one thread.
private final class ByteSink {
    let limit: Int
    var bytes: [UInt8] = []
    var overflowed = false
    init(limit: Int) { self.limit = limit }
}

