/*
 * probe: a lock plugin whose behaviour its configuration sets, for the engine's fault tests.
 * Builds (see fixture.mk): probe-1.0.0.so, probe-2.0.0.so (-DPROBE_V2), both stateless (no
 * export/import symbols), and probe-stateful-1.0.0.so (-DPROBE_STATEFUL, state formats [1, 1], MOLT_PLUGIN_HOLDS_STATE).
 * These declare their config open (a key named "*" that applies in place): the host hands them any
 * key and tries apply_config for any change, and the probe decides (below).
 * probe-declared-1.0.0.so (-DPROBE_DECLARED, plugin "probe-declared") declares its keys instead,
 * without "*", for the tests of the host honouring declarations: live.level (applies in place,
 * default "1"), mode (does not apply in place, default "normal"), callLog and initError.
 *
 *   initError=MSG        init fails with MOLT_ERR_INVALID_ARGUMENT and exactly MSG as message.
 *   initBlockMs=N        init sleeps N ms on its caller's thread before returning.
 *   readyAfterPolls=N    readiness is NOT_READY ("probe: warming up (k/N)") for the first N polls.
 *   readiness=failed     readiness is FAILED ("probe: readiness failed by config"); readiness=never:
 *                        NOT_READY forever ("probe: never ready"); "ready" is the default.
 *   importError=MSG      import_state refuses with MOLT_ERR_INTERNAL and MSG (stateful variant).
 *   applyError=MSG       see apply_config below.
 *   hangMs=N             try_lock of resource "hang" completes N ms later (default 0) from a thread.
 *   releaseWhen=PATH     held try_locks (resources "never:*", see below) complete once PATH exists.
 *   initWaitFor=PATH     init blocks its caller's thread until PATH exists, at most 120 s (against the
 *                        ABI's advice: a plugin that connects synchronously); destroyWaitFor=PATH,
 *                        exportWaitFor=PATH (stateful variant: export_state) and applyWaitFor=PATH
 *                        (apply_config, before it decides; the new config's path, else the instance's)
 *                        the same for those functions.
 *   callLog=PATH         init and apply_config append a line to PATH: "init" or "apply_config", then
 *                        " key=value" for each entry of the config they were given, in the given order
 *                        (apply_config: the new config's callLog, else the running one's).
 *   live.*               keys that apply in place.
 *
 * apply_config: when every key that differs (added, removed or changed) starts with "live." the
 * new config is APPLIED; else when the new config has applyError=MSG, MOLT_APPLY_ERROR with MSG;
 * else NEEDS_RELOAD naming the first (bytewise smallest) differing key.
 *
 * Operations: a correct simple lock (fixture_lock.c). try_lock of resource "hang" completes after
 * hangMs from a thread the plugin started; any resource starting with "async:" completes from a
 * new thread at once (asynchronous completion). A resource starting with "never:" is held: its
 * done is not called until the releaseWhen file exists (never without releaseWhen); a plugin thread
 * polls for it every 20 ms and then completes every held call with acquired=true (the lock table
 * is not touched). unlock completes inline. destroy completes the calls still held with
 * MOLT_ERR_UNAVAILABLE (the host should never leave any) and joins every thread started. The
 * stateful variant exports and imports the lock table (fixture_lock.h's format 1), so held locks
 * survive a reload.
 */
#define _POSIX_C_SOURCE 200809L

#include "fixture_lock.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(PROBE_DECLARED)
#define PROBE_NAME "probe-declared"
#define PROBE_VERSION "1.0.0"
#define PROBE_FORMATS 0u
#elif defined(PROBE_STATEFUL)
#define PROBE_NAME "probe-stateful"
#define PROBE_VERSION "1.0.0"
#define PROBE_FORMATS 1u
#elif defined(PROBE_V2)
#define PROBE_NAME "probe"
#define PROBE_VERSION "2.0.0"
#define PROBE_FORMATS 0u
#else
#define PROBE_NAME "probe"
#define PROBE_VERSION "1.0.0"
#define PROBE_FORMATS 0u
#endif

static const molt_plugin_identity probe_info = {
    .struct_size = sizeof(molt_plugin_identity),
    .name = PROBE_NAME,
    .version = PROBE_VERSION,
    .kind = MOLT_KIND_LOCK,
    .description = "fault-injection lock plugin for engine tests (" PROBE_NAME " " PROBE_VERSION ")",
    .state_format_min = PROBE_FORMATS,
    .state_format_max = PROBE_FORMATS,
#ifdef PROBE_STATEFUL
    .flags = MOLT_PLUGIN_HOLDS_STATE, /* holds locks, and transfers them */
#endif
};

MOLT_DEFINE_ABI_VERSION()
FX_DEFINE_PLUGIN_INFO(probe_info)

static const molt_config_key probe_keys[] = {
#if defined(PROBE_DECLARED)
    {"live.level", "a level that applies in place", "1", false, true, NULL},
    {"mode", "a setting that needs a new instance", "normal", false, false, NULL},
    {"callLog", "file that init and apply_config append a line to", NULL, false, false, NULL},
    {"initError", "init fails with this message", NULL, false, false, NULL},
#else
    {"*", "any key: the behaviour keys above, live.* keys (which apply in place), anything else", NULL, false, true, NULL},
#endif
};

MOLT_EXPORT const molt_config_key *molt_plugin_config_keys(uint32_t *count_out) {
    *count_out = (uint32_t)(sizeof probe_keys / sizeof probe_keys[0]);
    return probe_keys;
}

typedef struct probe probe;

/* One thread completing a try_lock later. */
typedef struct probe_thread {
    struct probe_thread *next;
    pthread_t thread;
    atomic_bool finished;
    probe *owner;
    const molt_lock_request *request; /* host-owned, valid until done */
    molt_try_lock_done done;
    void *call_context;
    uint32_t delay_ms;
} probe_thread;

/* One try_lock of a "never:" resource, held until the releaseWhen file exists. */
typedef struct probe_held {
    struct probe_held *next;
    molt_try_lock_done done;
    void *call_context;
} probe_held;

typedef enum { PROBE_READY, PROBE_FAILED, PROBE_NEVER_READY } probe_readiness_mode;

#define PROBE_WAIT_CAP_MS 120000u /* the longest any *WaitFor blocks */

struct probe {
    fx_table table;
    pthread_mutex_t mu; /* guards config, threads, held and releaser_started */
    molt_kv *config;    /* owned copy of the running config */
    uint32_t config_count;
    probe_thread *threads;
    probe_held *held;       /* newest first */
    pthread_t releaser;     /* polls release_when; started with the first held call */
    bool releaser_started;
    atomic_bool stopping;   /* destroy has begun: the releaser ends */
    uint32_t ready_after_polls;
    atomic_uint polls;
    probe_readiness_mode readiness;
    uint32_t hang_ms;
    /* Owned strings, NULL when not configured. */
    char *destroy_wait_for;
    char *export_wait_for;
    char *apply_wait_for;
    char *release_when;
    char *import_error;
};

static void probe_free_config(molt_kv *entries, uint32_t count) {
    for (uint32_t i = 0; i < count; i++) {
        free((char *)entries[i].key);
        free((char *)entries[i].value);
    }
    free(entries);
}

static char *probe_strdup(const char *text) {
    size_t n = strlen(text) + 1;
    char *copy = malloc(n);
    if (copy != NULL) memcpy(copy, text, n);
    return copy;
}

/* A deep copy of the config's entries, or false when out of memory. */
static bool probe_copy_config(const molt_config *config, molt_kv **out, uint32_t *count) {
    uint32_t n = config ? config->entry_count : 0;
    molt_kv *entries = calloc(n ? n : 1, sizeof *entries);
    if (entries == NULL) return false;
    for (uint32_t i = 0; i < n; i++) {
        entries[i].key = probe_strdup(config->entries[i].key);
        entries[i].value = probe_strdup(config->entries[i].value ? config->entries[i].value : "");
        if (entries[i].key == NULL || entries[i].value == NULL) {
            probe_free_config(entries, i + 1);
            return false;
        }
    }
    *out = entries;
    *count = n;
    return true;
}

static void probe_sleep_ms(uint32_t ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Blocks until `path` exists, polling every 5 ms, for at most PROBE_WAIT_CAP_MS. */
static void probe_wait_for(const char *path) {
    if (path == NULL) return;
    for (uint32_t i = 0; i < PROBE_WAIT_CAP_MS / 5 && access(path, F_OK) != 0; i++) probe_sleep_ms(5);
}

/* Copies config[key] into *out when present. Returns false when out of memory. */
static bool probe_copy_value(const molt_config *config, const char *key, char **out) {
    const char *value = molt_config_get(config, key);
    return value == NULL || (*out = probe_strdup(value)) != NULL;
}

/* Frees an instance's memory (not its mutexes and threads). */
static void probe_free(probe *p) {
    probe_free_config(p->config, p->config_count);
    free(p->destroy_wait_for);
    free(p->export_wait_for);
    free(p->apply_wait_for);
    free(p->release_when);
    free(p->import_error);
    free(p);
}

/* Appends "<what> key=value ..." to `path` (callLog). */
static void probe_log_call(const char *path, const char *what, const molt_config *config) {
    if (path == NULL) return;
    FILE *file = fopen(path, "a");
    if (file == NULL) return;
    fputs(what, file);
    for (uint32_t i = 0; config != NULL && i < config->entry_count; i++)
        fprintf(file, " %s=%s", config->entries[i].key, config->entries[i].value ? config->entries[i].value : "");
    fputc('\n', file);
    fclose(file);
}

static bool probe_parse_u32(const char *text, uint32_t *out) {
    if (text == NULL) return true; /* absent: keep the default */
    char *end = NULL;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (*text < '0' || *text > '9' || *end != '\0' || errno != 0 || value > UINT32_MAX) return false;
    *out = (uint32_t)value;
    return true;
}

MOLT_EXPORT molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host,
                                         molt_instance *instance_out, molt_message *error_out) {
    (void)host;
    probe_log_call(molt_config_get(config, "callLog"), "init", config);
    const char *init_error = molt_config_get(config, "initError");
    if (init_error != NULL) {
        molt_message_set(error_out, init_error);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    probe_wait_for(molt_config_get(config, "initWaitFor"));
    uint32_t ready_after = 0, hang_ms = 0, block_ms = 0;
    if (!probe_parse_u32(molt_config_get(config, "initBlockMs"), &block_ms)) {
        molt_message_set(error_out, "probe: initBlockMs must be a non-negative integer");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    probe_sleep_ms(block_ms);
    if (!probe_parse_u32(molt_config_get(config, "readyAfterPolls"), &ready_after)) {
        molt_message_set(error_out, "probe: readyAfterPolls must be a non-negative integer");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    if (!probe_parse_u32(molt_config_get(config, "hangMs"), &hang_ms)) {
        molt_message_set(error_out, "probe: hangMs must be a non-negative integer");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    const char *readiness = molt_config_get(config, "readiness");
    probe_readiness_mode mode = PROBE_READY;
    if (readiness != NULL && strcmp(readiness, "failed") == 0) {
        mode = PROBE_FAILED;
    } else if (readiness != NULL && strcmp(readiness, "never") == 0) {
        mode = PROBE_NEVER_READY;
    } else if (readiness != NULL && strcmp(readiness, "ready") != 0) {
        molt_message_set(error_out, "probe: readiness must be \"ready\", \"failed\" or \"never\"");
        return MOLT_ERR_INVALID_ARGUMENT;
    }

    probe *p = calloc(1, sizeof *p);
    if (p == NULL) goto out_of_memory;
    if (!probe_copy_config(config, &p->config, &p->config_count)) {
        free(p);
        goto out_of_memory;
    }
    if (!probe_copy_value(config, "importError", &p->import_error) ||
        !probe_copy_value(config, "destroyWaitFor", &p->destroy_wait_for) ||
        !probe_copy_value(config, "exportWaitFor", &p->export_wait_for) ||
        !probe_copy_value(config, "applyWaitFor", &p->apply_wait_for) ||
        !probe_copy_value(config, "releaseWhen", &p->release_when)) {
        probe_free(p);
        goto out_of_memory;
    }
    if (fx_table_init(&p->table) != 0) {
        probe_free(p);
        molt_message_set(error_out, "probe: cannot initialize a mutex");
        return MOLT_ERR_INTERNAL;
    }
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        fx_table_destroy(&p->table);
        probe_free(p);
        molt_message_set(error_out, "probe: cannot initialize a mutex");
        return MOLT_ERR_INTERNAL;
    }
    p->ready_after_polls = ready_after;
    p->hang_ms = hang_ms;
    p->readiness = mode;
    atomic_init(&p->polls, 0);
    atomic_init(&p->stopping, false);
    *instance_out = p;
    return MOLT_OK;

out_of_memory:
    molt_message_set(error_out, "probe: out of memory");
    return MOLT_ERR_INTERNAL;
}

MOLT_EXPORT molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
    probe *p = instance;
    if (p->readiness == PROBE_FAILED) {
        molt_message_set(message_out, "probe: readiness failed by config");
        return MOLT_FAILED;
    }
    if (p->readiness == PROBE_NEVER_READY) {
        molt_message_set(message_out, "probe: never ready");
        return MOLT_NOT_READY;
    }
    if (p->ready_after_polls == 0) return MOLT_READY;
    unsigned poll = atomic_fetch_add(&p->polls, 1) + 1;
    if (poll > p->ready_after_polls) return MOLT_READY;
    if (message_out != NULL && message_out->text != NULL && message_out->capacity > 0)
        snprintf(message_out->text, message_out->capacity, "probe: warming up (%u/%u)", poll, p->ready_after_polls);
    return MOLT_NOT_READY;
}

/* Joins threads that have completed; with `all`, waits for every thread. Caller holds p->mu. */
static void probe_reap(probe *p, bool all) {
    probe_thread **link = &p->threads;
    while (*link != NULL) {
        probe_thread *t = *link;
        if (all || atomic_load(&t->finished)) {
            pthread_join(t->thread, NULL);
            *link = t->next;
            free(t);
        } else {
            link = &t->next;
        }
    }
}

/* Completes every held call with `status` (MOLT_OK: acquired). Each is taken off the list under the
 * mutex first, so the releaser and destroy never complete the same call twice. */
static void probe_complete_held(probe *p, molt_status status) {
    pthread_mutex_lock(&p->mu);
    probe_held *held = p->held;
    p->held = NULL;
    pthread_mutex_unlock(&p->mu);
    while (held != NULL) {
        probe_held *next = held->next;
        molt_try_lock_result result = {.struct_size = sizeof result, .status = status, .acquired = status == MOLT_OK,
                                       .message = status == MOLT_OK ? NULL : "probe: destroyed while the call was held"};
        held->done(held->call_context, &result);
        free(held);
        held = next;
    }
}

/* The releaser: once the releaseWhen file exists, completes the held calls (and later ones) until destroy. */
static void *probe_releaser_main(void *arg) {
    probe *p = arg;
    while (!atomic_load(&p->stopping)) {
        if (access(p->release_when, F_OK) == 0) probe_complete_held(p, MOLT_OK);
        probe_sleep_ms(20);
    }
    return NULL;
}

MOLT_EXPORT void molt_plugin_destroy(molt_instance instance) {
    probe *p = instance;
    probe_wait_for(p->destroy_wait_for);
    atomic_store(&p->stopping, true);
    probe_complete_held(p, MOLT_ERR_UNAVAILABLE);
    if (p->releaser_started) pthread_join(p->releaser, NULL);
    pthread_mutex_lock(&p->mu);
    probe_reap(p, true);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_destroy(&p->mu);
    fx_table_destroy(&p->table);
    probe_free(p);
}

/* The value of `key` among copied entries, or NULL. */
static const char *probe_lookup(const molt_kv *entries, uint32_t count, const char *key) {
    for (uint32_t i = 0; i < count; i++)
        if (strcmp(entries[i].key, key) == 0) return entries[i].value;
    return NULL;
}

static void probe_note_difference(const char *key, const char **first, bool *only_live) {
    if (strncmp(key, "live.", 5) != 0) *only_live = false;
    if (*first == NULL || strcmp(key, *first) < 0) *first = key;
}

MOLT_EXPORT molt_apply_outcome molt_plugin_apply_config(molt_instance instance, const molt_config *config,
                                                        molt_message *message_out) {
    probe *p = instance;
    const char *wait_for = molt_config_get(config, "applyWaitFor");
    probe_wait_for(wait_for != NULL ? wait_for : p->apply_wait_for);
    pthread_mutex_lock(&p->mu);
    const char *log = molt_config_get(config, "callLog");
    probe_log_call(log != NULL ? log : probe_lookup(p->config, p->config_count, "callLog"), "apply_config", config);
    const char *first = NULL;
    bool only_live = true;
    uint32_t new_count = config ? config->entry_count : 0;
    for (uint32_t i = 0; i < new_count; i++) {
        const char *key = config->entries[i].key, *value = config->entries[i].value ? config->entries[i].value : "";
        const char *old = probe_lookup(p->config, p->config_count, key);
        if (old == NULL || strcmp(old, value) != 0) probe_note_difference(key, &first, &only_live);
    }
    for (uint32_t i = 0; i < p->config_count; i++)
        if (molt_config_get(config, p->config[i].key) == NULL)
            probe_note_difference(p->config[i].key, &first, &only_live);

    molt_apply_outcome outcome;
    const char *apply_error = molt_config_get(config, "applyError");
    molt_kv *copy = NULL;
    uint32_t copy_count = 0;
    if (only_live) {
        if (probe_copy_config(config, &copy, &copy_count)) {
            probe_free_config(p->config, p->config_count);
            p->config = copy;
            p->config_count = copy_count;
            outcome = MOLT_APPLIED;
        } else {
            molt_message_set(message_out, "probe: out of memory");
            outcome = MOLT_APPLY_ERROR;
        }
    } else if (apply_error != NULL) {
        molt_message_set(message_out, apply_error);
        outcome = MOLT_APPLY_ERROR;
    } else {
        if (message_out != NULL && message_out->text != NULL && message_out->capacity > 0)
            snprintf(message_out->text, message_out->capacity,
                     "probe: config key %s changed and does not apply in place (only live.* keys do)", first);
        outcome = MOLT_NEEDS_RELOAD;
    }
    pthread_mutex_unlock(&p->mu);
    return outcome;
}

static void *probe_thread_main(void *arg) {
    probe_thread *t = arg;
    probe_sleep_ms(t->delay_ms);
    molt_try_lock_result result;
    fx_try_lock(&t->owner->table, t->request, &result);
    t->done(t->call_context, &result); /* the request is the host's again from here on */
    atomic_store(&t->finished, true);
    return NULL;
}

/* Holds a "never:" call until the releaser completes it. Returns false when it cannot. */
static bool probe_hold(probe *p, molt_try_lock_done done, void *call_context) {
    probe_held *held = malloc(sizeof *held);
    if (held == NULL) return false;
    held->done = done;
    held->call_context = call_context;
    pthread_mutex_lock(&p->mu);
    if (p->release_when != NULL && !p->releaser_started) {
        if (pthread_create(&p->releaser, NULL, probe_releaser_main, p) != 0) {
            pthread_mutex_unlock(&p->mu);
            free(held);
            return false;
        }
        p->releaser_started = true;
    }
    held->next = p->held;
    p->held = held;
    pthread_mutex_unlock(&p->mu);
    return true;
}

MOLT_EXPORT void molt_lock_try_lock(molt_instance instance, const molt_lock_request *request, molt_try_lock_done done,
                                    void *call_context) {
    probe *p = instance;
    const char *resource = request->resource_id ? request->resource_id : "";
    bool hang = strcmp(resource, "hang") == 0, async = strncmp(resource, "async:", 6) == 0;
    molt_try_lock_result result;
    if (strncmp(resource, "never:", 6) == 0) {
        if (probe_hold(p, done, call_context)) return; /* the releaser or destroy calls done */
        result = (molt_try_lock_result){.struct_size = sizeof result, .status = MOLT_ERR_INTERNAL,
                                        .message = "probe: cannot hold the call"};
        done(call_context, &result);
        return;
    }
    if (hang || async) {
        probe_thread *t = calloc(1, sizeof *t);
        if (t != NULL) {
            t->owner = p;
            t->request = request;
            t->done = done;
            t->call_context = call_context;
            t->delay_ms = hang ? p->hang_ms : 0;
            atomic_init(&t->finished, false);
            pthread_mutex_lock(&p->mu);
            probe_reap(p, false);
            if (pthread_create(&t->thread, NULL, probe_thread_main, t) == 0) {
                t->next = p->threads;
                p->threads = t;
                pthread_mutex_unlock(&p->mu);
                return; /* the thread calls done */
            }
            pthread_mutex_unlock(&p->mu);
            free(t);
        }
        result = (molt_try_lock_result){.struct_size = sizeof result, .status = MOLT_ERR_INTERNAL,
                                        .message = "probe: cannot start a completion thread"};
        done(call_context, &result);
        return;
    }
    fx_try_lock(&p->table, request, &result);
    done(call_context, &result);
}

MOLT_EXPORT void molt_lock_unlock(molt_instance instance, const molt_lock_request *request, molt_unlock_done done,
                                  void *call_context) {
    probe *p = instance;
    molt_unlock_result result;
    fx_unlock(&p->table, request, &result);
    done(call_context, &result);
}

#ifdef PROBE_STATEFUL
MOLT_EXPORT molt_status molt_plugin_export_state(molt_instance instance, uint32_t format, molt_bytes_sink sink,
                                                 void *sink_context, molt_message *message_out) {
    probe *p = instance;
    probe_wait_for(p->export_wait_for);
    if (format != 1) {
        molt_message_set(message_out, "probe: only state format 1 exists");
        return MOLT_ERR_UNSUPPORTED;
    }
    return fx_export(&p->table, sink, sink_context, message_out);
}

MOLT_EXPORT molt_status molt_plugin_import_state(molt_instance instance, uint32_t format, const void *bytes,
                                                 size_t length, molt_message *message_out) {
    probe *p = instance;
    if (p->import_error != NULL) {
        molt_message_set(message_out, p->import_error);
        return MOLT_ERR_INTERNAL;
    }
    if (format != 1) {
        molt_message_set(message_out, "probe: only state format 1 exists");
        return MOLT_ERR_UNSUPPORTED;
    }
    return fx_import(&p->table, bytes, length, message_out);
}
#endif
