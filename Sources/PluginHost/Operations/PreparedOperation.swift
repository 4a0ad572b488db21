import CFFI
import PluginABI

/// One declared operation ready to call: its declaration, its function, and, for the C form, the libffi
/// call interface prepared once at load (so a call parses nothing and costs one `ffi_call`).
///
/// The C form's arguments, per molt_plugin.h: the instance (pointer); per parameter int64_t, double,
/// bool (uint8), const char * (pointer) or const uint8_t *, size_t; per result one out-pointer (bytes:
/// two, `uint8_t **` and `size_t *`); the `molt_message *`. It returns molt_status (int32).
final class PreparedOperation: @unchecked Sendable {
    // @unchecked: every property is set in init and never written again. `cif` and the type array it
    // points to are read-only after ffi_prep_cif (ffi_call only reads them, from any number of threads at
    // once) and freed by deinit, when no call can be running: calls hold the instance, which holds the
    // binary, which holds this.
    let declaration: OperationDeclaration
    /// The exported function (dlsym), valid while the binary that prepared this is mapped.
    let function: UnsafeMutableRawPointer
    /// The call interface of the C form; nil for the values form, which is called directly.
    let cif: UnsafeMutablePointer<ffi_cif>?
    private let argumentTypes: UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>?
    /// C form: the function's argument count (each bytes parameter or result counts twice).
    let cArgumentCount: Int
    /// 8-byte slots the results take (a bytes result takes two: its pointer and its length).
    let resultSlotCount: Int

    /// nil when libffi refuses the interface (it never should for the closed set of types).
    init?(_ declaration: OperationDeclaration, function: UnsafeMutableRawPointer) {
        self.declaration = declaration
        self.function = function
        resultSlotCount = declaration.results.reduce(0) { $0 + $1.type.cArity }
        guard !declaration.valuesForm else {
            (cif, argumentTypes, cArgumentCount) = (nil, nil, 4)
            return
        }
        var types: [UnsafeMutablePointer<ffi_type>?] = [molt_ffi_type_pointer()]
        for parameter in declaration.parameters {
            switch parameter.type {
            case .int64: types.append(molt_ffi_type_sint64())
            case .double: types.append(molt_ffi_type_double())
            case .bool: types.append(molt_ffi_type_uint8())
            case .string: types.append(molt_ffi_type_pointer())
            case .bytes: types += [molt_ffi_type_pointer(), molt_ffi_type_size()]
            }
        }
        types += Array(repeating: molt_ffi_type_pointer(), count: resultSlotCount)  // one out-pointer per slot
        types.append(molt_ffi_type_pointer())  // molt_message *
        let argumentTypes = UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>.allocate(capacity: types.count)
        argumentTypes.initialize(from: types, count: types.count)
        let cif = UnsafeMutablePointer<ffi_cif>.allocate(capacity: 1)
        cif.initialize(to: ffi_cif())
        guard molt_ffi_prep_cif(cif, UInt32(types.count), molt_ffi_type_sint32(), argumentTypes) == FFI_OK else {
            argumentTypes.deallocate()
            cif.deallocate()
            return nil
        }
        (self.cif, self.argumentTypes, cArgumentCount) = (cif, argumentTypes, types.count)
    }

    deinit {
        cif?.deallocate()
        argumentTypes?.deallocate()
    }
}

/// The values form's function (MOLT_OPERATION_VALUES): instance, parameters, results, message.
typealias ValuesFormFunction = @convention(c) (
    molt_instance?, UnsafePointer<molt_value>?, UnsafeMutablePointer<molt_value>?, UnsafeMutablePointer<molt_message>?
) -> molt_status
