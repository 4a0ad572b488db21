/*
 * basic: small lock plugins the host's loader must refuse (or, for dup-a/dup-b, load once only).
 * One source; exactly one FIX_* macro picks the variant (see fixture.mk):
 *   FIX_MISSING_READINESS  valid lock plugin without molt_plugin_readiness
 *   FIX_HIDDEN_READINESS   valid lock plugin whose molt_plugin_readiness is defined in hidden_readiness.c,
 *                          a file that does not include molt_plugin.h, so -fvisibility=hidden hides it
 *                          (present in .symtab, absent from the dynamic symbols)
 *   FIX_LOG_FORMAT         a correct lock whose init logs through molt_log: one formatted line, one too long
 *                          (truncated, ending in "..."), and none through a NULL host or a host whose
 *                          struct_size lacks `log`
 *   FIX_MISSING_UNLOCK     kind "lock" without molt_lock_unlock
 *   FIX_ABI_MAJOR_2        molt_abi_version reports 2.0
 *   FIX_ABI_MINOR_99       molt_abi_version reports 1.99
 *   FIX_ABI_1_0            molt_abi_version reports 1.0: a correct plugin built for ABI 1.0, which
 *                          ABI 1.1 hosts must load and serve (it reads only the 1.0 host services); it
 *                          declares one key, "level" (default "1", not in place), and an apply_config
 *                          that applies anything, so tests can show the host treats its declarations as
 *                          ABI 1.0 hosts did (any key accepted, no default filled, apply_config tried)
 *   FIX_UNKNOWN_KIND       info.kind = "queue"
 *   FIX_BAD_VERSION        info.version = "one.two"
 *   FIX_DUP_A, FIX_DUP_B   both "dupe" 1.0.0, valid, different bytes (different descriptions)
 *   FIX_HOLDS_STATE_1_0, FIX_HOLDS_STATE_1_1
 *                          "holds-state" 1.0.0 and 1.1.0: correct locks that declare MOLT_PLUGIN_HOLDS_STATE
 *                          without state transfer, so the host refuses to reload or swap them unless the
 *                          apply accepts the state loss
 * FIX_ABI_1_0 also sets MOLT_PLUGIN_HOLDS_STATE in flags, beyond its (ABI 1.0) struct_size: the host must
 * not read it, so it is never refused for state it would lose.
 * Everything else is a correct lock (fixture_lock.c), so each file is wrong in exactly one way.
 */
#define _POSIX_C_SOURCE 200809L

#include "fixture_lock.h"

#include <stdlib.h>

#if defined(FIX_MISSING_READINESS)
#define FX_NAME "missing-readiness"
#elif defined(FIX_HIDDEN_READINESS)
#define FX_NAME "hidden-readiness"
#elif defined(FIX_LOG_FORMAT)
#define FX_NAME "log-format"
#elif defined(FIX_MISSING_UNLOCK)
#define FX_NAME "missing-unlock"
#elif defined(FIX_ABI_MAJOR_2)
#define FX_NAME "abi-major-2"
#define FX_ABI_MAJOR 2u
#define FX_ABI_MINOR 0u
#elif defined(FIX_ABI_MINOR_99)
#define FX_NAME "abi-minor-99"
#define FX_ABI_MAJOR 1u
#define FX_ABI_MINOR 99u
#elif defined(FIX_ABI_1_0)
#define FX_NAME "abi-1-0"
#define FX_ABI_MAJOR 1u
#define FX_ABI_MINOR 0u
#elif defined(FIX_UNKNOWN_KIND)
#define FX_NAME "unknown-kind"
#define FX_KIND "queue"
#elif defined(FIX_BAD_VERSION)
#define FX_NAME "bad-version"
#define FX_VERSION "one.two"
#elif defined(FIX_DUP_A)
#define FX_NAME "dupe"
#define FX_DESCRIPTION "dupe 1.0.0, build A"
#elif defined(FIX_DUP_B)
#define FX_NAME "dupe"
#define FX_DESCRIPTION "dupe 1.0.0, build B (same name and version as A, different bytes)"
#elif defined(FIX_HOLDS_STATE_1_0)
#define FX_NAME "holds-state"
#define FX_HOLDS_STATE
#elif defined(FIX_HOLDS_STATE_1_1)
#define FX_NAME "holds-state"
#define FX_VERSION "1.1.0"
#define FX_HOLDS_STATE
#else
#error "define one FIX_* variant (see fixture.mk)"
#endif

#ifndef FX_VERSION
#define FX_VERSION "1.0.0"
#endif
#ifndef FX_KIND
#define FX_KIND MOLT_KIND_LOCK
#endif
#ifndef FX_DESCRIPTION
#define FX_DESCRIPTION "test fixture " FX_NAME
#endif

static const molt_plugin_identity fx_info = {
#ifdef FIX_ABI_1_0
    .struct_size = MOLT_PLUGIN_IDENTITY_SIZE_1_0, /* as built against the 1.0 header: no flags */
    .flags = MOLT_PLUGIN_HOLDS_STATE,             /* beyond struct_size: never read */
#else
    .struct_size = sizeof(molt_plugin_identity),
#endif
#ifdef FX_HOLDS_STATE
    .flags = MOLT_PLUGIN_HOLDS_STATE,
#endif
    .name = FX_NAME,
    .version = FX_VERSION,
    .kind = FX_KIND,
    .description = FX_DESCRIPTION,
};

#ifdef FX_ABI_MAJOR
MOLT_EXPORT void molt_abi_version(uint32_t *major_out, uint32_t *minor_out) {
    *major_out = FX_ABI_MAJOR;
    *minor_out = FX_ABI_MINOR;
}
#else
MOLT_DEFINE_ABI_VERSION()
#endif

FX_DEFINE_PLUGIN_INFO(fx_info)

#ifdef FIX_ABI_1_0
static const molt_config_key fx_keys[] = {
    {"level", "a setting declared as not applying in place", "1", false, false, NULL},
};

MOLT_EXPORT const molt_config_key *molt_plugin_config_keys(uint32_t *count_out) {
    *count_out = (uint32_t)(sizeof fx_keys / sizeof fx_keys[0]);
    return fx_keys;
}

MOLT_EXPORT molt_apply_outcome molt_plugin_apply_config(molt_instance instance, const molt_config *config,
                                                        molt_message *message_out) {
    (void)instance;
    (void)config;
    (void)message_out;
    return MOLT_APPLIED;
}
#endif

MOLT_EXPORT molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host,
                                         molt_instance *instance_out, molt_message *error_out) {
    (void)config;
    (void)host;
#ifdef FIX_LOG_FORMAT
    molt_log(host, MOLT_LOG_WARNING, "log-format: component %s, %u keys, %s", config->component_name,
             (unsigned)config->entry_count, "formatted");
    molt_log(host, MOLT_LOG_INFO, "log-format: long %0*d", 3000, 7);
    molt_log(NULL, MOLT_LOG_ERROR, "log-format: never logged (%s)", "NULL host");
    molt_host_services old = *host;
    old.struct_size = (uint32_t)offsetof(molt_host_services, log); /* a host without `log` */
    molt_log(&old, MOLT_LOG_ERROR, "log-format: never logged (%s)", "no log service");
#endif
    fx_table *table = malloc(sizeof *table);
    if (table == NULL || fx_table_init(table) != 0) {
        free(table);
        molt_message_set(error_out, FX_NAME ": cannot allocate the lock table");
        return MOLT_ERR_INTERNAL;
    }
    *instance_out = table;
    return MOLT_OK;
}

#if !defined(FIX_MISSING_READINESS) && !defined(FIX_HIDDEN_READINESS)
MOLT_EXPORT molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
    (void)instance;
    (void)message_out;
    return MOLT_READY;
}
#endif

MOLT_EXPORT void molt_plugin_destroy(molt_instance instance) {
    fx_table_destroy(instance);
    free(instance);
}

MOLT_EXPORT void molt_lock_try_lock(molt_instance instance, const molt_lock_request *request, molt_try_lock_done done,
                                    void *call_context) {
    molt_try_lock_result result;
    fx_try_lock(instance, request, &result);
    done(call_context, &result);
}

#ifndef FIX_MISSING_UNLOCK
MOLT_EXPORT void molt_lock_unlock(molt_instance instance, const molt_lock_request *request, molt_unlock_done done,
                                  void *call_context) {
    molt_unlock_result result;
    fx_unlock(instance, request, &result);
    done(call_context, &result);
}
#endif
