import CFFI
import Glibc
import PluginABI

/// One synchronous call of a prepared operation on the calling thread: arguments copied into C memory the
/// host owns for the call, the function called (libffi for the C form, directly for the values form),
/// results copied out and every plugin-allocated result freed with free(), whatever the outcome.
extension PreparedOperation {
    /// `arguments` are in parameter order, already checked (`orderedArguments`).
    func call(_ instance: molt_instance, _ arguments: [OperationValue]) -> Result<[String: OperationValue], PluginError> {
        // Strings (with their NUL) and bytes are copied into one payload buffer.
        let payloadSize = arguments.reduce(0) { size, value in
            switch value {
            case .string(let text): size + text.utf8.count + 1
            case .bytes(let bytes): size + bytes.count
            default: size
            }
        }
        return withUnsafeTemporaryAllocation(byteCount: max(payloadSize, 1), alignment: 8) { payload in
            var offset = 0
            /// Copies a string or bytes argument into the payload; the pointer the plugin gets.
            func copy(_ value: OperationValue) -> UnsafeRawPointer? {
                let start = payload.baseAddress! + offset
                switch value {
                case .string(let text):
                    let count = text.utf8.count
                    let copied = count == 0 || text.utf8.withContiguousStorageIfAvailable { utf8 in
                        start.copyMemory(from: utf8.baseAddress!, byteCount: count)
                    } != nil
                    if !copied {  // a bridged or otherwise non-contiguous string
                        for (index, byte) in text.utf8.enumerated() { start.storeBytes(of: byte, toByteOffset: index, as: UInt8.self) }
                    }
                    start.storeBytes(of: 0, toByteOffset: count, as: UInt8.self)
                    offset += count + 1
                case .bytes(let bytes):
                    guard !bytes.isEmpty else { return nil }
                    bytes.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                    offset += bytes.count
                default:
                    return nil
                }
                return UnsafeRawPointer(start)
            }
            let (result, message) = withMessageBuffer { message in
                declaration.valuesForm ? callValues(instance, arguments, message, copy) : callC(instance, arguments, message, copy)
            }
            // A failure without a message is the plugin's status: its message goes with it.
            return result.mapError { failure in
                failure.message.isEmpty ? PluginError(failure.status, message.isEmpty ? "operation \(declaration.name) failed" : message) : failure
            }
        }
    }

    private func callC(_ instance: molt_instance, _ arguments: [OperationValue], _ message: UnsafeMutablePointer<molt_message>,
                       _ copy: (OperationValue) -> UnsafeRawPointer?) -> Result<[String: OperationValue], PluginError> {
        let count = cArgumentCount
        return withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: count) { pointers in
            // One 8-byte slot per C argument (libffi reads each argument from the slot its pointer names),
            // then the result slots the out-pointers point to, zeroed.
            withUnsafeTemporaryAllocation(byteCount: (count + resultSlotCount) * 8, alignment: 8) { slots in
                let base = slots.baseAddress!
                let results = base + count * 8
                results.initializeMemory(as: UInt64.self, repeating: 0, count: resultSlotCount)
                var index = 0
                func put<T>(_ value: T) {
                    base.storeBytes(of: value, toByteOffset: index * 8, as: T.self)
                    pointers[index] = base + index * 8
                    index += 1
                }
                put(instance)
                for argument in arguments {
                    switch argument {
                    case .int64(let value): put(value)
                    case .double(let value): put(value)
                    case .bool(let value): put(UInt8(value ? 1 : 0))
                    case .string: put(copy(argument))
                    case .bytes(let bytes):
                        put(copy(argument))
                        put(UInt(bytes.count))
                    }
                }
                for slot in 0..<resultSlotCount { put(results + slot * 8) }
                put(message)
                var returned: ffi_arg = 0
                molt_ffi_call(cif, function, &returned, pointers.baseAddress)
                let status = molt_status(truncatingIfNeeded: returned)
                var slot = 0
                return collect(status: status) { type in
                    defer { slot += type.cArity }
                    let pointer = results.load(fromByteOffset: slot * 8, as: UnsafeMutableRawPointer?.self)
                    switch type {
                    case .int64: return .int64(results.load(fromByteOffset: slot * 8, as: Int64.self))
                    case .double: return .double(results.load(fromByteOffset: slot * 8, as: Double.self))
                    case .bool: return .bool(results.load(fromByteOffset: slot * 8, as: UInt8.self) != 0)
                    case .string: return .cString(pointer)
                    case .bytes: return .cBytes(pointer, Int(bitPattern: results.load(fromByteOffset: slot * 8 + 8, as: UInt.self)))
                    }
                }
            }
        }
    }

    private func callValues(_ instance: molt_instance, _ arguments: [OperationValue], _ message: UnsafeMutablePointer<molt_message>,
                            _ copy: (OperationValue) -> UnsafeRawPointer?) -> Result<[String: OperationValue], PluginError> {
        let parameterCount = max(arguments.count, 1), resultCount = max(declaration.results.count, 1)
        return withUnsafeTemporaryAllocation(of: molt_value.self, capacity: parameterCount) { parameters in
            withUnsafeTemporaryAllocation(of: molt_value.self, capacity: resultCount) { results in
                for (index, argument) in arguments.enumerated() {
                    var value = molt_value()
                    value.type = argument.type.abi
                    switch argument {
                    case .int64(let number): value.as.int64 = number
                    case .double(let number): value.as.float64 = number
                    case .bool(let flag): value.as.boolean = flag
                    case .string: value.as.string = copy(argument)?.assumingMemoryBound(to: CChar.self)
                    case .bytes(let bytes):
                        value.as.bytes = molt_bytes(data: copy(argument)?.assumingMemoryBound(to: UInt8.self), length: bytes.count)
                    }
                    (parameters.baseAddress! + index).initialize(to: value)
                }
                for (index, field) in declaration.results.enumerated() {
                    var value = molt_value()
                    value.type = field.type.abi
                    (results.baseAddress! + index).initialize(to: value)
                }
                let function = unsafeBitCast(function, to: ValuesFormFunction.self)
                let status = function(instance, parameters.baseAddress, results.baseAddress, message)
                var index = 0
                return collect(status: status) { type in
                    defer { index += 1 }
                    let value = results[index].as
                    switch type {
                    case .int64: return .int64(value.int64)
                    case .double: return .double(value.float64)
                    case .bool: return .bool(value.boolean)
                    case .string: return .cString(UnsafeMutableRawPointer(mutating: value.string))
                    case .bytes: return .cBytes(UnsafeMutableRawPointer(mutating: value.bytes.data), value.bytes.length)
                    }
                }
            }
        }
    }

    /// What one result slot held, before checking.
    private enum RawResult {
        case int64(Int64), double(Double), bool(Bool)
        /// Plugin-allocated (malloc): freed here.
        case cString(UnsafeMutableRawPointer?)
        case cBytes(UnsafeMutableRawPointer?, Int)
    }

    /// Reads every result (`read` is called once per result, in order), frees every plugin allocation,
    /// and checks the values when the status is OK. A non-OK status takes the plugin's message.
    private func collect(status: molt_status, _ read: (OperationType) -> RawResult) -> Result<[String: OperationValue], PluginError> {
        var values: [String: OperationValue] = [:]
        var problem: PluginError?
        func refuse(_ field: OperationField, _ why: String) {
            if problem == nil {
                // INVALID_ARGUMENT (gRPC) / 400 (HTTP), as issue 18 specifies for a NULL out-string: the app is told
                // which result of which operation was refused, and the host keeps serving.
                problem = PluginError(.invalidArgument, "operation \(declaration.name) returned an invalid result '\(field.name)' (\(field.type.rawValue)): \(why)")
            }
        }
        for field in declaration.results {
            switch read(field.type) {
            case .int64(let value): values[field.name] = .int64(value)
            case .bool(let value): values[field.name] = .bool(value)
            case .double(let value):
                if status == MOLT_OK && !value.isFinite { refuse(field, "\(value) (doubles must be finite)") }
                values[field.name] = .double(value)
            case .cString(let pointer):
                defer { free(pointer) }
                guard status == MOLT_OK else { continue }
                guard let pointer else { refuse(field, "NULL (a string result must be set)"); continue }
                let length = strlen(pointer.assumingMemoryBound(to: CChar.self))
                guard length <= OperationLimits.maxResultBytes else {
                    refuse(field, "\(length) bytes (a result is limited to \(OperationLimits.maxResultBytes))")
                    continue
                }
                let bytes = UnsafeBufferPointer(start: pointer.assumingMemoryBound(to: UInt8.self), count: length)
                guard let text = String(validating: bytes, as: UTF8.self) else { refuse(field, "not valid UTF-8"); continue }
                values[field.name] = .string(text)
            case .cBytes(let pointer, let length):
                defer { free(pointer) }
                guard status == MOLT_OK else { continue }
                guard length <= OperationLimits.maxResultBytes else {
                    refuse(field, "\(length) bytes (a result is limited to \(OperationLimits.maxResultBytes))")
                    continue
                }
                guard let pointer else {
                    if length != 0 { refuse(field, "NULL data with length \(length)") }
                    values[field.name] = .bytes([])
                    continue
                }
                values[field.name] = .bytes(Array(UnsafeRawBufferPointer(start: pointer, count: length)))
            }
        }
        guard status == MOLT_OK else { return .failure(PluginError(PluginStatus(status), "")) }  // `call` adds the message
        if let problem { return .failure(problem) }
        return .success(values)
    }
}
