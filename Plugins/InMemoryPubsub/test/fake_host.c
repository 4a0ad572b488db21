/* fake_host.c: the test's host side (fake_host.h). The sink's records are guarded by its mutex; the
 * plugin calls fake_deliver on its delivery thread, the test reads and acks on its own. */
#include "fake_host.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int failures;


static void *symbol(const plugin *p, const char *name) {
    void *s = dlsym(p->handle, name);
    if (s == NULL) { fprintf(stderr, "%s: missing symbol %s\n", p->path, name); exit(1); }
    return s;
}

plugin load(const char *path) {
    plugin p = {.path = path};
    p.handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (p.handle == NULL) { fprintf(stderr, "dlopen: %s\n", dlerror()); exit(1); }
    uint32_t major = 0, minor = 0;
    ((molt_abi_version_fn)symbol(&p, MOLT_SYMBOL_ABI_VERSION))(&major, &minor);
    CHECK(major == 1 && minor == 3);
    p.info = ((molt_plugin_info_fn)symbol(&p, MOLT_SYMBOL_PLUGIN_INFO))();
    printf("%s %s (state formats %u..%u)\n", p.info->name, p.info->version, p.info->state_format_min,
           p.info->state_format_max);
    CHECK(strcmp(p.info->name, "in-memory-pubsub") == 0);
    CHECK(strcmp(p.info->kind, MOLT_KIND_PUBSUB) == 0);
    CHECK(p.info->struct_size >= MOLT_PLUGIN_IDENTITY_SIZE_1_1 && (p.info->flags & MOLT_PLUGIN_HOLDS_STATE));
    CHECK(p.info->state_format_min == 1);
    uint32_t key_count = 0;
    const molt_config_key *keys = ((molt_plugin_config_keys_fn)symbol(&p, MOLT_SYMBOL_PLUGIN_CONFIG_KEYS))(&key_count);
    static const char *const expected[][2] = {
        {"maxMessageBytes", "1048576"}, {"maxQueuedPerTopic", "10000"}, {"redeliverDelayMs", "1000"}};
    CHECK(key_count == 3);
    for (uint32_t i = 0; i < key_count && i < 3; i++) {
        CHECK(strcmp(keys[i].name, expected[i][0]) == 0 && strcmp(keys[i].default_value, expected[i][1]) == 0);
        CHECK(keys[i].applies_in_place && !keys[i].required && keys[i].description != NULL);
    }
    p.init = (molt_plugin_init_fn)symbol(&p, MOLT_SYMBOL_PLUGIN_INIT);
    p.destroy = (molt_plugin_destroy_fn)symbol(&p, MOLT_SYMBOL_PLUGIN_DESTROY);
    p.apply_config = (molt_plugin_apply_config_fn)symbol(&p, MOLT_SYMBOL_PLUGIN_APPLY_CONFIG);
    p.export_state = (molt_plugin_export_state_fn)symbol(&p, MOLT_SYMBOL_PLUGIN_EXPORT_STATE);
    p.import_state = (molt_plugin_import_state_fn)symbol(&p, MOLT_SYMBOL_PLUGIN_IMPORT_STATE);
    p.publish = (molt_pubsub_publish_fn)symbol(&p, MOLT_SYMBOL_PUBSUB_PUBLISH);
    p.subscribe = (molt_pubsub_subscribe_fn)symbol(&p, MOLT_SYMBOL_PUBSUB_SUBSCRIBE);
    p.ack = (molt_pubsub_ack_fn)symbol(&p, MOLT_SYMBOL_PUBSUB_ACK);
    p.unsubscribe = (molt_pubsub_unsubscribe_fn)symbol(&p, MOLT_SYMBOL_PUBSUB_UNSUBSCRIBE);
    symbol(&p, MOLT_SYMBOL_PLUGIN_READINESS);
    return p;
}

int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void host_log(void *context, molt_log_level level, const char *message) {
    (void)context;
    printf("  log(%d): %s\n", level, message);
}
const molt_host_services fake_host = {.struct_size = MOLT_HOST_SERVICES_SIZE_1_0, .log = host_log};

/* A config as the host hands it over: every declared key, defaults filled in, sorted bytewise. */
molt_config config_of(molt_kv entries[3], const char *max_bytes, const char *max_queued, const char *delay) {
    entries[0] = (molt_kv){"maxMessageBytes", max_bytes};
    entries[1] = (molt_kv){"maxQueuedPerTopic", max_queued};
    entries[2] = (molt_kv){"redeliverDelayMs", delay};
    return (molt_config){sizeof(molt_config), 3, entries, "pubsub"};
}

molt_instance start(const plugin *p, const char *max_bytes, const char *max_queued, const char *delay) {
    molt_kv entries[3];
    molt_config config = config_of(entries, max_bytes, max_queued, delay);
    char text[256] = "";
    molt_message error = {text, sizeof text};
    molt_instance in = NULL;
    if (p->init(&config, &fake_host, &in, &error) != MOLT_OK || in == NULL) {
        fprintf(stderr, "%s: init failed: %s\n", p->path, text);
        exit(1);
    }
    return in;
}

/* ---------------------------------------------------------------------------------------------
 * Publishing
 * ------------------------------------------------------------------------------------------- */

static void publish_done(void *call_context, const molt_pubsub_publish_result *result) {
    publish_outcome *o = call_context;
    o->calls++;
    o->status = result->status;
    snprintf(o->message, sizeof o->message, "%s", result->message ? result->message : "");
}

static molt_kv publish_metadata[] = {{"ttlInSeconds", "60"}, {"traceparent", "00-abc"}};

publish_outcome publish(const plugin *p, molt_instance in, const char *topic, const char *data) {
    molt_pubsub_publish_request request = {
        sizeof request, topic, {(const uint8_t *)data, strlen(data)}, "text/plain", 2, publish_metadata};
    publish_outcome o = {0};
    p->publish(in, &request, publish_done, &o);
    CHECK(o.calls == 1); /* completes inline */
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * The fake host sink
 * ------------------------------------------------------------------------------------------- */


static bool fake_deliver(void *host_subscription, const molt_pubsub_message *message) {
    sink_state *s = host_subscription;
    pthread_mutex_lock(&s->mu);
    if (s->closed) s->violations++;
    if (s->hold_limit > 0 && s->holding >= s->hold_limit) {
        s->refusals++;
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    if (s->count < MAX_RECORDS) {
        record *r = &s->records[s->count];
        snprintf(r->topic, sizeof r->topic, "%s", message->topic);
        snprintf(r->data, sizeof r->data, "%.*s", (int)message->data.length, (const char *)message->data.data);
        snprintf(r->content_type, sizeof r->content_type, "%s", message->content_type ? message->content_type : "");
        r->metadata_count = message->metadata_count;
        snprintf(r->metadata0, sizeof r->metadata0, "%s=%s", message->metadata_count ? message->metadata[0].key : "",
                 message->metadata_count ? message->metadata[0].value : "");
        r->delivery = message->delivery;
    }
    s->count++;
    bool inline_ack = s->ack_inline;
    if (!inline_ack && ++s->holding > s->max_holding) s->max_holding = s->holding;
    pthread_mutex_unlock(&s->mu);
    if (inline_ack) s->p->ack(s->in, s->subscription, message->delivery, MOLT_PUBSUB_ACK);
    return true;
}

sink_state *sink_new(const plugin *p, molt_instance in) {
    sink_state *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->p = p;
    s->in = in;
    return s;
}

int sink_count(sink_state *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->count;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Bounded poll: true once the sink took at least n deliveries. */
bool wait_for(sink_state *s, int n, int timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    while (sink_count(s) < n) {
        if (now_ms() > deadline) return false;
        sleep_ms(2);
    }
    return true;
}

molt_status subscribe(const plugin *p, molt_instance in, const char *topic, uint32_t window, sink_state *s) {
    molt_pubsub_subscribe_request request = {sizeof request, topic, 0, NULL, window};
    molt_pubsub_sink sink = {s, fake_deliver};
    char text[256] = "";
    molt_message error = {text, sizeof text};
    molt_status status = p->subscribe(in, &request, &sink, &s->subscription, &error);
    if (status != MOLT_OK) printf("  subscribe %s: %s\n", topic, text);
    return status;
}

/* The host's answer to the sink's i-th delivery, from the test thread. */
void sink_ack(sink_state *s, int i, molt_pubsub_outcome outcome) {
    pthread_mutex_lock(&s->mu);
    uint64_t delivery = s->records[i].delivery;
    s->holding--;
    pthread_mutex_unlock(&s->mu);
    s->p->ack(s->in, s->subscription, delivery, outcome);
}

void unsubscribe(sink_state *s) {
    char text[256] = "";
    molt_message error = {text, sizeof text};
    CHECK(s->p->unsubscribe(s->in, s->subscription, &error) == MOLT_OK);
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    pthread_mutex_unlock(&s->mu);
}

void sink_free(sink_state *s) {
    pthread_mutex_lock(&s->mu);
    CHECK(s->violations == 0);
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

bool data_is(sink_state *s, int i, const char *data) {
    pthread_mutex_lock(&s->mu);
    bool same = i < s->count && strcmp(s->records[i].data, data) == 0;
    pthread_mutex_unlock(&s->mu);
    if (!same) fprintf(stderr, "  delivery %d is \"%s\", expected \"%s\"\n", i, s->records[i].data, data);
    return same;
}

/* ---------------------------------------------------------------------------------------------
 * State transfer helpers
 * ------------------------------------------------------------------------------------------- */

static int32_t buffer_sink(void *context, const void *bytes, size_t length) {
    buffer *b = context;
    b->bytes = realloc(b->bytes, b->length + length);
    memcpy(b->bytes + b->length, bytes, length);
    b->length += length;
    return 0;
}

buffer export_state(const plugin *p, molt_instance in, uint32_t format) {
    buffer b = {NULL, 0};
    char text[256] = "";
    molt_message message = {text, sizeof text};
    molt_status status = p->export_state(in, format, buffer_sink, &b, &message);
    if (status != MOLT_OK) fprintf(stderr, "  export: %s\n", text);
    CHECK(status == MOLT_OK);
    return b;
}

/* Messages the instance holds (every state), read from a format 1 export. */
uint64_t held(const plugin *p, molt_instance in) {
    buffer b = export_state(p, in, 1);
    uint64_t count = 0;
    for (int i = 0; i < 8 && b.length >= 12; i++) count |= (uint64_t)b.bytes[4 + i] << (8 * i);
    free(b.bytes);
    return count;
}

molt_status import_state(const plugin *p, molt_instance in, uint32_t format, const void *bytes, size_t length,
                                char *text, size_t capacity) {
    text[0] = '\0';
    molt_message message = {text, (uint32_t)capacity};
    return p->import_state(in, format, bytes, length, &message);
}

