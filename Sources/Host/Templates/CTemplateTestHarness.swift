// The parts of the C templates' test/test_plugin.c that do not depend on the kind, written once and interpolated
// into CLockTemplate.test and CStateTemplate.test (each generated file stays self-contained).
enum CTemplateTestHarness {
    /// The includes, CHECK and dlsym lookup every test starts with.
    static let prologue = #"""
#include "molt_plugin.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(condition) \
    do { if (!(condition)) { fprintf(stderr, "FAIL line %d: %s\n", __LINE__, #condition); failures++; } } while (0)

static void *plugin;
static void *symbol(const char *name) {
    void *s = dlsym(plugin, name);
    if (s == NULL) { fprintf(stderr, "missing symbol %s\n", name); exit(1); }
    return s;
}

"""#
    /// Host services of an ABI 1.0 host: log lines go to stdout.
    static let host = #"""
static void host_log(void *context, molt_log_level level, const char *message) { (void)context; (void)level; printf("  log: %s\n", message); }
static const molt_host_services host = {.struct_size = MOLT_HOST_SERVICES_SIZE_1_0, .log = host_log};

"""#
    /// A molt_bytes_sink that collects an export in memory.
    static let exportSink = #"""
typedef struct { uint8_t *bytes; size_t length; } buffer;
static int32_t append(void *ctx, const void *bytes, size_t length) {
    buffer *b = ctx;
    b->bytes = realloc(b->bytes, b->length + length);
    memcpy(b->bytes + b->length, bytes, length);
    b->length += length;
    return 0;
}

"""#
    /// main: dlopen the .so given as the only argument, print its name and version.
    static let mainPrologue = #"""
int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s PLUGIN.so\n", argv[0]); return 2; }
    plugin = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (plugin == NULL) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    const molt_plugin_identity *info = ((molt_plugin_info_fn)symbol(MOLT_SYMBOL_PLUGIN_INFO))();
    printf("%s %s\n", info->name, info->version);
"""#
}
