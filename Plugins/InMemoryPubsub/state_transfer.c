/*
 * state_transfer.c: the messages handed to a new instance or version (export_state / import_state).
 *
 * What travels: every message a topic holds, whatever its state (queued, waiting out a RETRY delay,
 * delivered and unanswered), topic by topic in topic creation order, each topic's messages in order.
 * Unanswered ones travel too: the host exports after unsubscribe and the drain, so what is still
 * unanswered then was never processed as far as this broker knows (at least once: delivered again).
 *
 * Formats (integers little-endian; "none" for a content type is length 0xFFFFFFFF)
 *   format 1 (1.0.0, 1.1.0):  "MPS1" | u64 count | count x record
 *   format 2 (1.1.0 only):    "MPS2" | u64 count | count x { record | u32 wait_ms }
 *   record:  u32 topic_len | topic | u32 type_len | content_type | u64 data_len | data |
 *            u32 metadata_count | metadata_count x { u32 key_len | key | u32 value_len | value }
 *   Topics: 1..65535 bytes; strings have no NUL byte. Format 2's wait_ms is what is left of a RETRY
 *   answer's redelivery delay at export (0: deliverable at once), so a swap between 1.1.0 builds does
 *   not redeliver early a message the app asked to get later; format 1 makes every message deliverable
 *   at once on import.
 * Import reads and checks everything first, and appends to the instance only when all of it is valid:
 * a malformed or truncated state is refused (MOLT_ERR_INVALID_ARGUMENT, the message says what and
 * where) and the instance is left as it was. Imported messages are not held to maxQueuedPerTopic or
 * maxMessageBytes (refusing them would lose them or abort the reload); later publishes are.
 */
#include "in_memory_pubsub.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MP_EXPORT_CHUNK 65536u
#define MP_NO_STRING 0xFFFFFFFFu
#define MP_TOPIC_MAX 65535u

/* ---------------------------------------------------------------------------------------------
 * Export
 * ------------------------------------------------------------------------------------------- */

/* Buffered writer over the host's sink; `failed` once the sink refused. */
typedef struct {
    molt_bytes_sink sink;
    void *sink_context;
    bool failed;
    size_t used;
    uint8_t buffer[MP_EXPORT_CHUNK];
} mp_writer;

static void mp_flush(mp_writer *w) {
    if (!w->failed && w->used > 0 && w->sink(w->sink_context, w->buffer, w->used) != 0) w->failed = true;
    w->used = 0;
}

static void mp_put(mp_writer *w, const void *bytes, size_t length) {
    const uint8_t *p = bytes;
    while (length > 0 && !w->failed) {
        size_t room = sizeof w->buffer - w->used, n = length < room ? length : room;
        memcpy(w->buffer + w->used, p, n);
        w->used += n;
        p += n;
        length -= n;
        if (w->used == sizeof w->buffer) mp_flush(w);
    }
}

static void mp_put_u32(mp_writer *w, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    mp_put(w, b, 4);
}

static void mp_put_u64(mp_writer *w, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    mp_put(w, b, 8);
}

static void mp_put_string(mp_writer *w, const char *s) {
    if (s == NULL) {
        mp_put_u32(w, MP_NO_STRING);
        return;
    }
    size_t n = strlen(s);
    mp_put_u32(w, (uint32_t)n);
    mp_put(w, s, n);
}

static void mp_put_record(mp_writer *w, uint32_t format, const mp_topic *t, const mp_message *m, int64_t now) {
    mp_put_string(w, t->name);
    mp_put_string(w, m->content_type);
    mp_put_u64(w, m->length);
    mp_put(w, m->data, m->length);
    mp_put_u32(w, m->metadata_count);
    for (uint32_t i = 0; i < m->metadata_count; i++) {
        mp_put_string(w, m->metadata[i].key);
        mp_put_string(w, m->metadata[i].value);
    }
    if (format == 2) {
        int64_t wait_ns = m->state == MP_WAITING ? m->not_before_ns - now : 0;
        int64_t wait_ms = wait_ns > 0 ? (wait_ns + 999999) / 1000000 : 0;
        mp_put_u32(w, wait_ms > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)wait_ms);
    }
}

MOLT_EXPORT molt_status molt_plugin_export_state(molt_instance instance, uint32_t format, molt_bytes_sink sink,
                                                 void *sink_context, molt_message *message_out) {
    mp_instance *in = instance;
    if (format < MP_FORMAT_MIN || format > MP_FORMAT_MAX) {
        mp_message_text(message_out, "in-memory-pubsub %s cannot export state format %" PRIu32 " (supports %u..%u)",
                        MP_VERSION, format, MP_FORMAT_MIN, MP_FORMAT_MAX);
        return MOLT_ERR_UNSUPPORTED;
    }
    if (sink == NULL) {
        mp_message_text(message_out, "in-memory-pubsub: export_state needs a sink");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    mp_writer *w = malloc(sizeof *w);
    if (w == NULL) {
        mp_message_text(message_out, "in-memory-pubsub: out of memory exporting state");
        return MOLT_ERR_INTERNAL;
    }
    *w = (mp_writer){.sink = sink, .sink_context = sink_context};
    /* The mutex keeps the delivery thread (ours, which the host does not pause) out while we walk. */
    pthread_mutex_lock(&in->mu);
    uint64_t count = 0;
    for (const mp_topic *t = in->topics; t != NULL; t = t->next) count += t->count;
    int64_t now = mp_monotonic_ns();
    mp_put(w, format == 1 ? "MPS1" : "MPS2", 4);
    mp_put_u64(w, count);
    for (const mp_topic *t = in->topics; t != NULL && !w->failed; t = t->next)
        for (const mp_message *m = t->head; m != NULL && !w->failed; m = m->next) mp_put_record(w, format, t, m, now);
    pthread_mutex_unlock(&in->mu);
    mp_flush(w);
    bool failed = w->failed;
    free(w);
    if (failed) {
        mp_message_text(message_out, "in-memory-pubsub: the host refused exported state (format %" PRIu32 ", %" PRIu64
                                     " messages)", format, count);
        return MOLT_ERR_INTERNAL;
    }
    molt_log(in->host, MOLT_LOG_INFO, "in-memory-pubsub %s: exported %" PRIu64 " messages (format %" PRIu32 ")",
             MP_VERSION, count, format);
    return MOLT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Import
 * ------------------------------------------------------------------------------------------- */

/* Bounds-checked reader over the imported bytes; on failure `error` says what was being read. */
typedef struct {
    const uint8_t *p;
    size_t length, offset;
    const char *error;
} mp_reader;

static bool mp_get_u32(mp_reader *r, uint32_t *out) {
    if (r->length - r->offset < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)r->p[r->offset + i] << (8 * i);
    r->offset += 4;
    *out = v;
    return true;
}

static bool mp_get_u64(mp_reader *r, uint64_t *out) {
    if (r->length - r->offset < 8) return false;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)r->p[r->offset + i] << (8 * i);
    r->offset += 8;
    *out = v;
    return true;
}

/* A malloc()ed NUL-terminated copy of the next string; *out NULL for "none" when allowed. */
static bool mp_get_string(mp_reader *r, const char *what, bool none_allowed, uint32_t max, char **out) {
    uint32_t n = 0;
    *out = NULL;
    if (!mp_get_u32(r, &n)) return (r->error = "truncated"), false;
    if (n == MP_NO_STRING && none_allowed) return true;
    if (n > r->length - r->offset) return (r->error = "truncated (a string runs past the end)"), false;
    if (n > max) return (r->error = what), false;
    if (memchr(r->p + r->offset, '\0', n) != NULL) return (r->error = what), false;
    *out = malloc((size_t)n + 1);
    if (*out == NULL) return (r->error = "out of memory"), false;
    memcpy(*out, r->p + r->offset, n);
    (*out)[n] = '\0';
    r->offset += n;
    return true;
}

/* One record into a new message (QUEUED, or WAITING for format 2's wait_ms); *topic is malloc()ed. */
static mp_message *mp_read_record(mp_reader *r, uint32_t format, char **topic) {
    char *content_type = NULL;
    uint64_t data_len = 0;
    uint32_t metadata_count = 0, wait_ms = 0;
    mp_message *m = NULL;
    if (!mp_get_string(r, "bad topic length or a NUL in the topic", false, MP_TOPIC_MAX, topic)) goto fail;
    if ((*topic)[0] == '\0') {
        r->error = "empty topic";
        goto fail;
    }
    if (!mp_get_string(r, "bad content type length or a NUL in it", true, UINT32_MAX - 1, &content_type)) goto fail;
    if (!mp_get_u64(r, &data_len) || data_len > r->length - r->offset) {
        r->error = "data length beyond the end";
        goto fail;
    }
    const uint8_t *data = r->p + r->offset;
    r->offset += (size_t)data_len;
    if (!mp_get_u32(r, &metadata_count) || metadata_count > (r->length - r->offset) / 8) {
        r->error = "metadata count beyond the end";
        goto fail;
    }
    m = mp_message_new(data, (size_t)data_len, content_type, 0, NULL);
    if (m == NULL || (metadata_count > 0 && (m->metadata = calloc(metadata_count, sizeof *m->metadata)) == NULL)) {
        r->error = "out of memory";
        goto fail;
    }
    for (uint32_t i = 0; i < metadata_count; i++) {
        char *key = NULL, *value = NULL;
        bool ok = mp_get_string(r, "bad metadata key", false, UINT32_MAX - 1, &key) &&
                  mp_get_string(r, "bad metadata value", false, UINT32_MAX - 1, &value);
        m->metadata[i] = (molt_kv){key, value};
        m->metadata_count = i + 1; /* so that mp_message_free frees what was read */
        if (!ok) goto fail;
    }
    if (format == 2) {
        if (!mp_get_u32(r, &wait_ms)) {
            r->error = "truncated";
            goto fail;
        }
        if (wait_ms > 0) {
            m->state = MP_WAITING;
            m->not_before_ns = mp_monotonic_ns() + (int64_t)wait_ms * 1000000;
        }
    }
    free(content_type);
    return m;
fail:
    free(content_type);
    free(*topic);
    *topic = NULL;
    mp_message_free(m);
    return NULL;
}

/* The records read so far, before they join the instance. */
typedef struct {
    char *topic;
    mp_message *message;
} mp_imported;

MOLT_EXPORT molt_status molt_plugin_import_state(molt_instance instance, uint32_t format, const void *bytes,
                                                 size_t length, molt_message *message_out) {
    mp_instance *in = instance;
    if (format < MP_FORMAT_MIN || format > MP_FORMAT_MAX) {
        mp_message_text(message_out, "in-memory-pubsub %s cannot import state format %" PRIu32 " (supports %u..%u)",
                        MP_VERSION, format, MP_FORMAT_MIN, MP_FORMAT_MAX);
        return MOLT_ERR_UNSUPPORTED;
    }
    mp_reader r = {bytes, bytes != NULL ? length : 0, 0, NULL};
    const char *magic = format == 1 ? "MPS1" : "MPS2";
    uint64_t count = 0;
    if (r.length < 12 || memcmp(r.p, magic, 4) != 0) {
        mp_message_text(message_out, "in-memory-pubsub: corrupt state (format %" PRIu32 "): %s", format,
                        r.length < 12 ? "shorter than the 12-byte header" : "bad magic");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    r.offset = 4;
    mp_get_u64(&r, &count);
    size_t min_record = 4 + 1 + 4 + 8 + 4 + (format == 2 ? 4 : 0);
    if (count > (r.length - r.offset) / min_record) {
        mp_message_text(message_out, "in-memory-pubsub: corrupt state (format %" PRIu32 "): the header claims %" PRIu64
                                     " messages but only %zu bytes follow", format, count, r.length - r.offset);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    mp_imported *records = calloc(count > 0 ? (size_t)count : 1, sizeof *records);
    if (records == NULL) {
        mp_message_text(message_out, "in-memory-pubsub: out of memory importing %" PRIu64 " messages", count);
        return MOLT_ERR_INTERNAL;
    }
    molt_status status = MOLT_OK;
    uint64_t read = 0;
    for (; read < count; read++) {
        size_t at = r.offset;
        records[read].message = mp_read_record(&r, format, &records[read].topic);
        if (records[read].message == NULL) {
            mp_message_text(message_out, "in-memory-pubsub: corrupt state (format %" PRIu32 "): message %" PRIu64
                                         " (at byte %zu of %zu): %s", format, read, at, r.length, r.error);
            status = MOLT_ERR_INVALID_ARGUMENT;
            break;
        }
    }
    if (status == MOLT_OK && r.offset != r.length) {
        mp_message_text(message_out, "in-memory-pubsub: corrupt state (format %" PRIu32 "): %zu unexpected bytes "
                                     "after %" PRIu64 " messages", format, r.length - r.offset, count);
        status = MOLT_ERR_INVALID_ARGUMENT;
    }
    /* Topics are created before any message moves, so that running out of memory leaves the instance as it was. */
    pthread_mutex_lock(&in->mu);
    for (uint64_t i = 0; status == MOLT_OK && i < count; i++) {
        if (mp_topic_get(in, records[i].topic) == NULL) {
            mp_message_text(message_out, "in-memory-pubsub: out of memory importing state");
            status = MOLT_ERR_INTERNAL;
        }
    }
    for (uint64_t i = 0; status == MOLT_OK && i < count; i++) {
        mp_topic_append(mp_topic_find(in, records[i].topic), records[i].message);
        records[i].message = NULL;
    }
    if (status == MOLT_OK) pthread_cond_signal(&in->wake);
    pthread_mutex_unlock(&in->mu);
    for (uint64_t i = 0; i < read; i++) {
        free(records[i].topic);
        mp_message_free(records[i].message);
    }
    free(records);
    if (status == MOLT_OK)
        molt_log(in->host, MOLT_LOG_INFO, "in-memory-pubsub %s: imported %" PRIu64 " messages (format %" PRIu32 ")",
                 MP_VERSION, count, format);
    return status;
}
