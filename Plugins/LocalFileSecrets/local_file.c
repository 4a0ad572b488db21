/*
 * local-file: Dapr's secretstores.local.file as a molt plugin (kind "secretstore", ABI 1.3). Plain C
 * against molt_plugin.h, JSON parsed with jansson; no Swift runtime, so the host can dlclose it.
 *
 * Configuration keys (Dapr's names; every one applies in place, through apply_config)
 *   secretsFile      required: the JSON file of secrets (secrets_file.c for what it may hold)
 *   nestedSeparator  default ":": joins nested keys into one name (secret_table.c for the flattening)
 *   multiValued      default "false": each top-level key is a secret with several values. Go's
 *                    strconv.ParseBool spellings (1, t, T, TRUE, true, True, 0, f, ...), as Dapr reads it.
 *
 * Operations, inline (done is called before they return, nothing blocks on I/O):
 *   get(key)   the secret, or MOLT_ERR_NOT_FOUND "secret \"key\" not found" (Dapr: "secret key not found")
 *   bulk_get   every secret, sorted by key
 *
 * The file is read by init and apply_config, and again by the watcher thread (file_watcher.c) whenever
 * it changes; a changed set of secrets is swapped in at once and reported to the host (`changed`, NULL:
 * "anything may have changed"), when the host offers it.
 *
 * Threads: an operation pins the current table under table_mu (O(1)), answers from it unlocked, and
 * unpins it; a swap never waits for readers, and the last pin of a replaced table frees it.
 */
#include "local_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const molt_plugin_identity lf_info = {
    .struct_size = sizeof(molt_plugin_identity),
    .name = LF_NAME,
    .version = "1.0.0",
    .kind = MOLT_KIND_SECRETSTORE,
    .description = "Secrets from a local JSON file (Dapr's secretstores.local.file), re-read when it changes",
    .state_format_min = 0,
    .state_format_max = 0,
    .flags = 0, /* the file holds the secrets; a new instance reads it again */
};

/* Sorted bytewise, as the host sorts a config. */
static const molt_config_key lf_keys[] = {
    {"multiValued", "true: each top-level key is a secret whose values are its nested entries", "false", false,
     true, NULL},
    {"nestedSeparator", "joins nested keys (and array indexes) into one secret name", ":", false, true, NULL},
    {"secretsFile", "path of the JSON file holding the secrets; re-read when it changes", NULL, true, true, NULL},
};

MOLT_DEFINE_ABI_VERSION()

MOLT_EXPORT const molt_plugin_identity *molt_plugin_info(void) { return &lf_info; }

MOLT_EXPORT const molt_config_key *molt_plugin_config_keys(uint32_t *count_out) {
    *count_out = (uint32_t)(sizeof lf_keys / sizeof lf_keys[0]);
    return lf_keys;
}

/* ---------------------------------------------------------------------------------------------
 * Settings and the current table
 * ------------------------------------------------------------------------------------------- */
void lf_settings_free(lf_settings *settings) {
    free(settings->path);
    free(settings->separator);
    *settings = (lf_settings){0};
}

static void lf_message(molt_message *message, const char *why) {
    if (message != NULL && message->text != NULL && message->capacity > 0)
        snprintf(message->text, message->capacity, LF_NAME ": %s", why);
}

/* Go's strconv.ParseBool, which Dapr's metadata decoding uses; empty is false. */
static bool lf_parse_bool(const char *text, bool *out) {
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"", "0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (strcmp(text, yes[i]) == 0) return *out = true;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (strcmp(text, no[i]) == 0) return !(*out = false);
    return false;
}

static bool lf_parse_settings(const molt_config *config, lf_settings *out, char *why, size_t why_size) {
    const char *path = molt_config_get(config, "secretsFile");
    const char *separator = molt_config_get(config, "nestedSeparator");
    const char *multi_valued = molt_config_get(config, "multiValued");
    bool multi = false;
    if (path == NULL || path[0] == '\0') {
        snprintf(why, why_size, "missing secretsFile: the path of the JSON file holding the secrets");
        return false;
    }
    if (multi_valued != NULL && !lf_parse_bool(multi_valued, &multi)) {
        snprintf(why, why_size, "multiValued is \"%s\"; expected true or false", multi_valued);
        return false;
    }
    *out = (lf_settings){strdup(path), strdup(separator && separator[0] ? separator : ":"), multi};
    if (out->path == NULL || out->separator == NULL) {
        lf_settings_free(out);
        snprintf(why, why_size, "out of memory");
        return false;
    }
    return true;
}

static lf_table *lf_pin(lf_instance *in) {
    pthread_mutex_lock(&in->table_mu);
    lf_table *table = in->current;
    table->pins++;
    pthread_mutex_unlock(&in->table_mu);
    return table;
}

static void lf_unpin(lf_instance *in, lf_table *table) {
    pthread_mutex_lock(&in->table_mu);
    bool last = --table->pins == 0;
    pthread_mutex_unlock(&in->table_mu);
    if (last) lf_table_free(table);
}

bool lf_publish(lf_instance *in, lf_table *table) {
    lf_table *old = lf_pin(in); /* only reload_mu holders replace it, so it stays current meanwhile */
    bool differs = !lf_table_equal(old, table);
    lf_unpin(in, old);
    if (!differs) {
        lf_table_free(table);
        return false;
    }
    pthread_mutex_lock(&in->table_mu);
    in->current = table;
    pthread_mutex_unlock(&in->table_mu);
    lf_unpin(in, old); /* the instance's pin */
    return true;
}

void lf_report_change(const lf_instance *in) {
    const molt_host_services *host = in->host;
    if (host != NULL && host->struct_size >= MOLT_HOST_SERVICES_SIZE_1_3 && host->changed != NULL)
        host->changed(host->host_context, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------- */
MOLT_EXPORT molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host,
                                         molt_instance *instance_out, molt_message *error_out) {
    char why[768];
    lf_instance *in = calloc(1, sizeof *in);
    if (in == NULL) {
        molt_message_set(error_out, LF_NAME ": out of memory");
        return MOLT_ERR_INTERNAL;
    }
    in->host = host;
    molt_status status = MOLT_ERR_INVALID_ARGUMENT;
    bool table_mu = false, reload_mu = false, watcher = false;
    if (!lf_parse_settings(config, &in->settings, why, sizeof why)) goto fail;
    status = MOLT_ERR_INTERNAL;
    if (!(table_mu = pthread_mutex_init(&in->table_mu, NULL) == 0) ||
        !(reload_mu = pthread_mutex_init(&in->reload_mu, NULL) == 0)) {
        snprintf(why, sizeof why, "cannot initialize a mutex");
        goto fail;
    }
    if (!(watcher = lf_watcher_open(in, why, sizeof why))) goto fail;
    /* Watch, then read: a change after the read is then an event for the thread, never lost. */
    lf_watch watch;
    char watch_why[768];
    bool watching = lf_watch_add(in, in->settings.path, &watch, watch_why, sizeof watch_why);
    if (!lf_load(&in->settings, &in->current, why, sizeof why)) {
        status = MOLT_ERR_INVALID_ARGUMENT;
        if (watching) lf_watch_drop(in, &watch);
        goto fail;
    }
    if (!watching) {
        snprintf(why, sizeof why, "%s", watch_why);
        goto fail;
    }
    lf_watch_commit(in, &watch);
    if (!lf_watcher_start(in, why, sizeof why)) goto fail;
    molt_log(host, MOLT_LOG_INFO, LF_NAME ": read %u secrets from %s", in->current->count, in->settings.path);
    *instance_out = in;
    return MOLT_OK;

fail:
    lf_message(error_out, why);
    if (watcher) lf_watcher_close(in);
    lf_table_free(in->current);
    if (reload_mu) pthread_mutex_destroy(&in->reload_mu);
    if (table_mu) pthread_mutex_destroy(&in->table_mu);
    lf_settings_free(&in->settings);
    free(in);
    return status;
}

MOLT_EXPORT molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
    (void)instance;
    (void)message_out;
    return MOLT_READY; /* the secrets were read by init */
}

MOLT_EXPORT void molt_plugin_destroy(molt_instance instance) {
    lf_instance *in = instance;
    if (in == NULL) return;
    lf_watcher_stop(in);
    lf_watcher_close(in);
    lf_table_free(in->current); /* every call completed: the instance's pin is the only one */
    pthread_mutex_destroy(&in->reload_mu);
    pthread_mutex_destroy(&in->table_mu);
    lf_settings_free(&in->settings);
    free(in);
}

/* Any key may change in place: the file is read with the new settings (and its directory watched
 * instead, when secretsFile moved) before anything changes; a refusal leaves the instance as it was. */
MOLT_EXPORT molt_apply_outcome molt_plugin_apply_config(molt_instance instance, const molt_config *config,
                                                        molt_message *message_out) {
    lf_instance *in = instance;
    lf_settings next = {0};
    lf_table *table = NULL;
    lf_watch watch = {.descriptor = -1};
    char why[768];
    bool changed = false;
    molt_apply_outcome outcome = MOLT_APPLY_ERROR;
    pthread_mutex_lock(&in->reload_mu);
    if (!lf_parse_settings(config, &next, why, sizeof why)) goto done;
    bool moved = strcmp(next.path, in->settings.path) != 0;
    if (moved && !lf_watch_add(in, next.path, &watch, why, sizeof why)) goto done;
    if (!lf_load(&next, &table, why, sizeof why)) {
        if (moved) lf_watch_drop(in, &watch);
        goto done;
    }
    if (moved) lf_watch_commit(in, &watch);
    lf_settings_free(&in->settings);
    in->settings = next;
    next = (lf_settings){0};
    changed = lf_publish(in, table);
    outcome = MOLT_APPLIED;
done:
    pthread_mutex_unlock(&in->reload_mu);
    lf_settings_free(&next);
    if (outcome != MOLT_APPLIED) lf_message(message_out, why);
    if (changed) lf_report_change(in);
    return outcome;
}

/* ---------------------------------------------------------------------------------------------
 * Operations
 * ------------------------------------------------------------------------------------------- */
static molt_secret_result lf_failure(molt_status status, const char *message) {
    return (molt_secret_result){sizeof(molt_secret_result), status, message, 0, NULL};
}

MOLT_EXPORT void molt_secret_get(molt_instance instance, const molt_secret_request *request, molt_secret_done done,
                                 void *call_context) {
    if (request == NULL || request->struct_size < offsetof(molt_secret_request, key) + sizeof(char *) ||
        request->key == NULL || request->key[0] == '\0') {
        molt_secret_result r = lf_failure(MOLT_ERR_INVALID_ARGUMENT, LF_NAME ": get needs a secret name");
        done(call_context, &r);
        return;
    }
    lf_instance *in = instance;
    lf_table *table = lf_pin(in);
    const molt_secret *secret = lf_table_find(table, request->key);
    if (secret != NULL) {
        molt_secret_result r = {sizeof(molt_secret_result), MOLT_OK, NULL, 1, secret};
        done(call_context, &r);
    } else {
        char message[512];
        snprintf(message, sizeof message, LF_NAME ": secret \"%s\" not found", request->key);
        molt_secret_result r = lf_failure(MOLT_ERR_NOT_FOUND, message);
        done(call_context, &r);
    }
    lf_unpin(in, table);
}

MOLT_EXPORT void molt_secret_bulk_get(molt_instance instance, const molt_secret_request *request,
                                      molt_secret_done done, void *call_context) {
    (void)request; /* no request metadata is meaningful for a file */
    lf_instance *in = instance;
    lf_table *table = lf_pin(in);
    molt_secret_result r = {sizeof(molt_secret_result), MOLT_OK, NULL, table->count, table->secrets};
    done(call_context, &r);
    lf_unpin(in, table);
}
