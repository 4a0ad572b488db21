/*
 * loop_publish.c: publish (XADD) on the host's event loops (ABI 1.1 I/O), so that a publish costs no
 * thread switch: the host calls molt_pubsub_publish on the loop that read the app's request, the XADD
 * goes out on a connection of that loop, and its reply completes the call there.
 *
 * Model. One shard per host loop, touched only on that loop (stream callbacks, timers, and publishes the
 * host makes there): one connection (a molt_stream speaking RESP: redisFormatCommandArgv out, redisReader
 * in), the calls waiting for it to be up, and the calls sent and awaiting their replies (a FIFO: Redis
 * answers a connection's commands in order). A publish made off the loops (current_loop == MOLT_NO_LOOP)
 * hops onto one, picked round-robin, with a zero-delay timer.
 *
 * Connection. Opened when a call needs it (AUTH, SELECT and PING pipelined; the calls wait until every
 * handshake reply is in). A failed attempt fails the waiting calls (UNAVAILABLE, naming the host) and
 * the calls of the next RS_RECONNECT_BACKOFF_MS at once, as the command thread does. A connection lost
 * while calls await replies (Redis restarted) is reopened and each of those calls is sent once more (an
 * XADD may then be added twice: at least once); a call already retried fails. The oldest reply overdue
 * by RS_COMMAND_TIMEOUT_MS fails every awaiting call with TIMEOUT (the entry may have been added; not
 * sent again) and drops the connection.
 *
 * Exactly once. Every call is in exactly one place (a hop timer, waiting, awaiting) and leaves it only
 * to be completed or moved; a call is unlinked before its `done` runs. destroy (rs_loop_stop) runs each
 * shard's stop on its loop, which fails what is still there ("shutting down"), and waits until the host
 * delivered every callback it owes (streams' `closed`, timers fired or cancelled): nothing of the
 * instance runs afterwards. The engine drains an instance's calls before destroying it, so a reload
 * fails no publish.
 */
#include "redis_streams.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RS_NS_PER_MS 1000000LL

typedef struct rs_call {
    struct rs_call *next;
    rs_shard *shard;                /* the shard it hops to (off-loop calls) */
    char *command;                  /* RESP, owned (redisFreeCommand) */
    size_t length;
    const char *topic;              /* the request's: valid until `done` */
    molt_pubsub_publish_done done;
    void *call_context;
    int64_t sent_ns;                /* awaiting: when it was written */
    bool resent;                    /* sent once more after a lost connection: not again */
} rs_call;

typedef struct { rs_call *head, *tail; } rs_queue;

enum rs_link { RS_DOWN, RS_CONNECTING, RS_HANDSHAKING, RS_READY, RS_CLOSING };

struct rs_shard {
    rs_instance *in;
    uint32_t loop;
    enum rs_link state;
    molt_stream *stream;            /* while not DOWN */
    redisReader *reader;            /* while not DOWN */
    int handshake_left;             /* HANDSHAKING: replies still expected */
    char handshake_error[320];      /* HANDSHAKING: the first refusal */
    rs_queue waiting;               /* for the connection to be ready, oldest first */
    rs_queue awaiting;              /* sent, oldest first: the next reply is the head's */
    uint64_t read_timer;            /* 0: none armed */
    int64_t retry_after_ns;         /* a connect failed: fail fast until then */
};

/* ---------------------------------------------------------------------------------------------
 * The host's callbacks owed to the instance (streams' `closed`, timers), counted under mu; destroy
 * waits for zero.
 * ------------------------------------------------------------------------------------------- */
static void rs_io_add(rs_instance *in) {
    pthread_mutex_lock(&in->mu);
    in->io_owed++;
    pthread_mutex_unlock(&in->mu);
}

static void rs_io_remove(rs_instance *in) {
    pthread_mutex_lock(&in->mu);
    if (--in->io_owed == 0) pthread_cond_broadcast(&in->io_idle);
    pthread_mutex_unlock(&in->mu);
}

static uint64_t rs_timer(rs_instance *in, uint32_t loop, int64_t delay_ms, molt_timer_fn fire, void *context) {
    rs_io_add(in);
    uint64_t id = in->host->timer_start(in->host->host_context, loop, delay_ms > 0 ? (uint32_t)delay_ms : 0, fire,
                                        context);
    if (id == 0) rs_io_remove(in);
    return id;
}

static bool rs_stopping(const rs_instance *in) { return atomic_load_explicit(&in->io_stopping, memory_order_acquire); }

/* ---------------------------------------------------------------------------------------------
 * Calls
 * ------------------------------------------------------------------------------------------- */
static void rs_push(rs_queue *q, rs_call *call) {
    call->next = NULL;
    if (q->tail != NULL) q->tail->next = call;
    else q->head = call;
    q->tail = call;
}

static rs_call *rs_pop(rs_queue *q) {
    rs_call *call = q->head;
    if (call != NULL) {
        q->head = call->next;
        if (q->head == NULL) q->tail = NULL;
        call->next = NULL;
    }
    return call;
}

static rs_queue rs_take_all(rs_queue *q) {
    rs_queue all = *q;
    q->head = q->tail = NULL;
    return all;
}

/* Completes the call (already unlinked) and frees it. */
static void rs_complete(rs_call *call, molt_status status, const char *text) {
    molt_pubsub_publish_result result = {sizeof result, status, status == MOLT_OK ? NULL : text};
    molt_pubsub_publish_done done = call->done;
    void *context = call->call_context;
    redisFreeCommand(call->command);
    free(call);
    done(context, &result);
}

static void rs_fail_all(rs_queue *q, molt_status status, const char *text) {
    rs_queue all = rs_take_all(q);
    rs_call *call;
    while ((call = rs_pop(&all)) != NULL) rs_complete(call, status, text);
}

/* ---------------------------------------------------------------------------------------------
 * The connection
 * ------------------------------------------------------------------------------------------- */
static void rs_connected(void *context);
static void rs_received(void *context, const uint8_t *bytes, size_t length);
static void rs_closed(void *context, const char *message);
static void rs_read_timer_fired(void *context);

static void rs_arm_read_timer(rs_shard *sh) {
    if (sh->read_timer != 0) return;
    int64_t since = sh->awaiting.head != NULL ? sh->awaiting.head->sent_ns : 0;
    if (sh->state == RS_HANDSHAKING) since = sh->awaiting.head != NULL ? since : rs_monotonic_ns();
    if (since == 0) return;
    int64_t left_ms = (since + RS_COMMAND_TIMEOUT_MS * RS_NS_PER_MS - rs_monotonic_ns()) / RS_NS_PER_MS + 1;
    sh->read_timer = rs_timer(sh->in, sh->loop, left_ms, rs_read_timer_fired, sh);
}

static void rs_write(rs_shard *sh, rs_call *call) {
    call->sent_ns = rs_monotonic_ns();
    rs_push(&sh->awaiting, call);
    sh->in->host->stream_write(sh->stream, (const uint8_t *)call->command, call->length);
    rs_arm_read_timer(sh);
}

/* Starts connecting (state DOWN). The waiting calls go out once the handshake is done. */
static void rs_connect_stream(rs_shard *sh) {
    rs_instance *in = sh->in;
    sh->reader = redisReaderCreate();
    if (sh->reader == NULL) {
        rs_fail_all(&sh->waiting, MOLT_ERR_INTERNAL, RS_NAME ": out of memory");
        return;
    }
    static const molt_stream_events events = {NULL, rs_connected, rs_received, rs_closed};
    molt_stream_events mine = events;
    mine.context = sh;
    sh->state = RS_CONNECTING;
    int64_t timeout = in->settings.dial_timeout_ms > 0 ? in->settings.dial_timeout_ms : 1;
    rs_io_add(in);
    sh->stream = in->host->stream_open(in->host->host_context, sh->loop, in->settings.host, (uint16_t)in->settings.port,
                                       timeout > UINT32_MAX ? UINT32_MAX : (uint32_t)timeout, &mine);
    if (sh->stream == NULL) {
        rs_io_remove(in);
        sh->state = RS_DOWN;
        redisReaderFree(sh->reader);
        sh->reader = NULL;
        char text[400];
        snprintf(text, sizeof text, RS_NAME ": cannot connect to Redis at %s: the host refused to open a stream",
                 in->settings.address);
        rs_fail_all(&sh->waiting, MOLT_ERR_UNAVAILABLE, text);
    }
}

/* Appends one command to buffer (growing it); false when out of memory. */
static bool rs_append(char **buffer, size_t *length, int argc, const char **argv) {
    char *command = NULL;
    int n = redisFormatCommandArgv(&command, argc, argv, NULL);
    if (n < 0) return false;
    char *grown = realloc(*buffer, *length + (size_t)n);
    if (grown == NULL) {
        redisFreeCommand(command);
        return false;
    }
    memcpy(grown + *length, command, (size_t)n);
    redisFreeCommand(command);
    *buffer = grown;
    *length += (size_t)n;
    return true;
}

/* AUTH, SELECT, PING, pipelined (their replies come before any call's). */
static void rs_connected(void *context) {
    rs_shard *sh = context;
    rs_instance *in = sh->in;
    if (sh->state != RS_CONNECTING) return;
    const rs_settings *s = &in->settings;
    char *buffer = NULL;
    size_t length = 0;
    int commands = 0;
    bool ok = true;
    if (s->password != NULL) {
        const char *argv[3] = {"AUTH", s->username != NULL ? s->username : s->password, s->password};
        ok = ok && rs_append(&buffer, &length, s->username != NULL ? 3 : 2, argv);
        commands++;
    }
    if (s->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", s->db);
        const char *argv[2] = {"SELECT", db};
        ok = ok && rs_append(&buffer, &length, 2, argv);
        commands++;
    }
    const char *ping[1] = {"PING"};
    ok = ok && rs_append(&buffer, &length, 1, ping);
    commands++;
    if (!ok) {
        free(buffer);
        sh->state = RS_CLOSING;
        in->host->stream_close(sh->stream, RS_NAME ": out of memory");
        rs_fail_all(&sh->waiting, MOLT_ERR_INTERNAL, RS_NAME ": out of memory");
        return;
    }
    sh->state = RS_HANDSHAKING;
    sh->handshake_left = commands;
    sh->handshake_error[0] = '\0';
    in->host->stream_write(sh->stream, (const uint8_t *)buffer, length);
    free(buffer);
    rs_arm_read_timer(sh);
}

/* Gives up on the connection (our doing): closes the stream; `closed` follows and reconnects when
 * calls wait. The awaiting calls are the caller's to complete first. */
static void rs_drop(rs_shard *sh, const char *why) {
    if (sh->state == RS_DOWN || sh->state == RS_CLOSING) return;
    sh->state = RS_CLOSING;
    sh->in->host->stream_close(sh->stream, why);
}

/* A connect attempt failed: what waits fails, and so does what comes in the next RS_RECONNECT_BACKOFF_MS. */
static void rs_attempt_failed(rs_shard *sh, const char *text) {
    sh->retry_after_ns = rs_monotonic_ns() + RS_RECONNECT_BACKOFF_MS * RS_NS_PER_MS;
    rs_fail_all(&sh->waiting, MOLT_ERR_UNAVAILABLE, text);
    rs_fail_all(&sh->awaiting, MOLT_ERR_UNAVAILABLE, text); /* none: calls are sent once ready */
}

static void rs_handshake_reply(rs_shard *sh, const redisReply *r) {
    if (r->type == REDIS_REPLY_ERROR && sh->handshake_error[0] == '\0')
        snprintf(sh->handshake_error, sizeof sh->handshake_error, RS_NAME ": Redis at %s refused the connection "
                 "(AUTH, SELECT or PING): %.200s", sh->in->settings.address, r->str);
    if (--sh->handshake_left > 0) return;
    if (sh->handshake_error[0] != '\0') {
        char text[sizeof sh->handshake_error];
        memcpy(text, sh->handshake_error, sizeof text);
        rs_drop(sh, text);
        rs_attempt_failed(sh, text);
        return;
    }
    sh->state = RS_READY;
    sh->retry_after_ns = 0;
    rs_queue all = rs_take_all(&sh->waiting);
    rs_call *call;
    while ((call = rs_pop(&all)) != NULL) rs_write(sh, call);
}

static void rs_call_reply(rs_shard *sh, const redisReply *r) {
    rs_call *call = rs_pop(&sh->awaiting);
    if (call == NULL) {
        rs_drop(sh, RS_NAME ": a reply to no command");
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        char text[512];
        snprintf(text, sizeof text, RS_NAME ": Redis at %s refused XADD on \"%.200s\": %.200s",
                 sh->in->settings.address, call->topic, r->str);
        rs_complete(call, MOLT_ERR_INTERNAL, text);
    } else {
        rs_complete(call, MOLT_OK, NULL);
    }
}

static void rs_received(void *context, const uint8_t *bytes, size_t length) {
    rs_shard *sh = context;
    if (sh->state != RS_HANDSHAKING && sh->state != RS_READY) return;
    if (redisReaderFeed(sh->reader, (const char *)bytes, length) != REDIS_OK) {
        rs_drop(sh, RS_NAME ": the reply parser refused the bytes");
        return;
    }
    while (sh->state == RS_HANDSHAKING || sh->state == RS_READY) {
        void *reply = NULL;
        if (redisReaderGetReply(sh->reader, &reply) != REDIS_OK) {
            char why[200];
            snprintf(why, sizeof why, RS_NAME ": protocol error from Redis at %s: %s", sh->in->settings.address,
                     sh->reader->errstr);
            rs_drop(sh, why); /* `closed` sends the awaiting calls once more */
            return;
        }
        if (reply == NULL) return;
        if (sh->state == RS_HANDSHAKING) rs_handshake_reply(sh, reply);
        else rs_call_reply(sh, reply);
        freeReplyObject(reply);
    }
}

static void rs_read_timer_fired(void *context) {
    rs_shard *sh = context;
    rs_instance *in = sh->in;
    sh->read_timer = 0;
    int64_t since = sh->awaiting.head != NULL ? sh->awaiting.head->sent_ns : 0;
    bool overdue = since != 0 && rs_monotonic_ns() - since >= RS_COMMAND_TIMEOUT_MS * RS_NS_PER_MS;
    bool handshake_overdue = sh->state == RS_HANDSHAKING; /* armed at the handshake: it took the whole timeout */
    if (overdue || handshake_overdue) {
        char text[400];
        snprintf(text, sizeof text, RS_NAME ": Redis at %s did not answer within %d ms%s", in->settings.address,
                 RS_COMMAND_TIMEOUT_MS, handshake_overdue ? " (connecting)" : " (the entry may have been added)");
        bool was_handshake = handshake_overdue;
        rs_drop(sh, text);
        if (was_handshake) rs_attempt_failed(sh, text);
        rs_fail_all(&sh->awaiting, MOLT_ERR_TIMEOUT, text); /* not sent again */
    } else if (sh->state == RS_READY || sh->state == RS_HANDSHAKING) {
        rs_arm_read_timer(sh);
    }
    rs_io_remove(in); /* last */
}

/* The stream is gone (always the last callback, once). Not our doing while READY: the awaiting calls
 * are sent once more on a new connection (those sent once more already fail). */
static void rs_closed(void *context, const char *message) {
    rs_shard *sh = context;
    rs_instance *in = sh->in;
    enum rs_link was = sh->state;
    sh->state = RS_CLOSING; /* a publish made from within a `done` below waits for the next connection */
    char text[512];
    if (was == RS_CONNECTING || was == RS_HANDSHAKING) {
        snprintf(text, sizeof text, RS_NAME ": cannot connect to Redis at %s: %.300s", in->settings.address,
                 message != NULL ? message : "closed");
        rs_attempt_failed(sh, text);
    } else {
        snprintf(text, sizeof text, RS_NAME ": Redis at %s: XADD failed: connection lost (%.300s)", in->settings.address,
                 message != NULL ? message : "closed");
        if (was == RS_READY && sh->awaiting.head != NULL && !rs_stopping(in))
            molt_log(in->host, MOLT_LOG_WARNING, RS_NAME ": lost the connection to Redis at %s (%s); reconnecting",
                     in->settings.address, message != NULL ? message : "closed");
        /* Back to the front of the waiting calls, in order; a second loss fails them. */
        rs_queue again = {NULL, NULL};
        rs_queue all = rs_take_all(&sh->awaiting);
        rs_call *call;
        while ((call = rs_pop(&all)) != NULL) {
            if (call->resent || rs_stopping(in)) {
                rs_complete(call, MOLT_ERR_UNAVAILABLE, text);
            } else {
                call->resent = true;
                rs_push(&again, call);
            }
        }
        if (again.head != NULL) {
            again.tail->next = sh->waiting.head;
            if (sh->waiting.head == NULL) sh->waiting.tail = again.tail;
            sh->waiting.head = again.head;
        }
    }
    if (sh->read_timer != 0) { /* not fired (it clears the id when it fires): cancelling succeeds */
        in->host->timer_cancel(in->host->host_context, sh->read_timer);
        sh->read_timer = 0;
        rs_io_remove(in);
    }
    sh->state = RS_DOWN;
    sh->stream = NULL;
    redisReaderFree(sh->reader);
    sh->reader = NULL;
    if (rs_stopping(in)) rs_fail_all(&sh->waiting, MOLT_ERR_UNAVAILABLE, RS_NAME ": the instance is shutting down");
    else if (sh->waiting.head != NULL) rs_connect_stream(sh);
    rs_io_remove(in); /* last: destroy may return once this is done */
}

/* ---------------------------------------------------------------------------------------------
 * Dispatch, on the shard's loop
 * ------------------------------------------------------------------------------------------- */
static void rs_dispatch(rs_shard *sh, rs_call *call) {
    rs_instance *in = sh->in;
    if (rs_stopping(in)) {
        rs_complete(call, MOLT_ERR_UNAVAILABLE, RS_NAME ": the instance is shutting down");
        return;
    }
    if (sh->state == RS_READY) {
        rs_write(sh, call);
        return;
    }
    if (sh->state == RS_DOWN && rs_monotonic_ns() < sh->retry_after_ns) {
        char text[400];
        snprintf(text, sizeof text, RS_NAME ": Redis at %s is unreachable (reconnecting)", in->settings.address);
        rs_complete(call, MOLT_ERR_UNAVAILABLE, text);
        return;
    }
    rs_push(&sh->waiting, call);
    if (sh->state == RS_DOWN) rs_connect_stream(sh);
}

static void rs_hop_fired(void *context) {
    rs_call *call = context;
    rs_shard *sh = call->shard;
    rs_instance *in = sh->in;
    rs_dispatch(sh, call);
    rs_io_remove(in); /* last */
}

bool rs_loop_submit(rs_instance *in, rs_job *job, molt_pubsub_publish_done done, void *call_context) {
    if (in->shards == NULL) return false;
    rs_call *call = calloc(1, sizeof *call);
    char *command = NULL;
    int length = call != NULL ? redisFormatCommandArgv(&command, job->argc, job->argv, job->argvlen) : -1;
    if (length < 0) {
        free(call);
        molt_pubsub_publish_result result = {sizeof result, MOLT_ERR_INTERNAL, RS_NAME ": out of memory"};
        done(call_context, &result);
        return true;
    }
    call->command = command;
    call->length = (size_t)length;
    call->topic = job->argv[1];
    call->done = done;
    call->call_context = call_context;
    const molt_host_services *host = in->host;
    uint32_t loop = host->current_loop(host->host_context);
    if (loop < in->shard_count) {
        rs_dispatch(&in->shards[loop], call);
        return true;
    }
    loop = atomic_fetch_add_explicit(&in->next_shard, 1, memory_order_relaxed) % in->shard_count;
    call->shard = &in->shards[loop];
    if (rs_timer(in, loop, 0, rs_hop_fired, call) == 0) {
        char text[200];
        snprintf(text, sizeof text, RS_NAME ": the host refused a timer on its loop %" PRIu32, loop);
        rs_complete(call, MOLT_ERR_INTERNAL, text);
    }
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------- */
bool rs_loop_start(rs_instance *in) {
    const molt_host_services *h = in->host;
    if (h == NULL || h->struct_size < MOLT_HOST_SERVICES_SIZE_1_1 || h->loop_count == 0 || h->current_loop == NULL ||
        h->stream_open == NULL || h->stream_write == NULL || h->stream_close == NULL || h->timer_start == NULL ||
        h->timer_cancel == NULL)
        return false; /* an ABI 1.0 host: publish goes through the command thread */
    in->shards = calloc(h->loop_count, sizeof *in->shards);
    if (in->shards == NULL) return false;
    in->shard_count = h->loop_count;
    for (uint32_t i = 0; i < in->shard_count; i++) {
        in->shards[i].in = in;
        in->shards[i].loop = i;
    }
    return true;
}

/* On the shard's loop: fails what waits and awaits, closes the connection (`closed` follows). */
static void rs_shard_stop(void *context) {
    rs_shard *sh = context;
    rs_instance *in = sh->in;
    rs_fail_all(&sh->waiting, MOLT_ERR_UNAVAILABLE, RS_NAME ": the instance is shutting down");
    char text[300];
    snprintf(text, sizeof text, RS_NAME ": the instance is shutting down; Redis at %s had not answered "
             "(the entry may have been added)", in->settings.address);
    rs_fail_all(&sh->awaiting, MOLT_ERR_UNAVAILABLE, text);
    rs_drop(sh, RS_NAME " is shutting down");
    rs_io_remove(in); /* last */
}

void rs_loop_stop(rs_instance *in) {
    if (in->shards == NULL) return;
    atomic_store_explicit(&in->io_stopping, true, memory_order_release);
    for (uint32_t i = 0; i < in->shard_count; i++) {
        if (rs_timer(in, i, 0, rs_shard_stop, &in->shards[i]) == 0)
            molt_log(in->host, MOLT_LOG_ERROR, RS_NAME ": the host refused a timer on its loop %" PRIu32, i);
    }
    pthread_mutex_lock(&in->mu);
    while (in->io_owed > 0) pthread_cond_wait(&in->io_idle, &in->mu);
    pthread_mutex_unlock(&in->mu);
    free(in->shards);
    in->shards = NULL;
}
