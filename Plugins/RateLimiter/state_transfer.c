/*
 * state_transfer.c: the buckets handed to a new instance or version (export_state / import_state).
 *
 * Formats (integers little-endian, tokens an IEEE-754 double's bits as u64; records least recently
 * used first, so the importer rebuilds the same LRU order; tokens are each bucket's level at export)
 *   format 1 (1.0.0, 1.1.0):  "RLS1" | u32 count | count x { u32 key_len | key | f64 tokens }
 *   format 2 (1.1.0 only):    "RLS2" | u32 flags (0) | i64 exported_at_ms (CLOCK_REALTIME) | u64 count |
 *                             count x { u32 key_len | key | f64 tokens } | u32 crc32 (IEEE, of all bytes before it)
 *   Keys: 1..4096 bytes, no NUL, no duplicates. Tokens: finite, within [-10^13, 10^12] (negative: a debt
 *   of blocking acquires, which the refill repays).
 * Import credits format 2's time in transit (refill from exported_at_ms to now; format 1 loses it, which
 * only ever leaves fewer tokens), caps tokens at the importer's capacity, drops the least recently used
 * beyond its maxBuckets (logged), and replaces the instance's table only when everything is valid: a
 * corrupt or truncated state is refused (MOLT_ERR_INVALID_ARGUMENT, the message says where) and the
 * instance is left as it was.
 */
#include "rate_limiter.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RL_EXPORT_CHUNK 65536u
#define RL_MIN_TOKENS (-1e13)
#define RL_MAX_TOKENS 1e12

static void rl_crc32_table(uint32_t table[256]) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
}

static uint32_t rl_crc32_update(const uint32_t table[256], uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

/* ---------------------------------------------------------------------------------------------
 * Export
 * ------------------------------------------------------------------------------------------- */

/* Buffered writer over the host's sink; `failed` once the sink refused. */
typedef struct {
    molt_bytes_sink sink;
    void *sink_context;
    bool failed;
    size_t used;
    uint32_t crc;
    uint32_t crc_table[256];
    uint8_t buffer[RL_EXPORT_CHUNK];
} rl_writer;

static void rl_flush(rl_writer *w) {
    if (!w->failed && w->used > 0 && w->sink(w->sink_context, w->buffer, w->used) != 0) w->failed = true;
    w->used = 0;
}

static void rl_put(rl_writer *w, const void *bytes, size_t length) {
    const uint8_t *p = bytes;
    w->crc = rl_crc32_update(w->crc_table, w->crc, p, length);
    while (length > 0 && !w->failed) {
        size_t room = sizeof w->buffer - w->used, n = length < room ? length : room;
        memcpy(w->buffer + w->used, p, n);
        w->used += n;
        p += n;
        length -= n;
        if (w->used == sizeof w->buffer) rl_flush(w);
    }
}

static void rl_put_u32(rl_writer *w, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    rl_put(w, b, 4);
}

static void rl_put_u64(rl_writer *w, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    rl_put(w, b, 8);
}

static void rl_put_double(rl_writer *w, double d) {
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    rl_put_u64(w, bits);
}

MOLT_EXPORT molt_status molt_plugin_export_state(molt_instance instance, uint32_t format, molt_bytes_sink sink,
                                                 void *sink_context, molt_message *message_out) {
    rl_instance *rl = instance;
    if (format < RL_FORMAT_MIN || format > RL_FORMAT_MAX) {
        rl_message(message_out, "rate-limiter %s cannot export state format %" PRIu32 " (supports %u..%u)", RL_VERSION,
                   format, RL_FORMAT_MIN, RL_FORMAT_MAX);
        return MOLT_ERR_UNSUPPORTED;
    }
    if (sink == NULL) {
        rl_message(message_out, "rate-limiter: export_state needs a sink");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    rl_writer *w = malloc(sizeof *w);
    if (w == NULL) {
        rl_message(message_out, "rate-limiter: out of memory exporting state");
        return MOLT_ERR_INTERNAL;
    }
    w->sink = sink;
    w->sink_context = sink_context;
    w->failed = false;
    w->used = 0;
    w->crc = 0;
    rl_crc32_table(w->crc_table);

    molt_status status = MOLT_OK;
    pthread_mutex_lock(&rl->mu);
    uint64_t count = rl->table.count;
    if (format == 1 && count > UINT32_MAX) {
        rl_message(message_out, "rate-limiter: %" PRIu64 " buckets do not fit state format 1", count);
        status = MOLT_ERR_UNSUPPORTED;
    } else {
        int64_t now = rl_monotonic_ns();
        if (format == 1) {
            rl_put(w, "RLS1", 4);
            rl_put_u32(w, (uint32_t)count);
        } else {
            rl_put(w, "RLS2", 4);
            rl_put_u32(w, 0); /* flags */
            rl_put_u64(w, (uint64_t)rl_realtime_ms());
            rl_put_u64(w, count);
        }
        for (const rl_bucket *b = rl->table.oldest; b != NULL && !w->failed; b = b->newer) {
            rl_put_u32(w, b->key_len);
            rl_put(w, b->key, b->key_len);
            rl_put_double(w, rl_bucket_level(b, &rl->limits, now));
        }
        if (format == 2) rl_put_u32(w, w->crc);
        rl_flush(w);
        if (w->failed) {
            rl_message(message_out, "rate-limiter: the host refused exported state (format %" PRIu32 ", %" PRIu64
                                    " buckets)", format, count);
            status = MOLT_ERR_INTERNAL;
        }
    }
    pthread_mutex_unlock(&rl->mu);
    free(w);
    return status;
}

/* ---------------------------------------------------------------------------------------------
 * Import
 * ------------------------------------------------------------------------------------------- */

/* Bounds-checked reader over the imported bytes. */
typedef struct {
    const uint8_t *p;
    size_t length; /* where records end (format 2: before the checksum) */
    size_t offset;
} rl_reader;

static bool rl_get_u32(rl_reader *r, uint32_t *out) {
    if (r->length - r->offset < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)r->p[r->offset + i] << (8 * i);
    r->offset += 4;
    *out = v;
    return true;
}

static bool rl_get_u64(rl_reader *r, uint64_t *out) {
    if (r->length - r->offset < 8) return false;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)r->p[r->offset + i] << (8 * i);
    r->offset += 8;
    *out = v;
    return true;
}

#define RL_MIN_RECORD (4u + 1u + 8u)

/* Checks magic, flags, checksum and count; leaves `r` at the first record. */
static bool rl_read_header(rl_reader *r, uint32_t format, uint64_t *count, int64_t *exported_at_ms,
                           molt_message *message) {
    size_t header = format == 1 ? 8 : 24, trailer = format == 1 ? 0 : 4;
    if (r->length < header + trailer) {
        rl_message(message, "rate-limiter: corrupt state (format %" PRIu32 "): %zu bytes is shorter than the %zu-byte "
                            "header", format, r->length, header + trailer);
        return false;
    }
    const char *magic = format == 1 ? "RLS1" : "RLS2";
    if (memcmp(r->p, magic, 4) != 0) {
        rl_message(message, "rate-limiter: corrupt state (format %" PRIu32 "): bad magic (expected \"%s\")", format,
                   magic);
        return false;
    }
    r->offset = 4;
    *exported_at_ms = 0;
    if (format == 1) {
        uint32_t n = 0;
        rl_get_u32(r, &n);
        *count = n;
    } else {
        rl_reader tail = {r->p, r->length, r->length - 4};
        uint32_t stored = 0, flags = 0, table[256];
        rl_get_u32(&tail, &stored);
        rl_crc32_table(table);
        uint32_t actual = rl_crc32_update(table, 0, r->p, r->length - 4);
        if (stored != actual) {
            rl_message(message, "rate-limiter: corrupt state (format 2): checksum mismatch (stored %08" PRIx32
                                ", computed %08" PRIx32 ")", stored, actual);
            return false;
        }
        r->length -= 4;
        rl_get_u32(r, &flags);
        if (flags != 0) {
            rl_message(message, "rate-limiter: corrupt state (format 2): unknown flags 0x%" PRIx32, flags);
            return false;
        }
        uint64_t at = 0;
        rl_get_u64(r, &at);
        *exported_at_ms = (int64_t)at;
        rl_get_u64(r, count);
    }
    if (*count > (r->length - r->offset) / RL_MIN_RECORD) {
        rl_message(message, "rate-limiter: corrupt state (format %" PRIu32 "): the header claims %" PRIu64
                            " buckets but only %zu bytes follow", format, *count, r->length - r->offset);
        return false;
    }
    return true;
}

/* Reads one record into `into` (a fresh table); false with the message when it is invalid. */
static bool rl_read_record(rl_reader *r, uint32_t format, uint64_t index, rl_table *into, const rl_limits *limits,
                           double credit, int64_t now_ns, molt_message *message) {
    size_t at = r->offset;
    uint32_t key_len = 0;
    uint64_t bits = 0;
    if (!rl_get_u32(r, &key_len)) goto truncated;
    if (key_len == 0 || key_len > RL_KEY_MAX) {
        rl_message(message, "rate-limiter: corrupt state (format %" PRIu32 "): bucket %" PRIu64 " has key length %" PRIu32
                            " (1..%u) at byte %zu", format, index, key_len, RL_KEY_MAX, at);
        return false;
    }
    if (r->length - r->offset < key_len) goto truncated;
    const char *key = (const char *)r->p + r->offset;
    r->offset += key_len;
    if (memchr(key, '\0', key_len) != NULL) {
        rl_message(message, "rate-limiter: corrupt state (format %" PRIu32 "): bucket %" PRIu64 "'s key contains a NUL "
                            "byte", format, index);
        return false;
    }
    if (!rl_get_u64(r, &bits)) goto truncated;
    double tokens;
    memcpy(&tokens, &bits, sizeof tokens);
    if (!isfinite(tokens) || tokens < RL_MIN_TOKENS || tokens > RL_MAX_TOKENS) {
        rl_message(message, "rate-limiter: corrupt state (format %" PRIu32 "): bucket %" PRIu64 " has %g tokens",
                   format, index, tokens);
        return false;
    }
    if (rl_table_find(into, key, key_len) != NULL) {
        rl_message(message, "rate-limiter: corrupt state (format %" PRIu32 "): bucket %" PRIu64 " repeats the key "
                            "\"%.*s\"", format, index, (int)(key_len < 64 ? key_len : 64), key);
        return false;
    }
    tokens += credit;
    if (tokens > (double)limits->capacity) tokens = (double)limits->capacity;
    if (rl_table_insert(into, key, key_len, tokens, now_ns) == NULL) {
        rl_message(message, "rate-limiter: out of memory importing bucket %" PRIu64, index);
        return false;
    }
    return true;
truncated:
    rl_message(message, "rate-limiter: corrupt state (format %" PRIu32 "): bucket %" PRIu64 " is truncated (starts at "
                        "byte %zu of %zu)", format, index, at, r->length);
    return false;
}

MOLT_EXPORT molt_status molt_plugin_import_state(molt_instance instance, uint32_t format, const void *bytes,
                                                 size_t length, molt_message *message_out) {
    rl_instance *rl = instance;
    if (format < RL_FORMAT_MIN || format > RL_FORMAT_MAX) {
        rl_message(message_out, "rate-limiter %s cannot import state format %" PRIu32 " (supports %u..%u)", RL_VERSION,
                   format, RL_FORMAT_MIN, RL_FORMAT_MAX);
        return MOLT_ERR_UNSUPPORTED;
    }
    if (bytes == NULL && length > 0) {
        rl_message(message_out, "rate-limiter: import_state got NULL bytes with length %zu", length);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    rl_reader r = {bytes, length, 0};
    uint64_t count = 0;
    int64_t exported_at_ms = 0;
    if (!rl_read_header(&r, format, &count, &exported_at_ms, message_out)) return MOLT_ERR_INVALID_ARGUMENT;

    /* No operation runs during import (the host's rule), but take the mutex for the limits anyway. */
    pthread_mutex_lock(&rl->mu);
    rl_limits limits = rl->limits;
    uint64_t seed = rl->table.seed;
    pthread_mutex_unlock(&rl->mu);
    int64_t now_ns = rl_monotonic_ns();
    double credit = 0;
    if (format == 2) {
        int64_t transit_ms = rl_realtime_ms() - exported_at_ms;
        if (transit_ms > 0) credit = (double)transit_ms / 1000.0 * limits.refill_per_second;
    }

    rl_table fresh;
    if (!rl_table_init(&fresh, seed)) {
        rl_message(message_out, "rate-limiter: out of memory importing state");
        return MOLT_ERR_INTERNAL;
    }
    for (uint64_t i = 0; i < count; i++) {
        if (!rl_read_record(&r, format, i, &fresh, &limits, credit, now_ns, message_out)) {
            rl_table_free(&fresh);
            return MOLT_ERR_INVALID_ARGUMENT;
        }
    }
    if (r.offset != r.length) {
        rl_message(message_out, "rate-limiter: corrupt state (format %" PRIu32 "): %zu unexpected bytes after %" PRIu64
                                " buckets", format, r.length - r.offset, count);
        rl_table_free(&fresh);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    uint64_t dropped = rl_table_trim(&fresh, limits.max_buckets);
    pthread_mutex_lock(&rl->mu);
    rl_table_replace(&rl->table, &fresh);
    pthread_mutex_unlock(&rl->mu);
    molt_log(rl->host, MOLT_LOG_INFO, "rate-limiter %s: imported %" PRIu64 " buckets (format %" PRIu32 ")%s", RL_VERSION,
             count - dropped, format, dropped ? ", dropped the least recently used beyond maxBuckets" : "");
    return MOLT_OK;
}
