/*
 * watch_stream.c: one thread per instance that keeps the cache current with an etcd Watch of the prefix.
 *
 * Request (POST /v3/watch, a streaming answer): {"create_request": {"key": <b64>, "range_end": <b64>,
 * "start_revision": "<revision + 1>", "progress_notify": true}}. The answer is newline-delimited JSON,
 * one WatchResponse per line, each wrapped as {"result": {...}} (or {"error": {...}} when the gateway
 * fails):
 *   {"header": {"revision": "9"}, "created": true}                  the watch is established
 *   {"header": ..., "events": [{"kv": {...}}, {"type": "DELETE", "kv": {...}}]}
 *                                                                    PUT is the zero value: no "type"
 *   {"header": ..., "canceled": true, "compact_revision": "7"}      start_revision was compacted away
 *   {"header": {"revision": "12"}}                                   a progress notification
 *
 * States, in one loop (ec_watcher_main):
 *   resync   a full Range (etcd_range.c), swapped in whole, then changed(NULL). Entered when etcd
 *            reports our revision compacted, or when a re-established watch finds the store's revision
 *            below ours (etcd restored from an older snapshot or a wiped data dir).
 *   watch    the stream from `revision + 1`. Each response's events are applied under the write lock as
 *            one batch; `revision` becomes the highest mod_revision seen (or a progress notification's
 *            header revision); changed(name) follows, unlocked, for each key the batch changed.
 *   backoff  the stream ended or failed: wait (100 ms, doubling to 5 s; reset once a watch is
 *            established), move to the next endpoint, and watch again from `revision + 1`, so no event is
 *            lost or applied twice. The cache keeps serving meanwhile.
 * destroy stops it through ec_http_stop, which interrupts a transfer or a backoff at once.
 *
 * Logs: the first failure after a working watch is a WARNING, repeats are DEBUG, recovery is INFO. They
 * name endpoints, keys and revisions, never values.
 */
#include "etcd_config.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One watch stream's state, owned by ec_watch_once's frame and filled by the sink (same thread). */
typedef struct ec_stream {
    ec_instance *in;
    char *line;              /* the bytes of the line not yet complete */
    size_t length, capacity;
    bool established;        /* a "created" response arrived */
    bool resync;             /* end the stream and read everything again */
    bool after_failure;      /* the stream before this one failed: log when this one is established */
    char why[512];           /* set when the stream ends in failure */
} ec_stream;

/* Names changed by one batch, reported after the lock is released. */
typedef struct ec_names {
    char **names;
    size_t count, capacity;
} ec_names;

static void ec_names_add(ec_names *n, char *name) {
    if (n->count == n->capacity) {
        size_t capacity = n->capacity ? n->capacity * 2 : 8;
        char **grown = realloc(n->names, capacity * sizeof *grown);
        if (grown == NULL) { free(name); return; } /* not reported by name: the host still polls */
        n->names = grown;
        n->capacity = capacity;
    }
    n->names[n->count++] = name;
}

/* Applies one response's events as a batch; the names it changed go to `changed` (taking ownership). */
static void ec_apply_events(ec_stream *st, const json_t *events, ec_names *changed) {
    ec_instance *in = st->in;
    int64_t highest = in->revision;
    pthread_rwlock_wrlock(&in->table_lock);
    for (size_t i = 0; i < json_array_size(events); i++) {
        const json_t *event = json_array_get(events, i);
        const char *type = json_string_value(json_object_get(event, "type"));
        bool deleted = type != NULL && strcmp(type, "DELETE") == 0;
        char *name, *value, why[512];
        int64_t mod_revision;
        bool usable = ec_kv_decode(in, json_object_get(event, "kv"), &name, &value, &mod_revision, why, sizeof why);
        if (!usable && !deleted) molt_log(in->host, MOLT_LOG_WARNING, EC_NAME ": left out of the cache: %s", why);
        bool did = false;
        if (name != NULL && (deleted || !usable)) {
            did = ec_table_delete(&in->table, name);
        } else if (usable && !(did = ec_table_put(&in->table, name, value, mod_revision))) {
            st->resync = true; /* memory is short: the cache misses this write, so read it all again */
            snprintf(st->why, sizeof st->why, "out of memory applying an event");
        }
        if (mod_revision > highest) highest = mod_revision;
        if (did) ec_names_add(changed, name);
        else free(name);
        free(value);
    }
    in->revision = highest;
    pthread_rwlock_unlock(&in->table_lock);
}

/* Handles one line of the stream; false ends the stream. */
static bool ec_handle_line(ec_stream *st, const char *text, size_t length) {
    ec_instance *in = st->in;
    json_error_t error;
    json_t *root = json_loadb(text, length, 0, &error);
    const json_t *result = json_object_get(root, "result");
    bool go_on = false;
    int64_t header_revision = 0, compact_revision = 0;
    if (result == NULL || !ec_json_int64(json_object_get(result, "header"), "revision", &header_revision) ||
        !ec_json_int64(result, "compact_revision", &compact_revision)) {
        const char *message = json_string_value(json_object_get(json_object_get(root, "error"), "message"));
        snprintf(st->why, sizeof st->why, "etcd's watch answered %s",
                 message ? message : "something that is not a WatchResponse");
    } else if (json_is_true(json_object_get(result, "canceled"))) {
        const char *reason = json_string_value(json_object_get(result, "cancel_reason"));
        if (compact_revision > 0) {
            molt_log(in->host, MOLT_LOG_WARNING, EC_NAME ": revision %" PRId64 " was compacted (etcd keeps %" PRId64
                     " and later): reading every key under the prefix again", in->revision + 1, compact_revision);
            st->resync = true;
        } else {
            snprintf(st->why, sizeof st->why, "etcd canceled the watch%s%s", reason ? ": " : "", reason ? reason : "");
        }
    } else if (json_is_true(json_object_get(result, "created"))) {
        st->established = go_on = true;
        if (header_revision > 0 && header_revision < in->revision) {
            molt_log(in->host, MOLT_LOG_WARNING, EC_NAME ": etcd's revision %" PRId64 " is below the %" PRId64
                     " already seen (restored or replaced?): reading every key under the prefix again",
                     header_revision, in->revision);
            st->resync = true;
            go_on = false;
        } else if (st->after_failure) {
            molt_log(in->host, MOLT_LOG_INFO, EC_NAME ": watching %s again, from revision %" PRId64,
                     in->settings.endpoints[in->endpoint], in->revision + 1);
        }
    } else {
        const json_t *events = json_object_get(result, "events");
        ec_names changed = {0};
        if (json_array_size(events) > 0) ec_apply_events(st, events, &changed);
        else if (header_revision > in->revision) in->revision = header_revision; /* progress notification */
        for (size_t i = 0; i < changed.count; i++) {
            ec_report_change(in, changed.names[i]);
            free(changed.names[i]);
        }
        free(changed.names);
        go_on = !st->resync;
    }
    json_decref(root);
    return go_on;
}

/* The stream's sink: splits the body into lines and handles each complete one. */
static bool ec_stream_sink(void *context, const char *bytes, size_t length) {
    ec_stream *st = context;
    if (st->length + length > EC_MAX_RESPONSE_BYTES) {
        snprintf(st->why, sizeof st->why, "a watch response is over %u MiB", EC_MAX_RESPONSE_BYTES >> 20);
        return false;
    }
    if (st->length + length > st->capacity) {
        size_t capacity = st->capacity ? st->capacity : 4096;
        while (capacity < st->length + length) capacity *= 2;
        char *grown = realloc(st->line, capacity);
        if (grown == NULL) {
            snprintf(st->why, sizeof st->why, "out of memory reading the watch");
            return false;
        }
        st->line = grown;
        st->capacity = capacity;
    }
    memcpy(st->line + st->length, bytes, length);
    st->length += length;
    size_t start = 0;
    for (size_t i = st->length - length; i < st->length; i++) {
        if (st->line[i] != '\n') continue;
        size_t n = i - start;
        bool go_on = n == 0 || ec_handle_line(st, st->line + start, n);
        start = i + 1;
        if (!go_on) return false;
    }
    memmove(st->line, st->line + start, st->length - start);
    st->length -= start;
    return true;
}

/* One watch stream from `revision + 1` on the current endpoint, until it ends. */
static ec_http_outcome ec_watch_once(ec_instance *in, ec_stream *st) {
    const ec_settings *s = &in->settings;
    size_t size = strlen(s->range_key_b64) + strlen(s->range_end_b64) + 160;
    char *body = malloc(size);
    if (body == NULL) {
        snprintf(st->why, sizeof st->why, "out of memory");
        return EC_HTTP_FAILED;
    }
    snprintf(body, size, "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\",\"start_revision\":\"%" PRId64
             "\",\"progress_notify\":true}}", s->range_key_b64, s->range_end_b64, in->revision + 1);
    char why[512] = "";
    ec_http_outcome outcome = ec_http_post(in, s->endpoints[in->endpoint], "/v3/watch", body, 0, ec_stream_sink, st,
                                           why, sizeof why);
    free(body);
    free(st->line);
    st->line = NULL;
    st->length = st->capacity = 0;
    if (outcome == EC_HTTP_FAILED) snprintf(st->why, sizeof st->why, "%s", why);
    else if (outcome == EC_HTTP_DONE && !st->resync && st->why[0] == '\0')
        snprintf(st->why, sizeof st->why, "etcd ended the watch");
    return outcome;
}

/* A full Range swapped in whole; false when stopped. Retries with backoff until it succeeds. */
static bool ec_resync(ec_instance *in, uint32_t *backoff) {
    for (bool warned = false;;) {
        ec_table fresh = {0};
        int64_t revision = 0;
        char why[2048];
        ec_http_outcome outcome = ec_range(in, &in->endpoint, in->settings.dial_timeout_ms, &fresh, &revision, why,
                                           sizeof why);
        if (outcome == EC_HTTP_STOPPED) return false;
        if (outcome == EC_HTTP_DONE) {
            pthread_rwlock_wrlock(&in->table_lock);
            ec_table old = in->table;
            in->table = fresh;
            in->revision = revision;
            size_t count = fresh.count;
            pthread_rwlock_unlock(&in->table_lock);
            ec_table_clear(&old);
            molt_log(in->host, MOLT_LOG_INFO, EC_NAME ": read %zu items at revision %" PRId64, count, revision);
            ec_report_change(in, NULL);
            return true;
        }
        molt_log(in->host, warned ? MOLT_LOG_DEBUG : MOLT_LOG_WARNING, EC_NAME ": reading every key again failed "
                 "(%s); retrying in %u ms, serving the items read before", why, *backoff);
        warned = true;
        if (!ec_http_sleep(in, *backoff)) return false;
        *backoff = *backoff * 2 > EC_BACKOFF_MAX_MS ? EC_BACKOFF_MAX_MS : *backoff * 2;
    }
}

static void *ec_watcher_main(void *arg) {
    ec_instance *in = arg;
    uint32_t backoff = EC_BACKOFF_FIRST_MS;
    bool resync = false, failing = false;
    for (;;) {
        if (resync && !ec_resync(in, &backoff)) return NULL;
        ec_stream st = {.in = in, .after_failure = failing};
        ec_http_outcome outcome = ec_watch_once(in, &st);
        if (outcome == EC_HTTP_STOPPED || atomic_load(&in->stopping)) return NULL;
        resync = st.resync;
        if (st.established) {
            backoff = EC_BACKOFF_FIRST_MS;
            failing = false;
        }
        if (resync) continue;
        molt_log(in->host, failing ? MOLT_LOG_DEBUG : MOLT_LOG_WARNING, EC_NAME ": the watch of %s stopped (%s); "
                 "retrying in %u ms from revision %" PRId64 ", serving the items read before",
                 in->settings.endpoints[in->endpoint], st.why, backoff, in->revision + 1);
        failing = true;
        in->endpoint = (in->endpoint + 1) % in->settings.endpoint_count;
        if (!ec_http_sleep(in, backoff)) return NULL;
        backoff = backoff * 2 > EC_BACKOFF_MAX_MS ? EC_BACKOFF_MAX_MS : backoff * 2;
    }
}

bool ec_watcher_start(ec_instance *in, char *why, size_t why_size) {
    int rc = pthread_create(&in->watcher, NULL, ec_watcher_main, in);
    if (rc != 0) {
        snprintf(why, why_size, "cannot start the watch thread: %s", strerror(rc));
        return false;
    }
    return true;
}

void ec_watcher_stop(ec_instance *in) {
    ec_http_stop(in);
    pthread_join(in->watcher, NULL);
}
