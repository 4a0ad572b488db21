/* Loads text-tools-<version>.so the way the host does (dlopen, RTLD_NODELETE for a Swift plugin), reads
 * its declared operations through molt_plugin_operations, checks that every symbol is exported and in
 * the values form, and calls each operation with molt_value arrays, freeing string and bytes results
 * with free() as the host does. Prints the declarations; exits non-zero on the first mismatch.
 * Usage: check-text-tools PATH/TO/text-tools.so   (make check-text-tools) */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "molt_plugin.h"

typedef molt_status (*values_fn)(molt_instance, const molt_value *, molt_value *, molt_message *);

static void *library;
static const molt_operation *operations;
static uint32_t operation_count;
static int failures;

static void expect(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "FAIL: %s\n", what);
        failures++;
    }
}

static const char *type_name(molt_type type) {
    static const char *names[] = {"?", "int64", "double", "bool", "string", "bytes"};
    return type >= 1 && type <= 5 ? names[type] : "?";
}

static void print_fields(const molt_operation_field *fields, uint32_t count) {
    for (uint32_t i = 0; i < count; i++) printf("%s%s: %s", i ? ", " : "", fields[i].name, type_name(fields[i].type));
}

static const molt_operation *find(const char *name) {
    for (uint32_t i = 0; i < operation_count; i++)
        if (strcmp(operations[i].name, name) == 0) return &operations[i];
    return NULL;
}

static molt_value string_value(const char *text) {
    molt_value value = {.type = MOLT_TYPE_STRING};
    value.as.string = text;
    return value;
}

/* Calls `name` with `parameters`; results typed as declared and zeroed. Returns the status and leaves
 * the message in `text`; the caller frees string and bytes results. */
static molt_status call(molt_instance instance, const char *name, const molt_value *parameters, molt_value *results,
                        char *text, uint32_t capacity) {
    const molt_operation *operation = find(name);
    if (operation == NULL) {
        fprintf(stderr, "FAIL: no operation %s\n", name);
        exit(1);
    }
    for (uint32_t i = 0; i < operation->result_count; i++) {
        memset(&results[i], 0, sizeof results[i]);
        results[i].type = operation->results[i].type;
    }
    text[0] = '\0';
    molt_message message = {text, capacity};
    values_fn function = (values_fn)dlsym(library, operation->symbol);
    return function(instance, parameters, results, &message);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s text-tools.so\n", argv[0]);
        return 2;
    }
    library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (library == NULL) {
        fprintf(stderr, "FAIL: dlopen: %s\n", dlerror());
        return 1;
    }
    uint32_t major = 0, minor = 0;
    ((molt_abi_version_fn)dlsym(library, MOLT_SYMBOL_ABI_VERSION))(&major, &minor);
    expect(major == 1 && minor == 2, "ABI 1.2");
    const molt_plugin_identity *info = ((molt_plugin_info_fn)dlsym(library, MOLT_SYMBOL_PLUGIN_INFO))();
    printf("%s %s kind %s, ABI %u.%u\n", info->name, info->version, info->kind, major, minor);
    expect(strcmp(info->kind, MOLT_KIND_BINDING) == 0, "kind binding");

    molt_plugin_operations_fn list = (molt_plugin_operations_fn)dlsym(library, MOLT_SYMBOL_PLUGIN_OPERATIONS);
    expect(list != NULL, "molt_plugin_operations is exported");
    if (list == NULL) return 1;
    operations = list(&operation_count);
    expect(operation_count == 4, "4 operations");
    for (uint32_t i = 0; i < operation_count; i++) {
        const molt_operation *o = &operations[i];
        printf("  %s(", o->name);
        print_fields(o->parameters, o->parameter_count);
        printf(") -> (");
        print_fields(o->results, o->result_count);
        printf(")  %s%s  %s\n", o->symbol, (o->flags & MOLT_OPERATION_BLOCKING) ? " blocking" : "", o->description);
        expect(dlsym(library, o->symbol) != NULL, "every declared symbol is exported");
        expect(o->flags == MOLT_OPERATION_VALUES, "values form, inline");
    }

    molt_instance instance = NULL;
    molt_config config = {sizeof config, 0, NULL, "texttools"};
    char text[256];
    molt_message error = {text, sizeof text};
    expect(((molt_plugin_init_fn)dlsym(library, MOLT_SYMBOL_PLUGIN_INIT))(&config, NULL, &instance, &error) == MOLT_OK,
           "init");
    expect(((molt_plugin_readiness_fn)dlsym(library, MOLT_SYMBOL_PLUGIN_READINESS))(instance, &error) == MOLT_READY,
           "ready");

    molt_value parameters[2], results[2];
    parameters[0] = string_value("Hello, World! \xC3\x87" "a va?");
    expect(call(instance, "slugify", parameters, results, text, sizeof text) == MOLT_OK, "slugify succeeds");
    expect(strcmp(results[0].as.string, "hello-world-\xC3\xA7" "a-va") == 0, "slugify: hello-world-\xC3\xA7" "a-va");
    free((void *)results[0].as.string);

    parameters[0] = string_value("  --Hello, World 2!--  ");
    expect(call(instance, "slugify", parameters, results, text, sizeof text) == MOLT_OK, "slugify (ASCII) succeeds");
    expect(strcmp(results[0].as.string, "hello-world-2") == 0, "slugify: hello-world-2");
    free((void *)results[0].as.string);

    parameters[0] = string_value("  two\twords\n");
    expect(call(instance, "word-count", parameters, results, text, sizeof text) == MOLT_OK, "word-count succeeds");
    expect(results[0].as.int64 == 2, "word-count: 2");

    parameters[0].type = MOLT_TYPE_BYTES;
    parameters[0].as.bytes = (molt_bytes){(const uint8_t *)"hello", 5};
    expect(call(instance, "digest", parameters, results, text, sizeof text) == MOLT_OK, "digest succeeds");
    expect(results[0].as.int64 == (int64_t)0xa430d84680aabd0bULL && results[1].as.int64 == 5, "digest: FNV-1a of hello, 5");

    parameters[0] = string_value("h\xC3\xA9llo");
    parameters[1] = (molt_value){.type = MOLT_TYPE_INT64, .as.int64 = 2};
    expect(call(instance, "truncate", parameters, results, text, sizeof text) == MOLT_OK, "truncate succeeds");
    expect(strcmp(results[0].as.string, "h\xC3\xA9") == 0 && results[1].as.boolean, "truncate: h\xC3\xA9, true");
    free((void *)results[0].as.string);

    parameters[1].as.int64 = -1;
    expect(call(instance, "truncate", parameters, results, text, sizeof text) == MOLT_ERR_INVALID_ARGUMENT,
           "truncate to -1 is refused");
    expect(results[0].as.string == NULL && strstr(text, "maxCharacters is -1") != NULL, "with a message, no result");
    printf("  truncate(maxCharacters: -1): %s\n", text);

    parameters[0] = string_value(NULL);
    expect(call(instance, "slugify", parameters, results, text, sizeof text) == MOLT_ERR_INVALID_ARGUMENT,
           "a NULL string is refused");
    printf("  slugify(text: NULL): %s\n", text);

    ((molt_plugin_destroy_fn)dlsym(library, MOLT_SYMBOL_PLUGIN_DESTROY))(instance);
    if (failures) return 1;
    printf("ok: text-tools declares and answers its operations\n");
    return 0;
}
