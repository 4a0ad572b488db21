/*
 * local-env: Dapr's secretstores.local.env as a molt plugin (kind "secretstore", ABI 1.3): the process's
 * environment variables as secrets. Plain C against molt_plugin.h; no Swift runtime, so the host can
 * dlclose it.
 *
 * Configuration key (Dapr's)
 *   prefix  default none: only variables whose names start with it (case-sensitive, as Dapr on Linux),
 *           and the prefix is not part of the secret's name: with prefix "MYAPP_", secret "DB" is the
 *           variable MYAPP_DB. A change starts a new instance (nothing to keep: it holds no state).
 *
 * Operations, inline (done is called before they return), reading the environment as it is at the call:
 *   get(name)  the variable prefix+name as one value named `name`; MOLT_ERR_NOT_FOUND when it is not
 *              set (Dapr answers an empty value instead; a variable set to "" is served as "").
 *   bulk_get   every variable whose name is longer than the prefix and starts with it, prefix removed,
 *              sorted by name (the first of duplicate names, as getenv reads it).
 *   Never served, as in Dapr, compared case-insensitively on the full name: APP_API_TOKEN and DAPR_*
 *   (the sidecar's own tokens and settings); molt adds MOLT_* (e.g. MOLT_CONTROL_TOKEN). get of one
 *   answers MOLT_ERR_NOT_FOUND saying so.
 *
 * No change notification: the host polls (molt.pollInterval). Threads: getenv and environ are read
 * without locks, which is safe as long as nothing in the process calls setenv/putenv meanwhile (molt
 * does not once it serves).
 */
#include "molt_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern char **environ;

#define LE_NAME "local-env"

static const molt_plugin_identity le_info = {
    .struct_size = sizeof(molt_plugin_identity),
    .name = LE_NAME,
    .version = "1.0.0",
    .kind = MOLT_KIND_SECRETSTORE,
    .description = "Environment variables as secrets (Dapr's secretstores.local.env)",
    .flags = 0,
};

static const molt_config_key le_keys[] = {
    {"prefix", "only variables starting with it, served without it (case-sensitive)", NULL, false, false, NULL},
};

MOLT_DEFINE_ABI_VERSION()

MOLT_EXPORT const molt_plugin_identity *molt_plugin_info(void) { return &le_info; }

MOLT_EXPORT const molt_config_key *molt_plugin_config_keys(uint32_t *count_out) {
    *count_out = (uint32_t)(sizeof le_keys / sizeof le_keys[0]);
    return le_keys;
}

/* One per component generation; immutable after init. */
typedef struct {
    char *prefix; /* owned; "" when none */
    size_t prefix_length;
} le_instance;

MOLT_EXPORT molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host,
                                         molt_instance *instance_out, molt_message *error_out) {
    (void)host;
    const char *prefix = molt_config_get(config, "prefix");
    le_instance *in = malloc(sizeof *in);
    if (in == NULL || (in->prefix = strdup(prefix ? prefix : "")) == NULL) {
        free(in);
        molt_message_set(error_out, LE_NAME ": out of memory");
        return MOLT_ERR_INTERNAL;
    }
    in->prefix_length = strlen(in->prefix);
    *instance_out = in;
    return MOLT_OK;
}

MOLT_EXPORT molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
    (void)instance;
    (void)message_out;
    return MOLT_READY;
}

MOLT_EXPORT void molt_plugin_destroy(molt_instance instance) {
    le_instance *in = instance;
    if (in == NULL) return;
    free(in->prefix);
    free(in);
}

/* The sidecar's own variables (Dapr's list, and molt's): `length` bytes of `name`, any case. */
static bool le_forbidden(const char *name, size_t length) {
    return (length == 13 && strncasecmp(name, "APP_API_TOKEN", 13) == 0) ||
           (length >= 5 && strncasecmp(name, "DAPR_", 5) == 0) || (length >= 5 && strncasecmp(name, "MOLT_", 5) == 0);
}

static void le_fail(molt_secret_done done, void *call_context, molt_status status, const char *message) {
    molt_secret_result r = {sizeof r, status, message, 0, NULL};
    done(call_context, &r);
}

MOLT_EXPORT void molt_secret_get(molt_instance instance, const molt_secret_request *request, molt_secret_done done,
                                 void *call_context) {
    le_instance *in = instance;
    if (request == NULL || request->struct_size < offsetof(molt_secret_request, key) + sizeof(char *) ||
        request->key == NULL || request->key[0] == '\0') {
        le_fail(done, call_context, MOLT_ERR_INVALID_ARGUMENT, LE_NAME ": get needs a secret name");
        return;
    }
    size_t key_length = strlen(request->key);
    char *variable = malloc(in->prefix_length + key_length + 1);
    if (variable == NULL) {
        le_fail(done, call_context, MOLT_ERR_INTERNAL, LE_NAME ": out of memory");
        return;
    }
    memcpy(variable, in->prefix, in->prefix_length);
    memcpy(variable + in->prefix_length, request->key, key_length + 1);
    char message[512];
    const char *value = NULL;
    if (le_forbidden(variable, strlen(variable)))
        snprintf(message, sizeof message, LE_NAME ": environment variable %s is not served (APP_API_TOKEN, DAPR_* "
                 "and MOLT_* belong to the sidecar)", variable);
    else if ((value = getenv(variable)) == NULL)
        snprintf(message, sizeof message, LE_NAME ": secret \"%s\" not found (environment variable %s is not set)",
                 request->key, variable);
    if (value != NULL) {
        molt_kv pair = {request->key, value};
        molt_secret secret = {request->key, 1, &pair};
        molt_secret_result r = {sizeof r, MOLT_OK, NULL, 1, &secret};
        done(call_context, &r);
    } else {
        le_fail(done, call_context, MOLT_ERR_NOT_FOUND, message);
    }
    free(variable);
}

typedef struct {
    const char *entry; /* "NAME=value" in environ */
    size_t name_length; /* of NAME */
    size_t order;       /* position in environ: the first of equal names wins */
} le_variable;

static int le_compare(const void *left, const void *right) {
    const le_variable *a = left, *b = right;
    size_t shorter = a->name_length < b->name_length ? a->name_length : b->name_length;
    int c = memcmp(a->entry, b->entry, shorter);
    if (c == 0) c = (a->name_length > b->name_length) - (a->name_length < b->name_length);
    return c ? c : (a->order > b->order) - (a->order < b->order);
}

/* The result points at copies of the names (environ's are not NUL-terminated before '=') and at the
 * values inside environ; all freed once done returned. */
MOLT_EXPORT void molt_secret_bulk_get(molt_instance instance, const molt_secret_request *request,
                                      molt_secret_done done, void *call_context) {
    (void)request;
    le_instance *in = instance;
    size_t total = 0;
    for (char **e = environ; e && *e; e++) total++;
    le_variable *found = malloc((total ? total : 1) * sizeof *found);
    molt_secret *secrets = malloc((total ? total : 1) * sizeof *secrets);
    molt_kv *values = malloc((total ? total : 1) * sizeof *values);
    char *names = NULL;
    size_t count = 0, names_size = 0;
    if (found == NULL || secrets == NULL || values == NULL) goto out_of_memory;
    for (size_t i = 0; i < total; i++) {
        const char *entry = environ[i], *equals = strchr(entry, '=');
        size_t length = equals ? (size_t)(equals - entry) : 0;
        if (equals == NULL || length <= in->prefix_length || memcmp(entry, in->prefix, in->prefix_length) != 0 ||
            le_forbidden(entry, length))
            continue;
        found[count++] = (le_variable){entry, length, i};
        names_size += length - in->prefix_length + 1;
    }
    qsort(found, count, sizeof *found, le_compare);
    if ((names = malloc(names_size ? names_size : 1)) == NULL) goto out_of_memory;
    size_t served = 0;
    char *name = names;
    for (size_t i = 0; i < count; i++) {
        const le_variable *v = &found[i];
        if (i > 0 && v->name_length == found[i - 1].name_length && memcmp(v->entry, found[i - 1].entry, v->name_length) == 0)
            continue; /* a later duplicate: getenv reads the first */
        size_t length = v->name_length - in->prefix_length;
        memcpy(name, v->entry + in->prefix_length, length);
        name[length] = '\0';
        values[served] = (molt_kv){name, v->entry + v->name_length + 1};
        secrets[served] = (molt_secret){name, 1, &values[served]};
        served++;
        name += length + 1;
    }
    molt_secret_result r = {sizeof r, MOLT_OK, NULL, (uint32_t)served, secrets};
    done(call_context, &r);
    goto done;
out_of_memory:
    le_fail(done, call_context, MOLT_ERR_INTERNAL, LE_NAME ": out of memory listing the environment");
done:
    free(names);
    free(values);
    free(secrets);
    free(found);
}
