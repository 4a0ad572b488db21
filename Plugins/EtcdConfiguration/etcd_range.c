/*
 * etcd_range.c: a full Range of keyPrefix through the gateway, and the decoding of etcd's KeyValue JSON
 * that the watcher shares.
 *
 * Request (POST /v3/kv/range): {"key": <prefix, base64>, "range_end": <prefix + 1, base64>}.
 * Answer: {"header": {"revision": "12", ...}, "kvs": [{"key": <b64>, "value": <b64>, "mod_revision": "5",
 * "create_revision": ..., "version": ...}, ...], "count": "2"}. The gateway writes int64s as JSON strings
 * and leaves out every zero field: no "kvs" when nothing matches, no "value" for an empty value.
 *
 * A key the cache cannot serve (a value with a NUL byte or invalid UTF-8: the ABI's strings are
 * NUL-terminated UTF-8; the key equal to the prefix itself, whose name would be empty) is left out with a
 * WARNING naming it; the others are served.
 */
#include "etcd_config.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool ec_json_int64(const json_t *object, const char *field, int64_t *out) {
    const json_t *v = json_object_get(object, field);
    *out = 0;
    if (v == NULL) return true;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (!json_is_string(v)) return false;
    const char *text = json_string_value(v);
    char *end;
    long long n = strtoll(text, &end, 10);
    if (end == text || *end != '\0') return false;
    *out = n;
    return true;
}

/* Well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF), of exactly `length` bytes, no NUL. */
static bool ec_utf8_text(const char *text, size_t length) {
    const unsigned char *p = (const unsigned char *)text, *end = p + length;
    while (p < end) {
        unsigned c = *p++;
        if (c == 0) return false;
        if (c < 0x80) continue;
        int more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 ? 1 : -1;
        if (more < 0 || c > 0xf4 || end - p < more) return false;
        uint32_t code = c & (0x3f >> more);
        for (int i = 0; i < more; i++) {
            if ((p[i] & 0xc0) != 0x80) return false;
            code = code << 6 | (p[i] & 0x3f);
        }
        if ((more == 2 && (code < 0x800 || (code >= 0xd800 && code <= 0xdfff))) ||
            (more == 3 && (code < 0x10000 || code > 0x10ffff)))
            return false;
        p += more;
    }
    return true;
}

bool ec_kv_decode(const ec_instance *in, const json_t *kv, char **name, char **value, int64_t *mod_revision,
                  char *why, size_t why_size) {
    const ec_settings *s = &in->settings;
    const char *key_b64 = json_string_value(json_object_get(kv, "key"));
    const json_t *value_json = json_object_get(kv, "value");
    const char *value_b64 = value_json ? json_string_value(value_json) : "";
    size_t key_length = 0, value_length = 0;
    char *key = key_b64 ? ec_base64_decode(key_b64, &key_length) : NULL;
    *name = *value = NULL;
    *mod_revision = 0;
    if (key == NULL || value_b64 == NULL || !ec_json_int64(kv, "mod_revision", mod_revision)) {
        snprintf(why, why_size, "etcd sent a malformed key-value (key, value or mod_revision)");
    } else if (key_length < s->prefix_length || memcmp(key, s->prefix, s->prefix_length) != 0) {
        snprintf(why, why_size, "etcd sent a key outside keyPrefix \"%s\"", s->prefix);
    } else if (key_length == s->prefix_length) {
        snprintf(why, why_size, "the key \"%s\" equal to keyPrefix is not an item (its name would be empty)", s->prefix);
    } else if (!ec_utf8_text(key, key_length)) {
        snprintf(why, why_size, "a key under keyPrefix \"%s\" is not UTF-8 text without NUL bytes", s->prefix);
    } else if ((*name = strdup(key + s->prefix_length)) == NULL) {
        snprintf(why, why_size, "out of memory");
    } else if ((*value = ec_base64_decode(value_b64, &value_length)) == NULL) {
        snprintf(why, why_size, "etcd sent a malformed value for key \"%s\"", key);
    } else if (!ec_utf8_text(*value, value_length)) {
        snprintf(why, why_size, "the value of key \"%s\" is not UTF-8 text without NUL bytes", key);
    } else {
        free(key);
        return true;
    }
    free(key);
    free(*value);
    *value = NULL;
    return false; /* *name stays set when only the value is unusable */
}

/* The body of one Range answer, accumulated by the sink. */
typedef struct ec_body {
    char *bytes;
    size_t length, capacity;
    bool too_big; /* over EC_MAX_RESPONSE_BYTES, or memory was short */
} ec_body;

static bool ec_body_sink(void *context, const char *bytes, size_t length) {
    ec_body *b = context;
    if (b->length + length > EC_MAX_RESPONSE_BYTES) return !(b->too_big = true);
    if (b->length + length > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 4096;
        while (capacity < b->length + length) capacity *= 2;
        char *grown = realloc(b->bytes, capacity);
        if (grown == NULL) return !(b->too_big = true);
        b->bytes = grown;
        b->capacity = capacity;
    }
    memcpy(b->bytes + b->length, bytes, length);
    b->length += length;
    return true;
}

/* Parses a Range answer into `out` (empty on entry). false with `why` when it is not one. */
static bool ec_parse_range(const ec_instance *in, const ec_body *body, ec_table *out, int64_t *revision,
                           char *why, size_t why_size) {
    json_error_t error;
    json_t *root = json_loadb(body->bytes ? body->bytes : "", body->length, 0, &error);
    const json_t *kvs = root ? json_object_get(root, "kvs") : NULL;
    bool ok = root != NULL && json_is_object(json_object_get(root, "header")) &&
              ec_json_int64(json_object_get(root, "header"), "revision", revision) && *revision > 0 &&
              (kvs == NULL || json_is_array(kvs));
    if (!ok) snprintf(why, why_size, "not an etcd Range answer (no header revision, or malformed JSON)");
    for (size_t i = 0; ok && i < json_array_size(kvs); i++) {
        char *name, *value, item_why[512];
        int64_t mod_revision;
        if (!ec_kv_decode(in, json_array_get(kvs, i), &name, &value, &mod_revision, item_why, sizeof item_why)) {
            molt_log(in->host, MOLT_LOG_WARNING, EC_NAME ": left out of the cache: %s", item_why);
            free(name);
            continue;
        }
        if (!ec_table_put(out, name, value, mod_revision)) {
            snprintf(why, why_size, "out of memory");
            ok = false;
        }
        free(name);
        free(value);
    }
    json_decref(root);
    return ok;
}

static uint64_t ec_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

ec_http_outcome ec_range(ec_instance *in, uint32_t *endpoint, uint32_t budget_ms, ec_table *out, int64_t *revision,
                         char *why, size_t why_size) {
    const ec_settings *s = &in->settings;
    char request[1024];
    snprintf(request, sizeof request, "{\"key\":\"%s\",\"range_end\":\"%s\"}", s->range_key_b64, s->range_end_b64);
    char *body_text = request;
    size_t needed = strlen(s->range_key_b64) + strlen(s->range_end_b64) + 32;
    if (needed > sizeof request) { /* a long keyPrefix */
        body_text = malloc(needed);
        if (body_text == NULL) {
            snprintf(why, why_size, "out of memory");
            return EC_HTTP_FAILED;
        }
        snprintf(body_text, needed, "{\"key\":\"%s\",\"range_end\":\"%s\"}", s->range_key_b64, s->range_end_b64);
    }
    uint64_t deadline = ec_now_ms() + budget_ms;
    size_t used = 0;
    why[0] = '\0';
    ec_http_outcome outcome = EC_HTTP_FAILED;
    for (uint32_t attempt = 0; attempt < s->endpoint_count; attempt++) {
        uint32_t i = (*endpoint + attempt) % s->endpoint_count;
        uint64_t now = ec_now_ms();
        char attempt_why[512];
        ec_body body = {0};
        if (now >= deadline) {
            snprintf(attempt_why, sizeof attempt_why, "not tried: dialTimeout %s spent", s->dial_timeout_text);
        } else {
            outcome = ec_http_post(in, s->endpoints[i], "/v3/kv/range", body_text, (uint32_t)(deadline - now),
                                   ec_body_sink, &body, attempt_why, sizeof attempt_why);
            if (outcome == EC_HTTP_DONE && body.too_big) {
                snprintf(attempt_why, sizeof attempt_why, "the Range answer is over %u MiB (or memory is short)",
                         EC_MAX_RESPONSE_BYTES >> 20);
                outcome = EC_HTTP_FAILED;
            } else if (outcome == EC_HTTP_DONE &&
                       !ec_parse_range(in, &body, out, revision, attempt_why, sizeof attempt_why)) {
                ec_table_clear(out);
                outcome = EC_HTTP_FAILED;
            }
        }
        free(body.bytes);
        if (outcome != EC_HTTP_FAILED) {
            if (outcome == EC_HTTP_DONE) *endpoint = i;
            break;
        }
        if (used < why_size)
            used += (size_t)snprintf(why + used, why_size - used, "%s%s: %s", used ? "; " : "", s->endpoints[i],
                                     attempt_why);
    }
    if (body_text != request) free(body_text);
    return outcome;
}
