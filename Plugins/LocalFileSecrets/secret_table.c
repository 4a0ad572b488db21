/*
 * secret_table.c: a JSON object -> the table of secrets, as Dapr's secretstores.local.file reads it.
 *
 *   multiValued false: every leaf is a secret, named by its path of object keys and array indexes
 *     joined with nestedSeparator ({"a": {"b": "x"}, "l": ["y"]} -> "a:b" = x, "l:0" = y), with one
 *     value named as the secret.
 *   multiValued true: every top-level key is a secret. A string is one value named as the key; an
 *     object's leaves, flattened as above relative to it, are its values ({"db": {"user": "u"}} ->
 *     secret "db" with value "user" = u). An empty object has no value, so no secret (the ABI needs at
 *     least one).
 *
 * Refused, naming the path (never the value): a leaf that is not a string (Dapr formats numbers,
 * booleans and null with Go's %s, serving "%!s(float64=5432)"); with multiValued, a top-level array
 * (Dapr drops it silently); two leaves that flatten to one name ({"a:b": .., "a": {"b": ..}}; Dapr stops
 * flattening at the duplicate and keeps what it had, in map order).
 */
#include "local_file.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *secret; /* the secret's key */
    const char *name;   /* the value's name (the same string as secret when multiValued is false) */
    const char *value;
} lf_pair;

/* Everything the walk allocates is registered in `strings`, so one loop frees it on any outcome. */
typedef struct {
    const lf_settings *settings;
    size_t separator_length;
    lf_pair *pairs;
    size_t pair_count, pair_capacity;
    char **strings;
    size_t string_count, string_capacity;
    char *path; /* the flattened name of the node being visited, NUL-terminated */
    size_t path_length, path_capacity;
    const char *secret; /* multiValued: the top-level key being flattened; NULL otherwise */
    char *why;
    size_t why_size;
    bool out_of_memory;
} lf_builder;

static bool lf_grow(void **array, size_t *capacity, size_t needed, size_t element_size) {
    if (needed <= *capacity) return true;
    size_t next = *capacity ? *capacity * 2 : 16;
    while (next < needed) next *= 2;
    void *grown = realloc(*array, next * element_size);
    if (grown == NULL) return false;
    *array = grown;
    *capacity = next;
    return true;
}

/* A registered copy of `length` bytes of `text`, or NULL (out of memory, recorded). */
static char *lf_keep(lf_builder *b, const char *text, size_t length) {
    if (!lf_grow((void **)&b->strings, &b->string_capacity, b->string_count + 1, sizeof(char *))) goto oom;
    char *copy = malloc(length + 1);
    if (copy == NULL) goto oom;
    memcpy(copy, text, length);
    copy[length] = '\0';
    b->strings[b->string_count++] = copy;
    return copy;
oom:
    b->out_of_memory = true;
    return NULL;
}

/* Appends a segment, after the separator unless it is the first (Dapr joins segments, empty ones too). */
static bool lf_path_push(lf_builder *b, const char *segment, size_t length, bool first) {
    size_t separator = first ? 0 : b->separator_length;
    if (!lf_grow((void **)&b->path, &b->path_capacity, b->path_length + separator + length + 1, 1)) {
        b->out_of_memory = true;
        return false;
    }
    memcpy(b->path + b->path_length, b->settings->separator, separator);
    memcpy(b->path + b->path_length + separator, segment, length);
    b->path_length += separator + length;
    b->path[b->path_length] = '\0';
    return true;
}

static const char *lf_type_name(const json_t *value) {
    switch (json_typeof(value)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* The full path of the current node, for messages: "db" + separator + "port" when multiValued. */
static void lf_refuse_leaf(lf_builder *b, const json_t *value) {
    const char *sep = b->secret ? b->settings->separator : "";
    snprintf(b->why, b->why_size,
             "the value at \"%s%s%s\" is %s; every secret must be a JSON string (quote it)",
             b->secret ? b->secret : "", sep, b->path, lf_type_name(value));
}

static bool lf_add_leaf(lf_builder *b, const json_t *value) {
    char *name = lf_keep(b, b->path, b->path_length);
    char *text = name ? lf_keep(b, json_string_value(value), json_string_length(value)) : NULL;
    if (text == NULL) return false;
    if (!lf_grow((void **)&b->pairs, &b->pair_capacity, b->pair_count + 1, sizeof(lf_pair))) {
        b->out_of_memory = true;
        return false;
    }
    b->pairs[b->pair_count++] = (lf_pair){b->secret ? b->secret : name, name, text};
    return true;
}

static bool lf_visit(lf_builder *b, const json_t *node, unsigned depth) {
    size_t saved = b->path_length;
    if (json_is_object(node)) {
        const char *key;
        const json_t *child;
        json_object_foreach((json_t *)node, key, child) {
            if (!lf_path_push(b, key, strlen(key), depth == 0) || !lf_visit(b, child, depth + 1)) return false;
            b->path_length = saved;
            b->path[saved] = '\0';
        }
        return true;
    }
    if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++) {
            char index[24];
            int length = snprintf(index, sizeof index, "%zu", i);
            if (!lf_path_push(b, index, (size_t)length, depth == 0) ||
                !lf_visit(b, json_array_get(node, i), depth + 1))
                return false;
            b->path_length = saved;
            b->path[saved] = '\0';
        }
        return true;
    }
    if (json_is_string(node)) return lf_add_leaf(b, node);
    lf_refuse_leaf(b, node);
    return false;
}

/* multiValued: each top-level key is a secret; its object flattens into that secret's values. */
static bool lf_visit_multi_valued(lf_builder *b, const json_t *root) {
    const char *key;
    const json_t *child;
    json_object_foreach((json_t *)root, key, child) {
        b->path_length = 0;
        b->path[0] = '\0';
        if (json_is_string(child)) {
            b->secret = NULL; /* a plain string: one value named as the secret */
            if (!lf_path_push(b, key, strlen(key), true) || !lf_add_leaf(b, child)) return false;
        } else if (json_is_object(child)) {
            if ((b->secret = lf_keep(b, key, strlen(key))) == NULL || !lf_visit(b, child, 0)) return false;
        } else {
            snprintf(b->why, b->why_size,
                     "multiValued: the top-level value \"%s\" is %s; a secret must be a string or an object",
                     key, lf_type_name(child));
            return false;
        }
    }
    return true;
}

static int lf_compare_pairs(const void *left, const void *right) {
    const lf_pair *a = left, *b = right;
    int by_secret = strcmp(a->secret, b->secret);
    return by_secret ? by_secret : strcmp(a->name, b->name);
}

static int lf_compare_key(const void *key, const void *element) {
    return strcmp(key, ((const molt_secret *)element)->key);
}

void lf_table_free(lf_table *table) {
    if (table == NULL) return;
    for (size_t i = 0; i < table->string_count; i++) free(table->strings[i]);
    free(table->strings);
    free(table->secrets);
    free(table->values);
    free(table);
}

/* Sorted pairs -> secrets and their value slices; false (with why) on a name that occurs twice. */
static bool lf_group(lf_builder *b, lf_table *t) {
    if (b->pair_count > 1) qsort(b->pairs, b->pair_count, sizeof(lf_pair), lf_compare_pairs);
    t->values = malloc((b->pair_count ? b->pair_count : 1) * sizeof(molt_kv));
    t->secrets = malloc((b->pair_count ? b->pair_count : 1) * sizeof(molt_secret));
    if (t->values == NULL || t->secrets == NULL) {
        b->out_of_memory = true;
        return false;
    }
    for (size_t i = 0; i < b->pair_count; i++) {
        const lf_pair *p = &b->pairs[i];
        bool same_secret = t->count > 0 && strcmp(t->secrets[t->count - 1].key, p->secret) == 0;
        if (same_secret && strcmp(b->pairs[i - 1].name, p->name) == 0) {
            if (b->settings->multi_valued && p->secret != p->name)
                snprintf(b->why, b->why_size, "secret \"%s\" has two values named \"%s\" once flattened with "
                         "nestedSeparator \"%s\"", p->secret, p->name, b->settings->separator);
            else
                snprintf(b->why, b->why_size, "two values flatten to the secret \"%s\" with nestedSeparator \"%s\"",
                         p->name, b->settings->separator);
            return false;
        }
        t->values[i] = (molt_kv){p->name, p->value};
        if (same_secret)
            t->secrets[t->count - 1].value_count++;
        else
            t->secrets[t->count++] = (molt_secret){p->secret, 1, &t->values[i]};
    }
    return true;
}

bool lf_table_build(const struct json_t *root, const lf_settings *settings, lf_table **out, char *why,
                    size_t why_size) {
    lf_builder b = {.settings = settings, .separator_length = strlen(settings->separator), .why = why,
                    .why_size = why_size};
    lf_table *t = calloc(1, sizeof *t);
    bool ok = t != NULL && lf_path_push(&b, "", 0, true); /* allocates the path buffer */
    if (ok) ok = settings->multi_valued ? lf_visit_multi_valued(&b, root) : lf_visit(&b, root, 0);
    if (ok) ok = lf_group(&b, t);
    if (t != NULL) { /* the table owns the strings from here on, also to free them on failure */
        t->strings = b.strings;
        t->string_count = b.string_count;
    } else {
        for (size_t i = 0; i < b.string_count; i++) free(b.strings[i]);
        free(b.strings);
    }
    free(b.pairs);
    free(b.path);
    if (!ok) {
        if (b.out_of_memory || t == NULL) snprintf(why, why_size, "out of memory building the secrets table");
        lf_table_free(t);
        return false;
    }
    t->pins = 1;
    *out = t;
    return true;
}

const molt_secret *lf_table_find(const lf_table *table, const char *key) {
    return bsearch(key, table->secrets, table->count, sizeof(molt_secret), lf_compare_key);
}

bool lf_table_equal(const lf_table *a, const lf_table *b) {
    if (a->count != b->count) return false;
    for (uint32_t i = 0; i < a->count; i++) {
        const molt_secret *x = &a->secrets[i], *y = &b->secrets[i];
        if (x->value_count != y->value_count || strcmp(x->key, y->key) != 0) return false;
        for (uint32_t k = 0; k < x->value_count; k++)
            if (strcmp(x->values[k].key, y->values[k].key) != 0 || strcmp(x->values[k].value, y->values[k].value) != 0)
                return false;
    }
    return true;
}
