/*
 * memorylock: an in-memory molt lock plugin (kind "lock", name "memorylock") with Dapr's
 * distributed lock semantics. Plain C against molt_plugin.h; no Swift runtime, so the host can
 * dlclose it. One source builds two versions:
 *   default            version 1.0.0, state formats [1, 1]
 *   -DMEMORYLOCK_V2    version 2.0.0, state formats [1, 2]
 *
 * Semantics
 *   try_lock(resource, owner, expiry > 0 s): acquires when the resource is free or its lock has
 *     expired (an expired lock is free for anyone, any owner). A held, unexpired lock gives
 *     acquired=false with MOLT_OK, also for its own owner (like Dapr's SETNX-based stores: a
 *     re-lock does not extend the lease).
 *   unlock(resource, owner): SUCCESS when `owner` holds it and it has not expired;
 *     LOCK_DOES_NOT_EXIST when absent or expired; LOCK_BELONGS_TO_OTHERS when another owner holds it.
 *   Empty resource_id / lock_owner, or expiry_in_seconds <= 0 on try_lock: MOLT_ERR_INVALID_ARGUMENT
 *     with a message naming the field. Every operation completes inline (done before returning).
 *   Expiry is stored as absolute CLOCK_REALTIME milliseconds, so exported state means the same
 *     thing to an importer in another instance (or another process on the same clock).
 *
 * Configuration keys (molt_plugin_config_keys)
 *   maxLocks         default "0" (unlimited), applies in place, deprecated alias "maxLockCount".
 *                    Most entries held at once; expired entries count until swept or reused. When
 *                    full, try_lock of a new resource fails with MOLT_ERR_UNAVAILABLE,
 *                    "memorylock: maxLocks (N) reached".
 *   sweepIntervalMs  default "1000", 1..3600000, applies in place: how often the sweeper thread
 *                    drops expired entries (expiry is also checked lazily on every access).
 *   buckets          default "65536", 1..16777216, NOT in place (apply_config answers NEEDS_RELOAD
 *                    naming it): hash table size.
 *   Unknown keys are logged as a WARNING and ignored (a newer host may pass more). Malformed
 *   numbers fail init (MOLT_ERR_INVALID_ARGUMENT) or apply_config (MOLT_APPLY_ERROR) naming the
 *   key and the value.
 *
 * State formats (export writes only unexpired locks; all integers little-endian)
 *   format 1 (v1 and v2):  "MLK1" | u32 count | count x { u32 rlen | resource | u32 olen | owner |
 *                                                         i64 expires_at_ms }
 *   format 2 (v2 only):    "MLK2" | u32 flags (0) | u64 count |
 *                          count x { i64 acquired_at_ms | i64 expires_at_ms | u32 olen | owner |
 *                                    u32 rlen | resource } | u32 crc32 (IEEE, of all bytes before it)
 *   Strings are non-empty and hold no NUL byte. acquired_at_ms is 0 when unknown (state that came
 *   through format 1), else 0 < acquired_at_ms <= expires_at_ms. Import needs an empty instance,
 *   validates everything (magic, flags, counts, lengths, truncation, trailing bytes, duplicate
 *   resources, checksum) and on any refusal leaves the instance empty. Records that expired
 *   in transit are dropped.
 *
 * Threading
 *   A chained hash table (`buckets` heads) guarded by ML_STRIPES striped mutexes (bucket b is
 *   guarded by stripe b % ML_STRIPES), so operations are O(1) and mostly uncontended. The entry
 *   count and the in-place settings are atomics. A sweeper thread, started by init and stopped and
 *   joined by destroy, scans one stripe at a time every sweepIntervalMs. The host runs no operation
 *   during export/import, but the sweeper may: they hold `bulk_mu`, which the sweeper takes for each
 *   pass, so the table cannot change under them (they still take each stripe while reading it).
 */
#define _POSIX_C_SOURCE 200809L

#include "molt_plugin.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef MEMORYLOCK_V2
#define ML_VERSION "2.0.0"
#define ML_FORMAT_MAX 2u
#else
#define ML_VERSION "1.0.0"
#define ML_FORMAT_MAX 1u
#endif
#define ML_FORMAT_MIN 1u

#define ML_STRIPES 128u
#define ML_DEFAULT_BUCKETS 65536u
#define ML_MAX_BUCKETS (1u << 24)
#define ML_MAX_SWEEP_MS 3600000u
#define ML_EXPORT_CHUNK 65536u

/* ---------------------------------------------------------------------------------------------
 * Identity and declared keys
 * ------------------------------------------------------------------------------------------- */
static const molt_plugin_identity ml_info = {
    .struct_size = sizeof(molt_plugin_identity),
    .name = "memorylock",
    .version = ML_VERSION,
    .kind = MOLT_KIND_LOCK,
    .description = "In-memory locks with Dapr semantics (striped hash table, lazy expiry and a sweeper)",
    .state_format_min = ML_FORMAT_MIN,
    .state_format_max = ML_FORMAT_MAX,
    .flags = MOLT_PLUGIN_HOLDS_STATE, /* held locks live only here; handed over by export/import */
};

static const char *const ml_max_locks_aliases[] = {"maxLockCount", NULL};

static const molt_config_key ml_keys[] = {
    {"maxLocks", "most locks held at once, expired ones included until swept; 0 = unlimited", "0", false, true,
     ml_max_locks_aliases},
    {"sweepIntervalMs", "milliseconds between sweeps that drop expired locks (1-3600000)", "1000", false, true, NULL},
    {"buckets", "hash table buckets (1-16777216); changing it needs a reload", "65536", false, false, NULL},
};

MOLT_DEFINE_ABI_VERSION()

MOLT_EXPORT const molt_plugin_identity *molt_plugin_info(void) { return &ml_info; }

MOLT_EXPORT const molt_config_key *molt_plugin_config_keys(uint32_t *count_out) {
    *count_out = (uint32_t)(sizeof ml_keys / sizeof ml_keys[0]);
    return ml_keys;
}

/* ---------------------------------------------------------------------------------------------
 * Instance
 * ------------------------------------------------------------------------------------------- */
typedef struct ml_entry {
    struct ml_entry *next;
    uint64_t hash;
    int64_t expires_at_ms;  /* absolute CLOCK_REALTIME; expired when <= now */
    int64_t acquired_at_ms; /* absolute CLOCK_REALTIME; 0 when unknown */
    uint32_t resource_len;
    uint32_t owner_len;
    char text[]; /* resource, NUL, owner, NUL */
} ml_entry;

typedef struct {
    _Alignas(64) pthread_mutex_t mu; /* one cache line per stripe */
} ml_stripe;

typedef struct {
    uint64_t max_locks;
    uint32_t sweep_interval_ms;
    uint32_t buckets;
} ml_settings;

typedef struct {
    ml_stripe stripes[ML_STRIPES];
    ml_entry **buckets;
    uint32_t bucket_count; /* fixed for the instance's life */
    uint64_t seed;
    _Atomic uint64_t entry_count; /* entries in the table, expired or not */
    _Atomic uint64_t max_locks;
    _Atomic uint32_t sweep_interval_ms;
    const molt_host_services *host;
    pthread_mutex_t config_mu; /* serializes apply_config */
    pthread_mutex_t bulk_mu;   /* held by a sweep pass, and by export/import throughout */
    pthread_mutex_t sweeper_mu;
    pthread_cond_t sweeper_cv; /* CLOCK_MONOTONIC */
    bool sweeper_stop;         /* guarded by sweeper_mu */
    bool sweeper_kick;         /* guarded by sweeper_mu: the interval changed */
    pthread_t sweeper;
} ml_instance;

static int64_t ml_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ml_message(molt_message *message, const char *format, ...) {
    if (message == NULL || message->text == NULL || message->capacity == 0) return;
    va_list args;
    va_start(args, format);
    vsnprintf(message->text, message->capacity, format, args);
    va_end(args);
}

static inline uint64_t ml_rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* A seeded multiply-rotate hash over 8-byte words with murmur3's 64-bit finalizer: fast for the
 * short names locks usually have. The per-instance seed makes bucket placement differ per instance. */
static uint64_t ml_hash(uint64_t seed, const char *bytes, size_t length) {
    const uint64_t k1 = 0x9E3779B97F4A7C15ULL, k2 = 0xBF58476D1CE4E5B9ULL;
    uint64_t h = seed ^ ((uint64_t)length * k1);
    uint64_t w;
    for (; length >= 8; bytes += 8, length -= 8) {
        memcpy(&w, bytes, 8);
        h = ml_rotl(h ^ (w * k1), 31) * k2;
    }
    w = 0; /* the tail, assembled in a register (a byte-wise memcpy would stall the 8-byte load) */
    for (size_t i = 0; i < length; i++) w |= (uint64_t)(unsigned char)bytes[i] << (8 * i);
    h = ml_rotl(h ^ (w * k1), 31) * k2;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* Maps the hash's high half onto [0, bucket_count) with a multiply instead of a division. */
static inline uint32_t ml_bucket_of(const ml_instance *ml, uint64_t hash) {
    return (uint32_t)(((hash >> 32) * (uint64_t)ml->bucket_count) >> 32);
}
static inline ml_stripe *ml_stripe_of(ml_instance *ml, uint32_t bucket) { return &ml->stripes[bucket % ML_STRIPES]; }
static inline const char *ml_owner_of(const ml_entry *e) { return e->text + e->resource_len + 1; }

static ml_entry *ml_entry_new(uint64_t hash, const char *resource, uint32_t resource_len, const char *owner,
                              uint32_t owner_len, int64_t acquired_at_ms, int64_t expires_at_ms) {
    ml_entry *e = malloc(sizeof(ml_entry) + (size_t)resource_len + 1 + (size_t)owner_len + 1);
    if (e == NULL) return NULL;
    e->next = NULL;
    e->hash = hash;
    e->expires_at_ms = expires_at_ms;
    e->acquired_at_ms = acquired_at_ms;
    e->resource_len = resource_len;
    e->owner_len = owner_len;
    memcpy(e->text, resource, resource_len);
    e->text[resource_len] = '\0';
    memcpy(e->text + resource_len + 1, owner, owner_len);
    e->text[resource_len + 1 + owner_len] = '\0';
    return e;
}

/* The link pointing at the entry for `resource` in `bucket` (or at the chain's NULL end).
 * The caller holds the bucket's stripe. */
static ml_entry **ml_find(ml_instance *ml, uint32_t bucket, uint64_t hash, const char *resource, uint32_t length) {
    ml_entry **link = &ml->buckets[bucket];
    while (*link != NULL) {
        ml_entry *e = *link;
        if (e->hash == hash && e->resource_len == length && memcmp(e->text, resource, length) == 0) break;
        link = &e->next;
    }
    return link;
}

/* Takes one slot of maxLocks; false when full (*limit_out says the limit). */
static bool ml_reserve(ml_instance *ml, uint64_t *limit_out) {
    uint64_t limit = atomic_load_explicit(&ml->max_locks, memory_order_relaxed);
    if (limit == 0) {
        atomic_fetch_add_explicit(&ml->entry_count, 1, memory_order_relaxed);
        return true;
    }
    uint64_t current = atomic_load_explicit(&ml->entry_count, memory_order_relaxed);
    do {
        if (current >= limit) {
            *limit_out = limit;
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(&ml->entry_count, &current, current + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

static void ml_release(ml_instance *ml, uint64_t count) {
    if (count) atomic_fetch_sub_explicit(&ml->entry_count, count, memory_order_relaxed);
}

/* Removes the expired entries of one stripe's buckets; the caller holds that stripe. */
static uint64_t ml_sweep_stripe(ml_instance *ml, uint32_t stripe, int64_t now) {
    uint64_t removed = 0;
    for (uint32_t b = stripe; b < ml->bucket_count; b += ML_STRIPES) {
        ml_entry **link = &ml->buckets[b];
        while (*link != NULL) {
            ml_entry *e = *link;
            if (e->expires_at_ms <= now) {
                *link = e->next;
                free(e);
                removed++;
            } else {
                link = &e->next;
            }
        }
    }
    return removed;
}

static void ml_sweep(ml_instance *ml) {
    for (uint32_t s = 0; s < ML_STRIPES; s++) {
        pthread_mutex_lock(&ml->stripes[s].mu);
        uint64_t removed = ml_sweep_stripe(ml, s, ml_now_ms());
        ml_release(ml, removed);
        pthread_mutex_unlock(&ml->stripes[s].mu);
    }
}

static void *ml_sweeper_main(void *arg) {
    ml_instance *ml = arg;
    pthread_mutex_lock(&ml->sweeper_mu);
    while (!ml->sweeper_stop) {
        uint32_t interval = atomic_load(&ml->sweep_interval_ms);
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += interval / 1000;
        deadline.tv_nsec += (long)(interval % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        int rc = 0;
        while (!ml->sweeper_stop && !ml->sweeper_kick && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&ml->sweeper_cv, &ml->sweeper_mu, &deadline);
        if (ml->sweeper_stop) break;
        if (ml->sweeper_kick) { /* new interval: start a fresh wait with it */
            ml->sweeper_kick = false;
            continue;
        }
        pthread_mutex_unlock(&ml->sweeper_mu);
        pthread_mutex_lock(&ml->bulk_mu);
        ml_sweep(ml);
        pthread_mutex_unlock(&ml->bulk_mu);
        pthread_mutex_lock(&ml->sweeper_mu);
    }
    pthread_mutex_unlock(&ml->sweeper_mu);
    return NULL;
}

/* Frees every entry of one stripe's buckets; the caller holds that stripe (or is alone). */
static void ml_clear_stripe(ml_instance *ml, uint32_t stripe) {
    uint64_t removed = 0;
    for (uint32_t b = stripe; b < ml->bucket_count; b += ML_STRIPES) {
        ml_entry *e = ml->buckets[b];
        while (e != NULL) {
            ml_entry *next = e->next;
            free(e);
            removed++;
            e = next;
        }
        ml->buckets[b] = NULL;
    }
    ml_release(ml, removed);
}

/* Frees every entry, taking one stripe at a time. */
static void ml_clear_table(ml_instance *ml) {
    for (uint32_t s = 0; s < ML_STRIPES; s++) {
        pthread_mutex_lock(&ml->stripes[s].mu);
        ml_clear_stripe(ml, s);
        pthread_mutex_unlock(&ml->stripes[s].mu);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------------------------- */

/* Decimal digits only (no sign, no spaces), no overflow, within [min, max]. */
static bool ml_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out) {
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

static bool ml_is_known_key(const char *key) {
    for (size_t i = 0; i < sizeof ml_keys / sizeof ml_keys[0]; i++) {
        if (strcmp(key, ml_keys[i].name) == 0) return true;
        for (const char *const *alias = ml_keys[i].deprecated_aliases; alias && *alias; alias++)
            if (strcmp(key, *alias) == 0) return true;
    }
    return false;
}

static bool ml_config_readable(const molt_config *config) {
    return config == NULL ||
           (config->struct_size >= offsetof(molt_config, entries) + sizeof config->entries &&
            (config->entry_count == 0 || config->entries != NULL));
}

/* Reads every key into *out. On failure writes `message` and returns false. Warns about unknown
 * keys through the host log. */
static bool ml_parse_settings(const molt_config *config, const molt_host_services *host, ml_settings *out,
                              molt_message *message) {
    if (!ml_config_readable(config)) {
        ml_message(message, "memorylock: malformed molt_config (struct_size %" PRIu32 ")", config->struct_size);
        return false;
    }
    struct {
        const char *key;
        const char *fallback_key; /* a deprecated alias the host did not rename */
        const char *default_value;
        uint64_t min, max;
        const char *expected;
        uint64_t value;
    } fields[] = {
        {"maxLocks", "maxLockCount", "0", 0, UINT64_MAX, "an integer >= 0 (0 = unlimited)", 0},
        {"sweepIntervalMs", NULL, "1000", 1, ML_MAX_SWEEP_MS, "an integer from 1 to 3600000", 0},
        {"buckets", NULL, "65536", 1, ML_MAX_BUCKETS, "an integer from 1 to 16777216", 0},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *key = fields[i].key;
        const char *text = molt_config_get(config, key);
        if (text == NULL && fields[i].fallback_key != NULL) {
            text = molt_config_get(config, fields[i].fallback_key);
            if (text != NULL) key = fields[i].fallback_key;
        }
        if (text == NULL) text = fields[i].default_value;
        if (!ml_parse_uint(text, fields[i].min, fields[i].max, &fields[i].value)) {
            ml_message(message, "memorylock: invalid value \"%s\" for config key %s: expected %s", text, key,
                       fields[i].expected);
            return false;
        }
    }
    for (uint32_t i = 0; config != NULL && i < config->entry_count; i++) {
        const char *key = config->entries[i].key;
        if (key != NULL && !ml_is_known_key(key))
            molt_log(host, MOLT_LOG_WARNING, "memorylock: ignoring unknown config key '%s'", key);
    }
    out->max_locks = fields[0].value;
    out->sweep_interval_ms = (uint32_t)fields[1].value;
    out->buckets = (uint32_t)fields[2].value;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------- */
MOLT_EXPORT molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host,
                                         molt_instance *instance_out, molt_message *error_out) {
    ml_settings settings;
    if (!ml_parse_settings(config, host, &settings, error_out)) return MOLT_ERR_INVALID_ARGUMENT;

    size_t size = (sizeof(ml_instance) + 63) / 64 * 64;
    ml_instance *ml = aligned_alloc(64, size);
    if (ml == NULL) goto out_of_memory;
    memset(ml, 0, sizeof *ml);
    ml->buckets = calloc(settings.buckets, sizeof(ml_entry *));
    if (ml->buckets == NULL) {
        free(ml);
        goto out_of_memory;
    }
    ml->bucket_count = settings.buckets;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ml->seed = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)ml;
    atomic_init(&ml->entry_count, 0);
    atomic_init(&ml->max_locks, settings.max_locks);
    atomic_init(&ml->sweep_interval_ms, settings.sweep_interval_ms);
    ml->host = host;

    uint32_t stripes = 0;
    bool config_mu = false, bulk_mu = false, sweeper_mu = false, cond_attr = false, sweeper_cv = false;
    pthread_condattr_t attr;
    for (; stripes < ML_STRIPES; stripes++)
        if (pthread_mutex_init(&ml->stripes[stripes].mu, NULL) != 0) goto fail;
    if (pthread_mutex_init(&ml->config_mu, NULL) != 0) goto fail;
    config_mu = true;
    if (pthread_mutex_init(&ml->bulk_mu, NULL) != 0) goto fail;
    bulk_mu = true;
    if (pthread_mutex_init(&ml->sweeper_mu, NULL) != 0) goto fail;
    sweeper_mu = true;
    if (pthread_condattr_init(&attr) != 0) goto fail;
    cond_attr = true;
    if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0) goto fail;
    if (pthread_cond_init(&ml->sweeper_cv, &attr) != 0) goto fail;
    sweeper_cv = true;
    int rc = pthread_create(&ml->sweeper, NULL, ml_sweeper_main, ml);
    if (rc != 0) {
        ml_message(error_out, "memorylock: cannot start the sweeper thread: %s", strerror(rc));
        goto fail_with_message;
    }
    pthread_condattr_destroy(&attr);
    *instance_out = ml;
    return MOLT_OK;

fail:
    ml_message(error_out, "memorylock: cannot initialize a mutex or condition variable");
fail_with_message:
    if (sweeper_cv) pthread_cond_destroy(&ml->sweeper_cv);
    if (cond_attr) pthread_condattr_destroy(&attr);
    if (sweeper_mu) pthread_mutex_destroy(&ml->sweeper_mu);
    if (bulk_mu) pthread_mutex_destroy(&ml->bulk_mu);
    if (config_mu) pthread_mutex_destroy(&ml->config_mu);
    while (stripes-- > 0) pthread_mutex_destroy(&ml->stripes[stripes].mu);
    free(ml->buckets);
    free(ml);
    return MOLT_ERR_INTERNAL;

out_of_memory:
    ml_message(error_out, "memorylock: out of memory allocating %" PRIu32 " buckets", settings.buckets);
    return MOLT_ERR_INTERNAL;
}

MOLT_EXPORT molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
    (void)instance;
    (void)message_out;
    return MOLT_READY; /* everything is in memory: ready as soon as init returned */
}

MOLT_EXPORT void molt_plugin_destroy(molt_instance instance) {
    ml_instance *ml = instance;
    if (ml == NULL) return;
    pthread_mutex_lock(&ml->sweeper_mu);
    ml->sweeper_stop = true;
    pthread_cond_signal(&ml->sweeper_cv);
    pthread_mutex_unlock(&ml->sweeper_mu);
    pthread_join(ml->sweeper, NULL);

    ml_clear_table(ml);
    free(ml->buckets);
    pthread_cond_destroy(&ml->sweeper_cv);
    pthread_mutex_destroy(&ml->sweeper_mu);
    pthread_mutex_destroy(&ml->bulk_mu);
    pthread_mutex_destroy(&ml->config_mu);
    for (uint32_t s = 0; s < ML_STRIPES; s++) pthread_mutex_destroy(&ml->stripes[s].mu);
    free(ml);
}

MOLT_EXPORT molt_apply_outcome molt_plugin_apply_config(molt_instance instance, const molt_config *config,
                                                        molt_message *message_out) {
    ml_instance *ml = instance;
    ml_settings next;
    pthread_mutex_lock(&ml->config_mu);
    molt_apply_outcome outcome = MOLT_APPLIED;
    if (!ml_parse_settings(config, ml->host, &next, message_out)) {
        outcome = MOLT_APPLY_ERROR;
    } else if (next.buckets != ml->bucket_count) {
        ml_message(message_out, "memorylock: config key buckets changed from %" PRIu32 " to %" PRIu32
                                "; the hash table is sized at init, so this needs a reload",
                   ml->bucket_count, next.buckets);
        outcome = MOLT_NEEDS_RELOAD;
    } else {
        atomic_store(&ml->max_locks, next.max_locks);
        if (atomic_exchange(&ml->sweep_interval_ms, next.sweep_interval_ms) != next.sweep_interval_ms) {
            pthread_mutex_lock(&ml->sweeper_mu);
            ml->sweeper_kick = true;
            pthread_cond_signal(&ml->sweeper_cv);
            pthread_mutex_unlock(&ml->sweeper_mu);
        }
    }
    pthread_mutex_unlock(&ml->config_mu);
    return outcome;
}

/* ---------------------------------------------------------------------------------------------
 * Operations
 * ------------------------------------------------------------------------------------------- */

/* NULL when the request is usable (and then the string lengths are written), else why not. */
static const char *ml_check_request(const molt_lock_request *request, bool needs_expiry, uint32_t *resource_len,
                                    uint32_t *owner_len) {
    if (request == NULL ||
        request->struct_size < offsetof(molt_lock_request, expiry_in_seconds) + sizeof request->expiry_in_seconds)
        return "memorylock: malformed molt_lock_request (struct_size too small)";
    if (request->resource_id == NULL || request->resource_id[0] == '\0')
        return "memorylock: resource_id must not be empty";
    if (request->lock_owner == NULL || request->lock_owner[0] == '\0')
        return "memorylock: lock_owner must not be empty";
    if (needs_expiry && request->expiry_in_seconds <= 0)
        return "memorylock: expiry_in_seconds must be greater than 0";
    size_t r = strlen(request->resource_id), o = strlen(request->lock_owner);
    if (r > UINT32_MAX - 2) return "memorylock: resource_id is too long";
    if (o > UINT32_MAX - 2) return "memorylock: lock_owner is too long";
    *resource_len = (uint32_t)r;
    *owner_len = (uint32_t)o;
    return NULL;
}

MOLT_EXPORT void molt_lock_try_lock(molt_instance instance, const molt_lock_request *request, molt_try_lock_done done,
                                    void *call_context) {
    ml_instance *ml = instance;
    molt_try_lock_result result = {.struct_size = sizeof result, .status = MOLT_OK, .acquired = false, .message = NULL};
    char text[96]; /* lives until done returns */
    uint32_t resource_len = 0, owner_len = 0;
    const char *invalid = ml_check_request(request, true, &resource_len, &owner_len);
    if (invalid != NULL) {
        result.status = MOLT_ERR_INVALID_ARGUMENT;
        result.message = invalid;
        done(call_context, &result);
        return;
    }
    const char *resource = request->resource_id, *owner = request->lock_owner;
    uint64_t hash = ml_hash(ml->seed, resource, resource_len);
    uint32_t bucket = ml_bucket_of(ml, hash);
    ml_stripe *stripe = ml_stripe_of(ml, bucket);
    int64_t now = ml_now_ms();
    int64_t expires = now + (int64_t)request->expiry_in_seconds * 1000;

    pthread_mutex_lock(&stripe->mu);
    ml_entry **link = ml_find(ml, bucket, hash, resource, resource_len);
    ml_entry *existing = *link;
    if (existing != NULL && existing->expires_at_ms > now) {
        /* held and unexpired: not acquired, whoever asks */
    } else if (existing != NULL) {
        /* expired: free for anyone; replace the entry (the count does not change) */
        ml_entry *fresh = ml_entry_new(hash, resource, resource_len, owner, owner_len, now, expires);
        if (fresh == NULL) {
            result.status = MOLT_ERR_INTERNAL;
            result.message = "memorylock: out of memory";
        } else {
            fresh->next = existing->next;
            *link = fresh;
            free(existing);
            result.acquired = true;
        }
    } else {
        uint64_t limit = 0;
        if (!ml_reserve(ml, &limit)) {
            snprintf(text, sizeof text, "memorylock: maxLocks (%" PRIu64 ") reached", limit);
            result.status = MOLT_ERR_UNAVAILABLE;
            result.message = text;
        } else {
            ml_entry *fresh = ml_entry_new(hash, resource, resource_len, owner, owner_len, now, expires);
            if (fresh == NULL) {
                ml_release(ml, 1);
                result.status = MOLT_ERR_INTERNAL;
                result.message = "memorylock: out of memory";
            } else {
                *link = fresh; /* the chain's end */
                result.acquired = true;
            }
        }
    }
    pthread_mutex_unlock(&stripe->mu);
    done(call_context, &result);
}

MOLT_EXPORT void molt_lock_unlock(molt_instance instance, const molt_lock_request *request, molt_unlock_done done,
                                  void *call_context) {
    ml_instance *ml = instance;
    molt_unlock_result result = {.struct_size = sizeof result, .status = MOLT_OK,
                                 .unlock_status = MOLT_UNLOCK_LOCK_DOES_NOT_EXIST, .message = NULL};
    uint32_t resource_len = 0, owner_len = 0;
    const char *invalid = ml_check_request(request, false, &resource_len, &owner_len);
    if (invalid != NULL) {
        result.status = MOLT_ERR_INVALID_ARGUMENT;
        result.unlock_status = MOLT_UNLOCK_INTERNAL_ERROR;
        result.message = invalid;
        done(call_context, &result);
        return;
    }
    const char *resource = request->resource_id, *owner = request->lock_owner;
    uint64_t hash = ml_hash(ml->seed, resource, resource_len);
    uint32_t bucket = ml_bucket_of(ml, hash);
    ml_stripe *stripe = ml_stripe_of(ml, bucket);
    int64_t now = ml_now_ms();
    ml_entry *removed = NULL;

    pthread_mutex_lock(&stripe->mu);
    ml_entry **link = ml_find(ml, bucket, hash, resource, resource_len);
    ml_entry *e = *link;
    if (e == NULL) {
        result.unlock_status = MOLT_UNLOCK_LOCK_DOES_NOT_EXIST;
    } else if (e->expires_at_ms <= now) {
        *link = e->next; /* lazy expiry */
        removed = e;
        result.unlock_status = MOLT_UNLOCK_LOCK_DOES_NOT_EXIST;
    } else if (e->owner_len != owner_len || memcmp(ml_owner_of(e), owner, owner_len) != 0) {
        result.unlock_status = MOLT_UNLOCK_LOCK_BELONGS_TO_OTHERS;
    } else {
        *link = e->next;
        removed = e;
        result.unlock_status = MOLT_UNLOCK_SUCCESS;
    }
    if (removed != NULL) ml_release(ml, 1);
    pthread_mutex_unlock(&stripe->mu);
    free(removed);
    done(call_context, &result);
}

/* ---------------------------------------------------------------------------------------------
 * State transfer
 * ------------------------------------------------------------------------------------------- */
static void ml_crc32_table(uint32_t table[256]) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
}

static uint32_t ml_crc32_update(const uint32_t table[256], uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

/* Buffered writer over the host's sink. */
typedef struct {
    molt_bytes_sink sink;
    void *sink_context;
    bool failed;
    size_t used;
    uint64_t total;
    uint32_t crc;
    uint32_t crc_table[256];
    uint8_t buffer[ML_EXPORT_CHUNK];
} ml_writer;

static void ml_flush(ml_writer *w) {
    if (w->failed || w->used == 0) return;
    if (w->sink(w->sink_context, w->buffer, w->used) != 0) w->failed = true;
    w->used = 0;
}

static void ml_put(ml_writer *w, const void *bytes, size_t length) {
    const uint8_t *p = bytes;
    w->crc = ml_crc32_update(w->crc_table, w->crc, p, length);
    w->total += length;
    while (length > 0 && !w->failed) {
        size_t room = sizeof w->buffer - w->used;
        size_t n = length < room ? length : room;
        memcpy(w->buffer + w->used, p, n);
        w->used += n;
        p += n;
        length -= n;
        if (w->used == sizeof w->buffer) ml_flush(w);
    }
}

static void ml_put_u32(ml_writer *w, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    ml_put(w, b, 4);
}

static void ml_put_u64(ml_writer *w, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    ml_put(w, b, 8);
}

MOLT_EXPORT molt_status molt_plugin_export_state(molt_instance instance, uint32_t format, molt_bytes_sink sink,
                                                 void *sink_context, molt_message *message_out) {
    ml_instance *ml = instance;
    if (format < ML_FORMAT_MIN || format > ML_FORMAT_MAX) {
        ml_message(message_out, "memorylock %s cannot export state format %" PRIu32 " (supports %u..%u)", ML_VERSION,
                   format, ML_FORMAT_MIN, ML_FORMAT_MAX);
        return MOLT_ERR_UNSUPPORTED;
    }
    if (sink == NULL) {
        ml_message(message_out, "memorylock: export_state needs a sink");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    ml_writer *w = malloc(sizeof *w);
    if (w == NULL) {
        ml_message(message_out, "memorylock: out of memory exporting state");
        return MOLT_ERR_INTERNAL;
    }
    w->sink = sink;
    w->sink_context = sink_context;
    w->failed = false;
    w->used = 0;
    w->total = 0;
    w->crc = 0;
    ml_crc32_table(w->crc_table);

    /* Keep the sweeper out so the count and the records agree (no operation runs meanwhile). */
    pthread_mutex_lock(&ml->bulk_mu);
    int64_t now = ml_now_ms();
    uint64_t live = 0;
    for (uint32_t s = 0; s < ML_STRIPES; s++) {
        pthread_mutex_lock(&ml->stripes[s].mu);
        for (uint32_t b = s; b < ml->bucket_count; b += ML_STRIPES)
            for (const ml_entry *e = ml->buckets[b]; e != NULL; e = e->next)
                if (e->expires_at_ms > now) live++;
        pthread_mutex_unlock(&ml->stripes[s].mu);
    }

    molt_status status = MOLT_OK;
    if (format == 1 && live > UINT32_MAX) {
        ml_message(message_out, "memorylock: %" PRIu64 " locks do not fit state format 1", live);
        status = MOLT_ERR_UNSUPPORTED;
    } else {
        if (format == 1) {
            ml_put(w, "MLK1", 4);
            ml_put_u32(w, (uint32_t)live);
        } else {
            ml_put(w, "MLK2", 4);
            ml_put_u32(w, 0); /* flags */
            ml_put_u64(w, live);
        }
        for (uint32_t s = 0; s < ML_STRIPES && !w->failed; s++) {
            pthread_mutex_lock(&ml->stripes[s].mu);
            for (uint32_t b = s; b < ml->bucket_count && !w->failed; b += ML_STRIPES) {
                for (const ml_entry *e = ml->buckets[b]; e != NULL && !w->failed; e = e->next) {
                    if (e->expires_at_ms <= now) continue;
                    if (format == 1) {
                        ml_put_u32(w, e->resource_len);
                        ml_put(w, e->text, e->resource_len);
                        ml_put_u32(w, e->owner_len);
                        ml_put(w, ml_owner_of(e), e->owner_len);
                        ml_put_u64(w, (uint64_t)e->expires_at_ms);
                    } else {
                        ml_put_u64(w, (uint64_t)e->acquired_at_ms);
                        ml_put_u64(w, (uint64_t)e->expires_at_ms);
                        ml_put_u32(w, e->owner_len);
                        ml_put(w, ml_owner_of(e), e->owner_len);
                        ml_put_u32(w, e->resource_len);
                        ml_put(w, e->text, e->resource_len);
                    }
                }
            }
            pthread_mutex_unlock(&ml->stripes[s].mu);
        }
        if (format == 2) ml_put_u32(w, w->crc);
        ml_flush(w);
        if (w->failed) {
            ml_message(message_out, "memorylock: the host refused exported state (format %" PRIu32
                                    ", %" PRIu64 " locks) at or before byte %" PRIu64,
                       format, live, w->total);
            status = MOLT_ERR_INTERNAL;
        }
    }
    pthread_mutex_unlock(&ml->bulk_mu);
    free(w);
    return status;
}

/* Bounds-checked reader over imported bytes. */
typedef struct {
    const uint8_t *p;
    size_t length;
    size_t offset;
} ml_reader;

static bool ml_get_u32(ml_reader *r, uint32_t *out) {
    if (r->length - r->offset < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)r->p[r->offset + i] << (8 * i);
    r->offset += 4;
    *out = v;
    return true;
}

static bool ml_get_i64(ml_reader *r, int64_t *out) {
    if (r->length - r->offset < 8) return false;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)r->p[r->offset + i] << (8 * i);
    r->offset += 8;
    *out = (int64_t)v;
    return true;
}

typedef struct {
    const char *resource, *owner;
    uint32_t resource_len, owner_len;
    int64_t acquired_at_ms, expires_at_ms;
} ml_record;

/* Reads one length-prefixed string; `what` names it for the message. */
static bool ml_get_string(ml_reader *r, const char **text, uint32_t *length, uint64_t index, const char *what,
                          uint32_t format, molt_message *message) {
    size_t at = r->offset;
    if (!ml_get_u32(r, length)) {
        ml_message(message, "memorylock: corrupt state (format %" PRIu32 "): truncated %s length of record %" PRIu64
                            " at byte %zu", format, what, index, at);
        return false;
    }
    if (*length == 0 || *length > UINT32_MAX - 2) {
        ml_message(message, "memorylock: corrupt state (format %" PRIu32 "): record %" PRIu64 " has %s length %" PRIu32
                            " at byte %zu", format, index, what, *length, at);
        return false;
    }
    if (r->length - r->offset < *length) {
        ml_message(message, "memorylock: corrupt state (format %" PRIu32 "): record %" PRIu64 " %s (%" PRIu32
                            " bytes at byte %zu) runs past the end (%zu bytes)", format, index, what, *length,
                   r->offset, r->length);
        return false;
    }
    *text = (const char *)r->p + r->offset;
    if (memchr(*text, '\0', *length) != NULL) {
        ml_message(message, "memorylock: corrupt state (format %" PRIu32 "): record %" PRIu64 " %s contains a NUL byte",
                   format, index, what);
        return false;
    }
    r->offset += *length;
    return true;
}

static bool ml_get_record(ml_reader *r, uint32_t format, uint64_t index, ml_record *rec, molt_message *message) {
    rec->acquired_at_ms = 0;
    size_t at = r->offset;
    if (format == 1) {
        if (!ml_get_string(r, &rec->resource, &rec->resource_len, index, "resource", format, message)) return false;
        if (!ml_get_string(r, &rec->owner, &rec->owner_len, index, "owner", format, message)) return false;
        if (!ml_get_i64(r, &rec->expires_at_ms)) goto truncated;
    } else {
        if (!ml_get_i64(r, &rec->acquired_at_ms) || !ml_get_i64(r, &rec->expires_at_ms)) goto truncated;
        if (!ml_get_string(r, &rec->owner, &rec->owner_len, index, "owner", format, message)) return false;
        if (!ml_get_string(r, &rec->resource, &rec->resource_len, index, "resource", format, message)) return false;
    }
    if (rec->expires_at_ms <= 0) {
        ml_message(message, "memorylock: corrupt state (format %" PRIu32 "): record %" PRIu64 " expiry %" PRId64
                            " is not a positive time", format, index, rec->expires_at_ms);
        return false;
    }
    if (rec->acquired_at_ms < 0 || rec->acquired_at_ms > rec->expires_at_ms) {
        ml_message(message, "memorylock: corrupt state (format %" PRIu32 "): record %" PRIu64 " acquired at %" PRId64
                            ", after its expiry %" PRId64, format, index, rec->acquired_at_ms, rec->expires_at_ms);
        return false;
    }
    return true;
truncated:
    ml_message(message, "memorylock: corrupt state (format %" PRIu32 "): record %" PRIu64
                        " is truncated (starts at byte %zu of %zu)", format, index, at, r->length);
    return false;
}

/* Checks the header (and format 2's checksum); leaves `r` at the first record. */
static bool ml_read_header(ml_reader *r, uint32_t format, uint64_t *count, molt_message *message) {
    size_t header = format == 1 ? 8 : 16;
    size_t trailer = format == 1 ? 0 : 4;
    size_t min_record = format == 1 ? 4 + 1 + 4 + 1 + 8 : 8 + 8 + 4 + 1 + 4 + 1;
    if (r->length < header + trailer) {
        ml_message(message, "memorylock: corrupt state (format %" PRIu32 "): %zu bytes is shorter than the %zu-byte header",
                   format, r->length, header + trailer);
        return false;
    }
    const char *magic = format == 1 ? "MLK1" : "MLK2";
    if (memcmp(r->p, magic, 4) != 0) {
        ml_message(message, "memorylock: corrupt state (format %" PRIu32 "): bad magic (expected \"%s\")", format, magic);
        return false;
    }
    r->offset = 4;
    if (format == 1) {
        uint32_t n = 0;
        ml_get_u32(r, &n);
        *count = n;
    } else {
        uint32_t stored = 0, flags = 0;
        ml_reader tail = {r->p, r->length, r->length - 4};
        ml_get_u32(&tail, &stored);
        uint32_t table[256];
        ml_crc32_table(table);
        uint32_t actual = ml_crc32_update(table, 0, r->p, r->length - 4);
        if (stored != actual) {
            ml_message(message, "memorylock: corrupt state (format 2): checksum mismatch (stored %08" PRIx32
                                ", computed %08" PRIx32 ")", stored, actual);
            return false;
        }
        ml_get_u32(r, &flags);
        if (flags != 0) {
            ml_message(message, "memorylock: corrupt state (format 2): unknown flags 0x%" PRIx32, flags);
            return false;
        }
        int64_t n = 0;
        ml_get_i64(r, &n);
        *count = (uint64_t)n;
        r->length -= 4; /* records end where the checksum starts */
    }
    if (*count > (r->length - r->offset) / min_record) {
        ml_message(message, "memorylock: corrupt state (format %" PRIu32 "): header claims %" PRIu64
                            " locks but only %zu bytes follow", format, *count, r->length - r->offset);
        return false;
    }
    return true;
}

MOLT_EXPORT molt_status molt_plugin_import_state(molt_instance instance, uint32_t format, const void *bytes,
                                                 size_t length, molt_message *message_out) {
    ml_instance *ml = instance;
    if (format < ML_FORMAT_MIN || format > ML_FORMAT_MAX) {
        ml_message(message_out, "memorylock %s cannot import state format %" PRIu32 " (supports %u..%u)", ML_VERSION,
                   format, ML_FORMAT_MIN, ML_FORMAT_MAX);
        return MOLT_ERR_UNSUPPORTED;
    }
    if (bytes == NULL && length > 0) {
        ml_message(message_out, "memorylock: import_state got NULL bytes with length %zu", length);
        return MOLT_ERR_INVALID_ARGUMENT;
    }

    /* Pass 1: validate everything without touching the instance. */
    ml_reader r = {bytes, length, 0};
    uint64_t count = 0, live = 0;
    if (!ml_read_header(&r, format, &count, message_out)) return MOLT_ERR_INVALID_ARGUMENT;
    size_t first_record = r.offset;
    int64_t now = ml_now_ms();
    for (uint64_t i = 0; i < count; i++) {
        ml_record rec;
        if (!ml_get_record(&r, format, i, &rec, message_out)) return MOLT_ERR_INVALID_ARGUMENT;
        if (rec.expires_at_ms > now) live++;
    }
    if (r.offset != r.length) {
        ml_message(message_out, "memorylock: corrupt state (format %" PRIu32 "): %zu unexpected bytes after %" PRIu64
                                " locks", format, r.length - r.offset, count);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    uint64_t limit = atomic_load(&ml->max_locks);
    if (limit != 0 && live > limit) {
        ml_message(message_out, "memorylock: state holds %" PRIu64 " live locks, more than maxLocks (%" PRIu64 ")", live,
                   limit);
        return MOLT_ERR_INVALID_ARGUMENT;
    }

    /* Pass 2: insert, keeping the sweeper out so a refusal can leave the table exactly empty. */
    molt_status status = MOLT_OK;
    pthread_mutex_lock(&ml->bulk_mu);
    uint64_t existing = atomic_load(&ml->entry_count);
    if (existing != 0) {
        ml_message(message_out, "memorylock: import_state needs a fresh instance, this one holds %" PRIu64 " locks",
                   existing);
        pthread_mutex_unlock(&ml->bulk_mu);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    r.offset = first_record;
    for (uint64_t i = 0; i < count && status == MOLT_OK; i++) {
        ml_record rec;
        ml_get_record(&r, format, i, &rec, NULL); /* validated above */
        uint64_t hash = ml_hash(ml->seed, rec.resource, rec.resource_len);
        uint32_t bucket = ml_bucket_of(ml, hash);
        ml_stripe *stripe = ml_stripe_of(ml, bucket);
        pthread_mutex_lock(&stripe->mu);
        ml_entry **link = ml_find(ml, bucket, hash, rec.resource, rec.resource_len);
        if (*link != NULL) {
            ml_message(message_out, "memorylock: corrupt state (format %" PRIu32 "): record %" PRIu64
                                    " repeats resource \"%.*s\"", format, i,
                       (int)(rec.resource_len > 64 ? 64 : rec.resource_len), rec.resource);
            status = MOLT_ERR_INVALID_ARGUMENT;
        } else {
            /* Expired records go in too, so a duplicate of one is still caught; they are swept below. */
            ml_entry *e = ml_entry_new(hash, rec.resource, rec.resource_len, rec.owner, rec.owner_len,
                                       rec.acquired_at_ms, rec.expires_at_ms);
            if (e == NULL) {
                ml_message(message_out, "memorylock: out of memory importing %" PRIu64 " locks", count);
                status = MOLT_ERR_INTERNAL;
            } else {
                *link = e;
                atomic_fetch_add(&ml->entry_count, 1);
            }
        }
        pthread_mutex_unlock(&stripe->mu);
    }
    for (uint32_t s = 0; s < ML_STRIPES; s++) {
        pthread_mutex_lock(&ml->stripes[s].mu);
        if (status != MOLT_OK)
            ml_clear_stripe(ml, s); /* leave the instance empty, as it was */
        else
            ml_release(ml, ml_sweep_stripe(ml, s, now)); /* drop what expired in transit */
        pthread_mutex_unlock(&ml->stripes[s].mu);
    }
    pthread_mutex_unlock(&ml->bulk_mu);
    return status;
}
