/*
 * rate-limiter: token buckets per key, as declared operations (kind "binding", ABI 1.2), the C example
 * of issue 18. Plain C against molt_plugin.h; no Swift runtime, so the host can dlclose it. One source
 * set builds two versions (plugin.mk):
 *   default               1.0.0, state formats [1, 1]
 *   -DRATE_LIMITER_V1_1   1.1.0, state formats [1, 2] (state_transfer.c)
 *
 * Operations (apps: Dapr output bindings, operation name + JSON object of arguments)
 *   allow(key, cost) -> (allowed, remaining, retry_after_ms)          inline
 *     takes `cost` tokens from key's bucket when it has them; otherwise takes nothing, and
 *     retry_after_ms says when it would have them (remaining: whole tokens left).
 *   peek(key) -> (tokens, capacity)                                    inline, read-only
 *     the bucket's level now (a key without a bucket is full); changes nothing, not even LRU order.
 *   reset(key) -> (existed)                                            inline
 *     drops the bucket: the key starts full again.
 *   acquire(key, cost, max_wait_ms) -> (allowed, waited_ms, retry_after_ms)   BLOCKING
 *     allow that waits: when the tokens will be there within max_wait_ms (0..10000), reserves them at
 *     once (the bucket goes into debt, so later callers queue behind it, fairly) and sleeps until then
 *     on the host's worker thread. A reload waits for it like for any call in flight.
 *   Arguments: key non-empty, at most 4096 bytes; 1 <= cost <= capacity. Otherwise
 *   MOLT_ERR_INVALID_ARGUMENT with a message naming the argument.
 *
 * Configuration keys (all apply in place, through apply_config)
 *   capacity         default 10, 1..10^12: tokens of a full bucket (a new key starts full). Lowering it
 *                    caps fuller buckets; raising it lets buckets refill further.
 *   refillPerSecond  default 5, a decimal 0.001..10^9: tokens added per second, continuously.
 *   maxBuckets       default 100000, 1..10^8: buckets kept at once. A new key beyond it drops the least
 *                    recently used bucket (allow/acquire use a bucket; peek does not). The LRU bucket has
 *                    been idle longest, so usually it has refilled to full, and a full bucket is the same as
 *                    none: nothing is lost. If it had not, its key starts full on its next call. Lowering
 *                    maxBuckets drops the least recently used at once.
 *
 * Threads: one mutex per instance around an O(1) hash lookup and LRU move; every operation completes
 * before returning (acquire sleeps after releasing the mutex). State: MOLT_PLUGIN_HOLDS_STATE, the
 * buckets are handed over on reloads and swaps (state_transfer.c).
 */
#include "rate_limiter.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RL_MAX_CAPACITY 1000000000000LL
#define RL_MAX_MAX_BUCKETS 100000000ULL
#define RL_MIN_REFILL 0.001
#define RL_MAX_REFILL 1e9
#define RL_MAX_WAIT_MS 10000

/* ---------------------------------------------------------------------------------------------
 * Identity, declared keys and operations
 * ------------------------------------------------------------------------------------------- */
static const molt_plugin_identity rl_info = {
    .struct_size = sizeof(molt_plugin_identity),
    .name = "rate-limiter",
    .version = RL_VERSION,
    .kind = MOLT_KIND_BINDING,
    .description = "Token-bucket rate limiter per key (allow, peek, reset, acquire); buckets survive reloads",
    .state_format_min = RL_FORMAT_MIN,
    .state_format_max = RL_FORMAT_MAX,
    .flags = MOLT_PLUGIN_HOLDS_STATE, /* partly drained buckets live only here; handed over by export/import */
};

static const molt_config_key rl_keys[] = {
    {"capacity", "tokens of a full bucket, 1..1000000000000 (a new key starts full)", "10", false, true, NULL},
    {"refillPerSecond", "tokens added per second, a decimal from 0.001 to 1000000000", "5", false, true, NULL},
    {"maxBuckets", "buckets kept at once (1..100000000); beyond it the least recently used is dropped", "100000",
     false, true, NULL},
};

MOLT_DEFINE_ABI_VERSION()

MOLT_EXPORT const molt_plugin_identity *molt_plugin_info(void) { return &rl_info; }

MOLT_EXPORT const molt_config_key *molt_plugin_config_keys(uint32_t *count_out) {
    *count_out = (uint32_t)(sizeof rl_keys / sizeof rl_keys[0]);
    return rl_keys;
}

/* The operations, in the C form of molt_plugin.h ("Declared operations"). */
MOLT_EXPORT molt_status rate_limiter_allow(molt_instance instance, const char *key, int64_t cost, bool *allowed,
                                           int64_t *remaining, int64_t *retry_after_ms, molt_message *error_out);
MOLT_EXPORT molt_status rate_limiter_peek(molt_instance instance, const char *key, double *tokens, int64_t *capacity,
                                          molt_message *error_out);
MOLT_EXPORT molt_status rate_limiter_reset(molt_instance instance, const char *key, bool *existed,
                                           molt_message *error_out);
MOLT_EXPORT molt_status rate_limiter_acquire(molt_instance instance, const char *key, int64_t cost,
                                             int64_t max_wait_ms, bool *allowed, int64_t *waited_ms,
                                             int64_t *retry_after_ms, molt_message *error_out);

#define RL_KEY_PARAM {"key", MOLT_TYPE_STRING, "the bucket's key, e.g. a client id (1..4096 bytes)"}
#define RL_COST_PARAM {"cost", MOLT_TYPE_INT64, "tokens to take, 1..capacity"}
#define RL_RETRY_RESULT {"retry_after_ms", MOLT_TYPE_INT64, "refused: milliseconds until cost tokens are there; else 0"}

static const molt_operation_field rl_allow_parameters[] = {RL_KEY_PARAM, RL_COST_PARAM};
static const molt_operation_field rl_allow_results[] = {
    {"allowed", MOLT_TYPE_BOOL, "true when the tokens were taken"},
    {"remaining", MOLT_TYPE_INT64, "whole tokens left in the bucket"},
    RL_RETRY_RESULT,
};
static const molt_operation_field rl_key_parameter[] = {RL_KEY_PARAM};
static const molt_operation_field rl_peek_results[] = {
    {"tokens", MOLT_TYPE_DOUBLE, "the level now: capacity without a bucket, negative while acquires wait"},
    {"capacity", MOLT_TYPE_INT64, "tokens of a full bucket"},
};
static const molt_operation_field rl_reset_results[] = {
    {"existed", MOLT_TYPE_BOOL, "true when the key had a bucket"},
};
static const molt_operation_field rl_acquire_parameters[] = {
    RL_KEY_PARAM,
    RL_COST_PARAM,
    {"max_wait_ms", MOLT_TYPE_INT64, "longest wait for the tokens, 0..10000 (0: like allow)"},
};
static const molt_operation_field rl_acquire_results[] = {
    {"allowed", MOLT_TYPE_BOOL, "true when the tokens were taken (after waited_ms)"},
    {"waited_ms", MOLT_TYPE_INT64, "milliseconds waited for them"},
    RL_RETRY_RESULT,
};

#define RL_COUNT(array) (uint32_t)(sizeof array / sizeof array[0])
static const molt_operation rl_operations[] = {
    {"allow", "take cost tokens from key's bucket if it has them, else say when it will", "rate_limiter_allow", 0,
     RL_COUNT(rl_allow_parameters), rl_allow_parameters, RL_COUNT(rl_allow_results), rl_allow_results},
    {"peek", "key's bucket level now, without taking anything", "rate_limiter_peek", 0, RL_COUNT(rl_key_parameter),
     rl_key_parameter, RL_COUNT(rl_peek_results), rl_peek_results},
    {"reset", "drop key's bucket: it starts full again", "rate_limiter_reset", 0, RL_COUNT(rl_key_parameter),
     rl_key_parameter, RL_COUNT(rl_reset_results), rl_reset_results},
    {"acquire", "allow, waiting up to max_wait_ms for the tokens (reserved at once, fair)", "rate_limiter_acquire",
     MOLT_OPERATION_BLOCKING, RL_COUNT(rl_acquire_parameters), rl_acquire_parameters, RL_COUNT(rl_acquire_results),
     rl_acquire_results},
};

MOLT_EXPORT const molt_operation *molt_plugin_operations(uint32_t *count_out) {
    *count_out = RL_COUNT(rl_operations);
    return rl_operations;
}

/* ---------------------------------------------------------------------------------------------
 * Shared helpers
 * ------------------------------------------------------------------------------------------- */
int64_t rl_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t rl_realtime_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rl_message(molt_message *message, const char *format, ...) {
    if (message == NULL || message->text == NULL || message->capacity == 0) return;
    va_list args;
    va_start(args, format);
    vsnprintf(message->text, message->capacity, format, args);
    va_end(args);
}

/* ---------------------------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------------------------- */

/* Decimal digits only, no overflow, within [min, max]. */
static bool rl_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out) {
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

/* DIGITS[.DIGITS], within [min, max]; parsed by hand so that no locale changes its meaning. */
static bool rl_parse_decimal(const char *text, double min, double max, double *out) {
    if (text == NULL || *text < '0' || *text > '9') return false;
    double value = 0, scale = 1;
    bool fraction = false;
    for (const char *p = text; *p; p++) {
        if (*p == '.' && !fraction && p[1] >= '0' && p[1] <= '9') {
            fraction = true;
        } else if (*p >= '0' && *p <= '9') {
            if (fraction) {
                scale /= 10;
                value += (*p - '0') * scale;
            } else {
                value = value * 10 + (*p - '0');
                if (value > max) return false;
            }
        } else {
            return false;
        }
    }
    if (value < min || value > max) return false;
    *out = value;
    return true;
}

/* Reads every key (the host fills in declared defaults; they are repeated here for hosts that do not). */
static bool rl_parse_limits(const molt_config *config, rl_limits *out, molt_message *message) {
    if (config != NULL && config->entry_count > 0 &&
        (config->struct_size < offsetof(molt_config, entries) + sizeof config->entries || config->entries == NULL)) {
        rl_message(message, "rate-limiter: malformed molt_config (struct_size %" PRIu32 ")", config->struct_size);
        return false;
    }
    const char *text = molt_config_get(config, "capacity");
    uint64_t capacity = 0, max_buckets = 0;
    if (!rl_parse_uint(text ? text : "10", 1, (uint64_t)RL_MAX_CAPACITY, &capacity)) {
        rl_message(message, "rate-limiter: invalid value \"%s\" for config key capacity: expected an integer from 1 to "
                            "1000000000000", text);
        return false;
    }
    text = molt_config_get(config, "refillPerSecond");
    double refill = 0;
    if (!rl_parse_decimal(text ? text : "5", RL_MIN_REFILL, RL_MAX_REFILL, &refill)) {
        rl_message(message, "rate-limiter: invalid value \"%s\" for config key refillPerSecond: expected a decimal "
                            "number from 0.001 to 1000000000 (e.g. 5 or 0.5)", text);
        return false;
    }
    text = molt_config_get(config, "maxBuckets");
    if (!rl_parse_uint(text ? text : "100000", 1, RL_MAX_MAX_BUCKETS, &max_buckets)) {
        rl_message(message, "rate-limiter: invalid value \"%s\" for config key maxBuckets: expected an integer from 1 "
                            "to 100000000", text);
        return false;
    }
    out->capacity = (int64_t)capacity;
    out->refill_per_second = refill;
    out->max_buckets = max_buckets;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------- */
MOLT_EXPORT molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host,
                                         molt_instance *instance_out, molt_message *error_out) {
    rl_limits limits;
    if (!rl_parse_limits(config, &limits, error_out)) return MOLT_ERR_INVALID_ARGUMENT;
    rl_instance *rl = calloc(1, sizeof *rl);
    if (rl == NULL) {
        rl_message(error_out, "rate-limiter: out of memory");
        return MOLT_ERR_INTERNAL;
    }
    uint64_t seed = (uint64_t)rl_monotonic_ns() ^ ((uint64_t)(uintptr_t)rl << 16);
    if (!rl_table_init(&rl->table, seed)) {
        free(rl);
        rl_message(error_out, "rate-limiter: out of memory");
        return MOLT_ERR_INTERNAL;
    }
    if (pthread_mutex_init(&rl->mu, NULL) != 0) {
        rl_table_free(&rl->table);
        free(rl);
        rl_message(error_out, "rate-limiter: cannot initialize a mutex");
        return MOLT_ERR_INTERNAL;
    }
    rl->limits = limits;
    rl->host = host;
    molt_log(host, MOLT_LOG_INFO, "rate-limiter %s: capacity %" PRId64 ", refillPerSecond %g, maxBuckets %" PRIu64,
             RL_VERSION, limits.capacity, limits.refill_per_second, limits.max_buckets);
    *instance_out = rl;
    return MOLT_OK;
}

MOLT_EXPORT molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
    (void)instance;
    (void)message_out;
    return MOLT_READY; /* in memory: ready once init returned */
}

MOLT_EXPORT void molt_plugin_destroy(molt_instance instance) {
    rl_instance *rl = instance;
    if (rl == NULL) return;
    rl_table_free(&rl->table);
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}

/* Every key applies in place. New limits count from now: each bucket is first brought to its level
 * under the old ones (so a lower capacity really drops the excess, and a new rate does not apply to
 * time already passed); O(buckets) under the mutex, applies are rare. */
MOLT_EXPORT molt_apply_outcome molt_plugin_apply_config(molt_instance instance, const molt_config *config,
                                                        molt_message *message_out) {
    rl_instance *rl = instance;
    rl_limits next;
    if (!rl_parse_limits(config, &next, message_out)) return MOLT_APPLY_ERROR;
    pthread_mutex_lock(&rl->mu);
    if (next.refill_per_second != rl->limits.refill_per_second || next.capacity != rl->limits.capacity) {
        int64_t now = rl_monotonic_ns();
        for (rl_bucket *b = rl->table.newest; b != NULL; b = b->older) {
            b->tokens = rl_bucket_level(b, &rl->limits, now);
            b->last_ns = now;
        }
    }
    rl->limits = next;
    uint64_t dropped = rl_table_trim(&rl->table, next.max_buckets);
    pthread_mutex_unlock(&rl->mu);
    if (dropped > 0)
        molt_log(rl->host, MOLT_LOG_INFO, "rate-limiter: maxBuckets %" PRIu64 ": dropped the %" PRIu64
                                          " least recently used buckets", next.max_buckets, dropped);
    return MOLT_APPLIED;
}

/* ---------------------------------------------------------------------------------------------
 * Operations
 * ------------------------------------------------------------------------------------------- */

/* false (and the message) unless the key is usable; writes its length. */
static bool rl_check_key(const char *key, uint32_t *key_len, molt_message *error_out) {
    if (key == NULL || key[0] == '\0') {
        rl_message(error_out, "rate-limiter: argument key must not be empty");
        return false;
    }
    size_t length = strnlen(key, (size_t)RL_KEY_MAX + 1);
    if (length > RL_KEY_MAX) {
        rl_message(error_out, "rate-limiter: argument key is longer than %u bytes", RL_KEY_MAX);
        return false;
    }
    *key_len = (uint32_t)length;
    return true;
}

/* Under rl->mu: false (and the message) unless 1 <= cost <= capacity. */
static bool rl_check_cost(const rl_instance *rl, int64_t cost, molt_message *error_out) {
    if (cost <= 0) {
        rl_message(error_out, "rate-limiter: argument cost must be greater than 0 (got %" PRId64 ")", cost);
        return false;
    }
    if (cost > rl->limits.capacity) {
        rl_message(error_out, "rate-limiter: argument cost %" PRId64 " exceeds the bucket capacity %" PRId64
                              " (config key capacity): it could never be allowed", cost, rl->limits.capacity);
        return false;
    }
    return true;
}

/* allow and acquire: the checks, then one rl_take under the mutex. */
static molt_status rl_take_call(rl_instance *rl, const char *key, int64_t cost, int64_t max_wait_ms,
                                rl_take_outcome *outcome, molt_message *error_out) {
    uint32_t key_len = 0;
    if (!rl_check_key(key, &key_len, error_out)) return MOLT_ERR_INVALID_ARGUMENT;
    pthread_mutex_lock(&rl->mu);
    molt_status status = MOLT_OK;
    if (!rl_check_cost(rl, cost, error_out)) {
        status = MOLT_ERR_INVALID_ARGUMENT;
    } else if (!rl_take(&rl->table, &rl->limits, key, key_len, cost, max_wait_ms, rl_monotonic_ns(), outcome)) {
        rl_message(error_out, "rate-limiter: out of memory creating a bucket");
        status = MOLT_ERR_INTERNAL;
    }
    pthread_mutex_unlock(&rl->mu);
    return status;
}

MOLT_EXPORT molt_status rate_limiter_allow(molt_instance instance, const char *key, int64_t cost, bool *allowed,
                                           int64_t *remaining, int64_t *retry_after_ms, molt_message *error_out) {
    rl_take_outcome outcome;
    molt_status status = rl_take_call(instance, key, cost, 0, &outcome, error_out);
    if (status != MOLT_OK) return status;
    *allowed = outcome.allowed;
    *remaining = outcome.remaining;
    *retry_after_ms = outcome.allowed ? 0 : outcome.wait_ms;
    return MOLT_OK;
}

MOLT_EXPORT molt_status rate_limiter_peek(molt_instance instance, const char *key, double *tokens, int64_t *capacity,
                                          molt_message *error_out) {
    rl_instance *rl = instance;
    uint32_t key_len = 0;
    if (!rl_check_key(key, &key_len, error_out)) return MOLT_ERR_INVALID_ARGUMENT;
    pthread_mutex_lock(&rl->mu);
    const rl_bucket *b = rl_table_find(&rl->table, key, key_len);
    *tokens = b != NULL ? rl_bucket_level(b, &rl->limits, rl_monotonic_ns()) : (double)rl->limits.capacity;
    *capacity = rl->limits.capacity;
    pthread_mutex_unlock(&rl->mu);
    return MOLT_OK;
}

MOLT_EXPORT molt_status rate_limiter_reset(molt_instance instance, const char *key, bool *existed,
                                           molt_message *error_out) {
    rl_instance *rl = instance;
    uint32_t key_len = 0;
    if (!rl_check_key(key, &key_len, error_out)) return MOLT_ERR_INVALID_ARGUMENT;
    pthread_mutex_lock(&rl->mu);
    rl_bucket *b = rl_table_find(&rl->table, key, key_len);
    *existed = b != NULL;
    if (b != NULL) rl_table_remove(&rl->table, b);
    pthread_mutex_unlock(&rl->mu);
    return MOLT_OK;
}

/* Declared MOLT_OPERATION_BLOCKING: the host calls it on a worker thread, so it may sleep. */
MOLT_EXPORT molt_status rate_limiter_acquire(molt_instance instance, const char *key, int64_t cost,
                                             int64_t max_wait_ms, bool *allowed, int64_t *waited_ms,
                                             int64_t *retry_after_ms, molt_message *error_out) {
    if (max_wait_ms < 0 || max_wait_ms > RL_MAX_WAIT_MS) {
        rl_message(error_out, "rate-limiter: argument max_wait_ms must be from 0 to %d (got %" PRId64 ")",
                   RL_MAX_WAIT_MS, max_wait_ms);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    rl_take_outcome outcome;
    molt_status status = rl_take_call(instance, key, cost, max_wait_ms, &outcome, error_out);
    if (status != MOLT_OK) return status;
    if (outcome.allowed && outcome.wait_ms > 0) {
        /* The tokens are ours already (reserved); wait until the refill has paid for them. */
        struct timespec left = {outcome.wait_ms / 1000, (long)(outcome.wait_ms % 1000) * 1000000L};
        while (nanosleep(&left, &left) != 0 && errno == EINTR) {
        }
    }
    *allowed = outcome.allowed;
    *waited_ms = outcome.allowed ? outcome.wait_ms : 0;
    *retry_after_ms = outcome.allowed ? 0 : outcome.wait_ms;
    return MOLT_OK;
}
