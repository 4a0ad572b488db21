/* fixture_lock: see fixture_lock.h. */
#define _POSIX_C_SOURCE 200809L

#include "fixture_lock.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t fx_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fx_table_init(fx_table *table) {
    memset(table, 0, sizeof *table);
    return pthread_mutex_init(&table->mu, NULL);
}

static void fx_clear(fx_table *table) {
    for (size_t i = 0; i < table->count; i++) {
        free(table->slots[i].resource);
        free(table->slots[i].owner);
    }
    table->count = 0;
}

void fx_table_destroy(fx_table *table) {
    fx_clear(table);
    free(table->slots);
    pthread_mutex_destroy(&table->mu);
}

/* The slot for `resource` (expired or not), or NULL. Caller holds the mutex. */
static fx_slot *fx_find(fx_table *table, const char *resource, size_t length) {
    for (size_t i = 0; i < table->count; i++)
        if (strlen(table->slots[i].resource) == length && memcmp(table->slots[i].resource, resource, length) == 0)
            return &table->slots[i];
    return NULL;
}

static char *fx_strndup(const char *text, size_t length) {
    char *copy = malloc(length + 1);
    if (copy != NULL) {
        memcpy(copy, text, length);
        copy[length] = '\0';
    }
    return copy;
}

/* Adds a slot (copying the strings). Caller holds the mutex. Returns false when out of memory. */
static bool fx_add(fx_table *table, const char *resource, size_t rlen, const char *owner, size_t olen, int64_t expires) {
    if (table->count == table->capacity) {
        size_t capacity = table->capacity ? table->capacity * 2 : 16;
        fx_slot *slots = realloc(table->slots, capacity * sizeof *slots);
        if (slots == NULL) return false;
        table->slots = slots;
        table->capacity = capacity;
    }
    char *r = fx_strndup(resource, rlen), *o = fx_strndup(owner, olen);
    if (r == NULL || o == NULL) {
        free(r);
        free(o);
        return false;
    }
    table->slots[table->count++] = (fx_slot){r, o, expires};
    return true;
}

static void fx_remove(fx_table *table, fx_slot *slot) {
    free(slot->resource);
    free(slot->owner);
    *slot = table->slots[--table->count];
}

static const char *fx_check(const molt_lock_request *request, bool needs_expiry) {
    if (request->resource_id == NULL || request->resource_id[0] == '\0') return "resource_id must not be empty";
    if (request->lock_owner == NULL || request->lock_owner[0] == '\0') return "lock_owner must not be empty";
    if (needs_expiry && request->expiry_in_seconds <= 0) return "expiry_in_seconds must be greater than 0";
    return NULL;
}

void fx_try_lock(fx_table *table, const molt_lock_request *request, molt_try_lock_result *result) {
    *result = (molt_try_lock_result){.struct_size = sizeof *result, .status = MOLT_OK, .acquired = false};
    const char *invalid = fx_check(request, true);
    if (invalid != NULL) {
        result->status = MOLT_ERR_INVALID_ARGUMENT;
        result->message = invalid;
        return;
    }
    int64_t now = fx_now_ms(), expires = now + (int64_t)request->expiry_in_seconds * 1000;
    size_t rlen = strlen(request->resource_id), olen = strlen(request->lock_owner);
    pthread_mutex_lock(&table->mu);
    fx_slot *slot = fx_find(table, request->resource_id, rlen);
    if (slot != NULL && slot->expires_at_ms <= now) {
        fx_remove(table, slot); /* expired: free for anyone */
        slot = NULL;
    }
    if (slot == NULL) {
        if (fx_add(table, request->resource_id, rlen, request->lock_owner, olen, expires)) {
            result->acquired = true;
        } else {
            result->status = MOLT_ERR_INTERNAL;
            result->message = "out of memory";
        }
    }
    pthread_mutex_unlock(&table->mu);
}

void fx_unlock(fx_table *table, const molt_lock_request *request, molt_unlock_result *result) {
    *result = (molt_unlock_result){.struct_size = sizeof *result, .status = MOLT_OK,
                                   .unlock_status = MOLT_UNLOCK_LOCK_DOES_NOT_EXIST};
    const char *invalid = fx_check(request, false);
    if (invalid != NULL) {
        result->status = MOLT_ERR_INVALID_ARGUMENT;
        result->unlock_status = MOLT_UNLOCK_INTERNAL_ERROR;
        result->message = invalid;
        return;
    }
    int64_t now = fx_now_ms();
    pthread_mutex_lock(&table->mu);
    fx_slot *slot = fx_find(table, request->resource_id, strlen(request->resource_id));
    if (slot == NULL) {
        result->unlock_status = MOLT_UNLOCK_LOCK_DOES_NOT_EXIST;
    } else if (slot->expires_at_ms <= now) {
        fx_remove(table, slot);
        result->unlock_status = MOLT_UNLOCK_LOCK_DOES_NOT_EXIST;
    } else if (strcmp(slot->owner, request->lock_owner) != 0) {
        result->unlock_status = MOLT_UNLOCK_LOCK_BELONGS_TO_OTHERS;
    } else {
        fx_remove(table, slot);
        result->unlock_status = MOLT_UNLOCK_SUCCESS;
    }
    pthread_mutex_unlock(&table->mu);
}

static int fx_put(molt_bytes_sink sink, void *context, const void *bytes, size_t length) {
    return sink(context, bytes, length);
}

static int fx_put_u32(molt_bytes_sink sink, void *context, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    return sink(context, b, 4);
}

static int fx_put_u64(molt_bytes_sink sink, void *context, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    return sink(context, b, 8);
}

molt_status fx_export(fx_table *table, molt_bytes_sink sink, void *sink_context, molt_message *message) {
    pthread_mutex_lock(&table->mu);
    int64_t now = fx_now_ms();
    uint32_t live = 0;
    for (size_t i = 0; i < table->count; i++) live += table->slots[i].expires_at_ms > now;
    int refused = fx_put(sink, sink_context, "FXL1", 4) || fx_put_u32(sink, sink_context, live);
    for (size_t i = 0; i < table->count && !refused; i++) {
        const fx_slot *s = &table->slots[i];
        if (s->expires_at_ms <= now) continue;
        uint32_t rlen = (uint32_t)strlen(s->resource), olen = (uint32_t)strlen(s->owner);
        refused = fx_put_u32(sink, sink_context, rlen) || fx_put(sink, sink_context, s->resource, rlen) ||
                  fx_put_u32(sink, sink_context, olen) || fx_put(sink, sink_context, s->owner, olen) ||
                  fx_put_u64(sink, sink_context, (uint64_t)s->expires_at_ms);
    }
    pthread_mutex_unlock(&table->mu);
    if (refused) {
        molt_message_set(message, "probe: the host refused the exported state");
        return MOLT_ERR_INTERNAL;
    }
    return MOLT_OK;
}

static bool fx_get_u32(const uint8_t *p, size_t length, size_t *at, uint32_t *out) {
    if (length - *at < 4) return false;
    *out = 0;
    for (int i = 0; i < 4; i++) *out |= (uint32_t)p[*at + i] << (8 * i);
    *at += 4;
    return true;
}

static bool fx_get_string(const uint8_t *p, size_t length, size_t *at, const char **text, uint32_t *text_length) {
    if (!fx_get_u32(p, length, at, text_length) || *text_length == 0 || length - *at < *text_length) return false;
    *text = (const char *)p + *at;
    if (memchr(*text, '\0', *text_length) != NULL) return false;
    *at += *text_length;
    return true;
}

molt_status fx_import(fx_table *table, const void *bytes, size_t length, molt_message *message) {
    const uint8_t *p = bytes;
    size_t at = 4;
    uint32_t count = 0;
    if (length < 8 || memcmp(p, "FXL1", 4) != 0 || !fx_get_u32(p, length, &at, &count)) {
        molt_message_set(message, "probe: corrupt state: bad header");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    pthread_mutex_lock(&table->mu);
    if (table->count != 0) {
        pthread_mutex_unlock(&table->mu);
        molt_message_set(message, "probe: import_state needs a fresh instance");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    molt_status status = MOLT_OK;
    for (uint32_t i = 0; i < count && status == MOLT_OK; i++) {
        const char *resource, *owner;
        uint32_t rlen, olen;
        uint64_t expires = 0;
        if (!fx_get_string(p, length, &at, &resource, &rlen) || !fx_get_string(p, length, &at, &owner, &olen) ||
            length - at < 8) {
            molt_message_set(message, "probe: corrupt state: truncated record");
            status = MOLT_ERR_INVALID_ARGUMENT;
            break;
        }
        for (int k = 0; k < 8; k++) expires |= (uint64_t)p[at + k] << (8 * k);
        at += 8;
        if (fx_find(table, resource, rlen) != NULL) {
            molt_message_set(message, "probe: corrupt state: duplicate resource");
            status = MOLT_ERR_INVALID_ARGUMENT;
        } else if (!fx_add(table, resource, rlen, owner, olen, (int64_t)expires)) {
            molt_message_set(message, "probe: out of memory");
            status = MOLT_ERR_INTERNAL;
        }
    }
    if (status == MOLT_OK && at != length) {
        molt_message_set(message, "probe: corrupt state: trailing bytes");
        status = MOLT_ERR_INVALID_ARGUMENT;
    }
    if (status != MOLT_OK) fx_clear(table); /* it was empty: leave it so */
    pthread_mutex_unlock(&table->mu);
    return status;
}
