/*
 * etcd_http.c: POSTs to etcd's JSON gateway (HTTP/1.1, libcurl) that destroy can interrupt at any moment.
 *
 * Each instance has one curl multi handle. A transfer is driven on the calling thread (init's first
 * Range, then the watcher's Ranges and Watches; never an operation's thread) by curl_multi_perform and
 * curl_multi_poll, which sleeps until there is I/O, a curl timer, or curl_multi_wakeup. ec_http_stop
 * sets `stopping` and calls curl_multi_wakeup (the one call libcurl allows from another thread), so a
 * transfer or a backoff sleep in progress returns within one poll, and every later one at once. The
 * multi handle keeps idle connections, so Ranges after the first reuse them.
 *
 * Per transfer: connecting bounded by dialTimeout, TCP keepalive (a Watch is silent for as long as
 * nothing changes, so a peer that vanished without a FIN/RST is found by keepalive probes: ~10 s idle,
 * then every 5 s), no signals (CURLOPT_NOSIGNAL: the host is multithreaded), no proxies from the
 * environment, no redirects. A status other than 200 fails the transfer with the status and the first
 * bytes of etcd's error body (which names the problem, never a value: our requests carry none).
 */
#include "etcd_config.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

bool ec_http_open(ec_instance *in, char *why, size_t why_size) {
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT); /* reference-counted; thread-safe since 7.84 */
    if (rc != CURLE_OK) {
        snprintf(why, why_size, "cannot initialize libcurl: %s", curl_easy_strerror(rc));
        return false;
    }
    in->multi = curl_multi_init();
    if (in->multi == NULL) {
        curl_global_cleanup();
        snprintf(why, why_size, "cannot create a curl multi handle");
        return false;
    }
    atomic_init(&in->stopping, false);
    return true;
}

void ec_http_close(ec_instance *in) {
    curl_multi_cleanup(in->multi);
    in->multi = NULL;
    curl_global_cleanup();
}

void ec_http_stop(ec_instance *in) {
    atomic_store(&in->stopping, true);
    curl_multi_wakeup(in->multi);
}

static uint64_t ec_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool ec_http_sleep(ec_instance *in, uint32_t ms) {
    uint64_t deadline = ec_now_ms() + ms;
    for (;;) {
        if (atomic_load(&in->stopping)) return false;
        uint64_t now = ec_now_ms();
        if (now >= deadline) return true;
        curl_multi_poll(in->multi, NULL, 0, (int)(deadline - now), NULL);
    }
}

/* One transfer's state, owned by ec_http_post's frame. */
typedef struct ec_transfer {
    CURL *easy;
    ec_http_sink sink;
    void *sink_context;
    long status;             /* the HTTP status, once the first body bytes arrive; 0 before */
    bool sink_ended;
    char error_body[200];    /* the first bytes of a non-200 body */
    size_t error_length;
} ec_transfer;

static size_t ec_write(char *bytes, size_t size, size_t count, void *context) {
    ec_transfer *t = context;
    size_t length = size * count;
    if (t->status == 0) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
    if (t->status != 200) {
        size_t room = sizeof t->error_body - 1 - t->error_length;
        size_t n = length < room ? length : room;
        memcpy(t->error_body + t->error_length, bytes, n);
        t->error_length += n;
        t->error_body[t->error_length] = '\0';
        return length;
    }
    if (!t->sink(t->sink_context, bytes, length)) {
        t->sink_ended = true;
        return 0; /* ends the transfer (CURLE_WRITE_ERROR) */
    }
    return length;
}

/* Error body text for a message: newlines flattened. */
static void ec_flatten(char *text) {
    for (char *p = text; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

ec_http_outcome ec_http_post(ec_instance *in, const char *base, const char *path, const char *body,
                             uint32_t timeout_ms, ec_http_sink sink, void *sink_context, char *why, size_t why_size) {
    char url[512], curl_error[CURL_ERROR_SIZE] = "";
    snprintf(url, sizeof url, "%s%s", base, path);
    ec_transfer t = {.sink = sink, .sink_context = sink_context};
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *more = headers ? curl_slist_append(headers, "Expect:") : NULL;
    t.easy = curl_easy_init();
    if (t.easy == NULL || more == NULL) {
        curl_slist_free_all(headers);
        if (t.easy) curl_easy_cleanup(t.easy);
        snprintf(why, why_size, "out of memory");
        return EC_HTTP_FAILED;
    }
    headers = more;
    CURL *e = t.easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body); /* not copied: `body` outlives the transfer */
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)in->settings.dial_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 10L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 5L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, ec_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, curl_error);

    ec_http_outcome outcome = EC_HTTP_FAILED;
    CURLcode result = CURLE_OK;
    bool finished = false;
    CURLMcode mc = curl_multi_add_handle(in->multi, e);
    if (mc != CURLM_OK) {
        snprintf(why, why_size, "cannot start a transfer: %s", curl_multi_strerror(mc));
        goto done;
    }
    while (!finished) {
        if (atomic_load(&in->stopping)) break;
        int running = 0;
        mc = curl_multi_perform(in->multi, &running);
        CURLMsg *message;
        int left;
        while ((message = curl_multi_info_read(in->multi, &left)) != NULL)
            if (message->msg == CURLMSG_DONE && message->easy_handle == e) {
                result = message->data.result;
                finished = true;
            }
        if (!finished && mc == CURLM_OK) mc = curl_multi_poll(in->multi, NULL, 0, 1000, NULL);
        if (mc != CURLM_OK) {
            snprintf(why, why_size, "curl: %s", curl_multi_strerror(mc));
            break;
        }
    }
    curl_multi_remove_handle(in->multi, e);
    if (!finished) {
        if (atomic_load(&in->stopping)) outcome = EC_HTTP_STOPPED;
    } else if (t.sink_ended) {
        outcome = EC_HTTP_DONE;
    } else if (t.status == 0) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &t.status);
    }
    if (finished && !t.sink_ended) {
        if (result != CURLE_OK) {
            snprintf(why, why_size, "%s", curl_error[0] ? curl_error : curl_easy_strerror(result));
        } else if (t.status != 200) {
            ec_flatten(t.error_body);
            snprintf(why, why_size, "HTTP status %ld from %s%s", t.status, path, t.error_length ? ": " : "");
            size_t used = strlen(why);
            if (t.error_length) snprintf(why + used, why_size - used, "%s", t.error_body);
        } else {
            outcome = EC_HTTP_DONE;
        }
    }
done:
    curl_easy_cleanup(e);
    curl_slist_free_all(headers);
    return outcome;
}
