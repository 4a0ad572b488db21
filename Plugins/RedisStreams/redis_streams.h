/*
 * redis_streams.h: what the plugin's files share (not part of any ABI: every name here is hidden by
 * -fvisibility=hidden, only MOLT_EXPORT functions leave the library).
 *
 * The model, in one place:
 *   instance ─┬─ settings (settings.c), immutable after init
 *             ├─ publish shards (loop_publish.c), one per host loop (ABI 1.1 I/O): XADD on a connection of
 *             │  the loop the host called on, completed there without a thread switch
 *             ├─ the command thread (command_thread.c) with its own connection: acks (XACK), and publishes
 *             │  on a host without ABI 1.1 I/O, in FIFO order, from a job queue. Operations only enqueue.
 *             └─ subscriptions (a singly linked list, kept until destroy so that late acks find them)
 *                  each with a consumer thread (consumer.c) and its own connection: XREADGROUP, the
 *                  periodic XAUTOCLAIM reclaim, and the only caller of its sink.deliver. The entries it
 *                  read but could not hand over yet wait in its backlog (consumer thread only); the ones
 *                  the host took and has not answered are in its in-flight table (under the mutex),
 *                  which maps the delivery id to the stream entry id for the XACK.
 *   One mutex (rs_instance.mu) guards the job queue, the subscription list and every field marked
 *   "under mu". sink.deliver is always called WITHOUT it (the host may ack from within deliver).
 *
 * Redis keeps the state: stream entries, the consumer group and its pending entries list (PEL). The
 * instance holds nothing a caller relies on, so a reload needs no state transfer: the new generation
 * reads from the consumer group and reclaims what the old one left pending.
 */
#ifndef REDIS_STREAMS_H
#define REDIS_STREAMS_H

#include "molt_plugin.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>

#define RS_NAME "redis-streams"
#define RS_VERSION "1.0.0"
#define RS_BLOCK_MS 1000           /* longest XREADGROUP BLOCK: bounds how late a stop is noticed */
#define RS_REFUSED_BACKOFF_MS 20   /* deliver answered false: try again after an ack, or after this */
#define RS_RECONNECT_BACKOFF_MS 500
#define RS_COMMAND_TIMEOUT_MS 5000 /* a reply must come within this (plus BLOCK for XREADGROUP) */

/* The component's configuration, parsed once by init; immutable afterwards. Strings owned. */
typedef struct rs_settings {
    char *address;                  /* redisHost as given ("host:port"): the name used in messages */
    char *host;                     /* without the port (IPv6 brackets removed) */
    int port;
    char *username, *password;      /* NULL when not set; never logged */
    int db;                         /* redisDB; SELECT only when non-zero */
    char *group;                    /* consumerID: the consumer group's name */
    int64_t processing_timeout_ms;  /* pending longer than this: reclaimed; 0 disables redelivery */
    int64_t redeliver_interval_ms;  /* how often the reclaim runs; 0 disables redelivery */
    int64_t max_len_approx;         /* XADD MAXLEN ~ n; 0: unlimited */
    uint32_t queue_depth;           /* COUNT of XREADGROUP and XAUTOCLAIM */
    bool ack_on_error;              /* RETRY acks too (Dapr's ackOnError) */
    int64_t dial_timeout_ms;
} rs_settings;

/* A stream entry read from Redis and not yet taken by the host. Every field owned. */
typedef struct rs_entry {
    struct rs_entry *next;
    char *id;                       /* the stream entry id, e.g. "1700000000000-0" */
    uint8_t *data;
    size_t length;
    char *content_type;             /* NULL: the entry has no contentType field */
    uint32_t metadata_count;
    molt_kv *metadata;              /* keys and values owned */
} rs_entry;

/* One delivery the host took and has not answered. */
typedef struct rs_in_flight {
    uint64_t delivery;
    char *id;                       /* owned; handed to the XACK job when answered ACK/DROP */
} rs_in_flight;

typedef struct rs_instance rs_instance;
typedef struct rs_shard rs_shard; /* loop_publish.c: publishing on one of the host's loops */

/* A subscription. Owned by the instance's list from subscribe until destroy (unsubscribe only stops it). */
typedef struct rs_subscription {
    struct rs_subscription *next;
    rs_instance *in;
    uint64_t id;                    /* non-zero, unique within the instance */
    char *topic;                    /* owned: the stream's key */
    molt_pubsub_sink sink;          /* copied; the host's until unsubscribe returns */
    uint32_t max_in_flight;
    pthread_t thread;
    pthread_cond_t wake;            /* signalled by ack and unsubscribe; the consumer thread waits on it */
    /* under mu */
    rs_in_flight *in_flight;        /* owned array, unordered */
    uint32_t in_flight_count, in_flight_capacity;
    uint64_t last_delivery;         /* delivery ids count up from 1 */
    bool stopping;                  /* unsubscribe or destroy has begun: deliver no more, exit */
    bool stopped;                   /* the thread is joined: only late acks remain */
    int fd;                         /* the consumer connection's socket while open, else -1 (see consumer.c) */
    /* consumer thread only */
    rs_entry *backlog_head, *backlog_tail;
} rs_subscription;

/* A job for the command thread: one Redis command, its argv built by the enqueuer. */
typedef struct rs_job {
    struct rs_job *next;
    int argc;
    const char *argv[12];
    size_t argvlen[12];
    char *owned[4];                 /* freed with the job (argv may point into them) */
    molt_pubsub_publish_done done;  /* NULL for an ack */
    void *call_context;
} rs_job;

/* One per component generation; no globals. */
struct rs_instance {
    pthread_mutex_t mu;
    rs_settings settings;           /* immutable after init */
    const molt_host_services *host; /* host-owned, valid until destroy returns */
    char consumer[200];             /* this instance's consumer name in the group: group + "-" + random hex */
    /* under mu */
    rs_subscription *subscriptions;
    uint64_t last_subscription;
    rs_job *jobs_head, *jobs_tail;
    bool stop_commands;             /* destroy: the command thread drains the queue and exits */
    pthread_cond_t jobs_ready;
    /* the command thread only (init before it starts) */
    redisContext *command;
    int64_t command_retry_after_ns; /* a reconnect failed: fail fast until then */
    pthread_t command_thread;
    /* publish on the host's loops (loop_publish.c); shards NULL on a host without ABI 1.1 I/O */
    rs_shard *shards;               /* one per host loop; each touched only on its loop */
    uint32_t shard_count;
    _Atomic uint32_t next_shard;    /* round-robin for publishes made off the loops */
    _Atomic bool io_stopping;       /* destroy has begun: fail what comes, reconnect no more */
    _Atomic int io_owed;            /* the host's callbacks still owed (streams' closed, timers) */
    pthread_cond_t io_idle;         /* broadcast under mu when io_owed reaches 0 */
};

/* redis_streams.c */
int64_t rs_monotonic_ns(void);
void rs_text(molt_message *message, const char *format, ...) __attribute__((format(printf, 2, 3)));
void rs_timed_wait(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t ms); /* CLOCK_MONOTONIC conds */

/* settings.c */
bool rs_settings_parse(const molt_config *config, rs_settings *out, molt_message *error_out);
void rs_settings_free(rs_settings *s);

/* connection.c: a blocking hiredis connection, authenticated, DB selected, answering PING. NULL on
 * failure with the reason (naming the host, never the password) in why. */
redisContext *rs_connect(const rs_settings *s, char *why, size_t why_size);

/* entry.c */
rs_entry *rs_entry_from_reply(const redisReply *r); /* ["id", [field, value, ...]]; NULL: malformed */
void rs_entry_free(rs_entry *e);
char *rs_metadata_json(uint32_t count, const molt_kv *metadata); /* malloc()ed JSON object; NULL: none/OOM */

/* command_thread.c */
bool rs_commands_start(rs_instance *in, molt_message *error_out);
void rs_commands_stop(rs_instance *in); /* runs the queued jobs, then joins (in->command stays open) */
void rs_enqueue_locked(rs_instance *in, rs_job *job); /* under mu */

/* loop_publish.c */
bool rs_loop_start(rs_instance *in); /* init: false (publish on the command thread) on an ABI 1.0 host */
/* Publishes job's XADD on the host's loops and returns true (`done` follows, maybe before it returns);
 * false when the host has no I/O services: the caller queues the job to the command thread. job stays
 * the caller's. */
bool rs_loop_submit(rs_instance *in, rs_job *job, molt_pubsub_publish_done done, void *call_context);
void rs_loop_stop(rs_instance *in); /* destroy: fails what is left, waits for the host's last callback */

/* consumer.c */
void *rs_consumer_main(void *subscription);
/* XGROUP CREATE topic group 0 MKSTREAM on c (BUSYGROUP is fine); false with why on failure. */
bool rs_group_create(redisContext *c, const rs_instance *in, const char *topic, char *why, size_t size);

/* subscription.c */
void rs_subscriptions_stop_all(rs_instance *in);  /* destroy: stops and joins every live consumer */
void rs_subscriptions_free(rs_instance *in);
void rs_subscriptions_release_pending(rs_instance *in); /* destroy, after the last XACK: see subscription.c */

#endif /* REDIS_STREAMS_H */
