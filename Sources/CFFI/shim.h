/* libffi for PluginHost. The inline helpers hand Swift the addresses of libffi's type descriptors
 * (C globals whose address Swift cannot keep portably) and hide FFI_DEFAULT_ABI and ffi_call's
 * function-pointer type. */
#ifndef MOLT_CFFI_SHIM_H
#define MOLT_CFFI_SHIM_H

#include <ffi.h>

static inline ffi_type *molt_ffi_type_sint32(void) { return &ffi_type_sint32; }
static inline ffi_type *molt_ffi_type_sint64(void) { return &ffi_type_sint64; }
static inline ffi_type *molt_ffi_type_uint8(void) { return &ffi_type_uint8; }
static inline ffi_type *molt_ffi_type_double(void) { return &ffi_type_double; }
static inline ffi_type *molt_ffi_type_pointer(void) { return &ffi_type_pointer; }
/* size_t: unsigned long on every Linux target molt builds for (LP64). */
static inline ffi_type *molt_ffi_type_size(void) { return &ffi_type_ulong; }

/* ffi_prep_cif with the platform's default calling convention. */
static inline ffi_status molt_ffi_prep_cif(ffi_cif *cif, unsigned int argument_count, ffi_type *return_type,
                                           ffi_type **argument_types) {
    return ffi_prep_cif(cif, FFI_DEFAULT_ABI, argument_count, return_type, argument_types);
}

/* Calls `function` as `cif` describes. `result` must hold at least sizeof(ffi_arg) bytes. */
static inline void molt_ffi_call(ffi_cif *cif, void *function, void *result, void **arguments) {
    ffi_call(cif, (void (*)(void))function, result, arguments);
}

#endif
