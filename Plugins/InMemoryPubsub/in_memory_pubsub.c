/*
 * in-memory-pubsub: an in-memory broker (kind "pubsub", ABI 1.3) for `make run` and tests. Plain C
 * against molt_plugin.h; no Swift runtime, so the host can dlclose it. One source set builds two
 * versions (plugin.mk):
 *   default                  1.0.0, state formats [1, 1]
 *   -DIN_MEMORY_PUBSUB_V1_1  1.1.0, state formats [1, 2] (state_transfer.c)
 *
 * Files: this one (identity, config, lifecycle, publish); topic_queue.c (topics, message lists);
 * delivery.c (the delivery thread, subscribe, ack, unsubscribe); state_transfer.c (export/import).
 *
 * Configuration keys (all apply in place, through apply_config)
 *   maxQueuedPerTopic  default 10000, 1..100000000: messages a topic holds at most (queued, waiting to be
 *                      redelivered, or unanswered); a publish beyond it is refused (UNAVAILABLE).
 *   maxMessageBytes    default 1048576, 1..1073741824: a larger message's publish is INVALID_ARGUMENT.
 *   redeliverDelayMs   default 1000, 0..3600000: a message answered RETRY is delivered again after it
 *                      (Dapr's redeliverInterval).
 *
 * Threads: publish completes inline (one mutex, O(topics) lookup, O(1) append) and only wakes the
 * delivery thread; it never calls the sink. State: MOLT_PLUGIN_HOLDS_STATE, the messages live only
 * here and travel with reloads and swaps (state_transfer.c).
 */
#include "in_memory_pubsub.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MP_MAX_MAX_QUEUED 100000000ULL
#define MP_MAX_MESSAGE_BYTES 1073741824ULL
#define MP_MAX_REDELIVER_MS 3600000ULL

/* ---------------------------------------------------------------------------------------------
 * Identity and declared keys
 * ------------------------------------------------------------------------------------------- */
static const molt_plugin_identity mp_info = {
    .struct_size = sizeof(molt_plugin_identity),
    .name = "in-memory-pubsub",
    .version = MP_VERSION,
    .kind = MOLT_KIND_PUBSUB,
    .description = "In-memory pub/sub broker: a FIFO queue per topic; queued messages survive reloads",
    .state_format_min = MP_FORMAT_MIN,
    .state_format_max = MP_FORMAT_MAX,
    .flags = MOLT_PLUGIN_HOLDS_STATE, /* queued messages live only here; handed over by export/import */
};

static const molt_config_key mp_keys[] = {
    {"maxMessageBytes", "largest message data accepted by publish, in bytes (1..1073741824)", "1048576", false, true,
     NULL},
    {"maxQueuedPerTopic", "messages a topic holds at most, queued or unanswered (1..100000000); publish beyond "
                          "it answers UNAVAILABLE", "10000", false, true, NULL},
    {"redeliverDelayMs", "milliseconds before a message answered RETRY is delivered again (0..3600000)", "1000",
     false, true, NULL},
};

MOLT_DEFINE_ABI_VERSION()

MOLT_EXPORT const molt_plugin_identity *molt_plugin_info(void) { return &mp_info; }

MOLT_EXPORT const molt_config_key *molt_plugin_config_keys(uint32_t *count_out) {
    *count_out = (uint32_t)(sizeof mp_keys / sizeof mp_keys[0]);
    return mp_keys;
}

/* ---------------------------------------------------------------------------------------------
 * Shared helpers
 * ------------------------------------------------------------------------------------------- */
int64_t mp_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void mp_message_text(molt_message *message, const char *format, ...) {
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
static bool mp_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out) {
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

/* Reads every key (the host fills in declared defaults; they are repeated here for hosts that do not). */
static bool mp_parse_limits(const molt_config *config, mp_limits *out, molt_message *message) {
    static const struct { const char *key, *fallback; uint64_t min, max; } spec[] = {
        {"maxQueuedPerTopic", "10000", 1, MP_MAX_MAX_QUEUED},
        {"maxMessageBytes", "1048576", 1, MP_MAX_MESSAGE_BYTES},
        {"redeliverDelayMs", "1000", 0, MP_MAX_REDELIVER_MS},
    };
    uint64_t values[3];
    for (int i = 0; i < 3; i++) {
        const char *text = molt_config_get(config, spec[i].key);
        if (!mp_parse_uint(text ? text : spec[i].fallback, spec[i].min, spec[i].max, &values[i])) {
            mp_message_text(message, "in-memory-pubsub: invalid value \"%s\" for config key %s: expected an integer "
                                     "from %" PRIu64 " to %" PRIu64, text, spec[i].key, spec[i].min, spec[i].max);
            return false;
        }
    }
    out->max_queued_per_topic = values[0];
    out->max_message_bytes = values[1];
    out->redeliver_delay_ms = (uint32_t)values[2];
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------- */
MOLT_EXPORT molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host,
                                         molt_instance *instance_out, molt_message *error_out) {
    mp_limits limits;
    if (!mp_parse_limits(config, &limits, error_out)) return MOLT_ERR_INVALID_ARGUMENT;
    mp_instance *in = calloc(1, sizeof *in);
    if (in == NULL) {
        mp_message_text(error_out, "in-memory-pubsub: out of memory");
        return MOLT_ERR_INTERNAL;
    }
    in->limits = limits;
    in->host = host;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    bool ok = pthread_mutex_init(&in->mu, NULL) == 0;
    ok = ok && pthread_cond_init(&in->wake, &attr) == 0;
    ok = ok && pthread_cond_init(&in->deliver_returned, &attr) == 0;
    pthread_condattr_destroy(&attr);
    if (!ok) {
        mp_message_text(error_out, "in-memory-pubsub: cannot initialize a mutex or condition variable");
        free(in);
        return MOLT_ERR_INTERNAL;
    }
    if (!mp_delivery_start(in, error_out)) {
        pthread_cond_destroy(&in->deliver_returned);
        pthread_cond_destroy(&in->wake);
        pthread_mutex_destroy(&in->mu);
        free(in);
        return MOLT_ERR_INTERNAL;
    }
    molt_log(host, MOLT_LOG_INFO, "in-memory-pubsub %s: maxQueuedPerTopic %" PRIu64 ", maxMessageBytes %" PRIu64
                                  ", redeliverDelayMs %" PRIu32, MP_VERSION, limits.max_queued_per_topic,
             limits.max_message_bytes, limits.redeliver_delay_ms);
    *instance_out = in;
    return MOLT_OK;
}

MOLT_EXPORT molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
    (void)instance;
    (void)message_out;
    return MOLT_READY; /* in memory: ready once init returned */
}

/* Joins the delivery thread first (it may be inside sink.deliver: destroy waits for that call to
 * return), then frees every topic, message and subscription. */
MOLT_EXPORT void molt_plugin_destroy(molt_instance instance) {
    mp_instance *in = instance;
    if (in == NULL) return;
    mp_delivery_stop(in);
    mp_topics_free(in);
    pthread_cond_destroy(&in->deliver_returned);
    pthread_cond_destroy(&in->wake);
    pthread_mutex_destroy(&in->mu);
    free(in);
}

/* Every key applies in place, atomically under the mutex. A lower maxQueuedPerTopic or maxMessageBytes
 * refuses later publishes only: nothing already queued is dropped. A new redeliverDelayMs applies to
 * later RETRY answers. */
MOLT_EXPORT molt_apply_outcome molt_plugin_apply_config(molt_instance instance, const molt_config *config,
                                                        molt_message *message_out) {
    mp_instance *in = instance;
    mp_limits next;
    if (!mp_parse_limits(config, &next, message_out)) return MOLT_APPLY_ERROR;
    pthread_mutex_lock(&in->mu);
    in->limits = next;
    pthread_mutex_unlock(&in->mu);
    return MOLT_APPLIED;
}

/* ---------------------------------------------------------------------------------------------
 * Publish: appends, completes inline, wakes the delivery thread (never delivers itself).
 * ------------------------------------------------------------------------------------------- */
static void mp_publish_done(molt_pubsub_publish_done done, void *call_context, molt_status status, const char *text) {
    molt_pubsub_publish_result result = {sizeof result, status, status == MOLT_OK ? NULL : text};
    done(call_context, &result);
}

MOLT_EXPORT void molt_pubsub_publish(molt_instance instance, const molt_pubsub_publish_request *request,
                                     molt_pubsub_publish_done done, void *call_context) {
    mp_instance *in = instance;
    char text[512];
    if (request->topic == NULL || request->topic[0] == '\0') {
        mp_publish_done(done, call_context, MOLT_ERR_INVALID_ARGUMENT, "in-memory-pubsub: publish needs a topic");
        return;
    }
    if (request->data.length > 0 && request->data.data == NULL) {
        mp_publish_done(done, call_context, MOLT_ERR_INVALID_ARGUMENT, "in-memory-pubsub: publish data is NULL");
        return;
    }
    pthread_mutex_lock(&in->mu);
    mp_limits limits = in->limits;
    pthread_mutex_unlock(&in->mu);
    if (request->data.length > limits.max_message_bytes) {
        snprintf(text, sizeof text, "in-memory-pubsub: message of %zu bytes for topic \"%.200s\" exceeds "
                                    "maxMessageBytes (%" PRIu64 ")", request->data.length, request->topic,
                 limits.max_message_bytes);
        mp_publish_done(done, call_context, MOLT_ERR_INVALID_ARGUMENT, text);
        return;
    }
    /* Copied outside the mutex: the copy is the only O(size) part. */
    mp_message *m = mp_message_new(request->data.data, request->data.length, request->content_type,
                                   request->metadata != NULL ? request->metadata_count : 0, request->metadata);
    if (m == NULL) {
        mp_publish_done(done, call_context, MOLT_ERR_INTERNAL, "in-memory-pubsub: out of memory queueing a message");
        return;
    }
    molt_status status = MOLT_OK;
    pthread_mutex_lock(&in->mu);
    mp_topic *t = mp_topic_get(in, request->topic);
    if (t == NULL) {
        status = MOLT_ERR_INTERNAL;
        snprintf(text, sizeof text, "in-memory-pubsub: out of memory creating topic \"%.200s\"", request->topic);
    } else if (t->count >= in->limits.max_queued_per_topic) {
        status = MOLT_ERR_UNAVAILABLE;
        snprintf(text, sizeof text, "in-memory-pubsub: topic \"%.200s\" holds %" PRIu64 " messages, its limit "
                                    "(maxQueuedPerTopic %" PRIu64 "); try again once subscribers catch up",
                 request->topic, t->count, in->limits.max_queued_per_topic);
    } else {
        mp_topic_append(t, m);
        m = NULL;
        if (t->subscription != NULL) pthread_cond_signal(&in->wake);
    }
    pthread_mutex_unlock(&in->mu);
    mp_message_free(m);
    mp_publish_done(done, call_context, status, text);
}
