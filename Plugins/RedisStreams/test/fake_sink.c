/* fake_sink.c: the test's host side (fake_sink.h). The sink's records are guarded by its mutex: the plugin
 * calls fake_deliver on its consumer thread, the test reads and acks on its own. */
#include "fake_sink.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int failures;
plugin p;

static void *symbol(const char *name) {
    void *s = dlsym(p.handle, name);
    if (s == NULL) { fprintf(stderr, "missing symbol %s\n", name); exit(1); }
    return s;
}

void load(const char *path) {
    p.handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (p.handle == NULL) { fprintf(stderr, "dlopen: %s\n", dlerror()); exit(1); }
    uint32_t major = 0, minor = 0;
    ((molt_abi_version_fn)symbol(MOLT_SYMBOL_ABI_VERSION))(&major, &minor);
    CHECK(major == 1 && minor == 3);
    p.info = ((molt_plugin_info_fn)symbol(MOLT_SYMBOL_PLUGIN_INFO))();
    p.keys = (molt_plugin_config_keys_fn)symbol(MOLT_SYMBOL_PLUGIN_CONFIG_KEYS);
    p.init = (molt_plugin_init_fn)symbol(MOLT_SYMBOL_PLUGIN_INIT);
    p.readiness = (molt_plugin_readiness_fn)symbol(MOLT_SYMBOL_PLUGIN_READINESS);
    p.destroy = (molt_plugin_destroy_fn)symbol(MOLT_SYMBOL_PLUGIN_DESTROY);
    p.publish = (molt_pubsub_publish_fn)symbol(MOLT_SYMBOL_PUBSUB_PUBLISH);
    p.subscribe = (molt_pubsub_subscribe_fn)symbol(MOLT_SYMBOL_PUBSUB_SUBSCRIBE);
    p.ack = (molt_pubsub_ack_fn)symbol(MOLT_SYMBOL_PUBSUB_ACK);
    p.unsubscribe = (molt_pubsub_unsubscribe_fn)symbol(MOLT_SYMBOL_PUBSUB_UNSUBSCRIBE);
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
const molt_host_services *test_host = &fake_host;

void fake_host_log(void *host_context, molt_log_level level, const char *message) {
    host_log(host_context, level, message);
}

static int compare_kv(const void *a, const void *b) {
    return strcmp(((const molt_kv *)a)->key, ((const molt_kv *)b)->key);
}

molt_status start(uint16_t port, const char *const *extra, molt_instance *out, char *text, size_t capacity) {
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%u", port);
    molt_kv entries[16];
    uint32_t n = 0;
    entries[n++] = (molt_kv){"redisHost", host};
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 16; i += 2) entries[n++] = (molt_kv){extra[i], extra[i + 1]};
    qsort(entries, n, sizeof entries[0], compare_kv);
    molt_config config = {sizeof config, n, entries, "pubsub"};
    text[0] = '\0';
    molt_message error = {text, (uint32_t)capacity};
    *out = NULL;
    return p.init(&config, test_host, out, &error);
}

/* ---------------------------------------------------------------------------------------------
 * Publishing: `done` comes from the plugin's command thread.
 * ------------------------------------------------------------------------------------------- */
static pthread_mutex_t publish_mu = PTHREAD_MUTEX_INITIALIZER;

static void publish_done(void *call_context, const molt_pubsub_publish_result *result) {
    publish_outcome *o = call_context;
    pthread_mutex_lock(&publish_mu);
    if (o->done) fprintf(stderr, "FAIL: publish done twice\n"), failures++;
    o->status = result->status;
    snprintf(o->message, sizeof o->message, "%s", result->message ? result->message : "");
    o->done = true;
    pthread_mutex_unlock(&publish_mu);
}

static molt_kv publish_metadata[] = {{"ttlInSeconds", "60"}, {"traceparent", "00-abc"}};

publish_outcome publish(molt_instance in, const char *topic, const char *data) {
    molt_pubsub_publish_request request = {
        sizeof request, topic, {(const uint8_t *)data, strlen(data)}, "text/plain", 2, publish_metadata};
    publish_outcome o = {0};
    p.publish(in, &request, publish_done, &o);
    int64_t deadline = now_ms() + 10000;
    for (;;) {
        pthread_mutex_lock(&publish_mu);
        bool done = o.done;
        pthread_mutex_unlock(&publish_mu);
        if (done) break;
        if (now_ms() > deadline) {
            fprintf(stderr, "publish to %s: no done within 10 s\n", topic);
            exit(1); /* the request would dangle */
        }
        sleep_ms(1);
    }
    pthread_mutex_lock(&publish_mu);
    publish_outcome copy = o;
    pthread_mutex_unlock(&publish_mu);
    return copy;
}

/* ---------------------------------------------------------------------------------------------
 * The fake host sink
 * ------------------------------------------------------------------------------------------- */
static const char *meta_value(const molt_pubsub_message *m, const char *key) {
    for (uint32_t i = 0; i < m->metadata_count; i++)
        if (strcmp(m->metadata[i].key, key) == 0) return m->metadata[i].value;
    return "";
}

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
        snprintf(r->data, sizeof r->data, "%.*s", (int)message->data.length, (const char *)message->data.data);
        snprintf(r->content_type, sizeof r->content_type, "%s", message->content_type ? message->content_type : "");
        snprintf(r->metadata, sizeof r->metadata, "%s|%s", meta_value(message, "ttlInSeconds"),
                 meta_value(message, "traceparent"));
        r->delivery = message->delivery;
    }
    s->count++;
    bool inline_ack = s->ack_inline;
    if (!inline_ack && ++s->holding > s->max_holding) s->max_holding = s->holding;
    pthread_mutex_unlock(&s->mu);
    if (inline_ack) p.ack(s->in, s->subscription, message->delivery, MOLT_PUBSUB_ACK);
    return true;
}

sink_state *sink_new(molt_instance in, bool ack_inline) {
    sink_state *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->in = in;
    s->ack_inline = ack_inline;
    return s;
}

molt_status subscribe(sink_state *s, const char *topic, uint32_t window) {
    molt_pubsub_subscribe_request request = {sizeof request, topic, 0, NULL, window};
    molt_pubsub_sink sink = {s, fake_deliver};
    char text[512] = "";
    molt_message error = {text, sizeof text};
    uint64_t id = 0;
    pthread_mutex_lock(&s->mu); /* deliver waits until the id is known */
    molt_status status = p.subscribe(s->in, &request, &sink, &id, &error);
    if (status == MOLT_OK) s->subscription = id;
    pthread_mutex_unlock(&s->mu);
    if (status != MOLT_OK) printf("  subscribe %s: %s\n", topic, text);
    return status;
}

int sink_count(sink_state *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->count;
    pthread_mutex_unlock(&s->mu);
    return n;
}

bool wait_for(sink_state *s, int n, int timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    while (sink_count(s) < n) {
        if (now_ms() > deadline) return false;
        sleep_ms(2);
    }
    return true;
}

void sink_ack(sink_state *s, int i, molt_pubsub_outcome outcome) {
    pthread_mutex_lock(&s->mu);
    uint64_t delivery = s->records[i].delivery;
    s->holding--;
    pthread_mutex_unlock(&s->mu);
    p.ack(s->in, s->subscription, delivery, outcome);
}

void unsubscribe(sink_state *s) {
    char text[256] = "";
    molt_message error = {text, sizeof text};
    CHECK(p.unsubscribe(s->in, s->subscription, &error) == MOLT_OK);
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    pthread_mutex_unlock(&s->mu);
}

bool data_is(sink_state *s, int i, const char *data) {
    pthread_mutex_lock(&s->mu);
    bool same = i < s->count && strcmp(s->records[i].data, data) == 0;
    if (!same) fprintf(stderr, "  delivery %d is \"%s\", expected \"%s\"\n", i, s->records[i].data, data);
    pthread_mutex_unlock(&s->mu);
    return same;
}

void sink_free(sink_state *s) {
    pthread_mutex_lock(&s->mu);
    CHECK(s->violations == 0);
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
