// The test and README of the C lock template (CLockTemplate.swift has its source, CTemplateMakefile.swift its
// Makefile). The test is also the `make test` of the Swift lock template: it checks any lock .so the same way.
extension CLockTemplate {
    /// test/test_plugin.c: `make test`: dlopens the .so, checks lock semantics, in-place config, export/import.
    static let test = #"""
/* test_plugin.c: loads the plugin with dlopen, as molt does, and checks Dapr's lock semantics, in-place
 * config and state transfer (export from one instance, import into a fresh one). `make test` runs it. */
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

typedef struct { bool acquired; molt_status status; molt_unlock_status unlock_status; } outcome;
static void try_done(void *ctx, const molt_try_lock_result *r) { outcome *o = ctx; o->status = r->status; o->acquired = r->acquired; }
static void unlock_done(void *ctx, const molt_unlock_result *r) { outcome *o = ctx; o->status = r->status; o->unlock_status = r->unlock_status; }

static bool try_lock(molt_instance in, const char *resource, const char *owner) {
    molt_lock_request request = {sizeof request, resource, owner, 60};
    outcome o = {0};
    ((molt_lock_try_lock_fn)symbol(MOLT_SYMBOL_LOCK_TRY_LOCK))(in, &request, try_done, &o);
    CHECK(o.status == MOLT_OK || o.status == MOLT_ERR_UNAVAILABLE);
    return o.acquired;
}
static molt_unlock_status unlock(molt_instance in, const char *resource, const char *owner) {
    molt_lock_request request = {sizeof request, resource, owner, 0};
    outcome o = {0};
    ((molt_lock_unlock_fn)symbol(MOLT_SYMBOL_LOCK_UNLOCK))(in, &request, unlock_done, &o);
    CHECK(o.status == MOLT_OK);
    return o.unlock_status;
}

static void host_log(void *context, molt_log_level level, const char *message) { (void)context; (void)level; printf("  log: %s\n", message); }
static const molt_host_services host = {MOLT_HOST_SERVICES_SIZE_1_0, NULL, host_log, 0, NULL, NULL, NULL, NULL, NULL, NULL};

static molt_instance start(const char *max_locks) {
    molt_kv entries[] = {{"logLabel", "test"}, {"maxLocks", max_locks}};
    molt_config config = {sizeof config, 2, entries, "test"};
    char text[256] = "";
    molt_message error = {text, sizeof text};
    molt_instance in = NULL;
    molt_status status = ((molt_plugin_init_fn)symbol(MOLT_SYMBOL_PLUGIN_INIT))(&config, &host, &in, &error);
    if (status != MOLT_OK) { fprintf(stderr, "init failed: %s\n", text); exit(1); }
    return in;
}

typedef struct { uint8_t *bytes; size_t length; } buffer;
static int32_t append(void *ctx, const void *bytes, size_t length) {
    buffer *b = ctx;
    b->bytes = realloc(b->bytes, b->length + length);
    memcpy(b->bytes + b->length, bytes, length);
    b->length += length;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s PLUGIN.so\n", argv[0]); return 2; }
    plugin = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (plugin == NULL) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    const molt_plugin_identity *info = ((molt_plugin_info_fn)symbol(MOLT_SYMBOL_PLUGIN_INFO))();
    printf("%s %s\n", info->name, info->version);
    CHECK(info->flags & MOLT_PLUGIN_HOLDS_STATE);
    molt_plugin_destroy_fn destroy = (molt_plugin_destroy_fn)symbol(MOLT_SYMBOL_PLUGIN_DESTROY);

    /* Dapr semantics */
    molt_instance a = start("0");
    CHECK(try_lock(a, "r1", "alice"));
    CHECK(!try_lock(a, "r1", "bob"));   /* held by another */
    CHECK(!try_lock(a, "r1", "alice")); /* held: not again, not even by its owner */
    CHECK(unlock(a, "r1", "bob") == MOLT_UNLOCK_LOCK_BELONGS_TO_OTHERS);
    CHECK(unlock(a, "r2", "bob") == MOLT_UNLOCK_LOCK_DOES_NOT_EXIST);
    CHECK(try_lock(a, "r2", "bob"));

    /* in-place config: maxLocks 2 is reached */
    char text[256] = "";
    molt_message message = {text, sizeof text};
    molt_kv entries[] = {{"logLabel", "test"}, {"maxLocks", "2"}};
    molt_config config = {sizeof config, 2, entries, "test"};
    CHECK(((molt_plugin_apply_config_fn)symbol(MOLT_SYMBOL_PLUGIN_APPLY_CONFIG))(a, &config, &message) == MOLT_APPLIED);
    CHECK(!try_lock(a, "r3", "carol"));

    /* state transfer: export from a, import into a fresh instance b */
    buffer state = {NULL, 0};
    CHECK(((molt_plugin_export_state_fn)symbol(MOLT_SYMBOL_PLUGIN_EXPORT_STATE))(a, info->state_format_max, append, &state, &message) == MOLT_OK);
    destroy(a);
    molt_instance b = start("0");
    CHECK(((molt_plugin_import_state_fn)symbol(MOLT_SYMBOL_PLUGIN_IMPORT_STATE))(b, info->state_format_max, state.bytes, state.length, &message) == MOLT_OK);
    CHECK(!try_lock(b, "r1", "bob")); /* still held by alice */
    CHECK(unlock(b, "r1", "alice") == MOLT_UNLOCK_SUCCESS);
    CHECK(unlock(b, "r2", "bob") == MOLT_UNLOCK_SUCCESS);
    CHECK(unlock(b, "r1", "alice") == MOLT_UNLOCK_LOCK_DOES_NOT_EXIST);
    destroy(b);

    /* a corrupt state is refused */
    molt_instance c = start("0");
    CHECK(((molt_plugin_import_state_fn)symbol(MOLT_SYMBOL_PLUGIN_IMPORT_STATE))(c, info->state_format_max, state.bytes, state.length - 1, &message) != MOLT_OK);
    destroy(c);
    free(state.bytes);

    printf(failures ? "%d check(s) failed\n" : "all checks passed\n", failures);
    return failures ? 1 : 0;
}
"""#

    /// README.md: Build, stage, apply, swap versions.
    static let readme = #"""
# __PLUGIN_NAME__

A molt lock plugin in C (kind `lock`, Dapr's distributed lock semantics), generated by
`molt plugin new __PLUGIN_NAME__ --kind lock --language c`. It is complete: it builds, loads, applies
config changes in place and hands its held locks over to a new instance or a new version.

| File | What it is |
| --- | --- |
| `__PLUGIN_NAME__.c` | Part 1, your logic (the lock table, about 60 lines); Part 2, the ABI plumbing |
| `include/molt_plugin.h` | the ABI contract (a copy of molt's header, ABI 1.2) |
| `Makefile` | molt's C plugin flags; builds `__PLUGIN_NAME__-$(VERSION).so` |
| `test/test_plugin.c` | `make test`: dlopens the .so and checks lock semantics, in-place config and state transfer |

What is wired already:

- **State transfer**: `molt_plugin_export_state` / `molt_plugin_import_state` in format 1 (versioned:
  `state_format_min`/`max` in the identity), and `MOLT_PLUGIN_HOLDS_STATE`, so molt refuses a reload
  that would drop held locks.
- **Configuration**: `maxLocks` (default `0`, unlimited) applies in place through
  `molt_plugin_apply_config`; `logLabel` (default `locks`) does not, so changing it starts a new
  instance, which receives the locks through state transfer. molt refuses undeclared keys.
- **Logging** through `molt_log` (the host's log, attributed to the component).

## Build and test

```sh
make                  # __PLUGIN_NAME__-1.0.0.so
make test             # dlopen + semantics + export/import
make VERSION=1.1.0    # __PLUGIN_NAME__-1.1.0.so from the same source
```

## Stage into a plugins directory

molt loads plugins only from its plugins directory and refuses files writable by group or others.
`make install` copies under a temporary name and renames, so molt never sees a half-written file:

```sh
make install PLUGINS_DIR=/path/to/plugins.d
make install PLUGINS_DIR=/path/to/plugins.d VERSION=1.1.0
molt plugin inspect /path/to/plugins.d/__PLUGIN_NAME__-1.0.0.so
```

## Apply, take a lock, swap versions

```sh
molt serve --plugins-directory /path/to/plugins.d &
molt apply --kind lock --name locks --plugin __PLUGIN_NAME__ --version 1.0.0 --metadata maxLocks=1000
curl -X POST localhost:3500/v1.0-alpha1/lock/locks \
     -d '{"resourceId":"r1","lockOwner":"alice","expiryInSeconds":60}'
molt apply --kind lock --name locks --version 1.1.0         # swap: r1 is still held by alice
molt apply --kind lock --name locks --metadata maxLocks=10  # in place: no new instance
```

## Changing it

- Your logic is Part 1 of `__PLUGIN_NAME__.c`; Part 2 calls it under the instance's mutex.
- A new config key: add it to `plugin_keys` (with `applies_in_place` true only if `apply_config`
  handles it) and read it in `molt_plugin_init`.
- A new state format: write format 2 in export, read 1 and 2 in import, and set
  `state_format_max = 2` (keep `state_format_min = 1` so older versions can still swap with it).
- The contract, thread rules and status mapping: `include/molt_plugin.h` and molt's
  `docs/plugin-authors.md`.
"""#

}
