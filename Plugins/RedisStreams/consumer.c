/*
 * consumer.c: a subscription's consumer thread: reads the consumer group, reclaims what is pending
 * too long, and hands entries to the host's sink, within its window.
 *
 * Threads. The consumer thread owns its connection and its backlog, and is the only caller of its
 * sink.deliver (always without the mutex). It shares with other threads, under in->mu: the in-flight
 * table (acks remove from it), `stopping` (set by unsubscribe and destroy) and `fd` (so that unsubscribe
 * can shutdown() the socket to end a blocking XREADGROUP at once; only this thread closes the socket,
 * after setting fd = -1 under the mutex, so shutdown never meets a closed or reused descriptor).
 *
 * The loop, each turn:
 *   reclaim  every redeliverInterval (the first at once): XAUTOCLAIM topic group consumer
 *            processingTimeout: entries pending longer than that, whichever consumer holds them (a
 *            RETRY answered by the host, a delivery an old generation left unanswered), become ours and
 *            join the backlog, unless already in it or in flight.
 *   deliver  the backlog's head while the window has room: taken → in flight until its ack; refused →
 *            wait for an ack or RS_REFUSED_BACKOFF_MS; window full → wait for an ack.
 *   read     with an empty backlog: XREADGROUP ... COUNT queueDepth BLOCK (up to RS_BLOCK_MS, less when
 *            a reclaim is due) STREAMS topic > ; NOGROUP (the group or stream was deleted): created again.
 */
#include "redis_streams.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define RS_NS_PER_MS 1000000LL

static void rs_close_connection(rs_subscription *s, redisContext **c) {
    if (*c == NULL) return;
    pthread_mutex_lock(&s->in->mu);
    s->fd = -1;
    pthread_mutex_unlock(&s->in->mu);
    redisFree(*c);
    *c = NULL;
}

static bool rs_stopping(rs_subscription *s) {
    pthread_mutex_lock(&s->in->mu);
    bool stopping = s->stopping;
    pthread_mutex_unlock(&s->in->mu);
    return stopping;
}

/* Waits up to ms for an ack or a stop; with window_full, not at all once the window has room (an ack
 * that came before the wait began is not missed). */
static void rs_wait_for(rs_subscription *s, int64_t ms, bool window_full) {
    pthread_mutex_lock(&s->in->mu);
    if (!s->stopping && !(window_full && s->in_flight_count < s->max_in_flight))
        rs_timed_wait(&s->wake, &s->in->mu, ms);
    pthread_mutex_unlock(&s->in->mu);
}

static void rs_wait(rs_subscription *s, int64_t ms) { rs_wait_for(s, ms, false); }

/* Under mu: is the entry id taken by the host and unanswered? */
static bool rs_in_flight_has(const rs_subscription *s, const char *id) {
    for (uint32_t i = 0; i < s->in_flight_count; i++)
        if (strcmp(s->in_flight[i].id, id) == 0) return true;
    return false;
}

static bool rs_backlog_has(const rs_subscription *s, const char *id) {
    for (const rs_entry *e = s->backlog_head; e != NULL; e = e->next)
        if (strcmp(e->id, id) == 0) return true;
    return false;
}

/* Appends the entries of an array reply (each ["id", [fields]]), skipping those already held. */
static void rs_backlog_add(rs_subscription *s, const redisReply *entries) {
    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = 0; i < entries->elements; i++) {
        rs_entry *e = rs_entry_from_reply(entries->element[i]);
        if (e == NULL) continue;
        pthread_mutex_lock(&s->in->mu);
        bool held = rs_in_flight_has(s, e->id);
        pthread_mutex_unlock(&s->in->mu);
        if (held || rs_backlog_has(s, e->id)) {
            rs_entry_free(e);
            continue;
        }
        if (s->backlog_tail != NULL) s->backlog_tail->next = e;
        else s->backlog_head = e;
        s->backlog_tail = e;
    }
}

/* XGROUP CREATE topic group 0 MKSTREAM, BUSYGROUP ignored (as Dapr: a new group starts at the stream's
 * beginning). Used by subscribe too. */
bool rs_group_create(redisContext *c, const rs_instance *in, const char *topic, char *why, size_t size) {
    const char *argv[6] = {"XGROUP", "CREATE", topic, in->settings.group, "0", "MKSTREAM"};
    redisReply *r = redisCommandArgv(c, 6, argv, NULL);
    if (r == NULL) {
        snprintf(why, size, RS_NAME ": Redis at %s: XGROUP CREATE on \"%.200s\" failed: %s", in->settings.address,
                 topic, c->errstr);
        return false;
    }
    bool ok = r->type != REDIS_REPLY_ERROR || strncmp(r->str, "BUSYGROUP", 9) == 0;
    if (!ok) snprintf(why, size, RS_NAME ": Redis at %s refused XGROUP CREATE on \"%.200s\": %.200s",
                      in->settings.address, topic, r->str);
    freeReplyObject(r);
    return ok;
}

/* One reclaim round: XAUTOCLAIM pages until the cursor comes back to 0-0 (at most 16 pages a round). */
static bool rs_reclaim(rs_subscription *s, redisContext *c) {
    const rs_instance *in = s->in;
    char min_idle[24], count[16], cursor[64] = "0-0";
    snprintf(min_idle, sizeof min_idle, "%lld", (long long)in->settings.processing_timeout_ms);
    snprintf(count, sizeof count, "%u", in->settings.queue_depth);
    for (int page = 0; page < 16; page++) {
        const char *argv[8] = {"XAUTOCLAIM", s->topic, in->settings.group, in->consumer, min_idle, cursor, "COUNT", count};
        redisReply *r = redisCommandArgv(c, 8, argv, NULL);
        if (r == NULL) return false;
        if (r->type == REDIS_REPLY_ERROR) {
            molt_log(in->host, MOLT_LOG_WARNING, RS_NAME ": Redis at %s refused XAUTOCLAIM on \"%s\" (Redis >= 6.2 "
                                                 "is needed to redeliver): %.200s", in->settings.address, s->topic, r->str);
            freeReplyObject(r);
            return true;
        }
        bool more = false;
        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[0]->type == REDIS_REPLY_STRING) {
            snprintf(cursor, sizeof cursor, "%.*s", (int)r->element[0]->len, r->element[0]->str);
            rs_backlog_add(s, r->element[1]);
            more = strcmp(cursor, "0-0") != 0;
        }
        freeReplyObject(r);
        if (!more) break;
    }
    return true;
}

typedef enum { RS_DELIVERED, RS_WINDOW_FULL, RS_REFUSED, RS_STOPPING } rs_deliver_outcome;

/* Hands the backlog's head to the sink. */
static rs_deliver_outcome rs_deliver_head(rs_subscription *s) {
    rs_instance *in = s->in;
    rs_entry *e = s->backlog_head;
    pthread_mutex_lock(&in->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&in->mu);
        return RS_STOPPING;
    }
    if (s->in_flight_count >= s->max_in_flight) {
        pthread_mutex_unlock(&in->mu);
        return RS_WINDOW_FULL;
    }
    if (s->in_flight_count == s->in_flight_capacity) {
        uint32_t capacity = s->in_flight_capacity ? s->in_flight_capacity * 2 : 16;
        rs_in_flight *grown = realloc(s->in_flight, capacity * sizeof *grown);
        if (grown == NULL) {
            pthread_mutex_unlock(&in->mu);
            return RS_REFUSED; /* out of memory: try again shortly */
        }
        s->in_flight = grown;
        s->in_flight_capacity = capacity;
    }
    /* Tracked before deliver, so that an ack from within deliver finds it; the id moves to the table. */
    uint64_t delivery = ++s->last_delivery;
    s->in_flight[s->in_flight_count++] = (rs_in_flight){delivery, e->id};
    pthread_mutex_unlock(&in->mu);

    molt_pubsub_message message = {
        .struct_size = sizeof message,
        .topic = s->topic,
        .data = {e->data, e->length},
        .content_type = e->content_type,
        .metadata_count = e->metadata_count,
        .metadata = e->metadata,
        .delivery = delivery,
    };
    bool taken = s->sink.deliver(s->sink.host_subscription, &message);

    pthread_mutex_lock(&in->mu);
    if (!taken) { /* no ack will come: take the record back (the id stays the entry's) */
        for (uint32_t i = 0; i < s->in_flight_count; i++) {
            if (s->in_flight[i].delivery != delivery) continue;
            s->in_flight[i] = s->in_flight[--s->in_flight_count];
            break;
        }
    }
    pthread_mutex_unlock(&in->mu);
    if (!taken) return RS_REFUSED;
    s->backlog_head = e->next;
    if (s->backlog_head == NULL) s->backlog_tail = NULL;
    e->id = NULL; /* owned by the in-flight record (or freed by its ack already) */
    rs_entry_free(e);
    return RS_DELIVERED;
}

/* Reads new entries into the backlog; false when the connection is lost. */
static bool rs_read(rs_subscription *s, redisContext *c, int64_t block_ms) {
    rs_instance *in = s->in;
    char count[16], block[24];
    snprintf(count, sizeof count, "%u", in->settings.queue_depth);
    snprintf(block, sizeof block, "%lld", (long long)block_ms);
    const char *argv[10] = {"XREADGROUP", "GROUP", in->settings.group, in->consumer, "COUNT", count, "BLOCK", block,
                            "STREAMS", s->topic};
    const char *all[11];
    memcpy(all, argv, sizeof argv);
    all[10] = ">";
    redisReply *r = redisCommandArgv(c, 11, all, NULL);
    if (r == NULL) return false;
    if (r->type == REDIS_REPLY_ERROR) {
        char why[512];
        if (strncmp(r->str, "NOGROUP", 7) == 0) {
            molt_log(in->host, MOLT_LOG_WARNING, RS_NAME ": consumer group %s of stream \"%s\" is gone (data loss, "
                                                 "or deleted); creating it again", in->settings.group, s->topic);
            if (!rs_group_create(c, in, s->topic, why, sizeof why)) molt_log(in->host, MOLT_LOG_ERROR, "%s", why);
        } else {
            molt_log(in->host, MOLT_LOG_ERROR, RS_NAME ": Redis at %s refused XREADGROUP on \"%s\": %.200s",
                     in->settings.address, s->topic, r->str);
            freeReplyObject(r);
            rs_wait(s, RS_RECONNECT_BACKOFF_MS);
            return true;
        }
    } else if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++) /* [[stream, [entries]]] */
            if (r->element[i]->type == REDIS_REPLY_ARRAY && r->element[i]->elements == 2)
                rs_backlog_add(s, r->element[i]->element[1]);
    }
    freeReplyObject(r);
    return true;
}

void *rs_consumer_main(void *argument) {
    rs_subscription *s = argument;
    rs_instance *in = s->in;
    const rs_settings *settings = &in->settings;
    bool reclaiming = settings->processing_timeout_ms > 0 && settings->redeliver_interval_ms > 0;
    int64_t next_reclaim_ns = rs_monotonic_ns();
    redisContext *c = NULL;
    bool warned = false;
    while (!rs_stopping(s)) {
        if (c == NULL) {
            char why[512];
            c = rs_connect(settings, why, sizeof why);
            if (c == NULL) {
                if (!warned) molt_log(in->host, MOLT_LOG_WARNING, "%s; subscription to \"%s\" retrying", why, s->topic);
                warned = true;
                rs_wait(s, RS_RECONNECT_BACKOFF_MS);
                continue;
            }
            if (warned) molt_log(in->host, MOLT_LOG_INFO, RS_NAME ": subscription to \"%s\" reconnected to %s",
                                 s->topic, settings->address);
            warned = false;
            pthread_mutex_lock(&in->mu);
            s->fd = c->fd;
            bool stopping = s->stopping;
            pthread_mutex_unlock(&in->mu);
            if (stopping) break;
        }
        int64_t now = rs_monotonic_ns();
        if (reclaiming && now >= next_reclaim_ns) {
            next_reclaim_ns = now + settings->redeliver_interval_ms * RS_NS_PER_MS;
            if (!rs_reclaim(s, c)) { rs_close_connection(s, &c); continue; }
        }
        int64_t until_reclaim_ms = reclaiming ? (next_reclaim_ns - rs_monotonic_ns()) / RS_NS_PER_MS + 1 : RS_BLOCK_MS;
        if (until_reclaim_ms > RS_BLOCK_MS) until_reclaim_ms = RS_BLOCK_MS;
        if (until_reclaim_ms < 1) until_reclaim_ms = 1;
        if (s->backlog_head != NULL) {
            rs_deliver_outcome outcome = rs_deliver_head(s);
            if (outcome == RS_REFUSED) rs_wait(s, RS_REFUSED_BACKOFF_MS);
            else if (outcome == RS_WINDOW_FULL) rs_wait_for(s, until_reclaim_ms, true);
            continue;
        }
        if (!rs_read(s, c, until_reclaim_ms)) rs_close_connection(s, &c);
    }
    rs_close_connection(s, &c);
    return NULL;
}
