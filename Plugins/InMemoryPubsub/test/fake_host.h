/* fake_host.h: the test's host side for in-memory-pubsub: loading a .so as molt does, configs, publish,
 * a fake host sink that records deliveries, and state export/import helpers. Waits are bounded polls. */
#ifndef FAKE_HOST_H
#define FAKE_HOST_H

#include "molt_plugin.h"
#include "plugin_check.h"

#include <pthread.h>


/* A loaded .so and the symbols molt looks up. */
typedef struct {
    const char *path;
    void *handle;
    const molt_plugin_identity *info;
    molt_plugin_init_fn init;
    molt_plugin_destroy_fn destroy;
    molt_plugin_apply_config_fn apply_config;
    molt_plugin_export_state_fn export_state;
    molt_plugin_import_state_fn import_state;
    molt_pubsub_publish_fn publish;
    molt_pubsub_subscribe_fn subscribe;
    molt_pubsub_ack_fn ack;
    molt_pubsub_unsubscribe_fn unsubscribe;
} plugin;

/* What a publish's `done` reported. */
typedef struct {
    int calls;
    molt_status status;
    char message[512];
} publish_outcome;

#define MAX_RECORDS 512

/* One delivery the sink took, copied (the message is valid during deliver only). */
typedef struct {
    char topic[32];
    char data[64];
    char content_type[32];
    uint32_t metadata_count;
    char metadata0[64];
    uint64_t delivery;
} record;

/* The fake host's side of one subscription; every field but p, in and subscription under mu. */
typedef struct {
    pthread_mutex_t mu;
    record records[MAX_RECORDS];
    int count;          /* deliveries taken */
    int refusals;       /* deliver answered false */
    int hold_limit;     /* > 0: refuse while holding that many unanswered (a window smaller than announced) */
    int holding;        /* taken, not yet acked through sink_ack */
    int max_holding;
    bool ack_inline;    /* ack ACK from within deliver (on the plugin's delivery thread) */
    bool closed;        /* set after unsubscribe returned: any deliver then is a violation */
    int violations;
    const plugin *p;
    molt_instance in;
    uint64_t subscription; /* written by subscribe (under the plugin's mutex, before any deliver) */
} sink_state;

/* Exported state, malloc()ed. */
typedef struct {
    uint8_t *bytes;
    size_t length;
} buffer;

extern const molt_host_services fake_host; /* ABI 1.0 services: a log printed to stdout */

plugin load(const char *path); /* dlopen, check identity and declared keys, resolve every symbol; exits on failure */
int64_t now_ms(void);          /* CLOCK_MONOTONIC */
void sleep_ms(int ms);

/* A config as the host hands it over: every declared key, defaults filled in, sorted bytewise. */
molt_config config_of(molt_kv entries[3], const char *max_bytes, const char *max_queued, const char *delay);
molt_instance start(const plugin *p, const char *max_bytes, const char *max_queued, const char *delay);

/* Publishes `data` (text/plain, two metadata pairs); checks that it completed inline. */
publish_outcome publish(const plugin *p, molt_instance in, const char *topic, const char *data);

/* The fake sink: subscribe hands it to the plugin; it records what it takes. */
sink_state *sink_new(const plugin *p, molt_instance in);
molt_status subscribe(const plugin *p, molt_instance in, const char *topic, uint32_t window, sink_state *s);
int sink_count(sink_state *s);
bool wait_for(sink_state *s, int n, int timeout_ms); /* true once the sink took >= n deliveries */
void sink_ack(sink_state *s, int i, molt_pubsub_outcome outcome); /* answers the i-th delivery, from this thread */
void unsubscribe(sink_state *s); /* checks MOLT_OK; any deliver afterwards counts as a violation */
bool data_is(sink_state *s, int i, const char *data);
void sink_free(sink_state *s); /* checks there were no violations */

/* State transfer: export into a malloc()ed buffer (the caller frees bytes); messages held (from a format 1
 * export); import with a message into `text`. */
buffer export_state(const plugin *p, molt_instance in, uint32_t format);
uint64_t held(const plugin *p, molt_instance in);
molt_status import_state(const plugin *p, molt_instance in, uint32_t format, const void *bytes, size_t length,
                         char *text, size_t capacity);

#endif /* FAKE_HOST_H */
