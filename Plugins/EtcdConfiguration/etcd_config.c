/*
 * etcd-config: a configuration store (kind "configuration", ABI 1.3) whose items are the etcd keys under
 * a prefix, served from an in-memory cache that an etcd Watch keeps current. Plain C against
 * molt_plugin.h; etcd's v3 JSON gateway over HTTP/1.1 with libcurl, JSON with jansson.
 *
 * Configuration keys (settings.c for the details; none applies in place: a change starts a new instance)
 *   endpoints    required: etcd client URLs, host:port, comma-separated, tried in turn
 *   keyPrefix    default "": items are the keys under it, named without it
 *   dialTimeout  default "5s": bounds connecting, and init's first Range
 *
 * Lifecycle: init reads every key under the prefix (a Range, within dialTimeout, trying each endpoint)
 * and fails, naming the endpoints and their errors, when none answers; the instance is READY from then
 * on. A thread (watch_stream.c) then watches the prefix from the next revision and reports each changed
 * key to the host (`changed`). destroy stops the watch and joins the thread.
 *
 * Operation, inline (done is called before it returns; it never waits for etcd):
 *   get(keys)   the cached items asked for, a missing key left out; no keys: every item, sorted by name.
 *               version: the key's etcd mod_revision in decimal. Request metadata is ignored.
 *
 * Threads: get holds table_lock for reading while it answers (done included: the strings it hands out are
 * the cache's); the watcher takes it for writing per batch of events. The lock prefers writers, so a
 * steady stream of reads cannot hold back an update.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include "etcd_config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const molt_plugin_identity ec_info = {
    .struct_size = sizeof(molt_plugin_identity),
    .name = EC_NAME,
    .version = "1.0.0",
    .kind = MOLT_KIND_CONFIGURATION,
    .description = "Configuration items from etcd keys under a prefix, cached and kept current by an etcd watch",
    .state_format_min = 0,
    .state_format_max = 0,
    .flags = 0, /* etcd holds the items; a new instance reads them again */
};

/* Sorted bytewise, as the host sorts a config. */
static const molt_config_key ec_keys[] = {
    {"dialTimeout", "bounds connecting to etcd and init's first read: a duration such as 5s or 500ms, or seconds",
     "5s", false, false, NULL},
    {"endpoints", "etcd client URLs as host:port (or http://host:port), comma-separated, tried in turn", NULL, true,
     false, NULL},
    {"keyPrefix", "the items are the etcd keys starting with it, named without it", "", false, false, NULL},
};

MOLT_DEFINE_ABI_VERSION()

MOLT_EXPORT const molt_plugin_identity *molt_plugin_info(void) { return &ec_info; }

MOLT_EXPORT const molt_config_key *molt_plugin_config_keys(uint32_t *count_out) {
    *count_out = (uint32_t)(sizeof ec_keys / sizeof ec_keys[0]);
    return ec_keys;
}

void ec_report_change(const ec_instance *in, const char *name) {
    const molt_host_services *host = in->host;
    if (host != NULL && host->struct_size >= MOLT_HOST_SERVICES_SIZE_1_3 && host->changed != NULL)
        host->changed(host->host_context, name);
}

static void ec_message(molt_message *message, const char *why) {
    if (message != NULL && message->text != NULL && message->capacity > 0)
        snprintf(message->text, message->capacity, EC_NAME ": %s", why);
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------- */
static bool ec_lock_init(pthread_rwlock_t *lock) {
    pthread_rwlockattr_t attributes;
    if (pthread_rwlockattr_init(&attributes) != 0) return false;
    pthread_rwlockattr_setkind_np(&attributes, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    bool ok = pthread_rwlock_init(lock, &attributes) == 0;
    pthread_rwlockattr_destroy(&attributes);
    return ok;
}

MOLT_EXPORT molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host,
                                         molt_instance *instance_out, molt_message *error_out) {
    char why[3072];
    ec_instance *in = calloc(1, sizeof *in);
    if (in == NULL) {
        molt_message_set(error_out, EC_NAME ": out of memory");
        return MOLT_ERR_INTERNAL;
    }
    in->host = host;
    molt_status status = MOLT_ERR_INVALID_ARGUMENT;
    bool settings = false, lock = false, http = false;
    if (!(settings = ec_settings_parse(config, &in->settings, why, sizeof why))) goto fail;
    status = MOLT_ERR_INTERNAL;
    if (!(lock = ec_lock_init(&in->table_lock))) {
        snprintf(why, sizeof why, "cannot initialize a rwlock");
        goto fail;
    }
    if (!(http = ec_http_open(in, why, sizeof why))) goto fail;
    char range_why[2048];
    ec_http_outcome outcome = ec_range(in, &in->endpoint, in->settings.dial_timeout_ms, &in->table, &in->revision,
                                       range_why, sizeof range_why);
    if (outcome != EC_HTTP_DONE) {
        snprintf(why, sizeof why, "cannot read keyPrefix \"%s\" from etcd at %s within dialTimeout %s: %s",
                 in->settings.prefix, in->settings.endpoints_text, in->settings.dial_timeout_text, range_why);
        status = MOLT_ERR_UNAVAILABLE;
        goto fail;
    }
    /* Logged before the thread starts: from then on endpoint and revision are the thread's alone. */
    molt_log(host, MOLT_LOG_INFO, EC_NAME ": read %zu items under keyPrefix \"%s\" from %s at revision %" PRId64
             "; watching for changes", in->table.count, in->settings.prefix, in->settings.endpoints[in->endpoint],
             in->revision);
    if (!ec_watcher_start(in, why, sizeof why)) goto fail;
    *instance_out = in;
    return MOLT_OK;

fail:
    ec_message(error_out, why);
    ec_table_clear(&in->table);
    if (http) ec_http_close(in);
    if (lock) pthread_rwlock_destroy(&in->table_lock);
    if (settings) ec_settings_free(&in->settings);
    free(in);
    return status;
}

MOLT_EXPORT molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
    (void)instance;
    (void)message_out;
    return MOLT_READY; /* init returned with the first Range in the cache; etcd outages serve the cache */
}

MOLT_EXPORT void molt_plugin_destroy(molt_instance instance) {
    ec_instance *in = instance;
    if (in == NULL) return;
    ec_watcher_stop(in);
    ec_http_close(in);
    ec_table_clear(&in->table);
    pthread_rwlock_destroy(&in->table_lock);
    ec_settings_free(&in->settings);
    free(in);
}

/* ---------------------------------------------------------------------------------------------
 * Operation
 * ------------------------------------------------------------------------------------------- */
static void ec_fail(molt_configuration_done done, void *call_context, molt_status status, const char *message) {
    molt_configuration_result r = {sizeof r, status, message, 0, NULL};
    done(call_context, &r);
}

static molt_configuration_item ec_item_of(const ec_item *item) {
    return (molt_configuration_item){item->name, item->value, item->version, 0, NULL};
}

MOLT_EXPORT void molt_configuration_get(molt_instance instance, const molt_configuration_request *request,
                                        molt_configuration_done done, void *call_context) {
    if (request == NULL || request->struct_size < offsetof(molt_configuration_request, keys) + sizeof(void *) ||
        (request->key_count > 0 && request->keys == NULL)) {
        ec_fail(done, call_context, MOLT_ERR_INVALID_ARGUMENT, EC_NAME ": malformed configuration request");
        return;
    }
    ec_instance *in = instance;
    molt_configuration_item stack_items[32];
    molt_configuration_item *items = stack_items;
    uint8_t *answered = NULL; /* per table index: already in the answer (a key asked for twice) */
    pthread_rwlock_rdlock(&in->table_lock);
    const ec_table *table = &in->table;
    size_t room = request->key_count == 0 ? table->count : request->key_count;
    if (room > sizeof stack_items / sizeof stack_items[0]) items = malloc(room * sizeof *items);
    if (request->key_count > 1) answered = calloc(table->count + 1, 1);
    if (items == NULL || (request->key_count > 1 && answered == NULL)) {
        ec_fail(done, call_context, MOLT_ERR_INTERNAL, EC_NAME ": out of memory");
    } else {
        uint32_t count = 0;
        if (request->key_count == 0) {
            for (size_t i = 0; i < table->count; i++) items[count++] = ec_item_of(&table->items[i]);
        }
        for (uint32_t k = 0; k < request->key_count; k++) {
            ptrdiff_t found = request->keys[k] ? ec_table_find(table, request->keys[k]) : -1;
            if (found < 0 || (answered != NULL && answered[found])) continue;
            if (answered != NULL) answered[found] = 1;
            items[count++] = ec_item_of(&table->items[found]);
        }
        molt_configuration_result r = {sizeof r, MOLT_OK, NULL, count, items};
        done(call_context, &r);
    }
    pthread_rwlock_unlock(&in->table_lock);
    if (items != stack_items) free(items);
    free(answered);
}
