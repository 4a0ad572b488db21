/*
 * broken_lock: "broken-lock" 1.0.0 (ABI 1.1), the faulty plugin of `molt plugin verify`'s refusal tests.
 * With its declared defaults it is a correct lock (fixture_lock.c's table, state format 1, apply_config,
 * MOLT_PLUGIN_HOLDS_STATE) and passes every check; each key below breaks exactly one rule of the contract,
 * so a test names the check that must fail:
 *   unlockAnyOwner=true   an unlock by any owner releases the lock (Dapr: LOCK_BELONGS_TO_OTHERS, lock kept)
 *   importMode=refuse     import_state refuses every export (an instance's own export included)
 *   importMode=lose       import_state answers OK and imports nothing: held locks vanish on a reload
 *   leakKiB=N             init allocates and touches N KiB (0..65536) that destroy never frees
 *   hangUnlock=true       unlock never calls done (the call is held until the process exits)
 *   verbosity=0..9        does nothing; declared applies_in_place, so apply_config applies a change of it
 * A malformed value fails init (MOLT_ERR_INVALID_ARGUMENT) or apply_config (MOLT_APPLY_ERROR), naming it.
 * Ownership: the instance owns its table; leaked blocks are owned by nobody, on purpose.
 */
#define _POSIX_C_SOURCE 200809L

#include "fixture_lock.h"

#include <stdlib.h>
#include <string.h>

static const molt_plugin_identity bl_info = {
    .struct_size = sizeof(molt_plugin_identity),
    .name = "broken-lock",
    .version = "1.0.0",
    .kind = MOLT_KIND_LOCK,
    .description = "test fixture: a lock that breaks one rule per config key (molt plugin verify)",
    .state_format_min = 1,
    .state_format_max = 1,
    .flags = MOLT_PLUGIN_HOLDS_STATE,
};

MOLT_DEFINE_ABI_VERSION()
FX_DEFINE_PLUGIN_INFO(bl_info)

static const molt_config_key bl_keys[] = {
    {"hangUnlock", "true: unlock never calls done", "false", false, false, NULL},
    {"importMode", "keep, refuse (import_state refuses) or lose (imports nothing)", "keep", false, false, NULL},
    {"leakKiB", "KiB init allocates and never frees", "0", false, false, NULL},
    {"unlockAnyOwner", "true: any owner's unlock releases a lock", "false", false, false, NULL},
    {"verbosity", "0..9, does nothing (the key apply_config changes in place)", "0", false, true, NULL},
};

MOLT_EXPORT const molt_config_key *molt_plugin_config_keys(uint32_t *count_out) {
    *count_out = (uint32_t)(sizeof bl_keys / sizeof bl_keys[0]);
    return bl_keys;
}

/* The last leaked block: stored so that the compiler cannot drop the allocation (the others are lost). */
static void *volatile bl_leaked;

typedef enum { BL_IMPORT_KEEP, BL_IMPORT_REFUSE, BL_IMPORT_LOSE } bl_import_mode;

typedef struct {
    fx_table table;
    bool unlock_any_owner;
    bool hang_unlock;
    bl_import_mode import_mode;
} bl_instance;

/* Parses the keys this plugin reads; on a bad value writes `message` and returns false. */
static bool bl_parse(const molt_config *config, bl_instance *out, long *leak_kib, molt_message *message) {
    const char *unlock = molt_config_get(config, "unlockAnyOwner");
    const char *hang = molt_config_get(config, "hangUnlock");
    const char *mode = molt_config_get(config, "importMode");
    const char *leak = molt_config_get(config, "leakKiB");
    const char *verbosity = molt_config_get(config, "verbosity");
    char line[160];
    if (unlock != NULL && strcmp(unlock, "true") != 0 && strcmp(unlock, "false") != 0) {
        snprintf(line, sizeof line, "broken-lock: unlockAnyOwner '%s' is not true or false", unlock);
        molt_message_set(message, line);
        return false;
    }
    out->unlock_any_owner = unlock != NULL && strcmp(unlock, "true") == 0;
    if (hang != NULL && strcmp(hang, "true") != 0 && strcmp(hang, "false") != 0) {
        snprintf(line, sizeof line, "broken-lock: hangUnlock '%s' is not true or false", hang);
        molt_message_set(message, line);
        return false;
    }
    out->hang_unlock = hang != NULL && strcmp(hang, "true") == 0;
    if (mode == NULL || strcmp(mode, "keep") == 0) {
        out->import_mode = BL_IMPORT_KEEP;
    } else if (strcmp(mode, "refuse") == 0) {
        out->import_mode = BL_IMPORT_REFUSE;
    } else if (strcmp(mode, "lose") == 0) {
        out->import_mode = BL_IMPORT_LOSE;
    } else {
        snprintf(line, sizeof line, "broken-lock: importMode '%s' is not keep, refuse or lose", mode);
        molt_message_set(message, line);
        return false;
    }
    char *end = NULL;
    *leak_kib = leak == NULL ? 0 : strtol(leak, &end, 10);
    if (leak != NULL && (*end != '\0' || *leak_kib < 0 || *leak_kib > 65536)) {
        snprintf(line, sizeof line, "broken-lock: leakKiB '%s' is not 0..65536", leak);
        molt_message_set(message, line);
        return false;
    }
    if (verbosity != NULL && (strlen(verbosity) != 1 || verbosity[0] < '0' || verbosity[0] > '9')) {
        snprintf(line, sizeof line, "broken-lock: verbosity '%s' is not 0..9", verbosity);
        molt_message_set(message, line);
        return false;
    }
    return true;
}

MOLT_EXPORT molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host,
                                         molt_instance *instance_out, molt_message *error_out) {
    (void)host;
    bl_instance parsed;
    long leak_kib = 0;
    if (!bl_parse(config, &parsed, &leak_kib, error_out)) return MOLT_ERR_INVALID_ARGUMENT;
    if (leak_kib > 0) {
        char *leaked = malloc((size_t)leak_kib * 1024);
        if (leaked != NULL) memset(leaked, 0x5a, (size_t)leak_kib * 1024); /* touched: counted in RSS; never freed */
        bl_leaked = leaked;
    }
    bl_instance *instance = malloc(sizeof *instance);
    if (instance == NULL || fx_table_init(&instance->table) != 0) {
        free(instance);
        molt_message_set(error_out, "broken-lock: cannot allocate the lock table");
        return MOLT_ERR_INTERNAL;
    }
    instance->unlock_any_owner = parsed.unlock_any_owner;
    instance->hang_unlock = parsed.hang_unlock;
    instance->import_mode = parsed.import_mode;
    *instance_out = instance;
    return MOLT_OK;
}

MOLT_EXPORT molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
    (void)instance;
    (void)message_out;
    return MOLT_READY;
}

MOLT_EXPORT void molt_plugin_destroy(molt_instance instance) {
    bl_instance *self = instance;
    fx_table_destroy(&self->table);
    free(self);
}

/* Only verbosity applies in place (the host reloads for any other change), and it does nothing. */
MOLT_EXPORT molt_apply_outcome molt_plugin_apply_config(molt_instance instance, const molt_config *config,
                                                        molt_message *message_out) {
    bl_instance parsed;
    long leak_kib = 0;
    if (!bl_parse(config, &parsed, &leak_kib, message_out)) return MOLT_APPLY_ERROR;
    bl_instance *self = instance;
    if (parsed.unlock_any_owner != self->unlock_any_owner || parsed.hang_unlock != self->hang_unlock ||
        parsed.import_mode != self->import_mode) {
        molt_message_set(message_out, "broken-lock: only verbosity applies in place");
        return MOLT_NEEDS_RELOAD;
    }
    return MOLT_APPLIED;
}

MOLT_EXPORT void molt_lock_try_lock(molt_instance instance, const molt_lock_request *request, molt_try_lock_done done,
                                    void *call_context) {
    molt_try_lock_result result;
    fx_try_lock(&((bl_instance *)instance)->table, request, &result);
    done(call_context, &result);
}

MOLT_EXPORT void molt_lock_unlock(molt_instance instance, const molt_lock_request *request, molt_unlock_done done,
                                  void *call_context) {
    bl_instance *self = instance;
    if (self->hang_unlock) return; /* the fault: done is never called */
    molt_unlock_result result;
    fx_unlock(&self->table, request, &result);
    if (self->unlock_any_owner && result.status == MOLT_OK && result.unlock_status == MOLT_UNLOCK_LOCK_BELONGS_TO_OTHERS) {
        /* The fault: release it in its owner's name. */
        char *owner = NULL;
        pthread_mutex_lock(&self->table.mu);
        for (size_t i = 0; i < self->table.count && owner == NULL; i++) {
            if (strcmp(self->table.slots[i].resource, request->resource_id) == 0) owner = strdup(self->table.slots[i].owner);
        }
        pthread_mutex_unlock(&self->table.mu);
        if (owner != NULL) {
            molt_lock_request as_owner = *request;
            as_owner.lock_owner = owner;
            fx_unlock(&self->table, &as_owner, &result);
            free(owner);
        }
    }
    done(call_context, &result);
}

MOLT_EXPORT molt_status molt_plugin_export_state(molt_instance instance, uint32_t format, molt_bytes_sink sink,
                                                 void *sink_context, molt_message *message_out) {
    if (format != 1) {
        molt_message_set(message_out, "broken-lock: only state format 1");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    return fx_export(&((bl_instance *)instance)->table, sink, sink_context, message_out);
}

MOLT_EXPORT molt_status molt_plugin_import_state(molt_instance instance, uint32_t format, const void *bytes, size_t length,
                                                 molt_message *message_out) {
    bl_instance *self = instance;
    if (format != 1) {
        molt_message_set(message_out, "broken-lock: only state format 1");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    switch (self->import_mode) {
    case BL_IMPORT_REFUSE:
        molt_message_set(message_out, "broken-lock: import refused (importMode=refuse)");
        return MOLT_ERR_INTERNAL;
    case BL_IMPORT_LOSE:
        return MOLT_OK; /* the fault: accepted, and nothing imported */
    case BL_IMPORT_KEEP:
        break;
    }
    return fx_import(&self->table, bytes, length, message_out);
}
