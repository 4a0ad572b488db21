/*
 * delivery.c: subscriptions and the delivery thread (subscribe, ack, unsubscribe).
 *
 * Threads. One delivery thread per instance is the only caller of sink.deliver. It picks a message
 * under the mutex, marks it MP_IN_FLIGHT, and calls deliver WITHOUT the mutex (the host may ack from
 * within deliver, on this or any thread). Publish, ack, subscribe and apply only change the lists and
 * signal `wake`; none of them ever calls the sink (the header forbids deliver from within ack).
 *
 * A delivery, step by step:
 *   pick   the first message of the topic's list that is QUEUED, or WAITING with its delay over, while
 *          the subscription holds fewer than max_in_flight unanswered, is not stopping, and deliver has
 *          not just refused. Topics are served round robin, one message per turn.
 *   deliver true: stays IN_FLIGHT until its ack. false: back to QUEUED in place; the subscription
 *          pauses until the next ack or MP_REFUSED_BACKOFF_MS.
 *   ack    ACK, DROP: unlinked and freed (freed by the delivery thread if deliver has not returned yet).
 *          RETRY (and any unknown outcome, so that nothing is lost): WAITING for redeliverDelayMs.
 *
 * Unsubscribe sets `stopping`, waits until no deliver of the subscription is running, turns its
 * unanswered messages back to QUEUED in place (so they are delivered again, in order, to a later
 * subscription), and frees it: from then on no deliver follows and the sink is not used.
 *
 * Late acks (an answer for a delivery made before unsubscribe, as the host sends while it drains a
 * reload): the message still carries (subscription, delivery). If it has not been delivered again, the
 * answer applies: ACK/DROP remove it, RETRY makes it wait the redelivery delay. If it has been delivered
 * again meanwhile (a new subscription), the late answer is ignored; the new delivery's answer decides.
 */
#include "in_memory_pubsub.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MP_NS_PER_MS 1000000LL

/* ---------------------------------------------------------------------------------------------
 * Under in->mu: helpers
 * ------------------------------------------------------------------------------------------- */

/* The first deliverable message of t, or NULL; lowers *next_wake_ns to the earliest WAITING delay seen. */
static mp_message *mp_pick(mp_topic *t, int64_t now, int64_t *next_wake_ns) {
    for (mp_message *m = t->head; m != NULL; m = m->next) {
        if (m->state == MP_QUEUED) return m;
        if (m->state == MP_WAITING) {
            if (m->not_before_ns <= now) return m;
            if (m->not_before_ns < *next_wake_ns) *next_wake_ns = m->not_before_ns;
        }
    }
    return NULL;
}

static bool mp_track(mp_subscription *s, mp_message *m) {
    if (s->in_flight_count == s->in_flight_capacity) {
        uint32_t capacity = s->in_flight_capacity ? s->in_flight_capacity * 2 : 16;
        if (capacity > s->max_in_flight) capacity = s->max_in_flight;
        mp_message **grown = realloc(s->in_flight, capacity * sizeof *grown);
        if (grown == NULL) return false;
        s->in_flight = grown;
        s->in_flight_capacity = capacity;
    }
    s->in_flight[s->in_flight_count++] = m;
    return true;
}

/* Removes m from s's unanswered deliveries; false when it is not there. */
static bool mp_untrack(mp_subscription *s, mp_message *m) {
    for (uint32_t i = 0; i < s->in_flight_count; i++) {
        if (s->in_flight[i] == m) {
            s->in_flight[i] = s->in_flight[--s->in_flight_count];
            return true;
        }
    }
    return false;
}

/* Applies an answer to m, which is unlinked from nothing yet and tracked by no subscription any more. */
static void mp_answer(mp_instance *in, mp_topic *t, mp_message *m, molt_pubsub_outcome outcome) {
    if (outcome == MOLT_PUBSUB_ACK || outcome == MOLT_PUBSUB_DROP) {
        mp_topic_unlink(t, m);
        if (m->delivering) m->removed = true; /* the delivery thread frees it when deliver returns */
        else mp_message_free(m);
        return;
    }
    m->state = MP_WAITING;
    m->not_before_ns = mp_monotonic_ns() + (int64_t)in->limits.redeliver_delay_ms * MP_NS_PER_MS;
    m->subscription = m->delivery = 0; /* answered: a second answer is ignored */
}

/* ---------------------------------------------------------------------------------------------
 * The delivery thread
 * ------------------------------------------------------------------------------------------- */

/* Under in->mu: delivers one message if any topic has one to deliver (the mutex is released during
 * sink.deliver). Returns true when it delivered or tried, false when there was nothing to do; then
 * *next_wake_ns says when something becomes deliverable by time alone (INT64_MAX: never). */
static bool mp_deliver_one(mp_instance *in, int64_t *next_wake_ns) {
    int64_t now = mp_monotonic_ns();
    *next_wake_ns = INT64_MAX;
    mp_topic *start = in->cursor != NULL ? in->cursor : in->topics;
    mp_topic *t = start;
    mp_message *m = NULL;
    mp_subscription *s = NULL;
    for (bool first = true; t != NULL && (first || t != start); first = false) {
        s = t->subscription;
        if (s != NULL && !s->stopping && s->in_flight_count < s->max_in_flight) {
            if (s->refused_until_ns > now) {
                if (s->refused_until_ns < *next_wake_ns) *next_wake_ns = s->refused_until_ns;
            } else if ((m = mp_pick(t, now, next_wake_ns)) != NULL && mp_track(s, m)) {
                break;
            }
        }
        m = NULL;
        t = t->next != NULL ? t->next : in->topics;
    }
    if (m == NULL) return false;
    in->cursor = t->next; /* round robin: the next turn starts after this topic */

    uint64_t delivery = ++s->last_delivery;
    m->state = MP_IN_FLIGHT;
    m->subscription = s->id;
    m->delivery = delivery;
    m->delivering = true;
    in->delivering = s;
    molt_pubsub_message message = {
        .struct_size = sizeof message,
        .topic = t->name,
        .data = {m->data, m->length},
        .content_type = m->content_type,
        .metadata_count = m->metadata_count,
        .metadata = m->metadata,
        .delivery = delivery,
    };
    /* Without the mutex: m stays allocated (an ACK meanwhile only marks it removed), s stays allocated
     * (unsubscribe waits for in->delivering to change), t lives until destroy (which joins us first). */
    pthread_mutex_unlock(&in->mu);
    bool taken = s->sink.deliver(s->sink.host_subscription, &message);
    pthread_mutex_lock(&in->mu);

    in->delivering = NULL;
    m->delivering = false;
    if (m->removed) {
        mp_message_free(m);
    } else if (!taken && m->state == MP_IN_FLIGHT && m->delivery == delivery && mp_untrack(s, m)) {
        m->state = MP_QUEUED; /* not taken: no ack will come; keep it, in place */
        m->subscription = m->delivery = 0;
        s->refused_until_ns = mp_monotonic_ns() + MP_REFUSED_BACKOFF_MS * MP_NS_PER_MS;
    }
    pthread_cond_broadcast(&in->deliver_returned);
    return true;
}

static void *mp_delivery_main(void *argument) {
    mp_instance *in = argument;
    pthread_mutex_lock(&in->mu);
    while (!in->stop) {
        int64_t next_wake_ns;
        if (mp_deliver_one(in, &next_wake_ns)) continue;
        if (next_wake_ns == INT64_MAX) {
            pthread_cond_wait(&in->wake, &in->mu);
        } else {
            struct timespec until = {(time_t)(next_wake_ns / 1000000000), (long)(next_wake_ns % 1000000000)};
            pthread_cond_timedwait(&in->wake, &in->mu, &until);
        }
    }
    pthread_mutex_unlock(&in->mu);
    return NULL;
}

bool mp_delivery_start(mp_instance *in, molt_message *error_out) {
    int rc = pthread_create(&in->thread, NULL, mp_delivery_main, in);
    if (rc != 0) {
        mp_message_text(error_out, "in-memory-pubsub: cannot start the delivery thread: %s", strerror(rc));
        return false;
    }
    return true;
}

void mp_delivery_stop(mp_instance *in) {
    pthread_mutex_lock(&in->mu);
    in->stop = true;
    pthread_cond_broadcast(&in->wake);
    pthread_mutex_unlock(&in->mu);
    pthread_join(in->thread, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * subscribe, ack, unsubscribe
 * ------------------------------------------------------------------------------------------- */

/* Under in->mu: the topic whose live subscription has this id, or NULL. */
static mp_topic *mp_topic_of_subscription(mp_instance *in, uint64_t id) {
    for (mp_topic *t = in->topics; t != NULL; t = t->next)
        if (t->subscription != NULL && t->subscription->id == id) return t;
    return NULL;
}

MOLT_EXPORT molt_status molt_pubsub_subscribe(molt_instance instance, const molt_pubsub_subscribe_request *request,
                                              const molt_pubsub_sink *sink, uint64_t *subscription_out,
                                              molt_message *error_out) {
    mp_instance *in = instance;
    if (request->topic == NULL || request->topic[0] == '\0') {
        mp_message_text(error_out, "in-memory-pubsub: subscribe needs a topic");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    if (sink == NULL || sink->deliver == NULL || request->max_in_flight == 0) {
        mp_message_text(error_out, "in-memory-pubsub: subscribe to \"%.200s\" needs a sink with deliver and "
                                   "max_in_flight >= 1", request->topic);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    mp_subscription *s = calloc(1, sizeof *s);
    if (s == NULL) {
        mp_message_text(error_out, "in-memory-pubsub: out of memory");
        return MOLT_ERR_INTERNAL;
    }
    s->sink = *sink;
    s->max_in_flight = request->max_in_flight;
    pthread_mutex_lock(&in->mu);
    mp_topic *t = mp_topic_get(in, request->topic);
    molt_status status = MOLT_OK;
    if (t == NULL) {
        mp_message_text(error_out, "in-memory-pubsub: out of memory creating topic \"%.200s\"", request->topic);
        status = MOLT_ERR_INTERNAL;
    } else if (t->subscription != NULL) {
        mp_message_text(error_out, "in-memory-pubsub: topic \"%.200s\" already has a subscription (%" PRIu64
                                   "); one per topic per instance", request->topic, t->subscription->id);
        status = MOLT_ERR_INVALID_ARGUMENT;
    } else {
        s->id = ++in->last_subscription;
        t->subscription = s;
        *subscription_out = s->id;
        pthread_cond_signal(&in->wake);
    }
    pthread_mutex_unlock(&in->mu);
    if (status != MOLT_OK) free(s);
    return status;
}

MOLT_EXPORT void molt_pubsub_ack(molt_instance instance, uint64_t subscription, uint64_t delivery,
                                 molt_pubsub_outcome outcome) {
    mp_instance *in = instance;
    if (subscription == 0 || delivery == 0) return; /* never ours: (0, 0) tags a message never delivered */
    pthread_mutex_lock(&in->mu);
    mp_topic *t = mp_topic_of_subscription(in, subscription);
    if (t != NULL) {
        mp_subscription *s = t->subscription;
        for (uint32_t i = 0; i < s->in_flight_count; i++) {
            mp_message *m = s->in_flight[i];
            if (m->delivery != delivery) continue;
            s->in_flight[i] = s->in_flight[--s->in_flight_count];
            mp_answer(in, t, m, outcome);
            s->refused_until_ns = 0; /* a slot is free: deliver may take again */
            pthread_cond_signal(&in->wake);
            break;
        }
    } else {
        /* A late answer for a delivery made before unsubscribe (see the top of this file). */
        for (t = in->topics; t != NULL; t = t->next) {
            mp_message *m = t->head;
            while (m != NULL && !(m->subscription == subscription && m->delivery == delivery && m->state != MP_IN_FLIGHT))
                m = m->next;
            if (m != NULL) {
                mp_answer(in, t, m, outcome);
                pthread_cond_signal(&in->wake);
                break;
            }
        }
    }
    pthread_mutex_unlock(&in->mu);
}

MOLT_EXPORT molt_status molt_pubsub_unsubscribe(molt_instance instance, uint64_t subscription, molt_message *error_out) {
    mp_instance *in = instance;
    pthread_mutex_lock(&in->mu);
    mp_topic *t = mp_topic_of_subscription(in, subscription);
    if (t == NULL) {
        pthread_mutex_unlock(&in->mu);
        mp_message_text(error_out, "in-memory-pubsub: no subscription %" PRIu64, subscription);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    mp_subscription *s = t->subscription;
    s->stopping = true;
    while (in->delivering == s) pthread_cond_wait(&in->deliver_returned, &in->mu);
    /* Unanswered: back to QUEUED in place, keeping (subscription, delivery) for a late answer. */
    for (uint32_t i = 0; i < s->in_flight_count; i++) s->in_flight[i]->state = MP_QUEUED;
    uint32_t requeued = s->in_flight_count;
    t->subscription = NULL;
    pthread_mutex_unlock(&in->mu);
    if (requeued > 0)
        molt_log(in->host, MOLT_LOG_DEBUG, "in-memory-pubsub: unsubscribed from \"%s\"; %" PRIu32 " unanswered "
                                           "messages queued again", t->name, requeued);
    free(s->in_flight);
    free(s);
    return MOLT_OK;
}
