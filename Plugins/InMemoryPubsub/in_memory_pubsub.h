/*
 * in_memory_pubsub.h: what the plugin's files share (not part of any ABI: every name here is hidden by
 * -fvisibility=hidden, only MOLT_EXPORT functions leave the library).
 *
 * The model, in one place:
 *   instance ─┬─ topics (a singly linked list, creation order; a topic is never freed before destroy)
 *             │    └─ messages: ONE doubly linked list per topic, in publish order, holding every message
 *             │       the topic still owes: queued, waiting out a RETRY delay, or delivered and unanswered.
 *             │       A message's place never changes; only its state does. So "unanswered deliveries go
 *             │       back to the front, in order" and "export every message in order" are both a walk.
 *             └─ at most one subscription per topic (topic->subscription), with its window of unanswered
 *                deliveries (pointers into the topic's list).
 *   One mutex (mp_instance.mu) guards all of it. One delivery thread per instance (delivery.c) is the
 *   only caller of sink.deliver, and calls it WITHOUT the mutex (the host may ack from within deliver).
 */
#ifndef IN_MEMORY_PUBSUB_H
#define IN_MEMORY_PUBSUB_H

#include "molt_plugin.h"

#include <pthread.h>

#ifdef IN_MEMORY_PUBSUB_V1_1
#define MP_VERSION "1.1.0"
#define MP_FORMAT_MAX 2u
#else
#define MP_VERSION "1.0.0"
#define MP_FORMAT_MAX 1u
#endif
#define MP_FORMAT_MIN 1u

#define MP_REFUSED_BACKOFF_MS 20 /* deliver answered false: try again after an ack, or after this */

typedef enum {
    MP_QUEUED,    /* deliverable now */
    MP_WAITING,   /* answered RETRY: deliverable from not_before_ns on */
    MP_IN_FLIGHT, /* taken by the host, unanswered; listed in topic->subscription->in_flight */
} mp_state;

/* One message. Owned by its topic's list (every field malloc()ed by the plugin), freed when answered
 * ACK or DROP, or at destroy. */
typedef struct mp_message {
    struct mp_message *prev, *next; /* the topic's list, publish order */
    uint8_t *data;
    size_t length;
    char *content_type;             /* NULL: none given */
    uint32_t metadata_count;
    molt_kv *metadata;              /* keys and values owned */
    mp_state state;
    int64_t not_before_ns;          /* MP_WAITING: CLOCK_MONOTONIC time it becomes deliverable */
    /* The last delivery: (subscription id, delivery id); 0 when never delivered. Kept after unsubscribe
     * requeues the message, so that a late ack for it still finds it (subscription ids are never reused
     * within an instance); overwritten when it is delivered again. */
    uint64_t subscription;
    uint64_t delivery;
    bool delivering;                /* the delivery thread is inside sink.deliver with it */
    bool removed;                   /* answered ACK/DROP while `delivering`: unlinked; the delivery thread frees it */
} mp_message;

/* A topic's subscription. Owned by the topic; freed by unsubscribe or destroy. */
typedef struct mp_subscription {
    uint64_t id;                    /* non-zero, unique within the instance */
    molt_pubsub_sink sink;          /* copied; the host's until unsubscribe returns */
    uint32_t max_in_flight;         /* the host's window (>= 1) */
    uint32_t in_flight_count;
    uint32_t in_flight_capacity;
    mp_message **in_flight;         /* owned array, unordered; the messages belong to the topic */
    uint64_t last_delivery;         /* delivery ids count up from 1 */
    int64_t refused_until_ns;       /* deliver answered false: no delivery before this (an ack clears it) */
    bool stopping;                  /* unsubscribe has begun: deliver no more */
} mp_subscription;

typedef struct mp_topic {
    struct mp_topic *next;          /* the instance's topics, creation order */
    char *name;                     /* owned */
    mp_message *head, *tail;
    uint64_t count;                 /* messages in the list, every state */
    mp_subscription *subscription;  /* NULL: nobody subscribes; messages wait */
} mp_topic;

typedef struct mp_limits {
    uint64_t max_queued_per_topic;
    uint64_t max_message_bytes;
    uint32_t redeliver_delay_ms;
} mp_limits;

/* One per component generation; no globals. */
typedef struct mp_instance {
    pthread_mutex_t mu;             /* guards everything below but `host` and `thread` */
    pthread_cond_t wake;            /* the delivery thread sleeps on it (CLOCK_MONOTONIC) */
    pthread_cond_t deliver_returned;/* signalled whenever a sink.deliver call returns */
    mp_topic *topics, *last_topic;
    mp_topic *cursor;               /* where the next delivery scan starts (round robin over topics) */
    mp_limits limits;               /* in force; changed in place by apply_config */
    uint64_t last_subscription;
    mp_subscription *delivering;    /* whose sink.deliver is running now, or NULL */
    bool stop;                      /* destroy has begun: the delivery thread exits */
    pthread_t thread;               /* the delivery thread, joined by destroy */
    const molt_host_services *host; /* host-owned, valid until destroy returns */
} mp_instance;

/* in_memory_pubsub.c */
int64_t mp_monotonic_ns(void);
void mp_message_text(molt_message *message, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* topic_queue.c: the topics and their lists. Every function needs in->mu held (or no other thread). */
mp_topic *mp_topic_find(mp_instance *in, const char *name);
mp_topic *mp_topic_get(mp_instance *in, const char *name); /* find or create; NULL: out of memory */
mp_message *mp_message_new(const uint8_t *data, size_t length, const char *content_type, uint32_t metadata_count,
                           const molt_kv *metadata); /* copies everything; NULL: out of memory */
void mp_message_free(mp_message *m);
void mp_topic_append(mp_topic *t, mp_message *m);
void mp_topic_unlink(mp_topic *t, mp_message *m);
void mp_topics_free(mp_instance *in); /* every topic, message and subscription */

/* delivery.c */
bool mp_delivery_start(mp_instance *in, molt_message *error_out);
void mp_delivery_stop(mp_instance *in); /* sets stop, wakes and joins the thread */

#endif /* IN_MEMORY_PUBSUB_H */
