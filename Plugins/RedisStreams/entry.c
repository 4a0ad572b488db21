/*
 * entry.c: what a stream entry holds, both ways.
 *
 * Written by publish (command_thread.c), as Dapr's pubsub.redis writes it, plus one field of ours:
 *   data         the message bytes, as published
 *   metadata     the request metadata as a JSON object of strings (only when there is any), as Dapr does
 *   contentType  the content type given to publish (a molt field; Dapr's readers ignore it)
 * Read back here into an rs_entry: unknown fields are ignored, a metadata field that is not a JSON object
 * of strings is skipped (the entry is still delivered), as Dapr does.
 */
#include "redis_streams.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void rs_entry_free(rs_entry *e) {
    if (e == NULL) return;
    for (uint32_t i = 0; i < e->metadata_count; i++) {
        free((char *)e->metadata[i].key);
        free((char *)e->metadata[i].value);
    }
    free(e->metadata);
    free(e->content_type);
    free(e->data);
    free(e->id);
    free(e);
}

static bool rs_is(const redisReply *r, const char *name) {
    return r->type == REDIS_REPLY_STRING && r->len == strlen(name) && memcmp(r->str, name, r->len) == 0;
}

/* Parses the metadata field's JSON into e->metadata; false only when memory is short. */
static bool rs_metadata_parse(rs_entry *e, const char *text, size_t length) {
    json_t *root = json_loadb(text, length, 0, NULL);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return true; /* not ours to refuse: delivered without metadata */
    }
    size_t n = json_object_size(root);
    e->metadata = n > 0 ? calloc(n, sizeof *e->metadata) : NULL;
    bool ok = n == 0 || e->metadata != NULL;
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (!ok || !json_is_string(value)) continue;
        char *k = strdup(key), *v = strdup(json_string_value(value));
        if (k == NULL || v == NULL) { free(k); free(v); ok = false; continue; }
        e->metadata[e->metadata_count++] = (molt_kv){k, v};
    }
    json_decref(root);
    return ok;
}

rs_entry *rs_entry_from_reply(const redisReply *r) {
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING)
        return NULL;
    const redisReply *fields = r->element[1];
    if (fields->type != REDIS_REPLY_ARRAY) return NULL; /* a deleted entry (nil): nothing to deliver */
    rs_entry *e = calloc(1, sizeof *e);
    if (e == NULL) return NULL;
    e->id = strndup(r->element[0]->str, r->element[0]->len);
    bool ok = e->id != NULL;
    for (size_t i = 0; ok && i + 1 < fields->elements; i += 2) {
        const redisReply *name = fields->element[i], *value = fields->element[i + 1];
        if (value->type != REDIS_REPLY_STRING) continue;
        if (rs_is(name, "data") && e->data == NULL) {
            e->data = malloc(value->len > 0 ? value->len : 1);
            ok = e->data != NULL;
            if (ok) memcpy(e->data, value->str, value->len);
            e->length = value->len;
        } else if (rs_is(name, "contentType") && e->content_type == NULL) {
            ok = (e->content_type = strndup(value->str, value->len)) != NULL;
        } else if (rs_is(name, "metadata") && e->metadata == NULL) {
            ok = rs_metadata_parse(e, value->str, value->len);
        }
    }
    if (!ok) {
        rs_entry_free(e);
        return NULL;
    }
    return e;
}

char *rs_metadata_json(uint32_t count, const molt_kv *metadata) {
    if (count == 0 || metadata == NULL) return NULL;
    json_t *root = json_object();
    for (uint32_t i = 0; root != NULL && i < count; i++)
        if (metadata[i].key != NULL && metadata[i].value != NULL)
            json_object_set_new(root, metadata[i].key, json_string(metadata[i].value));
    char *text = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}
