/* Compile-time checks that the ABI's layout is what the header promises on this platform.
 * (SwiftPM also needs one source file to build the header-only PluginABI target.) */
#include "molt_plugin.h"

_Static_assert(sizeof(molt_status) == 4, "status codes are 32-bit");
_Static_assert(offsetof(molt_config, struct_size) == 0, "struct_size comes first");
_Static_assert(offsetof(molt_plugin_identity, struct_size) == 0, "struct_size comes first");
_Static_assert(offsetof(molt_host_services, struct_size) == 0, "struct_size comes first");
_Static_assert(offsetof(molt_lock_request, struct_size) == 0, "struct_size comes first");
_Static_assert(offsetof(molt_state_set_request, struct_size) == 0, "struct_size comes first");
_Static_assert(MOLT_HOST_SERVICES_SIZE_1_1 == sizeof(molt_host_services), "ABI 1.1 host services end with timer_cancel");
_Static_assert(MOLT_HOST_SERVICES_SIZE_1_0 < MOLT_HOST_SERVICES_SIZE_1_1, "1.1 services come after log");
_Static_assert(MOLT_PLUGIN_IDENTITY_SIZE_1_1 <= sizeof(molt_plugin_identity) && sizeof(molt_plugin_identity) - MOLT_PLUGIN_IDENTITY_SIZE_1_1 < 8, "ABI 1.1 identity ends with flags (then tail padding)");
_Static_assert(MOLT_PLUGIN_IDENTITY_SIZE_1_0 == offsetof(molt_plugin_identity, flags), "1.1 flags come right after state_format_max");
_Static_assert(sizeof(void *) == 8, "molt supports 64-bit platforms only");
