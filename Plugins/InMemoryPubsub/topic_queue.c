/*
 * topic_queue.c: topics and their message lists (in_memory_pubsub.h has the model).
 *
 * Invariants: a topic's list holds exactly topic->count messages in publish (or import) order; a
 * message is in at most one list; topics are found by a linear walk (an in-memory broker for
 * development and tests has few topics) and live until destroy. Every function here runs with the
 * instance's mutex held, or where no other thread can see the instance (init, import, destroy).
 */
#include "in_memory_pubsub.h"

#include <stdlib.h>
#include <string.h>

mp_topic *mp_topic_find(mp_instance *in, const char *name) {
    for (mp_topic *t = in->topics; t != NULL; t = t->next)
        if (strcmp(t->name, name) == 0) return t;
    return NULL;
}

mp_topic *mp_topic_get(mp_instance *in, const char *name) {
    mp_topic *t = mp_topic_find(in, name);
    if (t != NULL) return t;
    t = calloc(1, sizeof *t);
    if (t == NULL) return NULL;
    t->name = strdup(name);
    if (t->name == NULL) {
        free(t);
        return NULL;
    }
    if (in->last_topic != NULL) in->last_topic->next = t;
    else in->topics = t;
    in->last_topic = t;
    return t;
}

mp_message *mp_message_new(const uint8_t *data, size_t length, const char *content_type, uint32_t metadata_count,
                           const molt_kv *metadata) {
    mp_message *m = calloc(1, sizeof *m);
    if (m == NULL) return NULL;
    m->data = malloc(length > 0 ? length : 1);
    if (m->data == NULL) goto fail;
    if (length > 0) memcpy(m->data, data, length);
    m->length = length;
    if (content_type != NULL && (m->content_type = strdup(content_type)) == NULL) goto fail;
    if (metadata_count > 0) {
        m->metadata = calloc(metadata_count, sizeof *m->metadata);
        if (m->metadata == NULL) goto fail;
        m->metadata_count = metadata_count;
        for (uint32_t i = 0; i < metadata_count; i++) {
            m->metadata[i].key = strdup(metadata[i].key ? metadata[i].key : "");
            m->metadata[i].value = strdup(metadata[i].value ? metadata[i].value : "");
            if (m->metadata[i].key == NULL || m->metadata[i].value == NULL) goto fail;
        }
    }
    m->state = MP_QUEUED;
    return m;
fail:
    mp_message_free(m);
    return NULL;
}

void mp_message_free(mp_message *m) {
    if (m == NULL) return;
    for (uint32_t i = 0; i < m->metadata_count; i++) {
        free((char *)m->metadata[i].key);
        free((char *)m->metadata[i].value);
    }
    free(m->metadata);
    free(m->content_type);
    free(m->data);
    free(m);
}

void mp_topic_append(mp_topic *t, mp_message *m) {
    m->next = NULL;
    m->prev = t->tail;
    if (t->tail != NULL) t->tail->next = m;
    else t->head = m;
    t->tail = m;
    t->count++;
}

void mp_topic_unlink(mp_topic *t, mp_message *m) {
    if (m->prev != NULL) m->prev->next = m->next;
    else t->head = m->next;
    if (m->next != NULL) m->next->prev = m->prev;
    else t->tail = m->prev;
    m->prev = m->next = NULL;
    t->count--;
}

void mp_topics_free(mp_instance *in) {
    mp_topic *t = in->topics;
    while (t != NULL) {
        mp_topic *next_topic = t->next;
        mp_message *m = t->head;
        while (m != NULL) {
            mp_message *next = m->next;
            mp_message_free(m);
            m = next;
        }
        if (t->subscription != NULL) {
            free(t->subscription->in_flight);
            free(t->subscription);
        }
        free(t->name);
        free(t);
        t = next_topic;
    }
    in->topics = in->last_topic = in->cursor = NULL;
}
