/* test_bucket_table.c: the token-bucket arithmetic and the LRU table against a fake clock (exact
 * numbers: no sleeps). bucket_table.c is compiled in; `make test-rate-limiter` runs it. */
#include "bucket_table.h"
#include "plugin_check.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int failures; /* plugin_check.h */

#define MS (1000000LL) /* nanoseconds */

static rl_take_outcome take(rl_table *t, const rl_limits *l, const char *key, int64_t cost, int64_t max_wait_ms,
                            int64_t now) {
    rl_take_outcome o;
    CHECK(rl_take(t, l, key, (uint32_t)strlen(key), cost, max_wait_ms, now, &o));
    return o;
}

static double level(rl_table *t, const rl_limits *l, const char *key, int64_t now) {
    const rl_bucket *b = rl_table_find(t, key, (uint32_t)strlen(key));
    return b ? rl_bucket_level(b, l, now) : -999;
}

static void test_refill_and_retry(void) {
    rl_table t;
    CHECK(rl_table_init(&t, 42));
    rl_limits l = {.capacity = 10, .refill_per_second = 5, .max_buckets = 100};
    int64_t now = 1000 * MS;

    rl_take_outcome o = take(&t, &l, "a", 1, 0, now); /* a new key starts full */
    CHECK(o.allowed && o.remaining == 9 && o.wait_ms == 0);
    o = take(&t, &l, "a", 9, 0, now);
    CHECK(o.allowed && o.remaining == 0);
    o = take(&t, &l, "a", 1, 0, now); /* empty: refused, one token takes 200 ms at 5/s */
    CHECK(!o.allowed && o.remaining == 0 && o.wait_ms == 200);
    o = take(&t, &l, "a", 3, 0, now);
    CHECK(!o.allowed && o.wait_ms == 600);
    CHECK(fabs(level(&t, &l, "a", now)) < 1e-9); /* a refusal takes nothing */

    now += 100 * MS; /* half a token */
    CHECK(fabs(level(&t, &l, "a", now) - 0.5) < 1e-9);
    o = take(&t, &l, "a", 1, 0, now);
    CHECK(!o.allowed && o.wait_ms == 100);
    now += 100 * MS;
    o = take(&t, &l, "a", 1, 0, now);
    CHECK(o.allowed && o.remaining == 0);

    now += 60000 * MS; /* refill stops at capacity */
    CHECK(level(&t, &l, "a", now) == 10);
    o = take(&t, &l, "a", 10, 0, now);
    CHECK(o.allowed && o.remaining == 0);

    /* in place: a lower capacity caps, a faster refill counts from the change (the plugin rebases) */
    l.capacity = 4;
    now += 2000 * MS;
    CHECK(level(&t, &l, "a", now) == 4);
    rl_table_free(&t);
}

static void test_reservation(void) {
    rl_table t;
    CHECK(rl_table_init(&t, 7));
    rl_limits l = {.capacity = 10, .refill_per_second = 5, .max_buckets = 100};
    int64_t now = 5 * MS;
    CHECK(take(&t, &l, "k", 10, 0, now).allowed);
    rl_take_outcome o = take(&t, &l, "k", 3, 1000, now); /* 600 ms away, within 1000: reserved */
    CHECK(o.allowed && o.wait_ms == 600 && o.remaining == 0);
    CHECK(fabs(level(&t, &l, "k", now) + 3) < 1e-9);  /* in debt */
    o = take(&t, &l, "k", 1, 500, now);               /* queues behind the debt: 800 ms > 500 */
    CHECK(!o.allowed && o.wait_ms == 800);
    o = take(&t, &l, "k", 1, 0, now);                 /* allow never reserves */
    CHECK(!o.allowed && o.wait_ms == 800);
    now += 600 * MS; /* the reservation is repaid */
    CHECK(fabs(level(&t, &l, "k", now)) < 1e-9);
    rl_table_free(&t);
}

static void test_lru(void) {
    rl_table t;
    CHECK(rl_table_init(&t, 1));
    rl_limits l = {.capacity = 10, .refill_per_second = 1, .max_buckets = 3};
    take(&t, &l, "a", 1, 0, 0);
    take(&t, &l, "b", 2, 0, 0);
    take(&t, &l, "c", 3, 0, 0);
    CHECK(take(&t, &l, "a", 1, 0, 0).dropped == 0); /* a is now the most recently used; b the least */
    rl_take_outcome o = take(&t, &l, "d", 1, 0, 0);
    CHECK(o.allowed && o.dropped == 1 && t.count == 3);
    CHECK(rl_table_find(&t, "b", 1) == NULL);
    CHECK(rl_table_find(&t, "a", 1) && rl_table_find(&t, "c", 1) && rl_table_find(&t, "d", 1));
    CHECK(t.oldest == rl_table_find(&t, "c", 1) && t.newest == rl_table_find(&t, "d", 1));
    CHECK(rl_table_trim(&t, 1) == 2 && t.count == 1 && t.newest == t.oldest && t.newest->key[0] == 'd');
    rl_table_remove(&t, t.newest);
    CHECK(t.count == 0 && t.newest == NULL && t.oldest == NULL);
    rl_table_free(&t);
}

static void test_growth(void) {
    rl_table t;
    CHECK(rl_table_init(&t, 99));
    char key[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "client-%d", i);
        CHECK(rl_table_insert(&t, key, (uint32_t)strlen(key), 1.0, 0) != NULL);
    }
    CHECK(t.count == 20000 && t.head_count >= 16384);
    int found = 0;
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "client-%d", i);
        rl_bucket *b = rl_table_find(&t, key, (uint32_t)strlen(key));
        if (b != NULL && strcmp(b->key, key) == 0) found++;
        if (i % 2 == 0 && b != NULL) rl_table_remove(&t, b);
    }
    CHECK(found == 20000 && t.count == 10000);
    CHECK(rl_table_find(&t, "client-2", 8) == NULL && rl_table_find(&t, "client-3", 8) != NULL);
    rl_table_free(&t);
}

int main(void) {
    test_refill_and_retry();
    test_reservation();
    test_lru();
    test_growth();
    printf(failures ? "test_bucket_table: %d check(s) failed\n" : "test_bucket_table: all checks passed\n", failures);
    return failures ? 1 : 0;
}
