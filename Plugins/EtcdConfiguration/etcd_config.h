/*
 * etcd_config.h: what the etcd-config plugin's files share (not part of any ABI: every name here is
 * hidden by -fvisibility=hidden, only MOLT_EXPORT functions leave the library).
 *
 *   settings.c      the component's metadata -> ec_settings (endpoints, prefix and its key range, dialTimeout)
 *   base64.c        etcd's JSON gateway carries keys and values as base64
 *   config_table.c  the cache: items sorted by name, each with its value and etcd mod_revision
 *   etcd_http.c     POSTs to the gateway through the instance's curl multi handle, stoppable at any moment
 *   etcd_range.c    a full Range of the prefix -> a new table and the revision it was read at
 *   watch_stream.c  the thread that watches the prefix, applies events and reports changed keys
 *   etcd_config.c   identity, config keys, lifecycle, molt_configuration_get
 *
 * Values never appear in a message or a log line: messages name endpoints, keys and revisions only.
 */
#ifndef ETCD_CONFIG_H
#define ETCD_CONFIG_H

#include "molt_plugin.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EC_NAME "etcd-config"
#define EC_MAX_ENDPOINTS 16
#define EC_MAX_RESPONSE_BYTES (64u << 20) /* a Range answer or one watch line beyond this is refused */
#define EC_BACKOFF_FIRST_MS 100
#define EC_BACKOFF_MAX_MS 5000

/* ---- settings.c ---------------------------------------------------------------------------- */

/* The component's metadata, parsed. Owned by the struct (ec_settings_free). Immutable once init
 * returns: the watcher reads it without a lock. */
typedef struct ec_settings {
    char *endpoints[EC_MAX_ENDPOINTS]; /* base URLs, "http://host:port" (a scheme given is kept) */
    uint32_t endpoint_count;           /* >= 1 */
    char *endpoints_text;              /* as configured, for messages */
    char *prefix;                      /* keyPrefix, may be "" */
    size_t prefix_length;
    char *range_key_b64;               /* the Range/Watch bounds of the prefix, base64 */
    char *range_end_b64;
    uint32_t dial_timeout_ms;          /* > 0 */
    char *dial_timeout_text;           /* as configured, for messages */
} ec_settings;

/* false with `why` naming the key when the metadata is invalid; nothing is left allocated then. */
bool ec_settings_parse(const molt_config *config, ec_settings *out, char *why, size_t why_size);
void ec_settings_free(ec_settings *settings);

/* ---- base64.c ------------------------------------------------------------------------------ */

/* malloc()ed, NUL-terminated; NULL when memory is short. */
char *ec_base64_encode(const uint8_t *bytes, size_t length);
/* Decodes standard base64 (padding optional) into a malloc()ed buffer with a NUL after the `*length_out`
 * bytes; NULL when `text` is not base64 or memory is short. */
char *ec_base64_decode(const char *text, size_t *length_out);

/* ---- config_table.c ------------------------------------------------------------------------ */

/* One cached item. `name` is the etcd key without keyPrefix. Strings owned by the table. */
typedef struct ec_item {
    char *name;
    char *value;
    char version[24];      /* mod_revision as decimal text */
    int64_t mod_revision;
} ec_item;

/* Items sorted by name (strcmp), names unique. Not locked itself: see ec_instance.table_lock. */
typedef struct ec_table {
    ec_item *items;
    size_t count;
    size_t capacity;
} ec_table;

/* The index of `name`, or -1. */
ptrdiff_t ec_table_find(const ec_table *table, const char *name);
/* Inserts or replaces `name` (copies both strings); false when memory is short (table unchanged). */
bool ec_table_put(ec_table *table, const char *name, const char *value, int64_t mod_revision);
/* Removes `name`; false when it was not there. */
bool ec_table_delete(ec_table *table, const char *name);
/* Frees the items and the array; the struct is empty afterwards. */
void ec_table_clear(ec_table *table);

/* ---- etcd_http.c --------------------------------------------------------------------------- */

typedef enum ec_http_outcome {
    EC_HTTP_DONE,    /* the server answered 200 and ended the response (or the sink ended it) */
    EC_HTTP_FAILED,  /* connecting, a timeout, an HTTP status other than 200, an I/O error: `why` says which */
    EC_HTTP_STOPPED, /* destroy asked the instance to stop */
} ec_http_outcome;

/* Receives the body of a 200 response as it arrives, on the thread that called ec_http_post. Returns
 * false to end the transfer early: ec_http_post then answers EC_HTTP_DONE, and the sink's context says
 * whether that was a failure. */
typedef bool (*ec_http_sink)(void *context, const char *bytes, size_t length);

struct ec_instance;
/* The curl multi handle and its wake-up. Failures write `why`. */
bool ec_http_open(struct ec_instance *in, char *why, size_t why_size);
void ec_http_close(struct ec_instance *in);
/* POSTs `body` (JSON) to endpoint `base` + `path`. timeout_ms 0: no overall limit (a watch); connecting
 * is always bounded by dialTimeout. Blocks the calling thread (init's, or the watcher's) until the
 * response ends, it fails, or ec_http_stop is called. One transfer at a time per instance. */
ec_http_outcome ec_http_post(struct ec_instance *in, const char *base, const char *path, const char *body,
                             uint32_t timeout_ms, ec_http_sink sink, void *sink_context, char *why, size_t why_size);
/* Waits `ms` unless stopped first; false when stopped. */
bool ec_http_sleep(struct ec_instance *in, uint32_t ms);
/* Any thread: makes every current and later ec_http_post/ec_http_sleep return EC_HTTP_STOPPED promptly. */
void ec_http_stop(struct ec_instance *in);

/* ---- etcd_range.c -------------------------------------------------------------------------- */

/* A full Range of the prefix, trying the endpoints in turn from `*endpoint` (left at the one that
 * answered), all within `budget_ms`. On success `*out` is a new table (the caller owns it) and
 * `*revision` the store revision it was read at. `why` names every endpoint tried and its error. */
ec_http_outcome ec_range(struct ec_instance *in, uint32_t *endpoint, uint32_t budget_ms, ec_table *out,
                         int64_t *revision, char *why, size_t why_size);

struct json_t;
/* Decodes an etcd mvccpb.KeyValue of the gateway's JSON ({"key", "value", "mod_revision", ...}; absent
 * fields are zero). false with `why` (naming the key, never the value) when it is malformed, lies outside
 * the prefix, is the prefix itself, or is not a NUL-free UTF-8 string. `*name` and `*value` are
 * malloc()ed; `*name` is the key without the prefix. When only the value is unusable, false leaves `*name`
 * set (the caller frees it), so that the key's cached item can be dropped; otherwise both are NULL. */
bool ec_kv_decode(const struct ec_instance *in, const struct json_t *kv, char **name, char **value,
                  int64_t *mod_revision, char *why, size_t why_size);
/* Reads an int64 the gateway wrote as a JSON string (or a number); absent: 0. false when malformed. */
bool ec_json_int64(const struct json_t *object, const char *field, int64_t *out);

/* ---- watch_stream.c ------------------------------------------------------------------------ */

bool ec_watcher_start(struct ec_instance *in, char *why, size_t why_size);
/* Stops the watch (ec_http_stop) and joins the thread. */
void ec_watcher_stop(struct ec_instance *in);

/* ---- the instance (etcd_config.c) ---------------------------------------------------------- */

/* One per component generation; no globals. */
typedef struct ec_instance {
    const molt_host_services *host; /* host-owned, valid until destroy returns */
    ec_settings settings;           /* immutable after init */

    /* The cache. Operations hold it for reading while they answer (done is called under it); the
     * watcher holds it for writing only to apply a batch of events or swap in a resynced table. */
    pthread_rwlock_t table_lock;
    ec_table table;

    /* Watcher-thread state: written by init before the thread starts, then by the thread only. */
    int64_t revision;           /* the last store revision the cache reflects */
    uint32_t endpoint;          /* the endpoint that answered last */

    /* etcd_http.c: the curl multi handle (void * keeps curl.h out of this header), used by init and then
     * by the watcher thread only; curl_multi_wakeup from destroy is its one concurrent use. */
    void *multi;
    atomic_bool stopping;

    pthread_t watcher;
} ec_instance;

/* Tells the host that `name` changed (NULL: anything may have), when it offers `changed` (ABI 1.3). Not
 * from init or destroy. */
void ec_report_change(const ec_instance *in, const char *name);

#endif /* ETCD_CONFIG_H */
