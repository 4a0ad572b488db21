/*
 * loop_shard.h: what loop_publish.c (calls, dispatch, lifecycle) and loop_connection.c (a shard's connection)
 * share; see loop_publish.c for the model. Everything of a shard is touched only on its loop.
 */
#ifndef LOOP_SHARD_H
#define LOOP_SHARD_H

#include "redis_streams.h"

#include <stdatomic.h>

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

/* loop_publish.c */
void rs_io_add(rs_instance *in);    /* a host callback (closed, timer) is owed: before asking for it */
void rs_io_remove(rs_instance *in); /* delivered or cancelled: last thing in the callback */
uint64_t rs_timer(rs_instance *in, uint32_t loop, int64_t delay_ms, molt_timer_fn fire, void *context); /* counted */
bool rs_stopping(const rs_instance *in);
void rs_push(rs_queue *q, rs_call *call);
rs_call *rs_pop(rs_queue *q);
rs_queue rs_take_all(rs_queue *q);
void rs_complete(rs_call *call, molt_status status, const char *text); /* unlinked call: done, then freed */
void rs_fail_all(rs_queue *q, molt_status status, const char *text);

/* loop_connection.c */
void rs_connect_stream(rs_shard *sh);          /* DOWN: starts connecting; the waiting calls go out once ready */
void rs_write(rs_shard *sh, rs_call *call);    /* READY: sends the call, which then awaits its reply */
void rs_drop(rs_shard *sh, const char *why);   /* closes the connection (`closed` follows) */

#endif /* LOOP_SHARD_H */
