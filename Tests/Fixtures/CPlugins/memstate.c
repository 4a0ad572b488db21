/*
 * memstate: an in-memory state store fixture plugin (kind "state", name "memstate", version 1.0.0)
 * with the semantics of Dapr's in-memory state store. No state transfer (state formats 0..0), no
 * apply_config (every config change reloads). Built by fixture.mk into memstate-1.0.0.so.
 *
 * Configuration keys (molt_plugin_config_keys)
 *   asyncCompletion  default "false", not in place. "true": every operation is queued to one worker
 *                    thread the instance owns and completes (calls done) from there; destroy drains
 *                    the queue and joins the thread. "false": every operation completes inline.
 *                    Any other value fails init with MOLT_ERR_INVALID_ARGUMENT.
 *   note             no default, not in place: free text the plugin ignores (tests change it to
 *                    force a reload). The host refuses keys the plugin does not declare.
 *
 * Semantics
 *   Each key holds a value (arbitrary bytes, NUL included) and an etag: the decimal version of the
 *   key, "1" when it is created, incremented by every successful set. A key that is deleted (or
 *   expires) and is set again starts over at "1".
 *   get: a missing or expired key is MOLT_OK with found=false. When the key has a TTL, the result
 *     metadata holds ttlExpireTime, the expiry in RFC3339 UTC with whole seconds (truncated), e.g.
 *     "2026-11-23T03:00:00Z".
 *   Etags (set, delete, transact operations): an empty etag string counts as no etag. A given etag
 *     must be a decimal number (ASCII digits only, fits in 64 bits) else MOLT_ERR_ETAG_INVALID; it
 *     must equal the key's current etag (string comparison) else MOLT_ERR_ETAG_MISMATCH ("memstate:
 *     etag mismatch for key K"), also when the key is missing. Without an etag, concurrency
 *     FIRST_WRITE succeeds only if the key does not exist (else ETAG_MISMATCH); LAST_WRITE and
 *     UNSPECIFIED are unconditional. Like Dapr's in-memory store, these rules are the same for set
 *     and delete (so a FIRST_WRITE delete without etag of an existing key is an ETAG_MISMATCH). A
 *     delete of a missing key without an etag is MOLT_OK.
 *   TTL (set): without has_ttl the key never expires (no component default). has_ttl with
 *     ttl_in_seconds > 0 expires the key that many seconds later (checked lazily on every access;
 *     no sweeper); -1 never expires; 0 or < -1, or an expiry after 9999-12-31T23:59:59Z, is
 *     MOLT_ERR_INVALID_ARGUMENT. Every set replaces the TTL (a set without TTL clears it).
 *   bulk_get: one item per requested key, in request order (found / value / etag; error always
 *     NULL), read under one lock (a consistent snapshot). parallelism is ignored.
 *   transact: validates every operation's arguments, then under one lock checks every etag against
 *     the state before the transaction (like Dapr, an operation does not see earlier operations of
 *     the same transaction when its etag is checked), then applies all of them in order. Any
 *     failing operation fails the whole transaction with that operation's status and message, and
 *     nothing is applied. Everything the apply step needs is allocated beforehand, so it cannot fail
 *     halfway.
 *   An empty (or NULL) key anywhere is MOLT_ERR_INVALID_ARGUMENT; so are concurrency or consistency
 *     values outside the header's constants, a NULL value pointer with a non-zero length, and
 *     requests whose struct_size is too small.
 *
 * Threading: one mutex guards the table (a chained hash table that grows). Values are copied into
 * heap buffers under the mutex and freed after done returns, so results never point into the table.
 */
#define _POSIX_C_SOURCE 200809L

#include "molt_plugin.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MS_INITIAL_BUCKETS 64u
#define MS_MAX_EXPIRY_S INT64_C(253402300799) /* 9999-12-31T23:59:59Z */
#define MS_ETAG_CAP 24                        /* a uint64 in decimal and its NUL */
#define MS_TIME_CAP 32                        /* "YYYY-MM-DDTHH:MM:SSZ" and its NUL */
#define MS_MESSAGE_CAP 512

static const molt_plugin_identity ms_info = {
    .struct_size = sizeof(molt_plugin_identity),
    .name = "memstate",
    .version = "1.0.0",
    .kind = MOLT_KIND_STATE,
    .description = "in-memory state store with Dapr semantics (test fixture)",
    .state_format_min = 0,
    .state_format_max = 0,
};

static const molt_config_key ms_keys[] = {
    {"asyncCompletion", "\"true\": complete every operation from the plugin's worker thread; \"false\": inline",
     "false", false, false, NULL},
    {"note", "free text, ignored; a change reloads", NULL, false, false, NULL},
};

MOLT_DEFINE_ABI_VERSION()

MOLT_EXPORT const molt_plugin_identity *molt_plugin_info(void) { return &ms_info; }

MOLT_EXPORT const molt_config_key *molt_plugin_config_keys(uint32_t *count_out) {
    *count_out = (uint32_t)(sizeof ms_keys / sizeof ms_keys[0]);
    return ms_keys;
}

/* ---------------------------------------------------------------------------------------------
 * Instance
 * ------------------------------------------------------------------------------------------- */
typedef struct ms_entry {
    struct ms_entry *next;
    uint64_t hash;
    char *key;
    uint8_t *value;
    size_t value_length;
    uint64_t version;   /* the etag, >= 1 */
    int64_t expires_ms; /* absolute CLOCK_REALTIME milliseconds; 0: never */
} ms_entry;

typedef enum { MS_GET, MS_BULK_GET, MS_SET, MS_DELETE, MS_TRANSACT } ms_kind;

typedef union {
    molt_state_get_done get;
    molt_state_bulk_get_done bulk_get;
    molt_state_write_done write;
} ms_done;

/* One queued operation (asyncCompletion=true). The request is host-owned, valid until done. */
typedef struct ms_job {
    struct ms_job *next;
    ms_kind kind;
    const void *request;
    ms_done done;
    void *call_context;
} ms_job;

typedef struct memstate {
    pthread_mutex_t mu; /* guards the table */
    ms_entry **buckets;
    size_t bucket_count, count;

    bool async;
    pthread_mutex_t queue_mu; /* guards the queue and stopping */
    pthread_cond_t queue_cv;
    ms_job *head, *tail;
    bool stopping;
    pthread_t worker;
} memstate;

static int64_t ms_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ms_log(const molt_host_services *host, molt_log_level level, const char *format, ...) {
    if (host == NULL || host->struct_size < offsetof(molt_host_services, log) + sizeof host->log || host->log == NULL)
        return;
    char line[512];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof line, format, args);
    va_end(args);
    host->log(host->host_context, level, line);
}

static void ms_format(char *buffer, size_t capacity, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(buffer, capacity, format, args);
    va_end(args);
}

static uint64_t ms_hash(const char *key) {
    uint64_t h = UINT64_C(14695981039346656037);
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) h = (h ^ *p) * UINT64_C(1099511628211);
    return h;
}

static void ms_free_entry(ms_entry *e) {
    if (e == NULL) return;
    free(e->key);
    free(e->value);
    free(e);
}

static bool ms_expired(const ms_entry *e, int64_t now_ms) { return e->expires_ms != 0 && now_ms >= e->expires_ms; }

/* The link that points at the live entry for `key`, or at the NULL ending its chain when there is
 * none. Drops the entry when it has expired. Caller holds m->mu. */
static ms_entry **ms_link(memstate *m, const char *key, uint64_t hash, int64_t now_ms) {
    ms_entry **link = &m->buckets[hash % m->bucket_count];
    while (*link != NULL) {
        ms_entry *e = *link;
        if (e->hash == hash && strcmp(e->key, key) == 0) {
            if (!ms_expired(e, now_ms)) return link;
            *link = e->next; /* lazy expiry */
            ms_free_entry(e);
            m->count--;
            continue;
        }
        link = &e->next;
    }
    return link;
}

static ms_entry *ms_find(memstate *m, const char *key, int64_t now_ms) {
    return *ms_link(m, key, ms_hash(key), now_ms);
}

/* Doubles the bucket array when the table is crowded; failing to grow is harmless. Caller holds m->mu. */
static void ms_maybe_grow(memstate *m) {
    if (m->count <= m->bucket_count * 2 || m->bucket_count > SIZE_MAX / 2 / sizeof(ms_entry *)) return;
    size_t n = m->bucket_count * 2;
    ms_entry **buckets = calloc(n, sizeof *buckets);
    if (buckets == NULL) return;
    for (size_t i = 0; i < m->bucket_count; i++) {
        ms_entry *e = m->buckets[i];
        while (e != NULL) {
            ms_entry *next = e->next;
            e->next = buckets[e->hash % n];
            buckets[e->hash % n] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = buckets;
    m->bucket_count = n;
}

static void ms_etag(uint64_t version, char out[MS_ETAG_CAP]) { snprintf(out, MS_ETAG_CAP, "%" PRIu64, version); }

/* RFC3339 UTC with whole seconds, e.g. 2026-11-23T03:00:00Z. */
static void ms_rfc3339(int64_t ms, char out[MS_TIME_CAP]) {
    time_t seconds = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&seconds, &tm) == NULL || strftime(out, MS_TIME_CAP, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) out[0] = '\0';
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------- */
static void ms_run(memstate *m, ms_kind kind, const void *request, ms_done done, void *call_context);

static void *ms_worker_main(void *arg) {
    memstate *m = arg;
    for (;;) {
        pthread_mutex_lock(&m->queue_mu);
        while (m->head == NULL && !m->stopping) pthread_cond_wait(&m->queue_cv, &m->queue_mu);
        ms_job *job = m->head;
        if (job == NULL) { /* stopping, and the queue is drained */
            pthread_mutex_unlock(&m->queue_mu);
            return NULL;
        }
        m->head = job->next;
        if (m->head == NULL) m->tail = NULL;
        pthread_mutex_unlock(&m->queue_mu);
        ms_run(m, job->kind, job->request, job->done, job->call_context);
        free(job);
    }
}

static bool ms_config_readable(const molt_config *config) {
    return config == NULL ||
           (config->struct_size >= offsetof(molt_config, entries) + sizeof config->entries &&
            (config->entry_count == 0 || config->entries != NULL));
}

MOLT_EXPORT molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host,
                                         molt_instance *instance_out, molt_message *error_out) {
    if (!ms_config_readable(config)) {
        molt_message_set(error_out, "memstate: malformed molt_config (struct_size too small or entries missing)");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    const char *async_text = molt_config_get(config, "asyncCompletion");
    bool async = false;
    if (async_text != NULL) {
        if (strcmp(async_text, "true") == 0) {
            async = true;
        } else if (strcmp(async_text, "false") != 0) {
            if (error_out != NULL && error_out->text != NULL && error_out->capacity > 0)
                snprintf(error_out->text, error_out->capacity,
                         "memstate: invalid value \"%s\" for config key asyncCompletion: expected \"true\" or \"false\"",
                         async_text);
            return MOLT_ERR_INVALID_ARGUMENT;
        }
    }
    for (uint32_t i = 0; config != NULL && i < config->entry_count; i++) {
        const char *key = config->entries[i].key;
        if (key != NULL && strcmp(key, "asyncCompletion") != 0)
            ms_log(host, MOLT_LOG_WARNING, "memstate: ignoring unknown config key '%s'", key);
    }

    memstate *m = calloc(1, sizeof *m);
    ms_entry **buckets = calloc(MS_INITIAL_BUCKETS, sizeof *buckets);
    if (m == NULL || buckets == NULL) {
        free(m);
        free(buckets);
        molt_message_set(error_out, "memstate: out of memory");
        return MOLT_ERR_INTERNAL;
    }
    m->buckets = buckets;
    m->bucket_count = MS_INITIAL_BUCKETS;
    m->async = async;
    int stage = 0; /* how many of the primitives below exist */
    if (pthread_mutex_init(&m->mu, NULL) != 0) goto fail;
    stage = 1;
    if (pthread_mutex_init(&m->queue_mu, NULL) != 0) goto fail;
    stage = 2;
    if (pthread_cond_init(&m->queue_cv, NULL) != 0) goto fail;
    stage = 3;
    if (async && pthread_create(&m->worker, NULL, ms_worker_main, m) != 0) goto fail;
    *instance_out = m;
    return MOLT_OK;

fail:
    if (stage >= 3) pthread_cond_destroy(&m->queue_cv);
    if (stage >= 2) pthread_mutex_destroy(&m->queue_mu);
    if (stage >= 1) pthread_mutex_destroy(&m->mu);
    free(m->buckets);
    free(m);
    molt_message_set(error_out, async ? "memstate: cannot start the completion thread or create its mutexes"
                                      : "memstate: cannot create a mutex");
    return MOLT_ERR_INTERNAL;
}

MOLT_EXPORT molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
    (void)instance;
    (void)message_out;
    return MOLT_READY;
}

MOLT_EXPORT void molt_plugin_destroy(molt_instance instance) {
    memstate *m = instance;
    if (m == NULL) return;
    if (m->async) {
        pthread_mutex_lock(&m->queue_mu);
        m->stopping = true;
        pthread_cond_broadcast(&m->queue_cv);
        pthread_mutex_unlock(&m->queue_mu);
        pthread_join(m->worker, NULL); /* it drains the queue first */
    }
    for (size_t i = 0; i < m->bucket_count; i++) {
        ms_entry *e = m->buckets[i];
        while (e != NULL) {
            ms_entry *next = e->next;
            ms_free_entry(e);
            e = next;
        }
    }
    free(m->buckets);
    pthread_cond_destroy(&m->queue_cv);
    pthread_mutex_destroy(&m->queue_mu);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* ---------------------------------------------------------------------------------------------
 * Argument checks (no lock needed)
 * ------------------------------------------------------------------------------------------- */
#define MS_COVERS(request, type, field) \
    ((request) != NULL && (request)->struct_size >= offsetof(type, field) + sizeof((request)->field))

static bool ms_valid_concurrency(molt_concurrency c) {
    return c == MOLT_CONCURRENCY_UNSPECIFIED || c == MOLT_CONCURRENCY_FIRST_WRITE || c == MOLT_CONCURRENCY_LAST_WRITE;
}

static bool ms_valid_consistency(molt_consistency c) {
    return c == MOLT_CONSISTENCY_UNSPECIFIED || c == MOLT_CONSISTENCY_EVENTUAL || c == MOLT_CONSISTENCY_STRONG;
}

static bool ms_is_decimal(const char *etag) {
    size_t n = 0;
    for (const char *p = etag; *p; p++, n++)
        if (*p < '0' || *p > '9') return false;
    if (n == 0 || n > 20) return false;
    errno = 0;
    (void)strtoull(etag, NULL, 10);
    return errno == 0;
}

/* A write operation, checked and with everything its apply step needs already allocated. */
typedef struct ms_prepared {
    bool is_set;
    const char *key;
    uint64_t hash;
    const char *etag; /* NULL: none given (NULL or "") */
    molt_concurrency concurrency;
    int64_t ttl_s;   /* set: 0 never expires, else seconds */
    ms_entry *entry; /* set: a new entry holding copies of the key and value */
} ms_prepared;

/* Checks `key`, `etag`, concurrency and consistency shared by set and delete. */
static molt_status ms_check_common(const char *key, const char *etag, molt_concurrency concurrency,
                                   molt_consistency consistency, char *message) {
    if (key == NULL || key[0] == '\0') {
        ms_format(message, MS_MESSAGE_CAP, "memstate: key must not be empty");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    if (!ms_valid_concurrency(concurrency)) {
        ms_format(message, MS_MESSAGE_CAP, "memstate: invalid concurrency %" PRId32 " for key %s", concurrency, key);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    if (!ms_valid_consistency(consistency)) {
        ms_format(message, MS_MESSAGE_CAP, "memstate: invalid consistency %" PRId32 " for key %s", consistency, key);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    if (etag != NULL && etag[0] != '\0' && !ms_is_decimal(etag)) {
        ms_format(message, MS_MESSAGE_CAP, "memstate: invalid etag \"%s\" for key %s: not a decimal number", etag, key);
        return MOLT_ERR_ETAG_INVALID;
    }
    return MOLT_OK;
}

static molt_status ms_prepare_set(const molt_state_set_request *r, int64_t now_ms, ms_prepared *out, char *message) {
    if (!MS_COVERS(r, molt_state_set_request, metadata)) {
        ms_format(message, MS_MESSAGE_CAP, "memstate: malformed molt_state_set_request (struct_size too small)");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    molt_status status = ms_check_common(r->key, r->etag, r->concurrency, r->consistency, message);
    if (status != MOLT_OK) return status;
    if (r->value.data == NULL && r->value.length != 0) {
        ms_format(message, MS_MESSAGE_CAP, "memstate: value of key %s has length %zu but no data", r->key,
                  r->value.length);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    int64_t ttl = 0;
    if (r->has_ttl) {
        if (r->ttl_in_seconds != -1 && r->ttl_in_seconds <= 0) {
            ms_format(message, MS_MESSAGE_CAP,
                      "memstate: invalid ttlInSeconds %" PRId64 " for key %s: must be > 0, or -1 for no expiry",
                      r->ttl_in_seconds, r->key);
            return MOLT_ERR_INVALID_ARGUMENT;
        }
        if (r->ttl_in_seconds > MS_MAX_EXPIRY_S - now_ms / 1000) {
            ms_format(message, MS_MESSAGE_CAP,
                      "memstate: invalid ttlInSeconds %" PRId64 " for key %s: expires after year 9999",
                      r->ttl_in_seconds, r->key);
            return MOLT_ERR_INVALID_ARGUMENT;
        }
        if (r->ttl_in_seconds > 0) ttl = r->ttl_in_seconds;
    }
    size_t key_length = strlen(r->key);
    ms_entry *e = calloc(1, sizeof *e);
    char *key = malloc(key_length + 1);
    uint8_t *value = malloc(r->value.length ? r->value.length : 1);
    if (e == NULL || key == NULL || value == NULL) {
        free(e);
        free(key);
        free(value);
        ms_format(message, MS_MESSAGE_CAP, "memstate: out of memory");
        return MOLT_ERR_INTERNAL;
    }
    memcpy(key, r->key, key_length + 1);
    if (r->value.length) memcpy(value, r->value.data, r->value.length);
    e->key = key;
    e->value = value;
    e->value_length = r->value.length;
    e->hash = ms_hash(r->key);
    *out = (ms_prepared){.is_set = true, .key = r->key, .hash = e->hash,
                         .etag = (r->etag != NULL && r->etag[0] != '\0') ? r->etag : NULL,
                         .concurrency = r->concurrency, .ttl_s = ttl, .entry = e};
    return MOLT_OK;
}

static molt_status ms_prepare_delete(const molt_state_delete_request *r, ms_prepared *out, char *message) {
    if (!MS_COVERS(r, molt_state_delete_request, metadata)) {
        ms_format(message, MS_MESSAGE_CAP, "memstate: malformed molt_state_delete_request (struct_size too small)");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    molt_status status = ms_check_common(r->key, r->etag, r->concurrency, r->consistency, message);
    if (status != MOLT_OK) return status;
    *out = (ms_prepared){.is_set = false, .key = r->key, .hash = ms_hash(r->key),
                         .etag = (r->etag != NULL && r->etag[0] != '\0') ? r->etag : NULL,
                         .concurrency = r->concurrency};
    return MOLT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Writes: set, delete and transact all go through ms_write.
 * ------------------------------------------------------------------------------------------- */
/* The etag rules against the current state. Caller holds m->mu. */
static molt_status ms_check_etag(memstate *m, const ms_prepared *p, int64_t now_ms, char *message) {
    ms_entry *e = *ms_link(m, p->key, p->hash, now_ms);
    bool ok;
    if (p->etag != NULL) {
        char current[MS_ETAG_CAP];
        if (e != NULL) ms_etag(e->version, current);
        ok = e != NULL && strcmp(current, p->etag) == 0;
    } else {
        ok = p->concurrency != MOLT_CONCURRENCY_FIRST_WRITE || e == NULL;
    }
    if (ok) return MOLT_OK;
    ms_format(message, MS_MESSAGE_CAP, "memstate: etag mismatch for key %s", p->key);
    return MOLT_ERR_ETAG_MISMATCH;
}

/* Applies one checked operation; cannot fail. Takes ownership of p->entry. Caller holds m->mu. */
static void ms_apply(memstate *m, ms_prepared *p, int64_t now_ms) {
    ms_entry **link = ms_link(m, p->key, p->hash, now_ms);
    ms_entry *e = *link;
    if (!p->is_set) {
        if (e != NULL) {
            *link = e->next;
            ms_free_entry(e);
            m->count--;
        }
        return;
    }
    ms_entry *fresh = p->entry;
    p->entry = NULL;
    int64_t expires = p->ttl_s > 0 ? now_ms + p->ttl_s * 1000 : 0;
    if (e != NULL) { /* move the new value into the existing entry */
        free(e->value);
        e->value = fresh->value;
        e->value_length = fresh->value_length;
        e->version++;
        e->expires_ms = expires;
        fresh->value = NULL;
        ms_free_entry(fresh);
    } else {
        fresh->version = 1;
        fresh->expires_ms = expires;
        fresh->next = NULL;
        *link = fresh;
        m->count++;
    }
}

/* Runs `count` write operations atomically. Returns the status, with the message in `message`. */
static molt_status ms_write(memstate *m, const molt_state_operation *ops, uint32_t count, char *message) {
    if (count == 0) return MOLT_OK;
    if (ops == NULL) {
        ms_format(message, MS_MESSAGE_CAP, "memstate: %" PRIu32 " operations but no operation array", count);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    ms_prepared one, *prepared = count == 1 ? &one : calloc(count, sizeof *prepared);
    if (prepared == NULL) {
        ms_format(message, MS_MESSAGE_CAP, "memstate: out of memory");
        return MOLT_ERR_INTERNAL;
    }
    memset(prepared, 0, count * sizeof *prepared);
    int64_t now_ms = ms_now_ms();
    molt_status status = MOLT_OK;
    uint32_t ready = 0;
    for (; ready < count && status == MOLT_OK; ready++) {
        const molt_state_operation *op = &ops[ready];
        if (op->type == MOLT_STATE_OPERATION_SET && op->set_request != NULL) {
            status = ms_prepare_set(op->set_request, now_ms, &prepared[ready], message);
        } else if (op->type == MOLT_STATE_OPERATION_DELETE && op->delete_request != NULL) {
            status = ms_prepare_delete(op->delete_request, &prepared[ready], message);
        } else {
            ms_format(message, MS_MESSAGE_CAP, "memstate: operation #%" PRIu32 " has type %" PRId32
                      " without its matching request", ready, op->type);
            status = MOLT_ERR_INVALID_ARGUMENT;
        }
    }
    if (status == MOLT_OK) {
        pthread_mutex_lock(&m->mu);
        for (uint32_t i = 0; i < count && status == MOLT_OK; i++) status = ms_check_etag(m, &prepared[i], now_ms, message);
        if (status == MOLT_OK) {
            for (uint32_t i = 0; i < count; i++) ms_apply(m, &prepared[i], now_ms);
            ms_maybe_grow(m);
        }
        pthread_mutex_unlock(&m->mu);
    }
    for (uint32_t i = 0; i < ready; i++) ms_free_entry(prepared[i].entry); /* unused on failure */
    if (prepared != &one) free(prepared);
    return status;
}

static void ms_run_set(memstate *m, const molt_state_set_request *r, molt_state_write_done done, void *ctx) {
    char message[MS_MESSAGE_CAP];
    molt_state_operation op = {.type = MOLT_STATE_OPERATION_SET, .set_request = r};
    molt_status status = ms_write(m, &op, 1, message);
    molt_state_write_result result = {.struct_size = sizeof result, .status = status,
                                      .message = status == MOLT_OK ? NULL : message};
    done(ctx, &result);
}

static void ms_run_delete(memstate *m, const molt_state_delete_request *r, molt_state_write_done done, void *ctx) {
    char message[MS_MESSAGE_CAP];
    molt_state_operation op = {.type = MOLT_STATE_OPERATION_DELETE, .delete_request = r};
    molt_status status = ms_write(m, &op, 1, message);
    molt_state_write_result result = {.struct_size = sizeof result, .status = status,
                                      .message = status == MOLT_OK ? NULL : message};
    done(ctx, &result);
}

static void ms_run_transact(memstate *m, const molt_state_transact_request *r, molt_state_write_done done,
                            void *ctx) {
    char message[MS_MESSAGE_CAP];
    molt_status status;
    if (!MS_COVERS(r, molt_state_transact_request, metadata)) {
        ms_format(message, MS_MESSAGE_CAP, "memstate: malformed molt_state_transact_request (struct_size too small)");
        status = MOLT_ERR_INVALID_ARGUMENT;
    } else {
        status = ms_write(m, r->operations, r->operation_count, message);
    }
    molt_state_write_result result = {.struct_size = sizeof result, .status = status,
                                      .message = status == MOLT_OK ? NULL : message};
    done(ctx, &result);
}

/* ---------------------------------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------------------------------- */
static void ms_run_get(memstate *m, const molt_state_get_request *r, molt_state_get_done done, void *ctx) {
    char message[MS_MESSAGE_CAP], etag[MS_ETAG_CAP], expires[MS_TIME_CAP];
    molt_state_get_result result = {.struct_size = sizeof result, .status = MOLT_OK, .found = false};
    molt_kv metadata[1];
    uint8_t *copy = NULL;
    if (!MS_COVERS(r, molt_state_get_request, metadata)) {
        ms_format(message, MS_MESSAGE_CAP, "memstate: malformed molt_state_get_request (struct_size too small)");
        result.status = MOLT_ERR_INVALID_ARGUMENT;
    } else if (r->key == NULL || r->key[0] == '\0') {
        ms_format(message, MS_MESSAGE_CAP, "memstate: key must not be empty");
        result.status = MOLT_ERR_INVALID_ARGUMENT;
    } else if (!ms_valid_consistency(r->consistency)) {
        ms_format(message, MS_MESSAGE_CAP, "memstate: invalid consistency %" PRId32 " for key %s", r->consistency,
                  r->key);
        result.status = MOLT_ERR_INVALID_ARGUMENT;
    } else {
        int64_t now_ms = ms_now_ms();
        pthread_mutex_lock(&m->mu);
        ms_entry *e = ms_find(m, r->key, now_ms);
        if (e != NULL) {
            copy = malloc(e->value_length ? e->value_length : 1);
            if (copy == NULL) {
                ms_format(message, MS_MESSAGE_CAP, "memstate: out of memory");
                result.status = MOLT_ERR_INTERNAL;
            } else {
                if (e->value_length) memcpy(copy, e->value, e->value_length);
                result.found = true;
                result.value = (molt_bytes){.data = copy, .length = e->value_length};
                ms_etag(e->version, etag);
                result.etag = etag;
                if (e->expires_ms != 0) {
                    ms_rfc3339(e->expires_ms, expires);
                    metadata[0] = (molt_kv){.key = "ttlExpireTime", .value = expires};
                    result.metadata = metadata;
                    result.metadata_count = 1;
                }
            }
        }
        pthread_mutex_unlock(&m->mu);
    }
    if (result.status != MOLT_OK) result.message = message;
    done(ctx, &result);
    free(copy);
}

static void ms_run_bulk_get(memstate *m, const molt_state_bulk_get_request *r, molt_state_bulk_get_done done,
                            void *ctx) {
    char message[MS_MESSAGE_CAP];
    molt_state_bulk_get_result result = {.struct_size = sizeof result, .status = MOLT_OK};
    molt_state_bulk_item *items = NULL;
    char (*etags)[MS_ETAG_CAP] = NULL;
    uint32_t n = 0;
    if (!MS_COVERS(r, molt_state_bulk_get_request, metadata)) {
        ms_format(message, MS_MESSAGE_CAP, "memstate: malformed molt_state_bulk_get_request (struct_size too small)");
        result.status = MOLT_ERR_INVALID_ARGUMENT;
    } else if (r->key_count > 0 && r->keys == NULL) {
        ms_format(message, MS_MESSAGE_CAP, "memstate: %" PRIu32 " keys but no key array", r->key_count);
        result.status = MOLT_ERR_INVALID_ARGUMENT;
    } else {
        n = r->key_count;
        for (uint32_t i = 0; i < n && result.status == MOLT_OK; i++) {
            if (r->keys[i] == NULL || r->keys[i][0] == '\0') {
                ms_format(message, MS_MESSAGE_CAP, "memstate: key #%" PRIu32 " must not be empty", i);
                result.status = MOLT_ERR_INVALID_ARGUMENT;
            }
        }
        if (result.status == MOLT_OK && n > 0) {
            items = calloc(n, sizeof *items);
            etags = calloc(n, sizeof *etags);
            if (items == NULL || etags == NULL) {
                ms_format(message, MS_MESSAGE_CAP, "memstate: out of memory");
                result.status = MOLT_ERR_INTERNAL;
            }
        }
        if (result.status == MOLT_OK && n > 0) {
            int64_t now_ms = ms_now_ms();
            pthread_mutex_lock(&m->mu);
            for (uint32_t i = 0; i < n && result.status == MOLT_OK; i++) {
                items[i].key = r->keys[i];
                ms_entry *e = ms_find(m, r->keys[i], now_ms);
                if (e == NULL) continue;
                uint8_t *copy = malloc(e->value_length ? e->value_length : 1);
                if (copy == NULL) {
                    ms_format(message, MS_MESSAGE_CAP, "memstate: out of memory");
                    result.status = MOLT_ERR_INTERNAL;
                    break;
                }
                if (e->value_length) memcpy(copy, e->value, e->value_length);
                ms_etag(e->version, etags[i]);
                items[i].found = true;
                items[i].value = (molt_bytes){.data = copy, .length = e->value_length};
                items[i].etag = etags[i];
            }
            pthread_mutex_unlock(&m->mu);
        }
    }
    if (result.status == MOLT_OK) {
        result.item_count = n;
        result.items = items;
    } else {
        result.message = message;
    }
    done(ctx, &result);
    for (uint32_t i = 0; items != NULL && i < n; i++) free((void *)items[i].value.data);
    free(items);
    free(etags);
}

/* ---------------------------------------------------------------------------------------------
 * Dispatch: inline, or through the worker with asyncCompletion=true.
 * ------------------------------------------------------------------------------------------- */
static void ms_run(memstate *m, ms_kind kind, const void *request, ms_done done, void *call_context) {
    switch (kind) {
    case MS_GET: ms_run_get(m, request, done.get, call_context); break;
    case MS_BULK_GET: ms_run_bulk_get(m, request, done.bulk_get, call_context); break;
    case MS_SET: ms_run_set(m, request, done.write, call_context); break;
    case MS_DELETE: ms_run_delete(m, request, done.write, call_context); break;
    case MS_TRANSACT: ms_run_transact(m, request, done.write, call_context); break;
    }
}

/* Completes an operation with `status` and `message` without running it. */
static void ms_fail(ms_kind kind, ms_done done, void *call_context, molt_status status, const char *message) {
    switch (kind) {
    case MS_GET: {
        molt_state_get_result result = {.struct_size = sizeof result, .status = status, .message = message};
        done.get(call_context, &result);
        break;
    }
    case MS_BULK_GET: {
        molt_state_bulk_get_result result = {.struct_size = sizeof result, .status = status, .message = message};
        done.bulk_get(call_context, &result);
        break;
    }
    default: {
        molt_state_write_result result = {.struct_size = sizeof result, .status = status, .message = message};
        done.write(call_context, &result);
        break;
    }
    }
}

static void ms_dispatch(memstate *m, ms_kind kind, const void *request, ms_done done, void *call_context) {
    if (!m->async) {
        ms_run(m, kind, request, done, call_context);
        return;
    }
    ms_job *job = malloc(sizeof *job);
    if (job == NULL) {
        ms_fail(kind, done, call_context, MOLT_ERR_INTERNAL, "memstate: out of memory queueing the operation");
        return;
    }
    *job = (ms_job){.next = NULL, .kind = kind, .request = request, .done = done, .call_context = call_context};
    pthread_mutex_lock(&m->queue_mu);
    if (m->tail != NULL)
        m->tail->next = job;
    else
        m->head = job;
    m->tail = job;
    pthread_cond_signal(&m->queue_cv);
    pthread_mutex_unlock(&m->queue_mu);
}

MOLT_EXPORT void molt_state_get(molt_instance instance, const molt_state_get_request *request,
                                molt_state_get_done done, void *call_context) {
    ms_dispatch(instance, MS_GET, request, (ms_done){.get = done}, call_context);
}

MOLT_EXPORT void molt_state_bulk_get(molt_instance instance, const molt_state_bulk_get_request *request,
                                     molt_state_bulk_get_done done, void *call_context) {
    ms_dispatch(instance, MS_BULK_GET, request, (ms_done){.bulk_get = done}, call_context);
}

MOLT_EXPORT void molt_state_set(molt_instance instance, const molt_state_set_request *request,
                                molt_state_write_done done, void *call_context) {
    ms_dispatch(instance, MS_SET, request, (ms_done){.write = done}, call_context);
}

MOLT_EXPORT void molt_state_delete(molt_instance instance, const molt_state_delete_request *request,
                                   molt_state_write_done done, void *call_context) {
    ms_dispatch(instance, MS_DELETE, request, (ms_done){.write = done}, call_context);
}

MOLT_EXPORT void molt_state_transact(molt_instance instance, const molt_state_transact_request *request,
                                     molt_state_write_done done, void *call_context) {
    ms_dispatch(instance, MS_TRANSACT, request, (ms_done){.write = done}, call_context);
}
