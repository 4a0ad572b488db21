/*
 * subscription.c: subscribe, ack, unsubscribe.
 *
 * A subscription lives in the instance's list from subscribe until destroy. unsubscribe stops its
 * consumer thread (stopping, a shutdown() of its socket to end a blocking read at once, join) and marks
 * it stopped; it stays listed so that an ack for a delivery made before unsubscribe still finds the
 * entry id and XACKs it (the contract: acks come until destroy). Entries it read but never handed over,
 * and deliveries never answered, stay pending in the group: a later subscriber (this instance's or the
 * next generation's) reclaims them after processingTimeout.
 *
 * Answers: ACK and DROP → XACK (queued to the command thread). RETRY → nothing: the entry stays pending
 * and the reclaim delivers it again once it has been idle processingTimeout, as Dapr does (with
 * ackOnError, RETRY acks too). Any other outcome is treated as RETRY, so nothing is lost.
 */
#include "redis_streams.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

MOLT_EXPORT molt_status molt_pubsub_subscribe(molt_instance instance, const molt_pubsub_subscribe_request *request,
                                              const molt_pubsub_sink *sink, uint64_t *subscription_out,
                                              molt_message *error_out) {
    rs_instance *in = instance;
    if (request->topic == NULL || request->topic[0] == '\0') {
        rs_text(error_out, RS_NAME ": subscribe needs a topic");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    if (sink == NULL || sink->deliver == NULL || request->max_in_flight == 0) {
        rs_text(error_out, RS_NAME ": subscribe to \"%.200s\" needs a sink with deliver and max_in_flight >= 1",
                request->topic);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    pthread_mutex_lock(&in->mu);
    for (rs_subscription *s = in->subscriptions; s != NULL; s = s->next) {
        if (!s->stopping && strcmp(s->topic, request->topic) == 0) {
            pthread_mutex_unlock(&in->mu);
            rs_text(error_out, RS_NAME ": topic \"%.200s\" already has a subscription (%" PRIu64 "); one per topic "
                               "per instance", request->topic, s->id);
            return MOLT_ERR_INVALID_ARGUMENT;
        }
    }
    pthread_mutex_unlock(&in->mu);

    /* The group first, on a connection of this (host) thread: subscribe may block briefly. */
    char why[512];
    redisContext *c = rs_connect(&in->settings, why, sizeof why);
    bool created = c != NULL && rs_group_create(c, in, request->topic, why, sizeof why);
    if (c != NULL) redisFree(c);
    if (!created) {
        rs_text(error_out, "%s", why);
        return MOLT_ERR_UNAVAILABLE;
    }

    rs_subscription *s = calloc(1, sizeof *s);
    if (s == NULL || (s->topic = strdup(request->topic)) == NULL) {
        free(s);
        rs_text(error_out, RS_NAME ": out of memory");
        return MOLT_ERR_INTERNAL;
    }
    s->in = in;
    s->sink = *sink;
    s->max_in_flight = request->max_in_flight;
    s->fd = -1;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &attr);
    pthread_condattr_destroy(&attr);

    pthread_mutex_lock(&in->mu);
    s->id = ++in->last_subscription;
    /* Started under the mutex, before anyone can see the id: the thread's first use of the mutex waits. */
    int rc = pthread_create(&s->thread, NULL, rs_consumer_main, s);
    if (rc == 0) {
        s->next = in->subscriptions;
        in->subscriptions = s;
        *subscription_out = s->id;
    }
    pthread_mutex_unlock(&in->mu);
    if (rc != 0) {
        pthread_cond_destroy(&s->wake);
        free(s->topic);
        free(s);
        rs_text(error_out, RS_NAME ": cannot start the consumer thread for \"%.200s\": %s", request->topic,
                strerror(rc));
        return MOLT_ERR_INTERNAL;
    }
    molt_log(in->host, MOLT_LOG_INFO, RS_NAME ": subscribed to \"%s\" in consumer group %s as %s", s->topic,
             in->settings.group, in->consumer);
    return MOLT_OK;
}

MOLT_EXPORT void molt_pubsub_ack(molt_instance instance, uint64_t subscription, uint64_t delivery,
                                 molt_pubsub_outcome outcome) {
    rs_instance *in = instance;
    pthread_mutex_lock(&in->mu);
    rs_subscription *s = in->subscriptions;
    while (s != NULL && s->id != subscription) s = s->next;
    char *id = NULL;
    for (uint32_t i = 0; s != NULL && i < s->in_flight_count; i++) {
        if (s->in_flight[i].delivery != delivery) continue;
        id = s->in_flight[i].id;
        s->in_flight[i] = s->in_flight[--s->in_flight_count];
        pthread_cond_signal(&s->wake); /* a slot is free */
        break;
    }
    bool acks = outcome == MOLT_PUBSUB_ACK || outcome == MOLT_PUBSUB_DROP || in->settings.ack_on_error;
    rs_job *job = id != NULL && acks ? calloc(1, sizeof *job) : NULL;
    if (job != NULL) { /* XACK topic group id; the job owns the id */
        job->argc = 4;
        job->argv[0] = "XACK"; job->argvlen[0] = 4;
        job->argv[1] = s->topic; job->argvlen[1] = strlen(s->topic); /* lives until destroy, after the jobs */
        job->argv[2] = in->settings.group; job->argvlen[2] = strlen(in->settings.group);
        job->argv[3] = id; job->argvlen[3] = strlen(id);
        job->owned[0] = id;
        rs_enqueue_locked(in, job);
    } else {
        free(id); /* RETRY: stays pending, reclaimed after processingTimeout (or out of memory: the same) */
    }
    pthread_mutex_unlock(&in->mu);
}

/* Stops s's consumer thread and joins it. s must be live (not stopping). */
static void rs_stop(rs_instance *in, rs_subscription *s) {
    pthread_mutex_lock(&in->mu);
    s->stopping = true;
    if (s->fd >= 0) shutdown(s->fd, SHUT_RDWR); /* ends a blocking XREADGROUP now; see consumer.c */
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&in->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_lock(&in->mu);
    s->stopped = true;
    pthread_mutex_unlock(&in->mu);
    /* The backlog (read, never handed over) stays pending in Redis; only our copies go. */
    while (s->backlog_head != NULL) {
        rs_entry *e = s->backlog_head;
        s->backlog_head = e->next;
        rs_entry_free(e);
    }
    s->backlog_tail = NULL;
}

MOLT_EXPORT molt_status molt_pubsub_unsubscribe(molt_instance instance, uint64_t subscription, molt_message *error_out) {
    rs_instance *in = instance;
    pthread_mutex_lock(&in->mu);
    rs_subscription *s = in->subscriptions;
    while (s != NULL && !(s->id == subscription && !s->stopping)) s = s->next;
    pthread_mutex_unlock(&in->mu);
    if (s == NULL) {
        rs_text(error_out, RS_NAME ": no subscription %" PRIu64, subscription);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    rs_stop(in, s);
    pthread_mutex_lock(&in->mu);
    uint32_t unanswered = s->in_flight_count;
    pthread_mutex_unlock(&in->mu);
    molt_log(in->host, MOLT_LOG_INFO, RS_NAME ": unsubscribed from \"%s\"; %" PRIu32 " deliveries unanswered (acked "
                                      "when answered, else reclaimed after processingTimeout)", s->topic, unanswered);
    return MOLT_OK;
}

void rs_subscriptions_stop_all(rs_instance *in) {
    for (;;) {
        pthread_mutex_lock(&in->mu);
        rs_subscription *s = in->subscriptions;
        while (s != NULL && s->stopping) s = s->next;
        pthread_mutex_unlock(&in->mu);
        if (s == NULL) return;
        rs_stop(in, s);
    }
}

void rs_subscriptions_free(rs_instance *in) {
    while (in->subscriptions != NULL) {
        rs_subscription *s = in->subscriptions;
        in->subscriptions = s->next;
        for (uint32_t i = 0; i < s->in_flight_count; i++) free(s->in_flight[i].id);
        free(s->in_flight);
        pthread_cond_destroy(&s->wake);
        free(s->topic);
        free(s);
    }
}

/* destroy, once the command thread ran the last XACK: what is still pending for this consumer was read and
 * never answered (an XREADGROUP reply cut short by unsubscribe, entries left in the backlog, deliveries
 * answered RETRY or not at all). XCLAIM to ourselves with IDLE processingTimeout (JUSTID: the delivery
 * count stays) makes them due at once, so the next generation's first XAUTOCLAIM takes them instead of
 * one after processingTimeout: a reload delays no message by processingTimeout. Best effort: a broken
 * connection leaves them to the normal reclaim. */
void rs_subscriptions_release_pending(rs_instance *in) {
    if (in->command == NULL || in->command->err != 0 || in->settings.processing_timeout_ms <= 0) return;
    char idle[32];
    snprintf(idle, sizeof idle, "%lld", (long long)in->settings.processing_timeout_ms);
    for (rs_subscription *s = in->subscriptions; s != NULL; s = s->next) {
        const char *query[7] = {"XPENDING", s->topic, in->settings.group, "-", "+", "1000", in->consumer};
        redisReply *pending = redisCommandArgv(in->command, 7, query, NULL);
        if (pending == NULL) return;
        size_t count = pending->type == REDIS_REPLY_ARRAY ? pending->elements : 0;
        const char **argv = count > 0 ? malloc((count + 8) * sizeof *argv) : NULL;
        if (argv != NULL) {
            int argc = 0;
            argv[argc++] = "XCLAIM";
            argv[argc++] = s->topic;
            argv[argc++] = in->settings.group;
            argv[argc++] = in->consumer;
            argv[argc++] = "0";
            for (size_t i = 0; i < count; i++) {
                const redisReply *e = pending->element[i];
                if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 && e->element[0]->type == REDIS_REPLY_STRING)
                    argv[argc++] = e->element[0]->str;
            }
            argv[argc++] = "IDLE";
            argv[argc++] = idle;
            argv[argc++] = "JUSTID";
            redisReply *claimed = argc > 8 ? redisCommandArgv(in->command, argc, argv, NULL) : NULL;
            if (claimed != NULL) {
                molt_log(in->host, MOLT_LOG_INFO, RS_NAME ": %d entries of \"%s\" read and not answered are due for "
                                                  "the next reclaim", argc - 8, s->topic);
                freeReplyObject(claimed);
            }
            free(argv);
        }
        freeReplyObject(pending);
        if (in->command->err != 0) return;
    }
}
