/* test_in_memory_pubsub.c: loads in-memory-pubsub .so files with dlopen, as molt does, and drives them
 * with a fake host sink that records deliveries (acks come from the test thread, or from within
 * deliver on the plugin's delivery thread). Proves: order, the max_in_flight window, deliver refusing
 * then acks resuming, RETRY after redeliverDelayMs, ACK/DROP removing, messages published before any
 * subscription, unsubscribe stopping deliveries and requeueing unanswered ones (late acks), limits and
 * in-place config, state handed from the first .so to the second with queued and unanswered messages,
 * format 2's kept RETRY delay, malformed imports refused, destroy with a live subscription.
 * The host side is fake_host.c. Waits are bounded polls. Usage: test_in_memory_pubsub V1_0.so V1_1.so */
#include "fake_host.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Tests, each on a fresh instance
 * ------------------------------------------------------------------------------------------- */

/* Published before anyone subscribes: kept, then delivered in order with content type and metadata;
 * acks from within deliver. A second subscription to the topic is refused. */
static void test_order_and_queued_before_subscribe(const plugin *p) {
    molt_instance in = start(p, "1048576", "10000", "1000");
    char data[16];
    for (int i = 0; i < 50; i++) {
        snprintf(data, sizeof data, "m%d", i);
        CHECK(publish(p, in, "orders", data).status == MOLT_OK);
    }
    sleep_ms(20);
    CHECK(held(p, in) == 50);
    sink_state *s = sink_new(p, in);
    s->ack_inline = true;
    CHECK(subscribe(p, in, "orders", 8, s) == MOLT_OK);
    CHECK(wait_for(s, 50, 2000));
    for (int i = 0; i < 50; i++) {
        snprintf(data, sizeof data, "m%d", i);
        CHECK(data_is(s, i, data));
    }
    CHECK(strcmp(s->records[0].topic, "orders") == 0 && strcmp(s->records[0].content_type, "text/plain") == 0);
    CHECK(s->records[0].metadata_count == 2 && strcmp(s->records[0].metadata0, "ttlInSeconds=60") == 0);
    /* Published while subscribed: delivered too. */
    CHECK(publish(p, in, "orders", "late").status == MOLT_OK);
    CHECK(wait_for(s, 51, 2000) && data_is(s, 50, "late"));
    sleep_ms(20);
    CHECK(held(p, in) == 0);

    sink_state *second = sink_new(p, in);
    CHECK(subscribe(p, in, "orders", 1, second) == MOLT_ERR_INVALID_ARGUMENT);
    unsubscribe(s);
    sink_free(s);
    sink_free(second);
    p->destroy(in);
}

/* At most max_in_flight unanswered; each ack lets one more through. */
static void test_window(const plugin *p) {
    molt_instance in = start(p, "1048576", "10000", "1000");
    for (int i = 0; i < 10; i++) publish(p, in, "w", (char[]){(char)('a' + i), 0});
    sink_state *s = sink_new(p, in);
    CHECK(subscribe(p, in, "w", 3, s) == MOLT_OK);
    CHECK(wait_for(s, 3, 2000));
    sleep_ms(50);
    CHECK(sink_count(s) == 3);
    sink_ack(s, 0, MOLT_PUBSUB_ACK);
    CHECK(wait_for(s, 4, 2000));
    sleep_ms(50);
    CHECK(sink_count(s) == 4);
    for (int i = 1; i < 10; i++) {
        CHECK(wait_for(s, i + 3 < 10 ? i + 3 : 10, 2000));
        sink_ack(s, i, MOLT_PUBSUB_ACK);
    }
    CHECK(wait_for(s, 10, 2000));
    CHECK(s->max_holding == 3);
    for (int i = 0; i < 10; i++) CHECK(data_is(s, i, (char[]){(char)('a' + i), 0}));
    sleep_ms(20);
    CHECK(held(p, in) == 0);
    unsubscribe(s);
    sink_free(s);
    p->destroy(in);
}

/* deliver answers false (the host holds fewer than it announced): the message is kept, and the next
 * ack resumes delivery, in order. */
static void test_refused_then_acks_resume(const plugin *p) {
    molt_instance in = start(p, "1048576", "10000", "1000");
    for (int i = 0; i < 5; i++) publish(p, in, "r", (char[]){(char)('0' + i), 0});
    sink_state *s = sink_new(p, in);
    s->hold_limit = 1;
    CHECK(subscribe(p, in, "r", 10, s) == MOLT_OK);
    for (int i = 0; i < 5; i++) {
        CHECK(wait_for(s, i + 1, 2000));
        int64_t until = now_ms() + 2000;
        while (now_ms() < until) { /* the plugin tries the next one and is refused */
            pthread_mutex_lock(&s->mu);
            int refusals = s->refusals;
            pthread_mutex_unlock(&s->mu);
            if (refusals > i || i == 4) break;
            sleep_ms(2);
        }
        sink_ack(s, i, MOLT_PUBSUB_ACK);
    }
    CHECK(wait_for(s, 5, 2000));
    CHECK(s->refusals >= 4 && s->max_holding == 1);
    for (int i = 0; i < 5; i++) CHECK(data_is(s, i, (char[]){(char)('0' + i), 0}));
    sleep_ms(20);
    CHECK(held(p, in) == 0);
    unsubscribe(s);
    sink_free(s);
    p->destroy(in);
}

/* RETRY: delivered again after redeliverDelayMs (not before); DROP and ACK remove. */
static void test_retry_drop_ack(const plugin *p) {
    molt_instance in = start(p, "1048576", "10000", "300");
    publish(p, in, "t", "retry-me");
    publish(p, in, "t", "drop-me");
    publish(p, in, "t", "ack-me");
    sink_state *s = sink_new(p, in);
    CHECK(subscribe(p, in, "t", 10, s) == MOLT_OK);
    CHECK(wait_for(s, 3, 2000));
    int64_t retried_at = now_ms();
    sink_ack(s, 0, MOLT_PUBSUB_RETRY);
    sink_ack(s, 1, MOLT_PUBSUB_DROP);
    sink_ack(s, 2, MOLT_PUBSUB_ACK);
    sleep_ms(150);
    CHECK(sink_count(s) == 3);
    CHECK(held(p, in) == 1);
    CHECK(wait_for(s, 4, 2000));
    CHECK(now_ms() - retried_at >= 290);
    CHECK(data_is(s, 3, "retry-me"));
    CHECK(s->records[3].delivery != s->records[0].delivery);
    /* A second answer to an answered delivery is ignored. */
    p->ack(in, s->subscription, s->records[0].delivery, MOLT_PUBSUB_ACK);
    CHECK(held(p, in) == 1);
    sink_ack(s, 3, MOLT_PUBSUB_ACK);
    sleep_ms(20);
    CHECK(held(p, in) == 0);
    sleep_ms(50);
    CHECK(sink_count(s) == 4);
    unsubscribe(s);
    sink_free(s);
    p->destroy(in);
}

/* unsubscribe: no deliver after it returns; unanswered messages go back in order and a new subscription
 * gets them; a late ACK for one not yet delivered again removes it; a late ack for one already delivered
 * again is ignored. */
static void test_unsubscribe_requeues(const plugin *p) {
    molt_instance in = start(p, "1048576", "10000", "1000");
    for (int i = 0; i < 5; i++) publish(p, in, "u", (char[]){'u', (char)('0' + i), 0});
    sink_state *old = sink_new(p, in);
    CHECK(subscribe(p, in, "u", 3, old) == MOLT_OK);
    CHECK(wait_for(old, 3, 2000));
    unsubscribe(old);
    publish(p, in, "u", "u5");
    sleep_ms(50);
    CHECK(sink_count(old) == 3);
    CHECK(held(p, in) == 6);
    old->p->ack(in, old->subscription, old->records[0].delivery, MOLT_PUBSUB_ACK); /* late: removes u0 */
    CHECK(held(p, in) == 5);
    p->ack(in, 0, 0, MOLT_PUBSUB_ACK); /* unknown deliveries: ignored */
    p->ack(in, old->subscription, 0, MOLT_PUBSUB_DROP);
    p->ack(in, 999, 1, MOLT_PUBSUB_DROP);
    CHECK(held(p, in) == 5);

    sink_state *fresh = sink_new(p, in);
    CHECK(subscribe(p, in, "u", 10, fresh) == MOLT_OK);
    CHECK(fresh->subscription != old->subscription);
    CHECK(wait_for(fresh, 5, 2000));
    for (int i = 0; i < 5; i++) CHECK(data_is(fresh, i, (char[]){'u', (char)('1' + i), 0}));
    old->p->ack(in, old->subscription, old->records[1].delivery, MOLT_PUBSUB_ACK); /* u1 delivered again: ignored */
    CHECK(held(p, in) == 5);
    for (int i = 0; i < 5; i++) sink_ack(fresh, i, MOLT_PUBSUB_ACK);
    CHECK(held(p, in) == 0);
    char text[256] = "";
    molt_message error = {text, sizeof text};
    CHECK(p->unsubscribe(in, old->subscription, &error) == MOLT_ERR_INVALID_ARGUMENT && text[0] != '\0');
    unsubscribe(fresh);
    sink_free(old);
    sink_free(fresh);
    p->destroy(in);
}

/* maxQueuedPerTopic (UNAVAILABLE naming the topic and limit), maxMessageBytes (INVALID_ARGUMENT), both
 * changed in place; a bad value refused by init and apply_config. */
static void test_limits(const plugin *p) {
    molt_instance in = start(p, "8", "2", "1000");
    CHECK(publish(p, in, "l", "one").status == MOLT_OK);
    CHECK(publish(p, in, "l", "two").status == MOLT_OK);
    publish_outcome o = publish(p, in, "l", "three");
    CHECK(o.status == MOLT_ERR_UNAVAILABLE && strstr(o.message, "\"l\"") && strstr(o.message, "maxQueuedPerTopic 2"));
    CHECK(publish(p, in, "other", "fine").status == MOLT_OK); /* per topic */
    o = publish(p, in, "other", "123456789");
    CHECK(o.status == MOLT_ERR_INVALID_ARGUMENT && strstr(o.message, "maxMessageBytes"));
    CHECK(publish(p, in, "", "x").status == MOLT_ERR_INVALID_ARGUMENT);

    molt_kv entries[3];
    molt_config config = config_of(entries, "16", "3", "10");
    char text[256] = "";
    molt_message message = {text, sizeof text};
    CHECK(p->apply_config(in, &config, &message) == MOLT_APPLIED);
    CHECK(publish(p, in, "l", "three").status == MOLT_OK);
    CHECK(publish(p, in, "other", "123456789").status == MOLT_OK);
    config = config_of(entries, "16", "0", "10");
    CHECK(p->apply_config(in, &config, &message) == MOLT_APPLY_ERROR && strstr(text, "maxQueuedPerTopic"));
    CHECK(publish(p, in, "l", "four").status == MOLT_ERR_UNAVAILABLE); /* still 3 */
    config = config_of(entries, "x", "3", "10");
    molt_instance refused = NULL;
    CHECK(p->init(&config, &fake_host, &refused, &message) == MOLT_ERR_INVALID_ARGUMENT && strstr(text, "maxMessageBytes"));
    p->destroy(in);
}

/* destroy while a subscription is live and a deliver may be running: joins the thread promptly. */
static void test_destroy_with_live_subscription(const plugin *p) {
    molt_instance in = start(p, "1048576", "10000", "50");
    sink_state *s = sink_new(p, in);
    s->ack_inline = true;
    CHECK(subscribe(p, in, "d", 4, s) == MOLT_OK);
    for (int i = 0; i < 200; i++) publish(p, in, "d", "x");
    sink_state *idle = sink_new(p, in);
    CHECK(subscribe(p, in, "idle", 4, idle) == MOLT_OK);
    publish(p, in, "idle", "held");
    CHECK(wait_for(idle, 1, 2000));
    int64_t before = now_ms();
    p->destroy(in);
    CHECK(now_ms() - before < 500);
    sink_free(s);
    sink_free(idle);
}

/* A malformed state is refused with a message, and the instance is left as it was. */
static void test_malformed_import(const plugin *p) {
    molt_instance source = start(p, "1048576", "10000", "1000");
    publish(p, source, "a", "payload");
    buffer good = export_state(p, source, 1);
    p->destroy(source);

    molt_instance in = start(p, "1048576", "10000", "1000");
    char text[256];
    CHECK(import_state(p, in, 1, "XXXX", 4, text, sizeof text) == MOLT_ERR_INVALID_ARGUMENT && text[0] != '\0');
    uint8_t *copy = malloc(good.length + 1);
    memcpy(copy, good.bytes, good.length);
    memcpy(copy, "MPS9", 4);
    CHECK(import_state(p, in, 1, copy, good.length, text, sizeof text) == MOLT_ERR_INVALID_ARGUMENT &&
          strstr(text, "magic"));
    memcpy(copy, good.bytes, good.length);
    CHECK(import_state(p, in, 1, copy, good.length - 3, text, sizeof text) == MOLT_ERR_INVALID_ARGUMENT &&
          strstr(text, "message 0") && strstr(text, "truncated"));
    printf("  truncated: %s\n", text);
    copy[good.length] = 0;
    CHECK(import_state(p, in, 1, copy, good.length + 1, text, sizeof text) == MOLT_ERR_INVALID_ARGUMENT &&
          strstr(text, "unexpected bytes"));
    copy[4] = 200; /* count */
    CHECK(import_state(p, in, 1, copy, good.length, text, sizeof text) == MOLT_ERR_INVALID_ARGUMENT &&
          strstr(text, "claims"));
    memcpy(copy, good.bytes, good.length);
    copy[12] = 0; /* topic length 0 */
    CHECK(import_state(p, in, 1, copy, good.length, text, sizeof text) == MOLT_ERR_INVALID_ARGUMENT);
    CHECK(import_state(p, in, 7, good.bytes, good.length, text, sizeof text) == MOLT_ERR_UNSUPPORTED);
    CHECK(held(p, in) == 0);
    CHECK(import_state(p, in, 1, good.bytes, good.length, text, sizeof text) == MOLT_OK);
    CHECK(held(p, in) == 1);
    free(copy);
    free(good.bytes);
    p->destroy(in);
}

/* A swap from `from` to `to`: queued and unanswered messages of two topics, exported in format 1 while
 * a subscription is live (as the delivery thread may still run), imported into `to`: all delivered in
 * order, with content type and metadata, none lost. */
static void test_transfer(const plugin *from, const plugin *to) {
    printf("  transfer %s -> %s\n", from->info->version, to->info->version);
    molt_instance old = start(from, "1048576", "10000", "1000");
    for (int i = 0; i < 6; i++) publish(from, old, "orders", (char[]){'o', (char)('0' + i), 0});
    for (int i = 0; i < 3; i++) publish(from, old, "audit", (char[]){'a', (char)('0' + i), 0});
    sink_state *s = sink_new(from, old);
    CHECK(subscribe(from, old, "orders", 2, s) == MOLT_OK);
    CHECK(wait_for(s, 2, 2000));
    sink_ack(s, 0, MOLT_PUBSUB_ACK); /* o0 processed; o1 unanswered; o2 in flight soon */
    CHECK(wait_for(s, 3, 2000));
    buffer state = export_state(from, old, 1);
    from->destroy(old); /* with the subscription live */
    sink_free(s);

    molt_instance in = start(to, "1048576", "10000", "1000");
    char text[256];
    CHECK(import_state(to, in, 1, state.bytes, state.length, text, sizeof text) == MOLT_OK);
    free(state.bytes);
    CHECK(held(to, in) == 8);
    sink_state *orders = sink_new(to, in), *audit = sink_new(to, in);
    orders->ack_inline = audit->ack_inline = true;
    CHECK(subscribe(to, in, "orders", 4, orders) == MOLT_OK);
    CHECK(subscribe(to, in, "audit", 4, audit) == MOLT_OK);
    CHECK(wait_for(orders, 5, 2000) && wait_for(audit, 3, 2000));
    for (int i = 0; i < 5; i++) CHECK(data_is(orders, i, (char[]){'o', (char)('1' + i), 0}));
    for (int i = 0; i < 3; i++) CHECK(data_is(audit, i, (char[]){'a', (char)('0' + i), 0}));
    CHECK(strcmp(orders->records[0].content_type, "text/plain") == 0 &&
          strcmp(orders->records[0].metadata0, "ttlInSeconds=60") == 0 && orders->records[0].metadata_count == 2);
    sleep_ms(20);
    CHECK(held(to, in) == 0);
    to->destroy(in);
    sink_free(orders);
    sink_free(audit);
}

/* Format 2 (1.1.0 between 1.1.0s): a message answered RETRY keeps what is left of its delay. */
static void test_format2_keeps_retry_delay(const plugin *p) {
    molt_instance old = start(p, "1048576", "10000", "400");
    publish(p, old, "f", "later");
    publish(p, old, "f", "now");
    sink_state *s = sink_new(p, old);
    CHECK(subscribe(p, old, "f", 1, s) == MOLT_OK);
    CHECK(wait_for(s, 1, 2000));
    int64_t retried_at = now_ms();
    sink_ack(s, 0, MOLT_PUBSUB_RETRY);
    CHECK(wait_for(s, 2, 2000) && data_is(s, 1, "now"));
    unsubscribe(s); /* "now" unanswered: back in the queue */
    buffer state = export_state(p, old, 2);
    p->destroy(old);
    sink_free(s);

    molt_instance in = start(p, "1048576", "10000", "400");
    char text[256];
    CHECK(import_state(p, in, 2, state.bytes, state.length, text, sizeof text) == MOLT_OK);
    free(state.bytes);
    s = sink_new(p, in);
    s->ack_inline = true;
    CHECK(subscribe(p, in, "f", 4, s) == MOLT_OK);
    CHECK(wait_for(s, 1, 2000) && data_is(s, 0, "now"));
    sleep_ms(100);
    if (now_ms() - retried_at < 350) CHECK(sink_count(s) == 1);
    CHECK(wait_for(s, 2, 2000) && data_is(s, 1, "later"));
    CHECK(now_ms() - retried_at >= 390);
    p->destroy(in);
    sink_free(s);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s in-memory-pubsub-1.0.0.so in-memory-pubsub-1.1.0.so\n", argv[0]);
        return 2;
    }
    plugin v1_0 = load(argv[1]), v1_1 = load(argv[2]);
    CHECK(strcmp(v1_0.info->version, "1.0.0") == 0 && v1_0.info->state_format_max == 1);
    CHECK(strcmp(v1_1.info->version, "1.1.0") == 0 && v1_1.info->state_format_max == 2);
    const plugin *both[] = {&v1_0, &v1_1};
    for (int i = 0; i < 2; i++) {
        const plugin *p = both[i];
        printf("%s %s\n", p->info->name, p->info->version);
        test_order_and_queued_before_subscribe(p);
        test_window(p);
        test_refused_then_acks_resume(p);
        test_retry_drop_ack(p);
        test_unsubscribe_requeues(p);
        test_limits(p);
        test_destroy_with_live_subscription(p);
        test_malformed_import(p);
    }
    test_transfer(&v1_0, &v1_1);
    test_transfer(&v1_1, &v1_0);
    test_format2_keeps_retry_delay(&v1_1);
    /* 1.0.0 knows only format 1. */
    molt_instance in = start(&v1_0, "1048576", "10000", "1000");
    char text[256];
    CHECK(import_state(&v1_0, in, 2, "MPS2", 4, text, sizeof text) == MOLT_ERR_UNSUPPORTED && strstr(text, "1..1"));
    v1_0.destroy(in);
    dlclose(v1_0.handle);
    dlclose(v1_1.handle);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("in-memory-pubsub: all tests passed\n");
    return 0;
}
