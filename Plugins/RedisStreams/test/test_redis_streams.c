/*
 * test_redis_streams.c: redis-streams through dlopen, as molt calls it, against a real redis-server this test
 * starts on a free loopback port (and stops at exit, also on failure). What it proves:
 *   identity        name, version, kind, declared keys
 *   refusals        a bad redisHost and an unreachable one fail init with a message naming the host
 *   order           publish/subscribe in order, content type and metadata kept; ACK empties the PEL
 *   window          no more than max_in_flight unanswered; a refused deliver is offered again after an ack
 *   retry           RETRY leaves the entry pending; it is reclaimed and delivered again after processingTimeout
 *   reload          instance A takes messages and answers none (one late, after unsubscribe); A is destroyed;
 *                   instance B (same group) gets every unanswered one (reclaimed) and the new ones: none lost
 *   handover        with processingTimeout 30s: what A read and never answered is due when A is destroyed, so B's
 *                   first reclaim delivers it at once (not 30 s later)
 *   redis down      publish answers UNAVAILABLE naming the host; unsubscribe and destroy still return
 *   loop publish    publish on the host's event loops (ABI 1.1 I/O): test_loop_publish.c; every other part runs
 *                   with an ABI 1.0 host, where publish goes through the command thread
 * Usage: test_redis_streams redis-streams-1.0.0.so
 */
#include "fake_sink.h"
#include "redis_server.h"
#include "test_loop_publish.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static redis_server server;
static void cleanup(void) {
    redis_stop(&server);
    if (server.dir[0] != '\0') {
        char log[96];
        snprintf(log, sizeof log, "%s/redis.log", server.dir);
        unlink(log);
        rmdir(server.dir);
    }
}

/* processingTimeout 1s, redeliverInterval 200ms: redelivery within the test's patience. */
static const char *const fast[] = {"processingTimeout", "1s", "redeliverInterval", "200ms", NULL};

static molt_instance must_start(const char *const *extra) {
    char text[512];
    molt_instance in;
    molt_status status = start(server.port, extra, &in, text, sizeof text);
    if (status != MOLT_OK) { fprintf(stderr, "init failed: %s\n", text); exit(1); }
    char ready_text[256] = "";
    molt_message m = {ready_text, sizeof ready_text};
    CHECK(p.readiness(in, &m) == MOLT_READY);
    return in;
}

static void identity(void) {
    printf("identity\n");
    CHECK(strcmp(p.info->name, "redis-streams") == 0);
    CHECK(strcmp(p.info->version, "1.0.0") == 0);
    CHECK(strcmp(p.info->kind, MOLT_KIND_PUBSUB) == 0);
    CHECK(p.info->state_format_min == 0 && p.info->state_format_max == 0);
    uint32_t count = 0;
    const molt_config_key *keys = p.keys(&count);
    bool host = false, group = false;
    for (uint32_t i = 0; i < count; i++) {
        if (i > 0) CHECK(strcmp(keys[i - 1].name, keys[i].name) < 0);
        if (strcmp(keys[i].name, "redisHost") == 0) host = keys[i].required;
        if (strcmp(keys[i].name, "consumerID") == 0) group = !keys[i].required;
    }
    CHECK(host && group);
}

static void refusals(void) {
    printf("refusals\n");
    char text[512];
    molt_instance in;
    const char *const bad[] = {"processingTimeout", "soon", NULL};
    CHECK(start(server.port, bad, &in, text, sizeof text) == MOLT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(text, "processingTimeout") != NULL);
    uint16_t dead = free_port();
    CHECK(start(dead, NULL, &in, text, sizeof text) == MOLT_ERR_UNAVAILABLE && in == NULL);
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%u", dead);
    printf("  %s\n", text);
    CHECK(strstr(text, host) != NULL);
}

static void order(void) {
    printf("order\n");
    molt_instance in = must_start(fast);
    sink_state *s = sink_new(in, true);
    CHECK(subscribe(s, "orders", 100) == MOLT_OK);
    CHECK(subscribe(s, "orders", 100) == MOLT_ERR_INVALID_ARGUMENT); /* one per topic */
    char data[32];
    for (int i = 0; i < 20; i++) {
        snprintf(data, sizeof data, "order-%02d", i);
        publish_outcome o = publish(in, "orders", data);
        CHECK(o.status == MOLT_OK);
    }
    CHECK(wait_for(s, 20, 5000));
    for (int i = 0; i < 20; i++) {
        snprintf(data, sizeof data, "order-%02d", i);
        CHECK(data_is(s, i, data));
    }
    CHECK(strcmp(s->records[0].content_type, "text/plain") == 0);
    CHECK(strcmp(s->records[0].metadata, "60|00-abc") == 0);
    int64_t deadline = now_ms() + 3000;
    while (redis_pending(server.port, "orders", "pubsub") != 0 && now_ms() < deadline) sleep_ms(10);
    CHECK(redis_pending(server.port, "orders", "pubsub") == 0);
    CHECK(redis_xlen(server.port, "orders") == 20);
    unsubscribe(s);
    p.destroy(in);
    sink_free(s);
}

/* Reads a field of the sink under its mutex (the consumer thread writes it). */
static int locked(sink_state *s, const int *field) {
    pthread_mutex_lock(&s->mu);
    int value = *field;
    pthread_mutex_unlock(&s->mu);
    return value;
}

static void window(void) {
    printf("window\n");
    molt_instance in = must_start(fast);
    sink_state *s = sink_new(in, false);
    CHECK(subscribe(s, "win", 2) == MOLT_OK);
    for (int i = 0; i < 5; i++) {
        char data[16];
        snprintf(data, sizeof data, "w%d", i);
        CHECK(publish(in, "win", data).status == MOLT_OK);
    }
    CHECK(wait_for(s, 2, 5000));
    sleep_ms(300);
    CHECK(sink_count(s) == 2); /* the window is full */
    sink_ack(s, 0, MOLT_PUBSUB_ACK);
    CHECK(wait_for(s, 3, 3000) && data_is(s, 2, "w2"));
    /* A host window smaller than announced: deliver refuses; the entry is offered again after an ack. */
    pthread_mutex_lock(&s->mu);
    s->hold_limit = 2;
    pthread_mutex_unlock(&s->mu);
    sink_ack(s, 1, MOLT_PUBSUB_ACK); /* holding 1 (w2): one slot in the plugin's window and the host's */
    CHECK(wait_for(s, 4, 3000) && data_is(s, 3, "w3"));
    pthread_mutex_lock(&s->mu);
    s->hold_limit = 1; /* before the answer: the slot it frees must meet a refusal */
    pthread_mutex_unlock(&s->mu);
    sink_ack(s, 2, MOLT_PUBSUB_DROP); /* holding w3 only: the plugin offers w4, the host refuses it */
    int64_t deadline = now_ms() + 3000;
    while (locked(s, &s->refusals) == 0 && now_ms() < deadline) sleep_ms(5);
    CHECK(locked(s, &s->refusals) > 0 && sink_count(s) == 4);
    sink_ack(s, 3, MOLT_PUBSUB_ACK);
    CHECK(wait_for(s, 5, 3000) && data_is(s, 4, "w4"));
    CHECK(locked(s, &s->max_holding) <= 2);
    sink_ack(s, 4, MOLT_PUBSUB_ACK);
    deadline = now_ms() + 3000;
    while (redis_pending(server.port, "win", "pubsub") != 0 && now_ms() < deadline) sleep_ms(10);
    CHECK(redis_pending(server.port, "win", "pubsub") == 0);
    unsubscribe(s);
    p.destroy(in);
    sink_free(s);
}

static void retry(void) {
    printf("retry\n");
    molt_instance in = must_start(fast);
    sink_state *s = sink_new(in, false);
    CHECK(subscribe(s, "retry", 10) == MOLT_OK);
    CHECK(publish(in, "retry", "r1").status == MOLT_OK);
    CHECK(wait_for(s, 1, 5000));
    int64_t first = now_ms();
    sink_ack(s, 0, MOLT_PUBSUB_RETRY);
    CHECK(redis_pending(server.port, "retry", "pubsub") == 1);
    CHECK(wait_for(s, 2, 5000) && data_is(s, 1, "r1"));
    int64_t waited = now_ms() - first;
    printf("  delivered again after %lld ms\n", (long long)waited);
    CHECK(waited >= 900); /* not before processingTimeout */
    CHECK(s->records[1].delivery != s->records[0].delivery);
    sink_ack(s, 1, MOLT_PUBSUB_ACK);
    int64_t deadline = now_ms() + 3000;
    while (redis_pending(server.port, "retry", "pubsub") != 0 && now_ms() < deadline) sleep_ms(10);
    CHECK(redis_pending(server.port, "retry", "pubsub") == 0);
    sleep_ms(1500);
    CHECK(sink_count(s) == 2); /* acked: not delivered again */
    unsubscribe(s);
    p.destroy(in);
    sink_free(s);
}

static bool received(sink_state *s, const char *data) {
    pthread_mutex_lock(&s->mu);
    bool found = false;
    for (int i = 0; i < s->count && i < MAX_RECORDS; i++) found = found || strcmp(s->records[i].data, data) == 0;
    pthread_mutex_unlock(&s->mu);
    return found;
}

static void handover(void) {
    printf("handover\n");
    static const char *const slow[] = {"processingTimeout", "30s", "redeliverInterval", "30s", NULL};
    molt_instance a = must_start(slow);
    sink_state *sa = sink_new(a, false);
    CHECK(subscribe(sa, "handover", 10) == MOLT_OK);
    char data[16];
    for (int i = 1; i <= 4; i++) {
        snprintf(data, sizeof data, "h%d", i);
        CHECK(publish(a, "handover", data).status == MOLT_OK);
    }
    CHECK(wait_for(sa, 4, 5000));
    unsubscribe(sa);
    p.destroy(a);
    molt_instance b = must_start(slow);
    sink_state *sb = sink_new(b, true);
    int64_t started = now_ms();
    CHECK(subscribe(sb, "handover", 10) == MOLT_OK);
    CHECK(wait_for(sb, 4, 5000));
    printf("  B received A's 4 unanswered entries in %lld ms\n", (long long)(now_ms() - started));
    for (int i = 1; i <= 4; i++) {
        snprintf(data, sizeof data, "h%d", i);
        CHECK(received(sb, data));
    }
    unsubscribe(sb);
    p.destroy(b);
    sink_free(sa);
    sink_free(sb);
}

static void reload(void) {
    printf("reload\n");
    molt_instance a = must_start(fast);
    sink_state *sa = sink_new(a, false);
    CHECK(subscribe(sa, "reload", 10) == MOLT_OK);
    char data[16];
    for (int i = 1; i <= 5; i++) {
        snprintf(data, sizeof data, "m%d", i);
        CHECK(publish(a, "reload", data).status == MOLT_OK);
    }
    CHECK(wait_for(sa, 5, 5000));
    unsubscribe(sa);
    sink_ack(sa, 0, MOLT_PUBSUB_ACK); /* a late answer, after unsubscribe: still XACKed */
    p.destroy(a);
    CHECK(redis_pending(server.port, "reload", "pubsub") == 4);

    molt_instance b = must_start(fast);
    sink_state *sb = sink_new(b, true);
    CHECK(subscribe(sb, "reload", 10) == MOLT_OK);
    for (int i = 6; i <= 8; i++) {
        snprintf(data, sizeof data, "m%d", i);
        CHECK(publish(b, "reload", data).status == MOLT_OK);
    }
    int64_t deadline = now_ms() + 8000;
    bool all = false;
    while (!all && now_ms() < deadline) {
        all = true;
        for (int i = 2; i <= 8; i++) {
            snprintf(data, sizeof data, "m%d", i);
            all = all && received(sb, data);
        }
        if (!all) sleep_ms(20);
    }
    CHECK(all);
    CHECK(!received(sb, "m1")); /* acked late by A */
    deadline = now_ms() + 3000;
    while (redis_pending(server.port, "reload", "pubsub") != 0 && now_ms() < deadline) sleep_ms(10);
    CHECK(redis_pending(server.port, "reload", "pubsub") == 0);
    printf("  B received %d deliveries\n", sink_count(sb));

    printf("redis down\n");
    redis_stop(&server);
    publish_outcome o = publish(b, "reload", "lost");
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%u", server.port);
    printf("  %s\n", o.message);
    CHECK(o.status == MOLT_ERR_UNAVAILABLE && strstr(o.message, host) != NULL);
    int64_t before = now_ms();
    unsubscribe(sb);
    p.destroy(b);
    CHECK(now_ms() - before < 3000);
    sink_free(sa);
    sink_free(sb);
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s redis-streams-1.0.0.so\n", argv[0]); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    load(argv[1]);
    atexit(cleanup);
    if (!redis_start(&server)) return 1;
    printf("redis-server on 127.0.0.1:%u\n", server.port);
    identity();
    refusals();
    order();
    window();
    retry();
    handover();
    loop_publish_tests(&server); /* the rest publish through the command thread (an ABI 1.0 host) */
    reload();
    if (failures > 0) {
        fprintf(stderr, "redis-streams: %d failures\n", failures);
        return 1;
    }
    printf("redis-streams: all passed\n");
    return 0;
}
