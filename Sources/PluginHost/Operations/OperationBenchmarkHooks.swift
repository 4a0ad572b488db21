import CFFI
import PluginABI

/// Benchmark hook (molt-bench `operation-dispatch`), not for production use.
extension PluginInstance {
    /// Calls `operation`, which must have the C-form signature (int64, int64) -> (int64), `iterations` times
    /// each way on the caller's thread: through its prepared libffi call interface (`ffi_call` with arguments
    /// in 8-byte slots, as `invoke` makes the call) and directly through a C function pointer of that
    /// signature. Returns both total times; nil when the operation does not have that shape.
    public func _benchmarkOperationDispatch(_ operation: String, iterations: Int) -> (ffi: Duration, direct: Duration)? {
        guard let prepared = binary.symbols.operations[operation], let cif = prepared.cif,
              prepared.declaration.parameters.map(\.type) == [.int64, .int64], prepared.declaration.results.map(\.type) == [.int64]
        else { return nil }
        typealias Direct = @convention(c) (molt_instance?, Int64, Int64, UnsafeMutablePointer<Int64>?, UnsafeMutablePointer<molt_message>?) -> molt_status
        let direct = unsafeBitCast(prepared.function, to: Direct.self)
        let text = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        let message = UnsafeMutablePointer<molt_message>.allocate(capacity: 1)
        let sum = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        let slots = UnsafeMutableRawPointer.allocate(byteCount: 5 * 8, alignment: 8)
        let pointers = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: 5)
        defer { text.deallocate(); message.deallocate(); sum.deallocate(); slots.deallocate(); pointers.deallocate() }
        text.pointee = 0
        message.initialize(to: molt_message(text: text, capacity: 1))
        slots.storeBytes(of: instanceHandle, toByteOffset: 0, as: molt_instance.self)
        slots.storeBytes(of: Int64(1), toByteOffset: 8, as: Int64.self)
        slots.storeBytes(of: Int64(2), toByteOffset: 16, as: Int64.self)
        slots.storeBytes(of: sum, toByteOffset: 24, as: UnsafeMutablePointer<Int64>.self)
        slots.storeBytes(of: message, toByteOffset: 32, as: UnsafeMutablePointer<molt_message>.self)
        for index in 0..<5 { pointers[index] = slots + index * 8 }
        let clock = ContinuousClock()
        var returned: ffi_arg = 0
        let ffiStart = clock.now
        for _ in 0..<iterations { molt_ffi_call(cif, prepared.function, &returned, pointers) }
        let ffi = clock.now - ffiStart
        let instance = instanceHandle
        let directStart = clock.now
        for index in 0..<iterations { _ = direct(instance, Int64(truncatingIfNeeded: index & 1), 2, sum, message) }
        return (ffi, clock.now - directStart)
    }
}
