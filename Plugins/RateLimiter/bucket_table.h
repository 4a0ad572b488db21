/*
 * bucket_table.h: the rate limiter's core, keyed token buckets in a hash table with an LRU list.
 * No ABI, no locking, no clock: the caller passes `now_ns` (CLOCK_MONOTONIC in the plugin, a fake
 * clock in test/test_bucket_table.c) and serializes every call on one table (the plugin holds the
 * instance's mutex).
 *
 * A bucket holds `tokens` as of `last_ns`; its level at `now` is
 *   min(capacity, tokens + (now - last_ns) * refill_per_second)
 * computed lazily on access. A key without a bucket behaves as a full bucket, so dropping a full
 * bucket loses nothing. `tokens` is negative only while blocking acquires wait out a reservation
 * (they took tokens ahead of time); the debt refills at the normal rate.
 */
#ifndef RATE_LIMITER_BUCKET_TABLE_H
#define RATE_LIMITER_BUCKET_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_KEY_MAX 4096u /* bytes of a key (UTF-8), like the host's lock resource id limit */

typedef struct rl_limits {
    int64_t capacity;         /* >= 1: tokens of a full bucket */
    double refill_per_second; /* > 0, finite */
    uint64_t max_buckets;     /* >= 1: buckets kept at once; the least recently used is dropped beyond it */
} rl_limits;

typedef struct rl_bucket {
    struct rl_bucket *chain;  /* next in the hash chain */
    struct rl_bucket *newer;  /* LRU list: toward the most recently used (NULL at the newest) */
    struct rl_bucket *older;  /* toward the least recently used (NULL at the oldest) */
    uint64_t hash;
    double tokens;   /* as of last_ns; <= the capacity in force then; < 0 while reserved (see above) */
    int64_t last_ns; /* the caller's clock */
    uint32_t key_len;
    char key[]; /* key_len bytes, then NUL */
} rl_bucket;

/* Owns every bucket it links. Zero-initialized is not valid: use rl_table_init. */
typedef struct rl_table {
    rl_bucket **heads;   /* head_count chains; head_count is a power of two */
    uint32_t head_count;
    uint64_t count;      /* buckets linked */
    rl_bucket *newest;   /* most recently used */
    rl_bucket *oldest;   /* least recently used: the next to drop */
    uint64_t seed;       /* per-table hash seed (keys come from apps) */
} rl_table;

bool rl_table_init(rl_table *table, uint64_t seed);
/* Frees every bucket and the chains; the table must be initialized again before reuse. */
void rl_table_free(rl_table *table);
/* Moves every bucket of `from` into `to` (whose buckets are freed first); `from` is left freed. */
void rl_table_replace(rl_table *to, rl_table *from);

rl_bucket *rl_table_find(rl_table *table, const char *key, uint32_t key_len);
/* Links a new bucket as the newest, without any limit check (see rl_table_trim). NULL when out of
 * memory. The key must not be in the table. */
rl_bucket *rl_table_insert(rl_table *table, const char *key, uint32_t key_len, double tokens, int64_t now_ns);
/* Unlinks and frees `bucket`. */
void rl_table_remove(rl_table *table, rl_bucket *bucket);
/* Drops the least recently used buckets until at most `max` remain; returns how many were dropped. */
uint64_t rl_table_trim(rl_table *table, uint64_t max);

/* The bucket's level at now_ns (refilled, capped at capacity); does not change the bucket. */
double rl_bucket_level(const rl_bucket *bucket, const rl_limits *limits, int64_t now_ns);

typedef struct rl_take_outcome {
    bool allowed;
    int64_t remaining;   /* whole tokens left after the call (0 while reserved) */
    int64_t wait_ms;     /* allowed: how long the caller must wait for its reservation (0: none);
                            refused: how long until `cost` tokens would be there */
    uint64_t dropped;    /* buckets dropped to make room for a new key (0 or 1) */
} rl_take_outcome;

/* Takes `cost` (1..capacity) tokens from `key`'s bucket, creating it full when absent (dropping the
 * least recently used bucket when max_buckets are kept) and marking it most recently used. When the
 * tokens are not there and they would be within max_wait_ms (> 0), they are reserved (the bucket
 * goes into debt) and wait_ms says how long to wait; otherwise nothing is taken. False only when out
 * of memory. */
bool rl_take(rl_table *table, const rl_limits *limits, const char *key, uint32_t key_len, int64_t cost,
             int64_t max_wait_ms, int64_t now_ns, rl_take_outcome *out);

#endif /* RATE_LIMITER_BUCKET_TABLE_H */
