/*
 * rate_limiter.h: what the plugin's files share (not part of any ABI: every name here is hidden by
 * -fvisibility=hidden, only MOLT_EXPORT functions leave the library).
 */
#ifndef RATE_LIMITER_H
#define RATE_LIMITER_H

#include "bucket_table.h"
#include "molt_plugin.h"

#include <pthread.h>

#ifdef RATE_LIMITER_V1_1
#define RL_VERSION "1.1.0"
#define RL_FORMAT_MAX 2u
#else
#define RL_VERSION "1.0.0"
#define RL_FORMAT_MAX 1u
#endif
#define RL_FORMAT_MIN 1u

/* One per component generation; no globals. */
typedef struct rl_instance {
    pthread_mutex_t mu; /* guards table and limits; held O(1) per operation, O(buckets) by apply_config and
                           state transfer */
    rl_table table;     /* owned */
    rl_limits limits;   /* in force; changed in place by apply_config */
    const molt_host_services *host; /* host-owned, valid until destroy returns */
} rl_instance;

int64_t rl_monotonic_ns(void);
int64_t rl_realtime_ms(void);
void rl_message(molt_message *message, const char *format, ...) __attribute__((format(printf, 2, 3)));

#endif /* RATE_LIMITER_H */
