// The test and README of the C state template (CStateTemplate.swift has its source). The test is also the
// `make test` of the Swift state template (SwiftStateTemplate.swift): it checks any state .so the same way.
extension CStateTemplate {
    /// test/test_plugin.c: `make test`: dlopens the .so, checks etags, first-write, in-place config, export/import.
    static let test = #"""
/* test_plugin.c: loads the plugin with dlopen, as molt does, and checks Dapr's state semantics (etags,
 * first-write), in-place config and state transfer (export from one instance, import into a fresh one).
 * `make test` runs it. */
\#(CTemplateTestHarness.prologue)
typedef struct { molt_status status; bool found; char value[64]; char etag[32]; } outcome;
static void get_done(void *ctx, const molt_state_get_result *r) {
    outcome *o = ctx;
    o->status = r->status;
    o->found = r->found;
    snprintf(o->value, sizeof o->value, "%.*s", (int)r->value.length, r->value.data ? (const char *)r->value.data : "");
    snprintf(o->etag, sizeof o->etag, "%s", r->etag ? r->etag : "");
}
static void write_done(void *ctx, const molt_state_write_result *r) { ((outcome *)ctx)->status = r->status; }

/* The value of key ("" when missing); its etag into etag_out when given. */
static const char *get(molt_instance in, const char *key, char *etag_out) {
    static outcome o;
    memset(&o, 0, sizeof o);
    molt_state_get_request request = {sizeof request, key, MOLT_CONSISTENCY_UNSPECIFIED, 0, NULL};
    ((molt_state_get_fn)symbol(MOLT_SYMBOL_STATE_GET))(in, &request, get_done, &o);
    CHECK(o.status == MOLT_OK);
    if (etag_out != NULL) strcpy(etag_out, o.etag);
    return o.value;
}
static molt_status set(molt_instance in, const char *key, const char *value, const char *etag, molt_concurrency concurrency) {
    molt_state_set_request request = {.struct_size = sizeof request, .key = key, .value = {(const uint8_t *)value, strlen(value)},
                                      .etag = etag, .concurrency = concurrency};
    outcome o = {.status = -1};
    ((molt_state_set_fn)symbol(MOLT_SYMBOL_STATE_SET))(in, &request, write_done, &o);
    return o.status;
}
static molt_status delete(molt_instance in, const char *key, const char *etag, molt_concurrency concurrency) {
    molt_state_delete_request request = {.struct_size = sizeof request, .key = key, .etag = etag, .concurrency = concurrency};
    outcome o = {.status = -1};
    ((molt_state_delete_fn)symbol(MOLT_SYMBOL_STATE_DELETE))(in, &request, write_done, &o);
    return o.status;
}

\#(CTemplateTestHarness.host)
static molt_instance start(const char *max_keys) {
    molt_kv entries[] = {{"logLabel", "test"}, {"maxKeys", max_keys}};
    molt_config config = {sizeof config, 2, entries, "test"};
    char text[256] = "";
    molt_message error = {text, sizeof text};
    molt_instance in = NULL;
    molt_status status = ((molt_plugin_init_fn)symbol(MOLT_SYMBOL_PLUGIN_INIT))(&config, &host, &in, &error);
    if (status != MOLT_OK) { fprintf(stderr, "init failed: %s\n", text); exit(1); }
    return in;
}

\#(CTemplateTestHarness.exportSink)
\#(CTemplateTestHarness.mainPrologue)
    CHECK(strcmp(info->kind, MOLT_KIND_STATE) == 0);
    CHECK(info->flags & MOLT_PLUGIN_HOLDS_STATE);
    molt_plugin_destroy_fn destroy = (molt_plugin_destroy_fn)symbol(MOLT_SYMBOL_PLUGIN_DESTROY);

    /* Dapr semantics: etags and first-write */
    molt_instance a = start("0");
    char etag[32], old[32];
    CHECK(strcmp(get(a, "k1", NULL), "") == 0);
    CHECK(set(a, "k1", "v1", NULL, MOLT_CONCURRENCY_FIRST_WRITE) == MOLT_OK);            /* a new key */
    CHECK(set(a, "k1", "v2", NULL, MOLT_CONCURRENCY_FIRST_WRITE) == MOLT_ERR_ETAG_MISMATCH); /* exists: needs its etag */
    CHECK(strcmp(get(a, "k1", old), "v1") == 0 && old[0] != '\0');
    CHECK(set(a, "k1", "v2", old, MOLT_CONCURRENCY_FIRST_WRITE) == MOLT_OK);
    CHECK(strcmp(get(a, "k1", etag), "v2") == 0 && strcmp(etag, old) != 0);            /* a write changes the etag */
    CHECK(set(a, "k1", "v3", old, MOLT_CONCURRENCY_LAST_WRITE) == MOLT_ERR_ETAG_MISMATCH); /* a stale etag */
    CHECK(set(a, "k1", "v3", "not-a-number", MOLT_CONCURRENCY_LAST_WRITE) == MOLT_ERR_ETAG_INVALID);
    CHECK(set(a, "nope", "v", "1", MOLT_CONCURRENCY_LAST_WRITE) == MOLT_ERR_ETAG_MISMATCH); /* an etag for a missing key */
    CHECK(set(a, "k1", "v3", NULL, MOLT_CONCURRENCY_LAST_WRITE) == MOLT_OK);             /* last-write: no etag needed */
    CHECK(set(a, "k2", "two", NULL, MOLT_CONCURRENCY_UNSPECIFIED) == MOLT_OK);
    CHECK(delete(a, "k2", old, MOLT_CONCURRENCY_UNSPECIFIED) == MOLT_ERR_ETAG_MISMATCH);
    CHECK(delete(a, "missing", NULL, MOLT_CONCURRENCY_UNSPECIFIED) == MOLT_OK);
    CHECK(set(a, "k3", "three", NULL, MOLT_CONCURRENCY_UNSPECIFIED) == MOLT_OK);
    get(a, "k3", etag);
    CHECK(delete(a, "k3", etag, MOLT_CONCURRENCY_FIRST_WRITE) == MOLT_OK);
    CHECK(strcmp(get(a, "k3", NULL), "") == 0);

    /* in-place config: maxKeys 2 is reached (k1, k2 stored): a new key is refused, an existing one is written */
    char text[256] = "";
    molt_message message = {text, sizeof text};
    molt_kv entries[] = {{"logLabel", "test"}, {"maxKeys", "2"}};
    molt_config config = {sizeof config, 2, entries, "test"};
    CHECK(((molt_plugin_apply_config_fn)symbol(MOLT_SYMBOL_PLUGIN_APPLY_CONFIG))(a, &config, &message) == MOLT_APPLIED);
    CHECK(set(a, "k4", "four", NULL, MOLT_CONCURRENCY_UNSPECIFIED) == MOLT_ERR_UNAVAILABLE);
    CHECK(set(a, "k2", "TWO", NULL, MOLT_CONCURRENCY_UNSPECIFIED) == MOLT_OK);

    /* state transfer: export from a, import into a fresh instance b: values and etags kept, etags stay new */
    get(a, "k1", old);
    buffer state = {NULL, 0};
    CHECK(((molt_plugin_export_state_fn)symbol(MOLT_SYMBOL_PLUGIN_EXPORT_STATE))(a, info->state_format_max, append, &state, &message) == MOLT_OK);
    destroy(a);
    molt_instance b = start("0");
    CHECK(((molt_plugin_import_state_fn)symbol(MOLT_SYMBOL_PLUGIN_IMPORT_STATE))(b, info->state_format_max, state.bytes, state.length, &message) == MOLT_OK);
    CHECK(strcmp(get(b, "k1", etag), "v3") == 0 && strcmp(etag, old) == 0);
    CHECK(strcmp(get(b, "k2", NULL), "TWO") == 0);
    CHECK(set(b, "k1", "v4", old, MOLT_CONCURRENCY_FIRST_WRITE) == MOLT_OK);
    char newer[32];
    get(b, "k2", old);
    get(b, "k1", newer);
    CHECK(strcmp(newer, old) != 0); /* the new etag is not one k2 already has */
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

A molt state store plugin in C (kind `state`, Dapr's state store semantics, in memory), generated by
`molt plugin new __PLUGIN_NAME__ --kind state --language c`. It is complete: it builds, loads, applies
config changes in place and hands its stored keys over to a new instance or a new version.

| File | What it is |
| --- | --- |
| `__PLUGIN_NAME__.c` | Part 1, your logic (the key/value table with etags); Part 2, the ABI plumbing |
| `include/molt_plugin.h` | the ABI contract (a copy of molt's header, ABI 1.2) |
| `Makefile` | molt's C plugin flags; builds `__PLUGIN_NAME__-$(VERSION).so` |
| `test/test_plugin.c` | `make test`: dlopens the .so and checks etags, first-write, in-place config and state transfer |

What is wired already:

- **Semantics**: get, set and delete with etags (a decimal number, new on every write) and Dapr's
  concurrency modes: a stale or unknown etag is `ETAG_MISMATCH` (HTTP 409), a malformed one
  `ETAG_INVALID` (400); first-write without an etag writes only a new key. Bulk get is the host's (one
  get per key); transactions answer unsupported (export `molt_state_transact` to add them); TTLs are refused.
- **State transfer**: `molt_plugin_export_state` / `molt_plugin_import_state` in format 1 (versioned:
  `state_format_min`/`max` in the identity; the etag counter travels too, so etags stay unique), and
  `MOLT_PLUGIN_HOLDS_STATE`, so molt refuses a reload that would drop the stored keys.
- **Configuration**: `maxKeys` (default `0`, unlimited) applies in place through
  `molt_plugin_apply_config`; `logLabel` (default `state`) does not, so changing it starts a new
  instance, which receives the keys through state transfer. molt refuses undeclared keys (it reads
  `keyPrefix` itself).
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

## Apply, save and read, swap versions

```sh
molt serve --plugins-directory /path/to/plugins.d &
molt apply --kind state --name store --plugin __PLUGIN_NAME__ --version 1.0.0 --metadata maxKeys=1000
curl -X POST localhost:3500/v1.0/state/store -d '[{"key":"order-1","value":{"id":1}}]'
molt apply --kind state --name store --version 1.1.0         # swap: order-1 is still there
curl localhost:3500/v1.0/state/store/order-1                 # {"id":1}
molt apply --kind state --name store --metadata maxKeys=10   # in place: no new instance
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
