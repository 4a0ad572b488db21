/*
 * in-memory: molt's embedded default state store (kind "state", name "in-memory", so a Dapr component
 * of type `state.in-memory` runs on it), with the semantics of Dapr's in-memory state store. Plain C
 * against molt_plugin.h, no Swift runtime (the host can unload it). One source builds two versions
 * that differ only in their version string (for swap tests):
 *   default               1.0.0
 *   -DIN_MEMORY_V1_1      1.1.0
 * Both transfer state in format 1 (state_format_min = max = 1), so data survives reloads and swaps
 * in either direction.
 *
 * Semantics
 *   Each key holds a value (arbitrary bytes) and an etag: a decimal number taken from a counter of the
 *   instance that every successful set increments. Etags are therefore never reused within a store,
 *   even for a key deleted and set again; the counter travels with the state (format 1).
 *   get: a missing or expired key is MOLT_OK with found=false. A key with a TTL reports its expiry as
 *     response metadata ttlExpireTime, RFC3339 UTC with whole seconds (truncated).
 *   Etags (set, delete, and the operations of transact), as Dapr's in-memory store: an empty etag
 *     counts as none. A given etag that is not a decimal number is MOLT_ERR_ETAG_INVALID; one that
 *     differs from the key's current etag, or names a missing key, is MOLT_ERR_ETAG_MISMATCH. Without
 *     an etag, concurrency FIRST_WRITE succeeds only when the key does not exist (else ETAG_MISMATCH),
 *     for set and delete alike; LAST_WRITE and UNSPECIFIED write unconditionally. Deleting a missing
 *     key without an etag is MOLT_OK.
 *   TTL (set; the host turns request metadata ttlInSeconds into has_ttl/ttl_in_seconds): without a
 *     TTL the key never expires (this store has no component default); ttl_in_seconds > 0 expires it
 *     that many seconds after the write; -1 never; 0, < -1, or an expiry after year 9999 is
 *     MOLT_ERR_INVALID_ARGUMENT. Every set replaces the key's TTL. Expiry is an absolute
 *     CLOCK_REALTIME time in milliseconds, so exported state means the same in another instance.
 *   Expiry is lazy, with no thread: an expired key reads as missing and is dropped whenever a call
 *     looks it up; all expired keys are purged at once when the table is about to grow and when
 *     maxKeys would refuse a write. A purge scans the table only when some key may have expired
 *     (`next_expiry_ms`), and growing after a purge keeps the load factor <= 1, so at least
 *     `bucket_count` writes separate two purges: O(1) amortized per write.
 *   bulk_get: one item per key, in request order, read under one lock (a consistent snapshot).
 *   transact: checks every operation's arguments, then under one lock every etag against the state
 *     before the transaction (as in Dapr, an operation does not see the earlier ones when its etag is
 *     checked), then maxKeys, then applies them all in order. Any failure fails the whole transaction
 *     with that operation's status and message and changes nothing. Everything the apply step needs
 *     is allocated before it, so it cannot fail halfway.
 *   An empty key, a concurrency or consistency outside the header's constants, a value with a length
 *     and no data, or a request whose struct_size is too small is MOLT_ERR_INVALID_ARGUMENT.
 *   Every operation completes inline: done is called before the operation function returns.
 *
 * Configuration keys (molt_plugin_config_keys); none is required
 *   maxKeys         default "0" (unlimited), applies in place. A write that would store more live
 *                   keys fails with MOLT_ERR_UNAVAILABLE "in-memory: maxKeys (N) reached ...". A
 *                   transaction is counted conservatively: each set of a key missing before it counts
 *                   as one new key, and its deletes free nothing for the check. Lowering the limit
 *                   keeps the keys already stored; import takes every record whatever the limit.
 *   initialBuckets  default "1024", 1..16777216, NOT in place: the hash table's size at init (it
 *                   doubles as it fills). A change needs a new instance (apply_config: NEEDS_RELOAD).
 *   keyPrefix is the host's key (it builds the stored keys); the plugin ignores it, and a change of
 *   it alone applies in place. Any other key is unknown: init logs a WARNING and ignores it, and
 *   apply_config answers NEEDS_RELOAD when one is added, removed or changed (a new instance, maybe of
 *   a newer version, may understand it). Malformed numbers fail init (MOLT_ERR_INVALID_ARGUMENT) or
 *   apply_config (MOLT_APPLY_ERROR), naming the key and the value.
 *
 * State format 1 (all integers little-endian; export writes only keys unexpired at its start):
 *   "IMS1" | u64 last_etag | u64 count |
 *   count x { u32 key_length | key | u64 value_length | value | u64 etag | i64 expires_at_ms }
 *   Keys are non-empty, hold no NUL byte and are unique; 1 <= etag <= last_etag; expires_at_ms is 0
 *   (never) or an absolute CLOCK_REALTIME time in milliseconds. Import needs an empty instance,
 *   validates the layout before touching it, drops records that expired in transit, and on any
 *   refusal (corrupt input, duplicate key, out of memory) leaves the instance empty.
 *
 * Threading and ownership
 *   `mu` guards the table, the counters and max_keys; every operation holds it for its lookups and
 *   changes only (copies of keys and values are made before it is taken; results are copied out
 *   under it). `config_mu` serializes apply_config and guards the configuration snapshot. The host
 *   runs no operation during export, import or destroy, and the plugin runs no thread of its own.
 *   Results handed to `done` point into buffers of the calling function, freed after done returns.
 */
#define _POSIX_C_SOURCE 200809L

#include "molt_plugin.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef IN_MEMORY_V1_1
#define IM_VERSION "1.1.0"
#else
#define IM_VERSION "1.0.0"
#endif
#define IM_FORMAT 1u
#define IM_MAX_BUCKETS (1u << 24)
#define IM_MAX_EXPIRY_S INT64_C(253402300799) /* 9999-12-31T23:59:59Z */
#define IM_ETAG_CAP 24                        /* a uint64 in decimal and its NUL */
#define IM_TIME_CAP 32                        /* "YYYY-MM-DDTHH:MM:SSZ" and its NUL */
#define IM_MESSAGE_CAP 512
#define IM_EXPORT_CHUNK 65536u

static const molt_plugin_identity im_info = {
    .struct_size = sizeof(molt_plugin_identity),
    .name = "in-memory",
    .version = IM_VERSION,
    .kind = MOLT_KIND_STATE,
    .description = "In-memory state store with Dapr's state.in-memory semantics (etags, TTL, transactions)",
    .state_format_min = IM_FORMAT,
    .state_format_max = IM_FORMAT,
    .flags = MOLT_PLUGIN_HOLDS_STATE, /* the data lives only here; handed over by export/import */
};

static const molt_config_key im_keys[] = {
    {"maxKeys", "most live keys stored at once; 0 = unlimited", "0", false, true, NULL},
    {"initialBuckets", "hash table buckets at init (1-16777216; it grows); changing it needs a reload", "1024", false,
     false, NULL},
};

MOLT_DEFINE_ABI_VERSION()

MOLT_EXPORT const molt_plugin_identity *molt_plugin_info(void) { return &im_info; }

MOLT_EXPORT const molt_config_key *molt_plugin_config_keys(uint32_t *count_out) {
    *count_out = (uint32_t)(sizeof im_keys / sizeof im_keys[0]);
    return im_keys;
}

/* ---------------------------------------------------------------------------------------------
 * Instance
 * ------------------------------------------------------------------------------------------- */
typedef struct im_entry {
    struct im_entry *next;
    uint64_t hash;
    char *key;          /* owned, NUL-terminated */
    uint8_t *value;     /* owned; never NULL (1 byte allocated for an empty value) */
    size_t value_length;
    uint64_t etag;      /* >= 1 */
    int64_t expires_ms; /* absolute CLOCK_REALTIME milliseconds; 0: never */
} im_entry;

typedef struct {
    uint64_t max_keys;
    uint32_t initial_buckets;
} im_settings;

typedef struct {
    pthread_mutex_t mu; /* guards everything below up to config_mu */
    im_entry **buckets;
    size_t bucket_count;
    size_t count;           /* entries in the table, expired ones not yet dropped included */
    uint64_t last_etag;     /* the etag of the latest set; the next set takes last_etag + 1 */
    int64_t next_expiry_ms; /* <= the expiry of every entry with a TTL; INT64_MAX: none has one */
    uint64_t max_keys;

    pthread_mutex_t config_mu; /* serializes apply_config; guards config */
    molt_config *config;       /* owned copy of the running configuration (one allocation) */
    uint32_t initial_buckets;
    const molt_host_services *host;
} im_store;

static int64_t im_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes a formatted message into a host buffer; safe with a NULL message. */
static void im_message(molt_message *message, const char *format, ...) {
    if (message == NULL || message->text == NULL || message->capacity == 0) return;
    va_list args;
    va_start(args, format);
    vsnprintf(message->text, message->capacity, format, args);
    va_end(args);
}

/* Writes a formatted message into a plugin buffer of IM_MESSAGE_CAP bytes. */
static void im_format(char *buffer, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(buffer, IM_MESSAGE_CAP, format, args);
    va_end(args);
}

static uint64_t im_hash(const char *key) { /* FNV-1a */
    uint64_t h = UINT64_C(14695981039346656037);
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) h = (h ^ *p) * UINT64_C(1099511628211);
    return h;
}

static void im_etag_text(uint64_t etag, char out[IM_ETAG_CAP]) { snprintf(out, IM_ETAG_CAP, "%" PRIu64, etag); }

/* RFC3339 UTC with whole seconds, e.g. 2026-11-23T03:00:00Z. */
static void im_rfc3339(int64_t ms, char out[IM_TIME_CAP]) {
    time_t seconds = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&seconds, &tm) == NULL || strftime(out, IM_TIME_CAP, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) out[0] = '\0';
}

static void im_free_entry(im_entry *e) {
    if (e == NULL) return;
    free(e->key);
    free(e->value);
    free(e);
}

static bool im_expired(const im_entry *e, int64_t now_ms) { return e->expires_ms != 0 && now_ms >= e->expires_ms; }

/* ---------------------------------------------------------------------------------------------
 * The table. Every function here needs s->mu held (or the instance to itself).
 * ------------------------------------------------------------------------------------------- */

/* The link pointing at the live entry for `key`, or at the NULL ending its chain. Drops the entry
 * when it has expired (lazy expiry). */
static im_entry **im_link(im_store *s, const char *key, uint64_t hash, int64_t now_ms) {
    im_entry **link = &s->buckets[hash % s->bucket_count];
    while (*link != NULL) {
        im_entry *e = *link;
        if (e->hash == hash && strcmp(e->key, key) == 0) {
            if (!im_expired(e, now_ms)) return link;
            *link = e->next;
            im_free_entry(e);
            s->count--;
            continue; /* keys are unique: this leaves *link at the chain's next entry, not a match */
        }
        link = &e->next;
    }
    return link;
}

/* Drops every expired entry, unless none can have expired yet; recomputes next_expiry_ms. */
static void im_purge(im_store *s, int64_t now_ms) {
    if (now_ms < s->next_expiry_ms) return;
    int64_t next = INT64_MAX;
    for (size_t b = 0; b < s->bucket_count; b++) {
        im_entry **link = &s->buckets[b];
        while (*link != NULL) {
            im_entry *e = *link;
            if (im_expired(e, now_ms)) {
                *link = e->next;
                im_free_entry(e);
                s->count--;
                continue;
            }
            if (e->expires_ms != 0 && e->expires_ms < next) next = e->expires_ms;
            link = &e->next;
        }
    }
    s->next_expiry_ms = next;
}

/* Rehashes into `n` buckets; on allocation failure keeps the current table (harmless). */
static void im_resize(im_store *s, size_t n) {
    im_entry **buckets = calloc(n, sizeof *buckets);
    if (buckets == NULL) return;
    for (size_t i = 0; i < s->bucket_count; i++) {
        for (im_entry *e = s->buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            e->next = buckets[e->hash % n];
            buckets[e->hash % n] = e;
        }
    }
    free(s->buckets);
    s->buckets = buckets;
    s->bucket_count = n;
}

/* After writes: at more than 2 entries per bucket, purge, and double when still above 1. */
static void im_maybe_grow(im_store *s, int64_t now_ms) {
    if (s->count <= s->bucket_count * 2) return;
    im_purge(s, now_ms);
    if (s->count > s->bucket_count && s->bucket_count <= SIZE_MAX / 2 / sizeof(im_entry *))
        im_resize(s, s->bucket_count * 2);
}

static void im_clear(im_store *s) {
    for (size_t b = 0; b < s->bucket_count; b++) {
        for (im_entry *e = s->buckets[b], *next; e != NULL; e = next) {
            next = e->next;
            im_free_entry(e);
        }
        s->buckets[b] = NULL;
    }
    s->count = 0;
    s->next_expiry_ms = INT64_MAX;
}

/* ---------------------------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------------------------- */

/* Decimal digits only (no sign, no spaces), no overflow, within [min, max]. */
static bool im_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out) {
    if (text == NULL || *text == '\0') return false;
    uint64_t value = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        uint64_t digit = (uint64_t)(*p - '0');
        if (value > (UINT64_MAX - digit) / 10) return false;
        value = value * 10 + digit;
    }
    if (value < min || value > max) return false;
    *out = value;
    return true;
}

/* Keys whose change alone apply_config takes in place (keyPrefix is the host's), plus the declared
 * ones it compares by value. */
static bool im_is_plugin_key(const char *key) {
    return strcmp(key, "maxKeys") == 0 || strcmp(key, "initialBuckets") == 0 || strcmp(key, "keyPrefix") == 0;
}

static bool im_config_readable(const molt_config *config) {
    return config == NULL || (config->struct_size >= offsetof(molt_config, entries) + sizeof config->entries &&
                              (config->entry_count == 0 || config->entries != NULL));
}

/* Reads the declared keys. On failure writes `message` and returns false. With `host`, warns
 * about unknown keys. */
static bool im_parse_settings(const molt_config *config, const molt_host_services *host, im_settings *out,
                              molt_message *message) {
    if (!im_config_readable(config)) {
        im_message(message, "in-memory: malformed molt_config (struct_size too small or entries missing)");
        return false;
    }
    const char *max_keys = molt_config_get(config, "maxKeys");
    const char *buckets = molt_config_get(config, "initialBuckets");
    uint64_t value = 0;
    if (!im_parse_uint(max_keys ? max_keys : "0", 0, UINT64_MAX, &value)) {
        im_message(message, "in-memory: invalid value \"%s\" for config key maxKeys: expected an integer >= 0 "
                            "(0 = unlimited)", max_keys);
        return false;
    }
    out->max_keys = value;
    if (!im_parse_uint(buckets ? buckets : "1024", 1, IM_MAX_BUCKETS, &value)) {
        im_message(message, "in-memory: invalid value \"%s\" for config key initialBuckets: expected an integer "
                            "from 1 to 16777216", buckets);
        return false;
    }
    out->initial_buckets = (uint32_t)value;
    for (uint32_t i = 0; host != NULL && config != NULL && i < config->entry_count; i++) {
        const char *key = config->entries[i].key;
        if (key != NULL && !im_is_plugin_key(key))
            molt_log(host, MOLT_LOG_WARNING, "in-memory (%s): ignoring unknown config key '%s'",
                   config->component_name ? config->component_name : "?", key);
    }
    return true;
}

/* A copy of `config` in one allocation (entries, then their strings); NULL when out of memory. */
static molt_config *im_config_copy(const molt_config *config) {
    uint32_t n = config ? config->entry_count : 0;
    const char *name = config && config->struct_size >= offsetof(molt_config, component_name) +
                                   sizeof config->component_name ? config->component_name : NULL;
    size_t size = sizeof(molt_config) + (size_t)n * sizeof(molt_kv) + (name ? strlen(name) + 1 : 0);
    for (uint32_t i = 0; i < n; i++) {
        const char *value = config->entries[i].value;
        size += strlen(config->entries[i].key) + 1 + strlen(value ? value : "") + 1;
    }
    molt_config *copy = malloc(size);
    if (copy == NULL) return NULL;
    molt_kv *entries = (molt_kv *)(copy + 1);
    char *text = (char *)(entries + n);
    for (uint32_t i = 0; i < n; i++) {
        const char *parts[2] = {config->entries[i].key, config->entries[i].value ? config->entries[i].value : ""};
        for (int k = 0; k < 2; k++) {
            size_t length = strlen(parts[k]) + 1;
            memcpy(text, parts[k], length);
            if (k == 0) entries[i].key = text; else entries[i].value = text;
            text += length;
        }
    }
    *copy = (molt_config){.struct_size = sizeof(molt_config), .entry_count = n, .entries = entries,
                          .component_name = name ? memcpy(text, name, strlen(name) + 1) : NULL};
    return copy;
}

/* The first key other than the plugin's own that `next` adds, drops or changes against `running`;
 * NULL when there is none. */
static const char *im_other_key_changed(const molt_config *running, const molt_config *next) {
    for (int pass = 0; pass < 2; pass++) {
        const molt_config *a = pass == 0 ? next : running, *b = pass == 0 ? running : next;
        for (uint32_t i = 0; a != NULL && i < a->entry_count; i++) {
            const char *key = a->entries[i].key, *value = a->entries[i].value, *other = molt_config_get(b, key);
            if (!im_is_plugin_key(key) && (other == NULL || strcmp(other, value ? value : "") != 0)) return key;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------- */
MOLT_EXPORT molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host,
                                         molt_instance *instance_out, molt_message *error_out) {
    im_settings settings;
    if (!im_parse_settings(config, host, &settings, error_out)) return MOLT_ERR_INVALID_ARGUMENT;
    im_store *s = calloc(1, sizeof *s);
    if (s == NULL || (s->buckets = calloc(settings.initial_buckets, sizeof *s->buckets)) == NULL ||
        (s->config = im_config_copy(config)) == NULL) {
        if (s != NULL) free(s->buckets);
        free(s);
        im_message(error_out, "in-memory: out of memory creating a table of %" PRIu32 " buckets",
                   settings.initial_buckets);
        return MOLT_ERR_INTERNAL;
    }
    s->bucket_count = settings.initial_buckets;
    s->next_expiry_ms = INT64_MAX;
    s->max_keys = settings.max_keys;
    s->initial_buckets = settings.initial_buckets;
    s->host = host;
    if (pthread_mutex_init(&s->mu, NULL) != 0) goto fail;
    if (pthread_mutex_init(&s->config_mu, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        goto fail;
    }
    *instance_out = s;
    return MOLT_OK;
fail:
    free(s->config);
    free(s->buckets);
    free(s);
    im_message(error_out, "in-memory: cannot create a mutex");
    return MOLT_ERR_INTERNAL;
}

MOLT_EXPORT molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
    (void)instance;
    (void)message_out;
    return MOLT_READY; /* everything is in memory: ready as soon as init returned */
}

MOLT_EXPORT void molt_plugin_destroy(molt_instance instance) {
    im_store *s = instance;
    if (s == NULL) return;
    im_clear(s);
    free(s->buckets);
    free(s->config);
    pthread_mutex_destroy(&s->config_mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

MOLT_EXPORT molt_apply_outcome molt_plugin_apply_config(molt_instance instance, const molt_config *config,
                                                        molt_message *message_out) {
    im_store *s = instance;
    im_settings next;
    if (!im_parse_settings(config, NULL, &next, message_out)) return MOLT_APPLY_ERROR;
    molt_apply_outcome outcome = MOLT_APPLIED;
    pthread_mutex_lock(&s->config_mu);
    const char *changed = im_other_key_changed(s->config, config);
    molt_config *copy = NULL;
    if (next.initial_buckets != s->initial_buckets) {
        im_message(message_out, "in-memory: config key initialBuckets changed from %" PRIu32 " to %" PRIu32
                                "; the table is built at init, so this needs a reload",
                   s->initial_buckets, next.initial_buckets);
        outcome = MOLT_NEEDS_RELOAD;
    } else if (changed != NULL) {
        im_message(message_out, "in-memory: config key %s changed; in-memory applies only maxKeys in place, so "
                                "this needs a reload", changed);
        outcome = MOLT_NEEDS_RELOAD;
    } else if ((copy = im_config_copy(config)) == NULL) {
        im_message(message_out, "in-memory: out of memory copying the configuration");
        outcome = MOLT_APPLY_ERROR;
    } else {
        pthread_mutex_lock(&s->mu);
        s->max_keys = next.max_keys;
        pthread_mutex_unlock(&s->mu);
        free(s->config);
        s->config = copy;
    }
    pthread_mutex_unlock(&s->config_mu);
    return outcome;
}

/* ---------------------------------------------------------------------------------------------
 * Argument checks (no lock needed)
 * ------------------------------------------------------------------------------------------- */
#define IM_COVERS(request, type, field) \
    ((request) != NULL && (request)->struct_size >= offsetof(type, field) + sizeof((request)->field))

static bool im_is_decimal(const char *etag) {
    uint64_t ignored;
    return im_parse_uint(etag, 0, UINT64_MAX, &ignored);
}

/* A write operation, checked, with everything its apply step needs already allocated. */
typedef struct {
    bool is_set;
    const char *key;  /* borrowed from the request */
    uint64_t hash;
    const char *etag; /* borrowed; NULL: none given (NULL or "") */
    molt_concurrency concurrency;
    int64_t ttl_s;    /* set: 0 never expires, else seconds */
    im_entry *fresh;  /* set: owned until the apply step takes it; copies of the key and value */
} im_op;

/* Checks what set and delete share: key, etag, concurrency, consistency. */
static molt_status im_check_common(const char *key, const char *etag, molt_concurrency concurrency,
                                   molt_consistency consistency, char *message) {
    if (key == NULL || key[0] == '\0') {
        im_format(message, "in-memory: key must not be empty");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    if (concurrency < MOLT_CONCURRENCY_UNSPECIFIED || concurrency > MOLT_CONCURRENCY_LAST_WRITE) {
        im_format(message, "in-memory: invalid concurrency %" PRId32 " for key %s", concurrency, key);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    if (consistency < MOLT_CONSISTENCY_UNSPECIFIED || consistency > MOLT_CONSISTENCY_STRONG) {
        im_format(message, "in-memory: invalid consistency %" PRId32 " for key %s", consistency, key);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    if (etag != NULL && etag[0] != '\0' && !im_is_decimal(etag)) {
        im_format(message, "in-memory: invalid etag \"%s\" for key %s: not a decimal number", etag, key);
        return MOLT_ERR_ETAG_INVALID;
    }
    return MOLT_OK;
}

static molt_status im_prepare_set(const molt_state_set_request *r, int64_t now_ms, im_op *out, char *message) {
    if (!IM_COVERS(r, molt_state_set_request, metadata)) {
        im_format(message, "in-memory: malformed molt_state_set_request (struct_size too small)");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    molt_status status = im_check_common(r->key, r->etag, r->concurrency, r->consistency, message);
    if (status != MOLT_OK) return status;
    if (r->value.data == NULL && r->value.length != 0) {
        im_format(message, "in-memory: value of key %s has length %zu but no data", r->key, r->value.length);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    int64_t ttl = 0;
    if (r->has_ttl && r->ttl_in_seconds != -1) {
        if (r->ttl_in_seconds <= 0) {
            im_format(message, "in-memory: invalid ttlInSeconds %" PRId64 " for key %s: must be > 0, or -1 for no "
                               "expiry", r->ttl_in_seconds, r->key);
            return MOLT_ERR_INVALID_ARGUMENT;
        }
        if (r->ttl_in_seconds > IM_MAX_EXPIRY_S - now_ms / 1000) {
            im_format(message, "in-memory: invalid ttlInSeconds %" PRId64 " for key %s: expires after year 9999",
                      r->ttl_in_seconds, r->key);
            return MOLT_ERR_INVALID_ARGUMENT;
        }
        ttl = r->ttl_in_seconds;
    }
    im_entry *e = calloc(1, sizeof *e);
    size_t key_length = strlen(r->key);
    if (e == NULL || (e->key = malloc(key_length + 1)) == NULL ||
        (e->value = malloc(r->value.length ? r->value.length : 1)) == NULL) {
        im_free_entry(e);
        im_format(message, "in-memory: out of memory storing key %s (%zu bytes)", r->key, r->value.length);
        return MOLT_ERR_INTERNAL;
    }
    memcpy(e->key, r->key, key_length + 1);
    if (r->value.length) memcpy(e->value, r->value.data, r->value.length);
    e->value_length = r->value.length;
    e->hash = im_hash(r->key);
    *out = (im_op){.is_set = true, .key = e->key, .hash = e->hash,
                   .etag = (r->etag != NULL && r->etag[0] != '\0') ? r->etag : NULL,
                   .concurrency = r->concurrency, .ttl_s = ttl, .fresh = e};
    return MOLT_OK;
}

static molt_status im_prepare_delete(const molt_state_delete_request *r, im_op *out, char *message) {
    if (!IM_COVERS(r, molt_state_delete_request, metadata)) {
        im_format(message, "in-memory: malformed molt_state_delete_request (struct_size too small)");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    molt_status status = im_check_common(r->key, r->etag, r->concurrency, r->consistency, message);
    if (status != MOLT_OK) return status;
    *out = (im_op){.is_set = false, .key = r->key, .hash = im_hash(r->key),
                   .etag = (r->etag != NULL && r->etag[0] != '\0') ? r->etag : NULL, .concurrency = r->concurrency};
    return MOLT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Writes: set, delete and transact all go through im_write.
 * ------------------------------------------------------------------------------------------- */

/* The etag rules against the current state; *creates_out: a set of a missing key. Caller holds mu. */
static molt_status im_check_etag(im_store *s, const im_op *op, int64_t now_ms, bool *creates_out, char *message) {
    im_entry *e = *im_link(s, op->key, op->hash, now_ms);
    *creates_out = op->is_set && e == NULL;
    bool ok;
    if (op->etag != NULL) {
        char current[IM_ETAG_CAP];
        if (e != NULL) im_etag_text(e->etag, current);
        ok = e != NULL && strcmp(current, op->etag) == 0;
    } else {
        ok = op->concurrency != MOLT_CONCURRENCY_FIRST_WRITE || e == NULL;
    }
    if (ok) return MOLT_OK;
    im_format(message, "in-memory: etag mismatch for key %s", op->key);
    return MOLT_ERR_ETAG_MISMATCH;
}

/* Applies one checked operation; cannot fail. Takes op->fresh. Caller holds mu. */
static void im_apply(im_store *s, im_op *op, int64_t now_ms) {
    im_entry **link = im_link(s, op->key, op->hash, now_ms);
    im_entry *e = *link, *fresh = op->fresh;
    op->fresh = NULL;
    if (!op->is_set) {
        if (e != NULL) {
            *link = e->next;
            im_free_entry(e);
            s->count--;
        }
        return;
    }
    if (e != NULL) { /* keep the entry, take the new value; the fresh shell (key copy) is freed */
        free(e->value);
        e->value = fresh->value;
        e->value_length = fresh->value_length;
        fresh->value = NULL;
        im_free_entry(fresh);
    } else {
        e = fresh;
        *link = e;
        s->count++;
    }
    e->etag = ++s->last_etag;
    e->expires_ms = op->ttl_s > 0 ? now_ms + op->ttl_s * 1000 : 0;
    if (e->expires_ms != 0 && e->expires_ms < s->next_expiry_ms) s->next_expiry_ms = e->expires_ms;
}

/* Runs `count` write operations atomically; the message of a failure goes to `message`. */
static molt_status im_write(im_store *s, const molt_state_operation *ops, uint32_t count, char *message) {
    if (count == 0) return MOLT_OK;
    if (ops == NULL) {
        im_format(message, "in-memory: %" PRIu32 " operations but no operation array", count);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    im_op one, *prepared = count == 1 ? &one : calloc(count, sizeof *prepared);
    if (prepared == NULL) {
        im_format(message, "in-memory: out of memory preparing %" PRIu32 " operations", count);
        return MOLT_ERR_INTERNAL;
    }
    int64_t now_ms = im_now_ms();
    molt_status status = MOLT_OK;
    uint32_t ready = 0; /* prepared[0..ready) may own entries */
    for (; ready < count && status == MOLT_OK; ready++) {
        const molt_state_operation *op = &ops[ready];
        prepared[ready] = (im_op){0};
        if (op->type == MOLT_STATE_OPERATION_SET && op->set_request != NULL) {
            status = im_prepare_set(op->set_request, now_ms, &prepared[ready], message);
        } else if (op->type == MOLT_STATE_OPERATION_DELETE && op->delete_request != NULL) {
            status = im_prepare_delete(op->delete_request, &prepared[ready], message);
        } else {
            im_format(message, "in-memory: operation #%" PRIu32 " has type %" PRId32 " without its matching request",
                      ready, op->type);
            status = MOLT_ERR_INVALID_ARGUMENT;
        }
    }
    if (status == MOLT_OK) {
        pthread_mutex_lock(&s->mu);
        uint64_t creates = 0;
        for (uint32_t i = 0; i < count && status == MOLT_OK; i++) {
            bool creates_key = false;
            status = im_check_etag(s, &prepared[i], now_ms, &creates_key, message);
            creates += creates_key;
        }
        if (status == MOLT_OK && s->max_keys != 0 && creates > 0 && s->count + creates > s->max_keys) {
            im_purge(s, now_ms); /* the limit counts live keys only */
            if (s->count + creates > s->max_keys) {
                im_format(message, "in-memory: maxKeys (%" PRIu64 ") reached: %zu keys stored, this write adds %"
                          PRIu64, s->max_keys, s->count, creates);
                status = MOLT_ERR_UNAVAILABLE;
            }
        }
        if (status == MOLT_OK) {
            for (uint32_t i = 0; i < count; i++) im_apply(s, &prepared[i], now_ms);
            im_maybe_grow(s, now_ms);
        }
        pthread_mutex_unlock(&s->mu);
    }
    for (uint32_t i = 0; i < ready; i++) im_free_entry(prepared[i].fresh); /* left over only on failure */
    if (prepared != &one) free(prepared);
    return status;
}

static void im_done_write(molt_state_write_done done, void *ctx, molt_status status, const char *message) {
    molt_state_write_result result = {.struct_size = sizeof result, .status = status,
                                      .message = status == MOLT_OK ? NULL : message};
    done(ctx, &result);
}

MOLT_EXPORT void molt_state_set(molt_instance instance, const molt_state_set_request *request,
                                molt_state_write_done done, void *call_context) {
    char message[IM_MESSAGE_CAP];
    molt_state_operation op = {.type = MOLT_STATE_OPERATION_SET, .set_request = request};
    im_done_write(done, call_context, im_write(instance, &op, 1, message), message);
}

MOLT_EXPORT void molt_state_delete(molt_instance instance, const molt_state_delete_request *request,
                                   molt_state_write_done done, void *call_context) {
    char message[IM_MESSAGE_CAP];
    molt_state_operation op = {.type = MOLT_STATE_OPERATION_DELETE, .delete_request = request};
    im_done_write(done, call_context, im_write(instance, &op, 1, message), message);
}

MOLT_EXPORT void molt_state_transact(molt_instance instance, const molt_state_transact_request *request,
                                     molt_state_write_done done, void *call_context) {
    char message[IM_MESSAGE_CAP];
    molt_status status;
    if (!IM_COVERS(request, molt_state_transact_request, metadata)) {
        im_format(message, "in-memory: malformed molt_state_transact_request (struct_size too small)");
        status = MOLT_ERR_INVALID_ARGUMENT;
    } else {
        status = im_write(instance, request->operations, request->operation_count, message);
    }
    im_done_write(done, call_context, status, message);
}

/* ---------------------------------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------------------------------- */

/* Copies the live entry for `key` into *value_out (malloc'd, the caller frees) and `etag`;
 * *expires_out gets its expiry. Returns false when the key is missing. Caller holds mu; on
 * MOLT_ERR_INTERNAL (out of memory) *status_out is set. */
static bool im_read(im_store *s, const char *key, int64_t now_ms, molt_bytes *value_out, char etag[IM_ETAG_CAP],
                    int64_t *expires_out, molt_status *status_out) {
    im_entry *e = *im_link(s, key, im_hash(key), now_ms);
    if (e == NULL) return false;
    uint8_t *copy = malloc(e->value_length ? e->value_length : 1);
    if (copy == NULL) {
        *status_out = MOLT_ERR_INTERNAL;
        return false;
    }
    if (e->value_length) memcpy(copy, e->value, e->value_length);
    *value_out = (molt_bytes){.data = copy, .length = e->value_length};
    im_etag_text(e->etag, etag);
    *expires_out = e->expires_ms;
    return true;
}

MOLT_EXPORT void molt_state_get(molt_instance instance, const molt_state_get_request *r, molt_state_get_done done,
                                void *call_context) {
    im_store *s = instance;
    char message[IM_MESSAGE_CAP], etag[IM_ETAG_CAP], expires[IM_TIME_CAP];
    molt_state_get_result result = {.struct_size = sizeof result, .status = MOLT_OK};
    molt_kv metadata[1];
    if (!IM_COVERS(r, molt_state_get_request, metadata)) {
        im_format(message, "in-memory: malformed molt_state_get_request (struct_size too small)");
        result.status = MOLT_ERR_INVALID_ARGUMENT;
    } else if (r->key == NULL || r->key[0] == '\0') {
        im_format(message, "in-memory: key must not be empty");
        result.status = MOLT_ERR_INVALID_ARGUMENT;
    } else if (r->consistency < MOLT_CONSISTENCY_UNSPECIFIED || r->consistency > MOLT_CONSISTENCY_STRONG) {
        im_format(message, "in-memory: invalid consistency %" PRId32 " for key %s", r->consistency, r->key);
        result.status = MOLT_ERR_INVALID_ARGUMENT;
    } else {
        int64_t expires_ms = 0;
        pthread_mutex_lock(&s->mu);
        result.found = im_read(s, r->key, im_now_ms(), &result.value, etag, &expires_ms, &result.status);
        pthread_mutex_unlock(&s->mu);
        if (result.status != MOLT_OK) im_format(message, "in-memory: out of memory reading key %s", r->key);
        if (result.found) {
            result.etag = etag;
            if (expires_ms != 0) {
                im_rfc3339(expires_ms, expires);
                metadata[0] = (molt_kv){.key = "ttlExpireTime", .value = expires};
                result.metadata = metadata;
                result.metadata_count = 1;
            }
        }
    }
    if (result.status != MOLT_OK) result.message = message;
    done(call_context, &result);
    free((void *)result.value.data);
}

MOLT_EXPORT void molt_state_bulk_get(molt_instance instance, const molt_state_bulk_get_request *r,
                                     molt_state_bulk_get_done done, void *call_context) {
    im_store *s = instance;
    char message[IM_MESSAGE_CAP];
    molt_state_bulk_get_result result = {.struct_size = sizeof result, .status = MOLT_OK};
    molt_state_bulk_item *items = NULL;
    char (*etags)[IM_ETAG_CAP] = NULL;
    uint32_t n = 0;
    if (!IM_COVERS(r, molt_state_bulk_get_request, metadata)) {
        im_format(message, "in-memory: malformed molt_state_bulk_get_request (struct_size too small)");
        result.status = MOLT_ERR_INVALID_ARGUMENT;
    } else if (r->key_count > 0 && r->keys == NULL) {
        im_format(message, "in-memory: %" PRIu32 " keys but no key array", r->key_count);
        result.status = MOLT_ERR_INVALID_ARGUMENT;
    } else {
        for (uint32_t i = 0; i < r->key_count && result.status == MOLT_OK; i++) {
            if (r->keys[i] == NULL || r->keys[i][0] == '\0') {
                im_format(message, "in-memory: key #%" PRIu32 " must not be empty", i);
                result.status = MOLT_ERR_INVALID_ARGUMENT;
            }
        }
        if (result.status == MOLT_OK && r->key_count > 0 &&
            ((items = calloc(r->key_count, sizeof *items)) == NULL ||
             (etags = calloc(r->key_count, sizeof *etags)) == NULL)) {
            im_format(message, "in-memory: out of memory reading %" PRIu32 " keys", r->key_count);
            result.status = MOLT_ERR_INTERNAL;
        }
        if (result.status == MOLT_OK) {
            n = r->key_count;
            int64_t now_ms = im_now_ms(), expires_ms;
            pthread_mutex_lock(&s->mu);
            for (uint32_t i = 0; i < n && result.status == MOLT_OK; i++) {
                items[i].key = r->keys[i];
                items[i].found = im_read(s, r->keys[i], now_ms, &items[i].value, etags[i], &expires_ms, &result.status);
                if (items[i].found) items[i].etag = etags[i];
            }
            pthread_mutex_unlock(&s->mu);
            if (result.status != MOLT_OK) im_format(message, "in-memory: out of memory reading %" PRIu32 " keys", n);
        }
    }
    if (result.status == MOLT_OK) {
        result.item_count = n;
        result.items = items;
    } else {
        result.message = message;
    }
    done(call_context, &result);
    for (uint32_t i = 0; i < n; i++) free((void *)items[i].value.data);
    free(items);
    free(etags);
}

/* ---------------------------------------------------------------------------------------------
 * State transfer (format 1, described at the top)
 * ------------------------------------------------------------------------------------------- */

/* Buffered little-endian writer over the host's sink; `failed` sticks once the sink refuses. */
typedef struct {
    molt_bytes_sink sink;
    void *sink_context;
    bool failed;
    size_t used;
    uint8_t buffer[IM_EXPORT_CHUNK];
} im_writer;

static void im_flush(im_writer *w) {
    if (!w->failed && w->used > 0 && w->sink(w->sink_context, w->buffer, w->used) != 0) w->failed = true;
    w->used = 0;
}

static void im_put(im_writer *w, const void *bytes, size_t length) {
    const uint8_t *p = bytes;
    while (length > 0 && !w->failed) {
        size_t n = sizeof w->buffer - w->used < length ? sizeof w->buffer - w->used : length;
        memcpy(w->buffer + w->used, p, n);
        w->used += n;
        p += n;
        length -= n;
        if (w->used == sizeof w->buffer) im_flush(w);
    }
}

static void im_put_uint(im_writer *w, uint64_t v, int width) {
    uint8_t b[8];
    for (int i = 0; i < width; i++) b[i] = (uint8_t)(v >> (8 * i));
    im_put(w, b, (size_t)width);
}

MOLT_EXPORT molt_status molt_plugin_export_state(molt_instance instance, uint32_t format, molt_bytes_sink sink,
                                                 void *sink_context, molt_message *message_out) {
    im_store *s = instance;
    if (format != IM_FORMAT) {
        im_message(message_out, "in-memory %s cannot export state format %" PRIu32 " (supports 1)", IM_VERSION, format);
        return MOLT_ERR_UNSUPPORTED;
    }
    if (sink == NULL) {
        im_message(message_out, "in-memory: export_state needs a sink");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    im_writer *w = malloc(sizeof *w);
    if (w == NULL) {
        im_message(message_out, "in-memory: out of memory exporting state");
        return MOLT_ERR_INTERNAL;
    }
    *w = (im_writer){.sink = sink, .sink_context = sink_context};
    pthread_mutex_lock(&s->mu);
    s->next_expiry_ms = INT64_MIN; /* forces the purge: afterwards `count` is exactly the live keys */
    im_purge(s, im_now_ms());
    im_put(w, "IMS1", 4);
    im_put_uint(w, s->last_etag, 8);
    im_put_uint(w, s->count, 8);
    for (size_t b = 0; b < s->bucket_count && !w->failed; b++) {
        for (const im_entry *e = s->buckets[b]; e != NULL && !w->failed; e = e->next) {
            size_t key_length = strlen(e->key);
            im_put_uint(w, key_length, 4);
            im_put(w, e->key, key_length);
            im_put_uint(w, e->value_length, 8);
            im_put(w, e->value, e->value_length);
            im_put_uint(w, e->etag, 8);
            im_put_uint(w, (uint64_t)e->expires_ms, 8);
        }
    }
    im_flush(w);
    size_t exported = s->count;
    pthread_mutex_unlock(&s->mu);
    bool failed = w->failed;
    free(w);
    if (failed) {
        im_message(message_out, "in-memory: the host refused the exported state (%zu keys, format 1)", exported);
        return MOLT_ERR_INTERNAL;
    }
    return MOLT_OK;
}

/* Bounds-checked little-endian reader over the imported bytes. */
typedef struct {
    const uint8_t *p;
    size_t length, offset;
} im_reader;

static bool im_get_uint(im_reader *r, int width, uint64_t *out) {
    if (r->length - r->offset < (size_t)width) return false;
    uint64_t v = 0;
    for (int i = 0; i < width; i++) v |= (uint64_t)r->p[r->offset + i] << (8 * i);
    r->offset += (size_t)width;
    *out = v;
    return true;
}

/* One record, pointing into the imported bytes. */
typedef struct {
    const char *key; /* not NUL-terminated */
    uint32_t key_length;
    const uint8_t *value;
    uint64_t value_length, etag;
    int64_t expires_ms;
} im_record;

static bool im_get_record(im_reader *r, uint64_t index, uint64_t last_etag, im_record *rec, molt_message *message) {
    size_t at = r->offset;
    uint64_t key_length, value_length, etag, expires;
    if (!im_get_uint(r, 4, &key_length) || key_length > r->length - r->offset) goto truncated;
    rec->key = (const char *)r->p + r->offset;
    rec->key_length = (uint32_t)key_length;
    r->offset += key_length;
    if (!im_get_uint(r, 8, &value_length) || value_length > r->length - r->offset) goto truncated;
    rec->value = r->p + r->offset;
    rec->value_length = value_length;
    r->offset += value_length;
    if (!im_get_uint(r, 8, &etag) || !im_get_uint(r, 8, &expires)) goto truncated;
    rec->etag = etag;
    rec->expires_ms = (int64_t)expires;
    if (key_length == 0 || memchr(rec->key, '\0', key_length) != NULL) {
        im_message(message, "in-memory: corrupt state (format 1): record %" PRIu64 " at byte %zu has an empty key or "
                            "one holding a NUL byte", index, at);
        return false;
    }
    if (etag == 0 || etag > last_etag || rec->expires_ms < 0) {
        im_message(message, "in-memory: corrupt state (format 1): record %" PRIu64 " (key %.*s) has etag %" PRIu64
                            " (last etag %" PRIu64 ") and expiry %" PRId64,
                   index, (int)(key_length > 200 ? 200 : key_length), rec->key, etag, last_etag, rec->expires_ms);
        return false;
    }
    return true;
truncated:
    im_message(message, "in-memory: corrupt state (format 1): record %" PRIu64 " starting at byte %zu runs past "
                        "the end (%zu bytes)", index, at, r->length);
    return false;
}

MOLT_EXPORT molt_status molt_plugin_import_state(molt_instance instance, uint32_t format, const void *bytes,
                                                 size_t length, molt_message *message_out) {
    im_store *s = instance;
    if (format != IM_FORMAT) {
        im_message(message_out, "in-memory %s cannot import state format %" PRIu32 " (supports 1)", IM_VERSION, format);
        return MOLT_ERR_UNSUPPORTED;
    }
    if (bytes == NULL && length > 0) {
        im_message(message_out, "in-memory: import_state got NULL bytes with length %zu", length);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    /* Pass 1: the layout, without touching the instance. */
    im_reader r = {bytes, length, 0};
    uint64_t last_etag = 0, count = 0;
    if (length < 20 || memcmp(bytes, "IMS1", 4) != 0) {
        im_message(message_out, "in-memory: corrupt state (format 1): %zu bytes without the \"IMS1\" header", length);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    r.offset = 4;
    im_get_uint(&r, 8, &last_etag);
    im_get_uint(&r, 8, &count);
    size_t first = r.offset;
    im_record rec;
    for (uint64_t i = 0; i < count; i++)
        if (!im_get_record(&r, i, last_etag, &rec, message_out)) return MOLT_ERR_INVALID_ARGUMENT;
    if (r.offset != r.length) {
        im_message(message_out, "in-memory: corrupt state (format 1): %zu unexpected bytes after %" PRIu64 " records",
                   r.length - r.offset, count);
        return MOLT_ERR_INVALID_ARGUMENT;
    }

    /* Pass 2: insert. A refusal from here on empties the table again. */
    molt_status status = MOLT_OK;
    pthread_mutex_lock(&s->mu);
    if (s->count != 0) {
        im_message(message_out, "in-memory: import_state needs an empty instance, this one holds %zu keys", s->count);
        pthread_mutex_unlock(&s->mu);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    int64_t now_ms = im_now_ms();
    r.offset = first;
    for (uint64_t i = 0; i < count && status == MOLT_OK; i++) {
        im_get_record(&r, i, last_etag, &rec, NULL);
        if (rec.expires_ms != 0 && rec.expires_ms <= now_ms) continue; /* expired in transit */
        im_entry *e = calloc(1, sizeof *e);
        if (e == NULL || (e->key = malloc((size_t)rec.key_length + 1)) == NULL ||
            (e->value = malloc(rec.value_length ? rec.value_length : 1)) == NULL) {
            im_free_entry(e);
            im_message(message_out, "in-memory: out of memory importing record %" PRIu64 " of %" PRIu64, i, count);
            status = MOLT_ERR_INTERNAL;
            break;
        }
        memcpy(e->key, rec.key, rec.key_length);
        e->key[rec.key_length] = '\0';
        if (rec.value_length) memcpy(e->value, rec.value, rec.value_length);
        *e = (im_entry){.hash = im_hash(e->key), .key = e->key, .value = e->value, .value_length = rec.value_length,
                        .etag = rec.etag, .expires_ms = rec.expires_ms};
        im_entry **link = im_link(s, e->key, e->hash, now_ms);
        if (*link != NULL) {
            im_message(message_out, "in-memory: corrupt state (format 1): key %s appears twice", e->key);
            im_free_entry(e);
            status = MOLT_ERR_INVALID_ARGUMENT;
            break;
        }
        *link = e;
        s->count++;
        if (e->expires_ms != 0 && e->expires_ms < s->next_expiry_ms) s->next_expiry_ms = e->expires_ms;
        im_maybe_grow(s, now_ms);
    }
    if (status == MOLT_OK)
        s->last_etag = last_etag;
    else
        im_clear(s);
    pthread_mutex_unlock(&s->mu);
    return status;
}
