/* Compile-time checks that the ABI's layout is what the header promises on this platform.
 * (SwiftPM also needs one source file to build the header-only PluginABI target.) */
#include "molt_plugin.h"

_Static_assert(sizeof(molt_status) == 4, "status codes are 32-bit");
_Static_assert(offsetof(molt_config, struct_size) == 0, "struct_size comes first");
_Static_assert(offsetof(molt_plugin_identity, struct_size) == 0, "struct_size comes first");
_Static_assert(offsetof(molt_host_services, struct_size) == 0, "struct_size comes first");
_Static_assert(offsetof(molt_lock_request, struct_size) == 0, "struct_size comes first");
_Static_assert(offsetof(molt_state_set_request, struct_size) == 0, "struct_size comes first");
_Static_assert(MOLT_HOST_SERVICES_SIZE_1_3 == sizeof(molt_host_services), "ABI 1.3 host services end with changed");
_Static_assert(MOLT_HOST_SERVICES_SIZE_1_1 == offsetof(molt_host_services, changed), "1.3 services come right after timer_cancel");
_Static_assert(MOLT_HOST_SERVICES_SIZE_1_0 < MOLT_HOST_SERVICES_SIZE_1_1, "1.1 services come after log");
_Static_assert(MOLT_PLUGIN_IDENTITY_SIZE_1_1 <= sizeof(molt_plugin_identity) && sizeof(molt_plugin_identity) - MOLT_PLUGIN_IDENTITY_SIZE_1_1 < 8, "ABI 1.1 identity ends with flags (then tail padding)");
_Static_assert(MOLT_PLUGIN_IDENTITY_SIZE_1_0 == offsetof(molt_plugin_identity, flags), "1.1 flags come right after state_format_max");
_Static_assert(sizeof(void *) == 8, "molt supports 64-bit platforms only");
/* ABI 1.2 array elements, frozen for the major version. */
_Static_assert(sizeof(molt_operation_field) == 24, "molt_operation_field is frozen");
_Static_assert(sizeof(molt_operation) == 56, "molt_operation is frozen");
_Static_assert(sizeof(molt_value) == 24 && offsetof(molt_value, as) == 8, "molt_value is frozen");
/* ABI 1.3 array element. */
_Static_assert(sizeof(molt_secret) == 24, "molt_secret is frozen");
_Static_assert(sizeof(molt_configuration_item) == 40, "molt_configuration_item is frozen");

/* Every prototype has the type of the host's `_fn` typedef: the host and the plugin agree. */
#define MOLT_SAME_TYPE(function, typedef_name) \
    _Static_assert(__builtin_types_compatible_p(__typeof__(&function), typedef_name), #function " matches " #typedef_name)
MOLT_SAME_TYPE(molt_abi_version, molt_abi_version_fn);
MOLT_SAME_TYPE(molt_plugin_info, molt_plugin_info_fn);
MOLT_SAME_TYPE(molt_plugin_config_keys, molt_plugin_config_keys_fn);
MOLT_SAME_TYPE(molt_plugin_init, molt_plugin_init_fn);
MOLT_SAME_TYPE(molt_plugin_readiness, molt_plugin_readiness_fn);
MOLT_SAME_TYPE(molt_plugin_destroy, molt_plugin_destroy_fn);
MOLT_SAME_TYPE(molt_plugin_apply_config, molt_plugin_apply_config_fn);
MOLT_SAME_TYPE(molt_plugin_export_state, molt_plugin_export_state_fn);
MOLT_SAME_TYPE(molt_plugin_import_state, molt_plugin_import_state_fn);
MOLT_SAME_TYPE(molt_lock_try_lock, molt_lock_try_lock_fn);
MOLT_SAME_TYPE(molt_lock_unlock, molt_lock_unlock_fn);
MOLT_SAME_TYPE(molt_state_get, molt_state_get_fn);
MOLT_SAME_TYPE(molt_state_bulk_get, molt_state_bulk_get_fn);
MOLT_SAME_TYPE(molt_state_set, molt_state_set_fn);
MOLT_SAME_TYPE(molt_state_delete, molt_state_delete_fn);
MOLT_SAME_TYPE(molt_state_transact, molt_state_transact_fn);
MOLT_SAME_TYPE(molt_plugin_operations, molt_plugin_operations_fn);
MOLT_SAME_TYPE(molt_secret_get, molt_secret_get_fn);
MOLT_SAME_TYPE(molt_secret_bulk_get, molt_secret_bulk_get_fn);
MOLT_SAME_TYPE(molt_configuration_get, molt_configuration_get_fn);
MOLT_SAME_TYPE(molt_pubsub_publish, molt_pubsub_publish_fn);
MOLT_SAME_TYPE(molt_pubsub_subscribe, molt_pubsub_subscribe_fn);
MOLT_SAME_TYPE(molt_pubsub_ack, molt_pubsub_ack_fn);
MOLT_SAME_TYPE(molt_pubsub_unsubscribe, molt_pubsub_unsubscribe_fn);
