/*
 * config_table.c: the cache of one instance, an array of items sorted by name (strcmp), names unique.
 *
 * A sorted array: lookups are binary searches, "every item" is the array as it is (already in the order
 * apps see), and an insert or a delete moves the tail, which is cheap at the sizes of a configuration
 * store (thousands of items) and happens once per etcd event. The table knows nothing of locking: its
 * owner holds ec_instance.table_lock around every call (etcd_config.c, watch_stream.c), or owns a table
 * nobody else sees yet (etcd_range.c builds one).
 */
#include "etcd_config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The index of the first item whose name is >= `name` (count when none). */
static size_t ec_lower_bound(const ec_table *table, const char *name) {
    size_t low = 0, high = table->count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (strcmp(table->items[middle].name, name) < 0) low = middle + 1;
        else high = middle;
    }
    return low;
}

ptrdiff_t ec_table_find(const ec_table *table, const char *name) {
    size_t i = ec_lower_bound(table, name);
    return i < table->count && strcmp(table->items[i].name, name) == 0 ? (ptrdiff_t)i : -1;
}

bool ec_table_put(ec_table *table, const char *name, const char *value, int64_t mod_revision) {
    size_t i = ec_lower_bound(table, name);
    bool exists = i < table->count && strcmp(table->items[i].name, name) == 0;
    char *value_copy = strdup(value);
    char *name_copy = exists ? NULL : strdup(name);
    if (value_copy == NULL || (!exists && name_copy == NULL)) goto out_of_memory;
    if (!exists && table->count == table->capacity) {
        size_t capacity = table->capacity ? table->capacity * 2 : 16;
        ec_item *items = realloc(table->items, capacity * sizeof *items);
        if (items == NULL) goto out_of_memory;
        table->items = items;
        table->capacity = capacity;
    }
    if (exists) {
        free(table->items[i].value);
    } else {
        memmove(&table->items[i + 1], &table->items[i], (table->count - i) * sizeof *table->items);
        table->count++;
        table->items[i].name = name_copy;
    }
    ec_item *item = &table->items[i];
    item->value = value_copy;
    item->mod_revision = mod_revision;
    snprintf(item->version, sizeof item->version, "%" PRId64, mod_revision);
    return true;

out_of_memory:
    free(value_copy);
    free(name_copy);
    return false;
}

bool ec_table_delete(ec_table *table, const char *name) {
    ptrdiff_t found = ec_table_find(table, name);
    if (found < 0) return false;
    size_t i = (size_t)found;
    free(table->items[i].name);
    free(table->items[i].value);
    memmove(&table->items[i], &table->items[i + 1], (table->count - i - 1) * sizeof *table->items);
    table->count--;
    return true;
}

void ec_table_clear(ec_table *table) {
    for (size_t i = 0; i < table->count; i++) {
        free(table->items[i].name);
        free(table->items[i].value);
    }
    free(table->items);
    *table = (ec_table){0};
}
