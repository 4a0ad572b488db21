/* test_local_env.c: loads local-env-*.so with dlopen, as molt does, and proves Dapr's local.env semantics:
 * get and bulk_get with and without a prefix (removed from names; a variable named just the prefix is not
 * a secret), a variable not set is MOLT_ERR_NOT_FOUND, one set to "" is served, and the sidecar's own
 * variables (APP_API_TOKEN, DAPR_*, MOLT_*, any case) are never served. Usage: test_local_env local-env.so */
#include "molt_plugin.h"
#include "plugin_check.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

int failures; /* plugin_check.h */

static molt_plugin_init_fn init;
static molt_plugin_destroy_fn destroy;
static molt_secret_get_fn get_fn;
static molt_secret_bulk_get_fn bulk_get_fn;

static void host_log(void *context, molt_log_level level, const char *message) {
    (void)context;
    printf("  log(%d): %s\n", level, message);
}
static const molt_host_services host = {.struct_size = sizeof(molt_host_services), .log = host_log};

/* An answer as "key{name=value,...} key{...}", with its status and message. */
typedef struct { int calls; molt_status status; char message[512]; char text[8192]; } answer;

static void on_done(void *context, const molt_secret_result *r) {
    answer *a = context;
    a->calls++;
    a->status = r->status;
    snprintf(a->message, sizeof a->message, "%s", r->message ? r->message : "");
    size_t n = 0;
    for (uint32_t i = 0; i < r->secret_count && n < sizeof a->text; i++) {
        const molt_secret *s = &r->secrets[i];
        CHECK(s->value_count == 1 && strcmp(s->values[0].key, s->key) == 0);
        n += (size_t)snprintf(a->text + n, sizeof a->text - n, "%s%s{%s=%s}", i ? " " : "", s->key,
                              s->values[0].key, s->values[0].value);
    }
}

static answer get(molt_instance in, const char *key) {
    answer a = {0};
    molt_secret_request request = {sizeof request, key, 0, NULL};
    get_fn(in, &request, on_done, &a);
    CHECK(a.calls == 1);
    return a;
}

static answer bulk_get(molt_instance in) {
    answer a = {0};
    molt_secret_request request = {sizeof request, NULL, 0, NULL};
    bulk_get_fn(in, &request, on_done, &a);
    CHECK(a.calls == 1 && a.status == MOLT_OK);
    return a;
}

static molt_instance start(const char *prefix) {
    molt_kv entry = {"prefix", prefix};
    molt_config config = {sizeof config, prefix ? 1 : 0, &entry, "env"};
    char text[256] = "";
    molt_message error = {text, sizeof text};
    molt_instance in = NULL;
    if (init(&config, &host, &in, &error) != MOLT_OK || in == NULL) {
        fprintf(stderr, "init failed: %s\n", text);
        exit(1);
    }
    return in;
}

static void *load_symbol(void *handle, const char *name) {
    void *s = dlsym(handle, name);
    if (s == NULL) { fprintf(stderr, "missing symbol %s\n", name); exit(1); }
    return s;
}

static void test_with_prefix(void) {
    molt_instance in = start("MOLTTEST_");
    answer a = get(in, "DB");
    CHECK(a.status == MOLT_OK);
    CHECK_TEXT(a.text, "DB{DB=db-value}"); /* the variable MOLTTEST_DB, named without the prefix */
    CHECK_TEXT(get(in, "EMPTY").text, "EMPTY{EMPTY=}");
    a = get(in, "UNSET");
    CHECK(a.status == MOLT_ERR_NOT_FOUND && a.text[0] == '\0');
    CHECK_TEXT(a.message, "local-env: secret \"UNSET\" not found (environment variable MOLTTEST_UNSET is not set)");
    CHECK(get(in, "MOLTTEST_DB").status == MOLT_ERR_NOT_FOUND); /* the prefix is added, not expected */
    CHECK(get(in, "OTHER_X").status == MOLT_ERR_NOT_FOUND);
    /* Only the prefixed variables, longer than the prefix ("MOLTTEST_" itself is not a secret), sorted. */
    CHECK_TEXT(bulk_get(in).text, "A{A=a-value} DB{DB=db-value} EMPTY{EMPTY=} a{a=lower}");
    destroy(in);

    in = start("moltTest_"); /* case-sensitive, as Dapr on Linux */
    CHECK(get(in, "DB").status == MOLT_ERR_NOT_FOUND);
    CHECK_TEXT(bulk_get(in).text, "");
    destroy(in);
}

static void test_without_prefix(void) {
    molt_instance in = start(NULL);
    CHECK_TEXT(get(in, "MOLTTEST_DB").text, "MOLTTEST_DB{MOLTTEST_DB=db-value}");
    CHECK_TEXT(get(in, "OTHER_X").text, "OTHER_X{OTHER_X=x-value}");
    answer all = bulk_get(in);
    CHECK(strstr(all.text, "MOLTTEST_A{MOLTTEST_A=a-value}") != NULL);
    CHECK(strstr(all.text, "OTHER_X{OTHER_X=x-value}") != NULL);
    for (const char *const *name = (const char *const[]){"DAPR_API_TOKEN", "dapr_http_port", "APP_API_TOKEN",
                                                          "app_api_token", "MOLT_CONTROL_TOKEN", NULL};
         *name; name++) {
        answer a = get(in, *name);
        CHECK(a.status == MOLT_ERR_NOT_FOUND && strstr(a.message, "is not served") != NULL);
        char needle[64];
        snprintf(needle, sizeof needle, "%s{", *name);
        CHECK(strstr(all.text, needle) == NULL);
    }
    CHECK(strstr(all.text, "token-value") == NULL);
    destroy(in);

    in = start("DAPR_"); /* forbidden by the full name: a prefix does not open them */
    CHECK(get(in, "API_TOKEN").status == MOLT_ERR_NOT_FOUND);
    CHECK_TEXT(bulk_get(in).text, "");
    destroy(in);
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s local-env.so\n", argv[0]); return 2; }
    void *handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    uint32_t major = 0, minor = 0;
    ((molt_abi_version_fn)load_symbol(handle, MOLT_SYMBOL_ABI_VERSION))(&major, &minor);
    CHECK(major == 1 && minor == 3);
    const molt_plugin_identity *info = ((molt_plugin_info_fn)load_symbol(handle, MOLT_SYMBOL_PLUGIN_INFO))();
    CHECK_TEXT(info->name, "local-env");
    CHECK_TEXT(info->version, "1.0.0");
    CHECK_TEXT(info->kind, MOLT_KIND_SECRETSTORE);
    uint32_t count = 0;
    const molt_config_key *keys = ((molt_plugin_config_keys_fn)load_symbol(handle, MOLT_SYMBOL_PLUGIN_CONFIG_KEYS))(&count);
    CHECK(count == 1 && strcmp(keys[0].name, "prefix") == 0 && keys[0].default_value == NULL && !keys[0].required);
    CHECK(dlsym(handle, MOLT_SYMBOL_PLUGIN_APPLY_CONFIG) == NULL); /* a prefix change starts a new instance */
    init = (molt_plugin_init_fn)load_symbol(handle, MOLT_SYMBOL_PLUGIN_INIT);
    destroy = (molt_plugin_destroy_fn)load_symbol(handle, MOLT_SYMBOL_PLUGIN_DESTROY);
    get_fn = (molt_secret_get_fn)load_symbol(handle, MOLT_SYMBOL_SECRET_GET);
    bulk_get_fn = (molt_secret_bulk_get_fn)load_symbol(handle, MOLT_SYMBOL_SECRET_BULK_GET);
    load_symbol(handle, MOLT_SYMBOL_PLUGIN_READINESS);

    static const char *const variables[][2] = {
        {"MOLTTEST_DB", "db-value"}, {"MOLTTEST_A", "a-value"}, {"MOLTTEST_EMPTY", ""}, {"MOLTTEST_a", "lower"},
        {"MOLTTEST_", "prefix-only"}, {"OTHER_X", "x-value"}, {"DAPR_API_TOKEN", "token-value"},
        {"dapr_http_port", "token-value"}, {"APP_API_TOKEN", "token-value"}, {"app_api_token", "token-value"},
        {"MOLT_CONTROL_TOKEN", "token-value"}};
    for (size_t i = 0; i < sizeof variables / sizeof variables[0]; i++) setenv(variables[i][0], variables[i][1], 1);
    unsetenv("MOLTTEST_UNSET");
    printf("with a prefix\n");
    test_with_prefix();
    printf("without a prefix\n");
    test_without_prefix();

    CHECK(dlclose(handle) == 0);
    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("test_local_env: all checks passed\n");
    return 0;
}
