/*
 * loop_connection.c: a shard's connection to Redis on its loop (loop_publish.c has the model): a molt_stream
 * opened when a call needs it, AUTH/SELECT/PING pipelined on connect, then each call's XADD written as it
 * comes; replies (redisReader) complete the awaiting calls in order. The read timer fails the awaiting calls
 * with TIMEOUT when the oldest reply is RS_COMMAND_TIMEOUT_MS late; `closed` sends what awaited once more on
 * a new connection (a second loss fails it).
 */
#include "loop_shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RS_NS_PER_MS 1000000LL

static void rs_connected(void *context);
static void rs_received(void *context, const uint8_t *bytes, size_t length);
static void rs_closed(void *context, const char *message);
static void rs_read_timer_fired(void *context);

static void rs_arm_read_timer(rs_shard *sh) {
    if (sh->read_timer != 0) return;
    /* handshaking: its replies are due from now (calls wait meanwhile); else the oldest call's */
    int64_t since = sh->state == RS_HANDSHAKING ? rs_monotonic_ns()
                    : sh->awaiting.head != NULL ? sh->awaiting.head->sent_ns : 0;
    if (since == 0) return;
    int64_t left_ms = (since + RS_COMMAND_TIMEOUT_MS * RS_NS_PER_MS - rs_monotonic_ns()) / RS_NS_PER_MS + 1;
    sh->read_timer = rs_timer(sh->in, sh->loop, left_ms, rs_read_timer_fired, sh);
}

void rs_write(rs_shard *sh, rs_call *call) {
    call->sent_ns = rs_monotonic_ns();
    rs_push(&sh->awaiting, call);
    sh->in->host->stream_write(sh->stream, (const uint8_t *)call->command, call->length);
    rs_arm_read_timer(sh);
}

/* Starts connecting (state DOWN). The waiting calls go out once the handshake is done. */
void rs_connect_stream(rs_shard *sh) {
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
void rs_drop(rs_shard *sh, const char *why) {
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
        const char *why = message != NULL ? message : "closed";
        const char *after = strncmp(why, "cannot connect to ", 18) == 0 ? strstr(why, ": ") : NULL;
        if (after != NULL) why = after + 2; /* the host's "cannot connect to host:port: " said again below */
        snprintf(text, sizeof text, RS_NAME ": cannot connect to Redis at %s: %.300s", in->settings.address, why);
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

