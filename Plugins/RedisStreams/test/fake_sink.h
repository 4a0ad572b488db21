/* fake_sink.h: the test's host side for redis-streams: the loaded .so, configs, publish (waiting for its
 * `done`, which comes from the plugin's thread), and a fake host sink that records what it takes. Waits are
 * bounded polls. */
#ifndef FAKE_SINK_H
#define FAKE_SINK_H

#include "molt_plugin.h"
#include "plugin_check.h"

#include <pthread.h>


typedef struct {
    void *handle;
    const molt_plugin_identity *info;
    molt_plugin_config_keys_fn keys;
    molt_plugin_init_fn init;
    molt_plugin_readiness_fn readiness;
    molt_plugin_destroy_fn destroy;
    molt_pubsub_publish_fn publish;
    molt_pubsub_subscribe_fn subscribe;
    molt_pubsub_ack_fn ack;
    molt_pubsub_unsubscribe_fn unsubscribe;
} plugin;

extern plugin p;
extern const molt_host_services fake_host;   /* ABI 1.0: log only (publish on the command thread) */
extern const molt_host_services *test_host;  /* what start() gives init: fake_host unless changed */
void fake_host_log(void *host_context, molt_log_level level, const char *message);

void load(const char *path); /* dlopen and resolve every symbol into p; exits on failure */
int64_t now_ms(void);
void sleep_ms(int ms);

/* init with redisHost 127.0.0.1:port, component "pubsub", and extra (key, value) pairs (NULL-terminated,
 * sorted with the rest by the helper). Returns the status; the message goes to text. */
molt_status start(uint16_t port, const char *const *extra, molt_instance *out, char *text, size_t capacity);

typedef struct { molt_status status; char message[512]; bool done; } publish_outcome;
publish_outcome publish(molt_instance in, const char *topic, const char *data); /* waits up to 10 s for done */

#define MAX_RECORDS 256
typedef struct { char data[64]; char content_type[32]; char metadata[64]; uint64_t delivery; } record;

typedef struct {
    pthread_mutex_t mu;
    record records[MAX_RECORDS];
    int count;        /* deliveries taken */
    int refusals;
    int hold_limit;   /* > 0: refuse while holding that many (a window smaller than announced) */
    int holding, max_holding;
    bool ack_inline;  /* ACK from within deliver */
    bool closed;      /* unsubscribe returned: any deliver is a violation */
    int violations;
    molt_instance in;
    uint64_t subscription;
} sink_state;

sink_state *sink_new(molt_instance in, bool ack_inline);
molt_status subscribe(sink_state *s, const char *topic, uint32_t window);
int sink_count(sink_state *s);
bool wait_for(sink_state *s, int n, int timeout_ms);
void sink_ack(sink_state *s, int i, molt_pubsub_outcome outcome);
void unsubscribe(sink_state *s);
bool data_is(sink_state *s, int i, const char *data);
void sink_free(sink_state *s);

#endif /* FAKE_SINK_H */
