/*
 * broken_pubsub: "broken-pubsub" 1.0.0 (ABI 1.3, kind pubsub), the faulty broker of `molt plugin verify`'s
 * pubsub refusal tests. With its declared defaults it is a correct in-memory broker (MOLT_PLUGIN_HOLDS_STATE,
 * no state transfer) and passes every check; each key below breaks exactly one rule of the contract:
 *   redeliverAcked=true           a message answered ACK is queued again (ACK must remove it)
 *   deliverAfterUnsubscribe=true  unsubscribe returns at once, and the subscription keeps delivering for
 *                                 another second (after unsubscribe returns, no deliver may follow)
 * A malformed value fails init (MOLT_ERR_INVALID_ARGUMENT), naming it.
 *
 * Model: one list of messages per instance (every topic, publish order), each queued, waiting out a RETRY
 * delay (50 ms), or in flight under (subscription, delivery). A delivery thread scans the list every 10 ms or
 * when woken, and calls sink.deliver with a copy of the message and WITHOUT the mutex (the host may ack from
 * within deliver). Unanswered deliveries stay in flight after unsubscribe; a late answer applies. No globals.
 */
#define _POSIX_C_SOURCE 200809L

#include "molt_plugin.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BP_QUEUED, BP_WAITING, BP_IN_FLIGHT };

typedef struct bp_msg {
    struct bp_msg *next;
    char *topic, *content_type;
    uint8_t *data;
    size_t length;
    int state;
    int64_t not_before_ns;          /* BP_WAITING, and after a refused deliver */
    uint64_t subscription, delivery; /* BP_IN_FLIGHT */
} bp_msg;

typedef struct bp_sub {
    struct bp_sub *next;
    uint64_t id;
    char *topic;
    molt_pubsub_sink sink; /* copied; the host's until unsubscribe returns */
    uint32_t max_in_flight, in_flight;
    bool ended;            /* unsubscribed (deliverAfterUnsubscribe: still delivering until linger_until_ns) */
    int64_t linger_until_ns;
} bp_sub;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t wake, returned;
    bp_msg *head;
    bp_sub *subs;
    bp_sub *delivering;    /* whose sink.deliver runs now (without the mutex), or NULL */
    uint64_t last_sub, last_delivery;
    bool stop, redeliver_acked, deliver_after_unsubscribe;
    pthread_t thread;
} bp_instance;

static const molt_plugin_identity bp_info = {
    .struct_size = sizeof(molt_plugin_identity),
    .name = "broken-pubsub",
    .version = "1.0.0",
    .kind = MOLT_KIND_PUBSUB,
    .description = "test fixture: an in-memory broker that breaks one rule per config key (molt plugin verify)",
    .state_format_min = 0,
    .state_format_max = 0,
    .flags = MOLT_PLUGIN_HOLDS_STATE,
};

static const molt_config_key bp_keys[] = {
    {"deliverAfterUnsubscribe", "true: deliveries go on for a second after unsubscribe returns", "false", false, false, NULL},
    {"redeliverAcked", "true: a message answered ACK is delivered again", "false", false, false, NULL},
};

MOLT_DEFINE_ABI_VERSION()

MOLT_EXPORT const molt_plugin_identity *molt_plugin_info(void) { return &bp_info; }

MOLT_EXPORT const molt_config_key *molt_plugin_config_keys(uint32_t *count_out) {
    *count_out = (uint32_t)(sizeof bp_keys / sizeof bp_keys[0]);
    return bp_keys;
}

static int64_t bp_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool bp_flag(const molt_config *config, const char *key, bool *out, molt_message *error_out) {
    const char *value = molt_config_get(config, key);
    if (value != NULL && strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
        char line[160];
        snprintf(line, sizeof line, "broken-pubsub: %s '%s' is not true or false", key, value);
        molt_message_set(error_out, line);
        return false;
    }
    *out = value != NULL && strcmp(value, "true") == 0;
    return true;
}

static void bp_msg_free(bp_msg *m) {
    free(m->topic);
    free(m->content_type);
    free(m->data);
    free(m);
}

static bp_sub *bp_sub_find(bp_instance *self, uint64_t id) {
    for (bp_sub *s = self->subs; s != NULL; s = s->next)
        if (s->id == id) return s;
    return NULL;
}

/* The subscription delivering `topic` now: the active one, else one lingering after unsubscribe. */
static bp_sub *bp_sub_for(bp_instance *self, const char *topic, int64_t now) {
    bp_sub *lingering = NULL;
    for (bp_sub *s = self->subs; s != NULL; s = s->next) {
        if (strcmp(s->topic, topic) != 0) continue;
        if (!s->ended) return s;
        if (now < s->linger_until_ns) lingering = s;
    }
    return lingering;
}

/* Unlinks and frees ended subscriptions no longer delivering. Needs the mutex. */
static void bp_reap(bp_instance *self, int64_t now) {
    for (bp_sub **link = &self->subs; *link != NULL;) {
        bp_sub *s = *link;
        if (s->ended && now >= s->linger_until_ns && self->delivering != s) {
            *link = s->next;
            free(s->topic);
            free(s);
        } else {
            link = &s->next;
        }
    }
}

/* The delivery thread: hands deliverable messages to their topic's subscription, one at a time. */
static void *bp_deliver_loop(void *arg) {
    bp_instance *self = arg;
    pthread_mutex_lock(&self->mu);
    while (!self->stop) {
        int64_t now = bp_now_ns();
        bp_reap(self, now);
        bp_msg *m = NULL;
        bp_sub *s = NULL;
        for (bp_msg *c = self->head; c != NULL; c = c->next) {
            if (c->state == BP_IN_FLIGHT || now < c->not_before_ns) continue;
            s = bp_sub_for(self, c->topic, now);
            if (s != NULL && s->in_flight < s->max_in_flight) {
                m = c;
                break;
            }
        }
        if (m == NULL) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 10 * 1000000;
            if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
            pthread_cond_timedwait(&self->wake, &self->mu, &until);
            continue;
        }
        uint64_t delivery = ++self->last_delivery;
        m->state = BP_IN_FLIGHT;
        m->subscription = s->id;
        m->delivery = delivery;
        s->in_flight++;
        molt_pubsub_message copy = {.struct_size = sizeof copy, .topic = strdup(m->topic), .content_type = NULL,
                                    .delivery = delivery};
        uint8_t *data = malloc(m->length ? m->length : 1);
        if (copy.topic == NULL || data == NULL) abort();
        memcpy(data, m->data, m->length);
        copy.data = (molt_bytes){.data = data, .length = m->length};
        copy.content_type = m->content_type ? strdup(m->content_type) : NULL;
        molt_pubsub_sink sink = s->sink;
        uint64_t sub_id = s->id;
        self->delivering = s;
        pthread_mutex_unlock(&self->mu);
        bool taken = sink.deliver(sink.host_subscription, &copy);
        pthread_mutex_lock(&self->mu);
        self->delivering = NULL;
        pthread_cond_broadcast(&self->returned);
        free((char *)copy.topic);
        free((char *)copy.content_type);
        free(data);
        if (!taken) { /* keep it; try again after an ack or 20 ms */
            for (bp_msg *c = self->head; c != NULL; c = c->next) {
                if (c->state == BP_IN_FLIGHT && c->subscription == sub_id && c->delivery == delivery) {
                    c->state = BP_QUEUED;
                    c->not_before_ns = bp_now_ns() + 20 * 1000000;
                    bp_sub *owner = bp_sub_find(self, sub_id);
                    if (owner != NULL) owner->in_flight--;
                    break;
                }
            }
        }
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

MOLT_EXPORT molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host,
                                         molt_instance *instance_out, molt_message *error_out) {
    (void)host;
    bool redeliver_acked, deliver_after;
    if (!bp_flag(config, "redeliverAcked", &redeliver_acked, error_out)) return MOLT_ERR_INVALID_ARGUMENT;
    if (!bp_flag(config, "deliverAfterUnsubscribe", &deliver_after, error_out)) return MOLT_ERR_INVALID_ARGUMENT;
    bp_instance *self = calloc(1, sizeof *self);
    if (self == NULL) {
        molt_message_set(error_out, "broken-pubsub: out of memory");
        return MOLT_ERR_INTERNAL;
    }
    self->redeliver_acked = redeliver_acked;
    self->deliver_after_unsubscribe = deliver_after;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_cond_init(&self->returned, NULL);
    if (pthread_create(&self->thread, NULL, bp_deliver_loop, self) != 0) {
        molt_message_set(error_out, "broken-pubsub: cannot start the delivery thread");
        free(self);
        return MOLT_ERR_INTERNAL;
    }
    *instance_out = self;
    return MOLT_OK;
}

MOLT_EXPORT molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
    (void)instance;
    (void)message_out;
    return MOLT_READY;
}

MOLT_EXPORT void molt_plugin_destroy(molt_instance instance) {
    bp_instance *self = instance;
    pthread_mutex_lock(&self->mu);
    self->stop = true;
    pthread_cond_broadcast(&self->wake);
    pthread_mutex_unlock(&self->mu);
    pthread_join(self->thread, NULL);
    while (self->head != NULL) {
        bp_msg *m = self->head;
        self->head = m->next;
        bp_msg_free(m);
    }
    while (self->subs != NULL) {
        bp_sub *s = self->subs;
        self->subs = s->next;
        free(s->topic);
        free(s);
    }
    pthread_cond_destroy(&self->returned);
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->mu);
    free(self);
}

MOLT_EXPORT void molt_pubsub_publish(molt_instance instance, const molt_pubsub_publish_request *request,
                                     molt_pubsub_publish_done done, void *call_context) {
    bp_instance *self = instance;
    molt_pubsub_publish_result result = {.struct_size = sizeof result, .status = MOLT_OK, .message = NULL};
    bp_msg *m = calloc(1, sizeof *m);
    if (m != NULL) {
        m->topic = strdup(request->topic);
        m->content_type = request->content_type ? strdup(request->content_type) : NULL;
        m->length = request->data.length;
        m->data = malloc(m->length ? m->length : 1);
    }
    if (m == NULL || m->topic == NULL || m->data == NULL) {
        if (m != NULL) bp_msg_free(m);
        result.status = MOLT_ERR_INTERNAL;
        result.message = "broken-pubsub: out of memory";
        done(call_context, &result);
        return;
    }
    if (m->length) memcpy(m->data, request->data.data, m->length);
    pthread_mutex_lock(&self->mu);
    bp_msg **tail = &self->head;
    while (*tail != NULL) tail = &(*tail)->next;
    *tail = m;
    pthread_cond_broadcast(&self->wake);
    pthread_mutex_unlock(&self->mu);
    done(call_context, &result);
}

MOLT_EXPORT molt_status molt_pubsub_subscribe(molt_instance instance, const molt_pubsub_subscribe_request *request,
                                              const molt_pubsub_sink *sink, uint64_t *subscription_out,
                                              molt_message *error_out) {
    bp_instance *self = instance;
    pthread_mutex_lock(&self->mu);
    for (bp_sub *s = self->subs; s != NULL; s = s->next) {
        if (!s->ended && strcmp(s->topic, request->topic) == 0) {
            pthread_mutex_unlock(&self->mu);
            molt_message_set(error_out, "broken-pubsub: the topic already has a subscription");
            return MOLT_ERR_INVALID_ARGUMENT;
        }
    }
    bp_sub *s = calloc(1, sizeof *s);
    char *topic = strdup(request->topic);
    if (s == NULL || topic == NULL) {
        pthread_mutex_unlock(&self->mu);
        free(s);
        free(topic);
        molt_message_set(error_out, "broken-pubsub: out of memory");
        return MOLT_ERR_INTERNAL;
    }
    s->id = ++self->last_sub;
    s->topic = topic;
    s->sink = *sink;
    s->max_in_flight = request->max_in_flight ? request->max_in_flight : 1;
    s->next = self->subs;
    self->subs = s;
    *subscription_out = s->id;
    pthread_cond_broadcast(&self->wake);
    pthread_mutex_unlock(&self->mu);
    return MOLT_OK;
}

MOLT_EXPORT void molt_pubsub_ack(molt_instance instance, uint64_t subscription, uint64_t delivery,
                                 molt_pubsub_outcome outcome) {
    bp_instance *self = instance;
    pthread_mutex_lock(&self->mu);
    for (bp_msg **link = &self->head; *link != NULL; link = &(*link)->next) {
        bp_msg *m = *link;
        if (m->state != BP_IN_FLIGHT || m->subscription != subscription || m->delivery != delivery) continue;
        bp_sub *s = bp_sub_find(self, subscription);
        if (s != NULL && s->in_flight > 0) s->in_flight--;
        if (outcome == MOLT_PUBSUB_RETRY || (outcome == MOLT_PUBSUB_ACK && self->redeliver_acked)) {
            m->state = BP_WAITING;
            m->not_before_ns = bp_now_ns() + 50 * 1000000;
        } else {
            *link = m->next;
            bp_msg_free(m);
        }
        pthread_cond_broadcast(&self->wake);
        break;
    }
    pthread_mutex_unlock(&self->mu); /* an unknown or already answered delivery: ignored */
}

MOLT_EXPORT molt_status molt_pubsub_unsubscribe(molt_instance instance, uint64_t subscription, molt_message *error_out) {
    bp_instance *self = instance;
    pthread_mutex_lock(&self->mu);
    bp_sub *s = bp_sub_find(self, subscription);
    if (s == NULL || s->ended) {
        pthread_mutex_unlock(&self->mu);
        molt_message_set(error_out, "broken-pubsub: no such subscription");
        return MOLT_ERR_NOT_FOUND;
    }
    s->ended = true;
    if (self->deliver_after_unsubscribe) {
        s->linger_until_ns = bp_now_ns() + 1000 * 1000000LL; /* the breach: the delivery thread keeps using the sink */
    } else {
        while (self->delivering == s) pthread_cond_wait(&self->returned, &self->mu);
    }
    pthread_mutex_unlock(&self->mu);
    return MOLT_OK;
}
