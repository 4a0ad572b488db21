/*
 * bench_direct: the direct-call baseline for molt's ABI benchmark. memorylock.c is compiled into
 * this program and its functions are called directly (no dlopen/dlsym, no host), so the numbers
 * are the plugin's own cost; the host benchmark's numbers minus these are the ABI's overhead.
 *
 * Workload: one instance with default config; owner "o", expiry 60 s. PAIRS try_lock+unlock pairs
 * (default 10,000,000; argv[1] overrides), in rounds of BATCH distinct resources: try_lock all of
 * the round's resources (timed), then unlock them (timed), so each op kind is timed separately
 * with CLOCK_MONOTONIC while the clock reads cost nothing per op. Output, one line per op kind:
 *   try_lock direct_ns_per_op=<float>
 *   unlock direct_ns_per_op=<float>
 * Build: make bench-direct (-> build/bench_direct).
 */
#include "memorylock.c"

#include <stdio.h>

#define BATCH 1000u

typedef struct {
    molt_status status;
    bool acquired;
    molt_unlock_status unlock_status;
} bench_outcome;

static void bench_locked(void *context, const molt_try_lock_result *result) {
    bench_outcome *o = context;
    o->status = result->status;
    o->acquired = result->acquired;
}

static void bench_unlocked(void *context, const molt_unlock_result *result) {
    bench_outcome *o = context;
    o->status = result->status;
    o->unlock_status = result->unlock_status;
}

static uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    uint64_t pairs = 10000000u;
    if (argc > 1 && !ml_parse_uint(argv[1], BATCH, UINT64_MAX, &pairs)) {
        fprintf(stderr, "usage: %s [pairs >= %u]\n", argv[0], BATCH);
        return 2;
    }
    uint64_t rounds = pairs / BATCH;
    pairs = rounds * BATCH;

    char text[256] = "";
    molt_message message = {text, sizeof text};
    molt_config config = {.struct_size = sizeof config, .entry_count = 0, .entries = NULL, .component_name = "bench"};
    molt_instance instance = NULL;
    if (molt_plugin_init(&config, NULL, &instance, &message) != MOLT_OK) {
        fprintf(stderr, "init failed: %s\n", text);
        return 1;
    }

    static char names[BATCH][16];
    static molt_lock_request requests[BATCH];
    for (unsigned i = 0; i < BATCH; i++) {
        snprintf(names[i], sizeof names[i], "resource-%u", i);
        requests[i] = (molt_lock_request){.struct_size = sizeof(molt_lock_request), .resource_id = names[i],
                                          .lock_owner = "o", .expiry_in_seconds = 60};
    }

    uint64_t lock_ns = 0, unlock_ns = 0, failures = 0;
    bench_outcome outcome;
    for (uint64_t round = 0; round < rounds; round++) {
        uint64_t t0 = bench_now_ns();
        for (unsigned i = 0; i < BATCH; i++) {
            molt_lock_try_lock(instance, &requests[i], bench_locked, &outcome);
            failures += outcome.status != MOLT_OK || !outcome.acquired;
        }
        uint64_t t1 = bench_now_ns();
        for (unsigned i = 0; i < BATCH; i++) {
            molt_lock_unlock(instance, &requests[i], bench_unlocked, &outcome);
            failures += outcome.status != MOLT_OK || outcome.unlock_status != MOLT_UNLOCK_SUCCESS;
        }
        uint64_t t2 = bench_now_ns();
        lock_ns += t1 - t0;
        unlock_ns += t2 - t1;
    }
    molt_plugin_destroy(instance);

    if (failures != 0) {
        fprintf(stderr, "bench_direct: %" PRIu64 " operations did not succeed\n", failures);
        return 1;
    }
    printf("# memorylock %s, %" PRIu64 " try_lock+unlock pairs, direct calls\n", ML_VERSION, pairs);
    printf("try_lock direct_ns_per_op=%.2f\n", (double)lock_ns / (double)pairs);
    printf("unlock direct_ns_per_op=%.2f\n", (double)unlock_ns / (double)pairs);
    return 0;
}
