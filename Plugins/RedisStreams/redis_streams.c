/*
 * redis-streams: Dapr's pubsub.redis (kind "pubsub", ABI 1.3) on Redis Streams with consumer groups,
 * through hiredis: publish on the host's event loops (ABI 1.1 I/O), the rest on blocking connections on
 * threads of the plugin's own. Plain C against molt_plugin.h.
 *
 * Files: this one (identity, declared keys, lifecycle, shared helpers); settings.c (metadata);
 * connection.c (connect, AUTH, SELECT, PING); entry.c (what a stream entry holds); command_thread.c
 * (XACK, and publish on a host without ABI 1.1 I/O, on the command thread); loop_publish.c (publish on
 * the host's event loops); subscription.c (subscribe, ack, unsubscribe); consumer.c
 * (a subscription's thread: XREADGROUP, XAUTOCLAIM, delivery within the window). redis_streams.h has the
 * model and the threading rules.
 *
 * State: none that callers rely on (Redis keeps the streams, the group and its pending entries), so no
 * MOLT_PLUGIN_HOLDS_STATE and no state transfer: a reload's new instance resumes from the group and
 * reclaims what the old one left pending after processingTimeout.
 */
#include "redis_streams.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const molt_plugin_identity rs_info = {
    .struct_size = sizeof(molt_plugin_identity),
    .name = RS_NAME,
    .version = RS_VERSION,
    .kind = MOLT_KIND_PUBSUB,
    .description = "Dapr's pubsub.redis on Redis Streams: consumer groups, reclaim of pending entries",
    .state_format_min = 0,
    .state_format_max = 0,
    .flags = 0, /* the broker keeps the state */
};

/* Sorted by name. None applies in place: any change starts a new instance (a reload loses nothing). */
static const molt_config_key rs_keys[] = {
    {"ackOnError", "true: a RETRY answer acknowledges the entry too (no redelivery by Redis)", "false", false, false,
     NULL},
    {"concurrency", "accepted for Dapr compatibility; the host's window bounds deliveries in flight", "10", false,
     false, NULL},
    {"consumerID", "the consumer group's name (default: the component's name)", NULL, false, false, NULL},
    {"dialTimeout", "time to connect to Redis (Go duration or milliseconds)", "5s", false, false, NULL},
    {"enableTLS", "TLS to Redis: not supported, must be false", "false", false, false, NULL},
    {"maxLenApprox", "XADD MAXLEN ~ n: the stream keeps about this many entries (absent: unlimited)", NULL, false,
     false, NULL},
    {"processingTimeout", "pending longer than this (unanswered, or answered RETRY), an entry is delivered again; "
                          "0 disables redelivery", "15s", false, false, NULL},
    {"queueDepth", "entries read (XREADGROUP, XAUTOCLAIM COUNT) at once", "100", false, false, NULL},
    {"redeliverInterval", "how often pending entries are checked for redelivery; 0 disables redelivery", "60s",
     false, false, NULL},
    {"redisDB", "the database selected after connecting", "0", false, false, NULL},
    {"redisHost", "host:port of the Redis server", NULL, true, false, NULL},
    {"redisPassword", "password (AUTH); never logged", NULL, false, false, NULL},
    {"redisUsername", "ACL user name (Redis 6+), with redisPassword", NULL, false, false, NULL},
};

MOLT_DEFINE_ABI_VERSION()

MOLT_EXPORT const molt_plugin_identity *molt_plugin_info(void) { return &rs_info; }

MOLT_EXPORT const molt_config_key *molt_plugin_config_keys(uint32_t *count_out) {
    *count_out = (uint32_t)(sizeof rs_keys / sizeof rs_keys[0]);
    return rs_keys;
}

/* ---------------------------------------------------------------------------------------------
 * Shared helpers
 * ------------------------------------------------------------------------------------------- */
int64_t rs_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void rs_text(molt_message *message, const char *format, ...) {
    if (message == NULL || message->text == NULL || message->capacity == 0) return;
    va_list args;
    va_start(args, format);
    vsnprintf(message->text, message->capacity, format, args);
    va_end(args);
}

void rs_timed_wait(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t ms) {
    int64_t until = rs_monotonic_ns() + ms * 1000000;
    struct timespec ts = {(time_t)(until / 1000000000), (long)(until % 1000000000)};
    pthread_cond_timedwait(cond, mu, &ts);
}

/* group + "-" + 16 random hex digits: unique per instance, so that what an old generation left pending is
 * told apart from what this one holds. */
static void rs_consumer_name(rs_instance *in) {
    uint64_t random = (uint64_t)rs_monotonic_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)in;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        uint64_t bytes;
        if (read(fd, &bytes, sizeof bytes) == (ssize_t)sizeof bytes) random ^= bytes;
        close(fd);
    }
    snprintf(in->consumer, sizeof in->consumer, "%s-%016llx", in->settings.group, (unsigned long long)random);
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------- */

/* Connects the command connection at once (a PING must answer within dialTimeout + the command
 * timeout), so that a wrong redisHost fails the apply with a message naming it. */
MOLT_EXPORT molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host,
                                         molt_instance *instance_out, molt_message *error_out) {
    rs_instance *in = calloc(1, sizeof *in);
    if (in == NULL) {
        rs_text(error_out, RS_NAME ": out of memory");
        return MOLT_ERR_INTERNAL;
    }
    if (!rs_settings_parse(config, &in->settings, error_out)) {
        free(in);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    in->host = host;
    rs_consumer_name(in);
    char why[512];
    in->command = rs_connect(&in->settings, why, sizeof why);
    if (in->command == NULL) {
        rs_text(error_out, "%s", why);
        rs_settings_free(&in->settings);
        free(in);
        return MOLT_ERR_UNAVAILABLE;
    }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    bool ok = pthread_mutex_init(&in->mu, NULL) == 0 && pthread_cond_init(&in->jobs_ready, &attr) == 0 &&
              pthread_cond_init(&in->io_idle, &attr) == 0;
    pthread_condattr_destroy(&attr);
    bool on_loops = ok && rs_loop_start(in);
    if (!ok || !rs_commands_start(in, error_out)) {
        if (!ok) rs_text(error_out, RS_NAME ": cannot initialize a mutex or condition variable");
        free(in->shards);
        redisFree(in->command);
        rs_settings_free(&in->settings);
        free(in);
        return MOLT_ERR_INTERNAL;
    }
    molt_log(host, MOLT_LOG_INFO, RS_NAME " " RS_VERSION ": Redis at %s, consumer group %s, consumer %s, "
                                  "processingTimeout %lldms, redeliverInterval %lldms, publish %s", in->settings.address,
             in->settings.group, in->consumer, (long long)in->settings.processing_timeout_ms,
             (long long)in->settings.redeliver_interval_ms,
             on_loops ? "on the host's event loops" : "on the command thread (the host has no ABI 1.1 I/O)");
    *instance_out = in;
    return MOLT_OK;
}

MOLT_EXPORT molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
    (void)instance;
    (void)message_out;
    return MOLT_READY; /* init returned only once a PING answered */
}

/* Fails the publishes still on the host's loops (the engine drained the instance's calls first, so
 * normally none) and waits for the host's last callback, stops every consumer thread (no deliver after),
 * then the command thread once it ran every queued job (late XACKs included), makes what is still pending
 * for this consumer due for the next reclaim, then frees everything. */
MOLT_EXPORT void molt_plugin_destroy(molt_instance instance) {
    rs_instance *in = instance;
    if (in == NULL) return;
    rs_loop_stop(in);
    rs_subscriptions_stop_all(in);
    rs_commands_stop(in);
    rs_subscriptions_release_pending(in);
    if (in->command != NULL) redisFree(in->command);
    in->command = NULL;
    rs_subscriptions_free(in);
    pthread_cond_destroy(&in->jobs_ready);
    pthread_cond_destroy(&in->io_idle);
    pthread_mutex_destroy(&in->mu);
    rs_settings_free(&in->settings);
    free(in);
}
