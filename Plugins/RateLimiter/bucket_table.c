/* bucket_table.c: see bucket_table.h. */
#include "bucket_table.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RL_INITIAL_HEADS 1024u
#define RL_MAX_HEADS (1u << 30)
/* Rounding slack: a level within this of `cost` counts as enough (refill sums are not exact). */
#define RL_EPSILON 1e-9

static inline uint64_t rl_rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* Seeded multiply-rotate over 8-byte words with murmur3's finalizer (as memorylock). */
static uint64_t rl_hash(uint64_t seed, const char *bytes, size_t length) {
    const uint64_t k1 = 0x9E3779B97F4A7C15ULL, k2 = 0xBF58476D1CE4E5B9ULL;
    uint64_t h = seed ^ ((uint64_t)length * k1), w;
    for (; length >= 8; bytes += 8, length -= 8) {
        memcpy(&w, bytes, 8);
        h = rl_rotl(h ^ (w * k1), 31) * k2;
    }
    w = 0;
    for (size_t i = 0; i < length; i++) w |= (uint64_t)(unsigned char)bytes[i] << (8 * i);
    h = rl_rotl(h ^ (w * k1), 31) * k2;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static inline uint32_t rl_head_of(const rl_table *t, uint64_t hash) { return (uint32_t)(hash & (t->head_count - 1)); }

bool rl_table_init(rl_table *table, uint64_t seed) {
    memset(table, 0, sizeof *table);
    table->heads = calloc(RL_INITIAL_HEADS, sizeof(rl_bucket *));
    if (table->heads == NULL) return false;
    table->head_count = RL_INITIAL_HEADS;
    table->seed = seed;
    return true;
}

void rl_table_free(rl_table *table) {
    rl_bucket *b = table->newest;
    while (b != NULL) {
        rl_bucket *older = b->older;
        free(b);
        b = older;
    }
    free(table->heads);
    memset(table, 0, sizeof *table);
}

void rl_table_replace(rl_table *to, rl_table *from) {
    rl_table_free(to);
    *to = *from;
    memset(from, 0, sizeof *from);
}

rl_bucket *rl_table_find(rl_table *table, const char *key, uint32_t key_len) {
    uint64_t hash = rl_hash(table->seed, key, key_len);
    for (rl_bucket *b = table->heads[rl_head_of(table, hash)]; b != NULL; b = b->chain)
        if (b->hash == hash && b->key_len == key_len && memcmp(b->key, key, key_len) == 0) return b;
    return NULL;
}

/* Doubles the chains when buckets outnumber them; on allocation failure chains just grow longer. */
static void rl_table_grow(rl_table *table) {
    if (table->count <= table->head_count || table->head_count >= RL_MAX_HEADS) return;
    uint32_t count = table->head_count * 2;
    rl_bucket **heads = calloc(count, sizeof(rl_bucket *));
    if (heads == NULL) return;
    for (uint32_t i = 0; i < table->head_count; i++) {
        rl_bucket *b = table->heads[i];
        while (b != NULL) {
            rl_bucket *next = b->chain;
            uint32_t h = (uint32_t)(b->hash & (count - 1));
            b->chain = heads[h];
            heads[h] = b;
            b = next;
        }
    }
    free(table->heads);
    table->heads = heads;
    table->head_count = count;
}

static void rl_lru_unlink(rl_table *table, rl_bucket *b) {
    if (b->newer) b->newer->older = b->older; else table->newest = b->older;
    if (b->older) b->older->newer = b->newer; else table->oldest = b->newer;
    b->newer = b->older = NULL;
}

static void rl_lru_push_newest(rl_table *table, rl_bucket *b) {
    b->newer = NULL;
    b->older = table->newest;
    if (table->newest) table->newest->newer = b; else table->oldest = b;
    table->newest = b;
}

rl_bucket *rl_table_insert(rl_table *table, const char *key, uint32_t key_len, double tokens, int64_t now_ns) {
    rl_bucket *b = malloc(sizeof(rl_bucket) + (size_t)key_len + 1);
    if (b == NULL) return NULL;
    b->hash = rl_hash(table->seed, key, key_len);
    b->tokens = tokens;
    b->last_ns = now_ns;
    b->key_len = key_len;
    memcpy(b->key, key, key_len);
    b->key[key_len] = '\0';
    uint32_t h = rl_head_of(table, b->hash);
    b->chain = table->heads[h];
    table->heads[h] = b;
    rl_lru_push_newest(table, b);
    table->count++;
    rl_table_grow(table);
    return b;
}

void rl_table_remove(rl_table *table, rl_bucket *bucket) {
    rl_bucket **link = &table->heads[rl_head_of(table, bucket->hash)];
    while (*link != bucket) link = &(*link)->chain;
    *link = bucket->chain;
    rl_lru_unlink(table, bucket);
    table->count--;
    free(bucket);
}

uint64_t rl_table_trim(rl_table *table, uint64_t max) {
    uint64_t dropped = 0;
    while (table->count > max && table->oldest != NULL) {
        rl_table_remove(table, table->oldest);
        dropped++;
    }
    return dropped;
}

double rl_bucket_level(const rl_bucket *bucket, const rl_limits *limits, int64_t now_ns) {
    double capacity = (double)limits->capacity;
    double elapsed = now_ns > bucket->last_ns ? (double)(now_ns - bucket->last_ns) / 1e9 : 0.0;
    double level = bucket->tokens + elapsed * limits->refill_per_second;
    return level < capacity ? level : capacity;
}

bool rl_take(rl_table *table, const rl_limits *limits, const char *key, uint32_t key_len, int64_t cost,
             int64_t max_wait_ms, int64_t now_ns, rl_take_outcome *out) {
    memset(out, 0, sizeof *out);
    rl_bucket *b = rl_table_find(table, key, key_len);
    if (b == NULL) {
        /* Room first: the least recently used bucket goes (when it has refilled, nothing is lost). */
        if (table->count >= limits->max_buckets) out->dropped = rl_table_trim(table, limits->max_buckets - 1);
        b = rl_table_insert(table, key, key_len, (double)limits->capacity, now_ns);
        if (b == NULL) return false;
    } else {
        rl_lru_unlink(table, b);
        rl_lru_push_newest(table, b);
    }
    double level = rl_bucket_level(b, limits, now_ns);
    double want = (double)cost;
    if (level + RL_EPSILON >= want) {
        out->allowed = true;
        level -= want;
        if (level < 0) level = 0; /* within the slack */
    } else {
        double wait_ms = ceil((want - level) / limits->refill_per_second * 1000.0);
        out->wait_ms = wait_ms < (double)INT64_MAX ? (int64_t)wait_ms : INT64_MAX;
        if (max_wait_ms > 0 && out->wait_ms <= max_wait_ms) {
            out->allowed = true; /* reserved: the debt is repaid by the refill while the caller waits */
            level -= want;
        }
    }
    b->tokens = level; /* the refill so far, minus what was taken: same level, newer base */
    b->last_ns = now_ns;
    out->remaining = level > 0 ? (int64_t)floor(level) : 0;
    return true;
}
