/*
 * test_loop_publish.c: publish on the host's event loops (ABI 1.1 I/O), with fake_loop.c as the host:
 *   on the loop     a batch published from within a loop's turn (as molt calls it) completes on that loop,
 *                   in order, every `done` once, over one connection per loop, kept for the next batch
 *   off the loops   a publish from another thread hops onto a loop and completes there
 *   refused         a Redis error reply (WRONGTYPE) answers INTERNAL naming it
 *   redis restart   Redis down: UNAVAILABLE naming the host; back up: publish works again; its connections
 *                   killed (CLIENT KILL): the next publishes reconnect and succeed
 *   destroy         a publish Redis has not answered (CLIENT PAUSE WRITE) is failed by destroy, once; the
 *                   host owes the instance no callback after destroy returns
 */
#include "fake_loop.h"
#include "fake_sink.h"
#include "redis_server.h"
#include "test_loop_publish.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 100

typedef struct {
    molt_pubsub_publish_request request;
    char data[32];
    int done_count;           /* under batch_mu */
    molt_status status;
    char message[512];
    uint32_t done_loop;
} loop_call;

typedef struct {
    molt_instance in;
    const char *topic;
    int count;
    loop_call calls[BATCH];
} batch;

static pthread_mutex_t batch_mu = PTHREAD_MUTEX_INITIALIZER;

static void call_done(void *context, const molt_pubsub_publish_result *result) {
    loop_call *c = context;
    pthread_mutex_lock(&batch_mu);
    c->done_count++;
    c->status = result->status;
    snprintf(c->message, sizeof c->message, "%s", result->message != NULL ? result->message : "");
    c->done_loop = fake_current_loop();
    pthread_mutex_unlock(&batch_mu);
}

static void publish_batch(void *context) {
    batch *b = context;
    for (int i = 0; i < b->count; i++) {
        loop_call *c = &b->calls[i];
        c->request = (molt_pubsub_publish_request){sizeof c->request, b->topic,
                                                   {(const uint8_t *)c->data, strlen(c->data)}, "text/plain", 0, NULL};
        p.publish(b->in, &c->request, call_done, c);
    }
}

static batch *batch_new(molt_instance in, const char *topic, int count, const char *prefix) {
    batch *b = calloc(1, sizeof *b);
    b->in = in;
    b->topic = topic;
    b->count = count;
    for (int i = 0; i < count; i++) snprintf(b->calls[i].data, sizeof b->calls[i].data, "%s%d", prefix, i);
    return b;
}

/* Waits (bounded) until every call of b is done; false on timeout. */
static bool batch_wait(batch *b, int timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int done = 0;
        pthread_mutex_lock(&batch_mu);
        for (int i = 0; i < b->count; i++) done += b->calls[i].done_count > 0;
        pthread_mutex_unlock(&batch_mu);
        if (done == b->count) return true;
        if (now_ms() > deadline) return false;
        sleep_ms(2);
    }
}

/* The stream's entries' data fields, in order, joined with ",". */
static void stream_data(uint16_t port, const char *topic, char *out, size_t size) {
    out[0] = '\0';
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r = c != NULL && !c->err ? redisCommand(c, "XRANGE %s - +", topic) : NULL;
    size_t used = 0;
    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *fields = r->element[i]->element[1];
        for (size_t f = 0; f + 1 < fields->elements; f += 2)
            if (strcmp(fields->element[f]->str, "data") == 0)
                used += (size_t)snprintf(out + used, used < size ? size - used : 0, "%s%s", i > 0 ? "," : "",
                                         fields->element[f + 1]->str);
    }
    if (r != NULL) freeReplyObject(r);
    if (c != NULL) redisFree(c);
}

static void redis_run(uint16_t port, const char *command) {
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r = c != NULL && !c->err ? redisCommand(c, command) : NULL;
    CHECK(r != NULL && r->type != REDIS_REPLY_ERROR);
    if (r != NULL) freeReplyObject(r);
    if (c != NULL) redisFree(c);
}

static void check_batch(batch *b, uint32_t loop, uint16_t port) {
    CHECK(batch_wait(b, 10000));
    char expected[BATCH * 12] = "", got[BATCH * 12];
    size_t used = 0;
    for (int i = 0; i < b->count; i++) {
        loop_call *c = &b->calls[i];
        if (c->done_count != 1 || c->status != MOLT_OK || c->done_loop != loop)
            fprintf(stderr, "  call %d: done %d times, status %d (%s), on loop %u\n", i, c->done_count, c->status,
                    c->message, c->done_loop);
        CHECK(c->done_count == 1 && c->status == MOLT_OK && c->done_loop == loop);
        used += (size_t)snprintf(expected + used, sizeof expected - used, "%s%s", i > 0 ? "," : "", c->data);
    }
    stream_data(port, b->topic, got, sizeof got);
    CHECK_TEXT(got, expected);
}

void loop_publish_tests(redis_server *server) {
    fake_loops_start();
    test_host = &loop_host;
    char text[512];
    molt_instance in;
    CHECK(start(server->port, NULL, &in, text, sizeof text) == MOLT_OK);

    printf("loop publish: on the loop\n");
    int opened = fake_streams_opened();
    batch *b = batch_new(in, "loop-a", BATCH, "a");
    run_on_loop(1, publish_batch, b);
    check_batch(b, 1, server->port);
    CHECK(fake_streams_opened() == opened + 1); /* one connection for the loop, pipelined */
    batch *again = batch_new(in, "loop-b", BATCH, "b");
    run_on_loop(1, publish_batch, again);
    check_batch(again, 1, server->port);
    CHECK(fake_streams_opened() == opened + 1); /* kept */

    printf("loop publish: off the loops\n");
    publish_outcome o = publish(in, "loop-off", "hop"); /* from this thread: hops onto a loop */
    CHECK(o.status == MOLT_OK);
    CHECK(redis_xlen(server->port, "loop-off") == 1);

    printf("loop publish: refused\n");
    redis_run(server->port, "SET loop-string x");
    batch *refused = batch_new(in, "loop-string", 1, "r");
    run_on_loop(0, publish_batch, refused);
    CHECK(batch_wait(refused, 10000));
    printf("  %s\n", refused->calls[0].message);
    CHECK(refused->calls[0].status == MOLT_ERR_INTERNAL && refused->calls[0].done_count == 1);
    CHECK_HAS(refused->calls[0].message, "WRONGTYPE");
    CHECK_HAS(refused->calls[0].message, "loop-string");

    printf("loop publish: redis restart\n");
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%u", server->port);
    redis_stop(server);
    batch *down = batch_new(in, "loop-down", 2, "d");
    run_on_loop(1, publish_batch, down); /* the first finds the connection closed, both fail */
    CHECK(batch_wait(down, 10000));
    for (int i = 0; i < 2; i++) {
        printf("  %s\n", down->calls[i].message);
        CHECK(down->calls[i].status == MOLT_ERR_UNAVAILABLE && down->calls[i].done_count == 1);
        CHECK_HAS(down->calls[i].message, host);
    }
    CHECK(redis_start(server));
    sleep_ms(600); /* past the fail-fast period */
    batch *up = batch_new(in, "loop-up", 3, "u");
    run_on_loop(1, publish_batch, up);
    check_batch(up, 1, server->port);
    redis_run(server->port, "CLIENT KILL TYPE normal SKIPME yes"); /* the plugin's connections, mid-flight */
    batch *killed = batch_new(in, "loop-killed", BATCH, "k");
    run_on_loop(1, publish_batch, killed); /* sent once more on a new connection */
    check_batch(killed, 1, server->port);

    printf("loop publish: destroy with a publish unanswered\n");
    redis_run(server->port, "CLIENT PAUSE 3000 WRITE");
    batch *paused = batch_new(in, "loop-paused", 1, "p");
    run_on_loop(0, publish_batch, paused);
    sleep_ms(200);
    pthread_mutex_lock(&batch_mu);
    CHECK(paused->calls[0].done_count == 0); /* Redis holds the XADD */
    pthread_mutex_unlock(&batch_mu);
    p.destroy(in);
    CHECK(fake_callbacks_owed() == 0);
    pthread_mutex_lock(&batch_mu);
    printf("  %s\n", paused->calls[0].message);
    CHECK(paused->calls[0].done_count == 1 && paused->calls[0].status == MOLT_ERR_UNAVAILABLE);
    CHECK_HAS(paused->calls[0].message, "shutting down");
    pthread_mutex_unlock(&batch_mu);
    redis_run(server->port, "CLIENT UNPAUSE");

    fake_loops_stop();
    test_host = &fake_host;
    free(b); free(again); free(refused); free(down); free(up); free(killed); free(paused);
}
