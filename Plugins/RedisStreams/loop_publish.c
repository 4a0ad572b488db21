/*
 * loop_publish.c: publish (XADD) on the host's event loops (ABI 1.1 I/O), so that a publish costs no thread
 * switch: the host calls molt_pubsub_publish on the loop that read the app's request, the XADD goes out on a
 * connection of that loop, and its reply completes the call there. This file: the calls, their dispatch,
 * the lifecycle; loop_connection.c: a shard's connection.
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
#include "loop_shard.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * The host's callbacks owed to the instance (streams' `closed`, timers), counted; destroy waits for zero.
 * ------------------------------------------------------------------------------------------- */
void rs_io_add(rs_instance *in) { atomic_fetch_add_explicit(&in->io_owed, 1, memory_order_relaxed); }

void rs_io_remove(rs_instance *in) {
    if (atomic_fetch_sub_explicit(&in->io_owed, 1, memory_order_acq_rel) != 1) return;
    pthread_mutex_lock(&in->mu); /* the last one: wake destroy (which checks the count under mu) */
    pthread_cond_broadcast(&in->io_idle);
    pthread_mutex_unlock(&in->mu);
}

uint64_t rs_timer(rs_instance *in, uint32_t loop, int64_t delay_ms, molt_timer_fn fire, void *context) {
    rs_io_add(in);
    uint64_t id = in->host->timer_start(in->host->host_context, loop, delay_ms > 0 ? (uint32_t)delay_ms : 0, fire,
                                        context);
    if (id == 0) rs_io_remove(in);
    return id;
}

bool rs_stopping(const rs_instance *in) { return atomic_load_explicit(&in->io_stopping, memory_order_acquire); }

/* ---------------------------------------------------------------------------------------------
 * Calls
 * ------------------------------------------------------------------------------------------- */
void rs_push(rs_queue *q, rs_call *call) {
    call->next = NULL;
    if (q->tail != NULL) q->tail->next = call;
    else q->head = call;
    q->tail = call;
}

rs_call *rs_pop(rs_queue *q) {
    rs_call *call = q->head;
    if (call != NULL) {
        q->head = call->next;
        if (q->head == NULL) q->tail = NULL;
        call->next = NULL;
    }
    return call;
}

rs_queue rs_take_all(rs_queue *q) {
    rs_queue all = *q;
    q->head = q->tail = NULL;
    return all;
}

/* Completes the call (already unlinked) and frees it. */
void rs_complete(rs_call *call, molt_status status, const char *text) {
    molt_pubsub_publish_result result = {sizeof result, status, status == MOLT_OK ? NULL : text};
    molt_pubsub_publish_done done = call->done;
    void *context = call->call_context;
    redisFreeCommand(call->command);
    free(call);
    done(context, &result);
}

void rs_fail_all(rs_queue *q, molt_status status, const char *text) {
    rs_queue all = rs_take_all(q);
    rs_call *call;
    while ((call = rs_pop(&all)) != NULL) rs_complete(call, status, text);
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
    while (atomic_load_explicit(&in->io_owed, memory_order_acquire) > 0) pthread_cond_wait(&in->io_idle, &in->mu);
    pthread_mutex_unlock(&in->mu);
    free(in->shards);
    in->shards = NULL;
}
