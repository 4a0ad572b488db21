/*
 * fixture_lock: a small, correct lock table shared by the C fixture plugins (not a plugin itself).
 * One mutex, a growable array, linear search: fine for tests, not for production. Expiry is absolute
 * CLOCK_REALTIME milliseconds; semantics match memorylock (Dapr: an expired lock is free for anyone,
 * a held one is not re-acquired even by its owner).
 */
#ifndef FIXTURE_LOCK_H
#define FIXTURE_LOCK_H

#include "molt_plugin.h"

#include <pthread.h>

typedef struct {
    char *resource;
    char *owner;
    int64_t expires_at_ms;
} fx_slot;

typedef struct {
    pthread_mutex_t mu;
    fx_slot *slots;
    size_t count, capacity;
} fx_table;

/* Defines the required molt_plugin_info() returning `info`. */
#define FX_DEFINE_PLUGIN_INFO(info) \
    MOLT_EXPORT const molt_plugin_identity *molt_plugin_info(void) { return &(info); }

int fx_table_init(fx_table *table); /* 0 on success */
void fx_table_destroy(fx_table *table);

/* Run the operation and fill `result` (messages are static strings). Thread-safe. */
void fx_try_lock(fx_table *table, const molt_lock_request *request, molt_try_lock_result *result);
void fx_unlock(fx_table *table, const molt_lock_request *request, molt_unlock_result *result);

/* State format 1: "FXL1" | u32 count | count x { u32 rlen | resource | u32 olen | owner | i64 expires_at_ms },
 * little-endian, unexpired locks only. Import needs an empty table and leaves it empty on refusal. */
molt_status fx_export(fx_table *table, molt_bytes_sink sink, void *sink_context, molt_message *message);
molt_status fx_import(fx_table *table, const void *bytes, size_t length, molt_message *message);

#endif
