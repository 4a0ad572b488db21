/* test_local_file.c: loads local-file-*.so with dlopen, as molt does, with a fake host (a log sink and a
 * `changed` counter), and proves Dapr's local.file semantics (flattening with the default and other
 * separators, multiValued, refused non-string values and duplicate names), get and bulk_get answers, init
 * refusals (missing file, malformed JSON with line and column, non-object top level, missing secretsFile,
 * a file over 4 MiB), the watcher (rename and in-place rewrites served and reported once, malformed
 * rewrites and removal keep the old secrets with a warning, a host without `changed`), apply_config,
 * readers racing swaps, and destroy joining the watcher. Every secret value in these files contains
 * "SECRET"; no message or log line may. Waits are bounded polls, never fixed sleeps.
 * Usage: test_local_file local-file-1.0.0.so */
#include "molt_plugin.h"
#include "plugin_check.h"

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int failures; /* plugin_check.h */

static struct {
    molt_plugin_init_fn init;
    molt_plugin_destroy_fn destroy;
    molt_plugin_apply_config_fn apply;
    molt_secret_get_fn get;
    molt_secret_bulk_get_fn bulk_get;
} p;

/* ---- the fake host ---- */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int warnings;              /* guarded by log_mu */
static char last_warning[1024];   /* guarded by log_mu */
static atomic_int changed_calls;

static void host_log(void *context, molt_log_level level, const char *message) {
    (void)context;
    printf("  log(%d): %s\n", level, message);
    CHECK(strstr(message, "SECRET") == NULL);
    pthread_mutex_lock(&log_mu);
    if (level == MOLT_LOG_WARNING) {
        warnings++;
        snprintf(last_warning, sizeof last_warning, "%s", message);
    }
    pthread_mutex_unlock(&log_mu);
}

static void host_changed(void *context, const char *key) {
    (void)context;
    CHECK(key == NULL);
    atomic_fetch_add(&changed_calls, 1);
}

static const molt_host_services host = {
    .struct_size = sizeof(molt_host_services), .log = host_log, .changed = host_changed};
/* An ABI 1.1 host: no `changed` service (the field past struct_size is garbage on purpose). */
static const molt_host_services host_1_1 = {
    .struct_size = MOLT_HOST_SERVICES_SIZE_1_1, .log = host_log, .changed = (void (*)(void *, const char *))1};

static int warning_count(void) {
    pthread_mutex_lock(&log_mu);
    int n = warnings;
    pthread_mutex_unlock(&log_mu);
    return n;
}

/* ---- answers: "key{name=value,...} key{...}" ---- */
typedef struct {
    int calls;
    molt_status status;
    char message[512];
    char text[4096];
} answer;

static void on_done(void *context, const molt_secret_result *r) {
    answer *a = context;
    a->calls++;
    a->status = r->status;
    snprintf(a->message, sizeof a->message, "%s", r->message ? r->message : "");
    CHECK(strstr(a->message, "SECRET") == NULL);
    size_t n = 0;
    for (uint32_t i = 0; i < r->secret_count; i++) {
        const molt_secret *s = &r->secrets[i];
        n += (size_t)snprintf(a->text + n, sizeof a->text - n, "%s%s{", i ? " " : "", s->key);
        for (uint32_t k = 0; k < s->value_count && n < sizeof a->text; k++)
            n += (size_t)snprintf(a->text + n, sizeof a->text - n, "%s%s=%s", k ? "," : "", s->values[k].key,
                                  s->values[k].value);
        if (n < sizeof a->text) n += (size_t)snprintf(a->text + n, sizeof a->text - n, "}");
        if (n >= sizeof a->text) break;
    }
}

static answer get(molt_instance in, const char *key) {
    answer a = {0};
    molt_secret_request request = {sizeof request, key, 0, NULL};
    p.get(in, &request, on_done, &a);
    CHECK(a.calls == 1); /* inline: done before get returned */
    return a;
}

static answer bulk_get(molt_instance in) {
    answer a = {0};
    molt_secret_request request = {sizeof request, NULL, 0, NULL};
    p.bulk_get(in, &request, on_done, &a);
    CHECK(a.calls == 1 && a.status == MOLT_OK);
    return a;
}

/* ---- files ---- */
static char dir[64];

static const char *path_of(const char *name) {
    static char paths[8][256];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, sizeof paths[0], "%s/%s", dir, name);
    return path;
}

/* Rewrites in place (open O_TRUNC, write, close: IN_CLOSE_WRITE). */
static void write_file(const char *path, const char *content) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, content, strlen(content)) == (ssize_t)strlen(content) && close(fd) == 0);
}

/* Replaces by rename, as editors and deploy tools do (IN_MOVED_TO). */
static void replace_file(const char *path, const char *content) {
    char temporary[300];
    snprintf(temporary, sizeof temporary, "%s.tmp", path);
    write_file(temporary, content);
    CHECK(rename(temporary, path) == 0);
}

/* ---- lifecycle ---- */
static molt_status start_with(const molt_host_services *h, const char *file, const char *separator,
                              const char *multi_valued, molt_instance *in, char *why) {
    molt_kv entries[3];
    uint32_t n = 0; /* sorted bytewise, defaults filled in, as the host does */
    if (multi_valued) entries[n++] = (molt_kv){"multiValued", multi_valued};
    if (separator) entries[n++] = (molt_kv){"nestedSeparator", separator};
    if (file) entries[n++] = (molt_kv){"secretsFile", file};
    molt_config config = {sizeof config, n, entries, "secrets"};
    molt_message error = {why, 512};
    why[0] = '\0';
    *in = NULL;
    molt_status status = p.init(&config, h, in, &error);
    CHECK((status == MOLT_OK) == (*in != NULL));
    CHECK(status == MOLT_OK || why[0] != '\0');
    return status;
}

static molt_instance start(const char *file, const char *separator, const char *multi_valued) {
    char why[512];
    molt_instance in;
    if (start_with(&host, file, separator, multi_valued, &in, why) != MOLT_OK) {
        fprintf(stderr, "init failed: %s\n", why);
        exit(1);
    }
    return in;
}

/* The init refusal for `content` (written to refused.json), or "" when init succeeded. */
static const char *refusal(const char *content, const char *multi_valued, molt_status expected) {
    static char why[512];
    const char *file = path_of("refused.json");
    write_file(file, content);
    molt_instance in;
    molt_status status = start_with(&host, file, ":", multi_valued, &in, why);
    CHECK(status == expected);
    if (status == MOLT_OK) p.destroy(in);
    printf("  refused: %s\n", why);
    return why;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polls `condition` every 2 ms for at most 10 s (a bound for slow CI, not an expected duration). */
#define WAIT_FOR(condition)                                                                              \
    ({ int64_t deadline_ = now_ms() + 10000; bool met_;                                                  \
       while (!(met_ = (condition)) && now_ms() < deadline_) nanosleep(&(struct timespec){0, 2000000}, NULL); \
       if (!met_) { fprintf(stderr, "FAIL line %d: timed out waiting for %s\n", __LINE__, #condition); failures++; } \
       met_; })

static bool serves(molt_instance in, const char *key, const char *expected) {
    answer a = get(in, key);
    return a.status == MOLT_OK && strcmp(a.text, expected) == 0;
}

/* The watcher reports a change just after it serves it: wait for the count to reach `expected`, then
 * check that it did not pass it. */
static bool reported(int expected) {
    WAIT_FOR(atomic_load(&changed_calls) >= expected);
    return atomic_load(&changed_calls) == expected;
}

static void *load_symbol(void *handle, const char *name) {
    void *s = dlsym(handle, name);
    if (s == NULL) { fprintf(stderr, "missing symbol %s\n", name); exit(1); }
    return s;
}

/* ---- tests ---- */
static const char *const DAPR_EXAMPLE =
    "{\"redisPassword\": \"pw-SECRET\",\n"
    " \"connectionStrings\": {\"sql\": \"sql-SECRET\", \"mysql\": \"mysql-SECRET\"},\n"
    " \"list\": [\"l0-SECRET\", {\"x\": \"x-SECRET\"}]}\n";

static void test_flattening(void) {
    const char *file = path_of("flat.json");
    write_file(file, DAPR_EXAMPLE);
    molt_instance in = start(file, ":", "false");
    CHECK(serves(in, "connectionStrings:sql", "connectionStrings:sql{connectionStrings:sql=sql-SECRET}"));
    CHECK(serves(in, "redisPassword", "redisPassword{redisPassword=pw-SECRET}"));
    CHECK(serves(in, "list:1:x", "list:1:x{list:1:x=x-SECRET}")); /* arrays: indexes, as Dapr */
    answer a = get(in, "connectionStrings"); /* an object is not a secret */
    CHECK(a.status == MOLT_ERR_NOT_FOUND && a.text[0] == '\0');
    CHECK_TEXT(a.message, "local-file: secret \"connectionStrings\" not found");
    CHECK_TEXT(bulk_get(in).text, "connectionStrings:mysql{connectionStrings:mysql=mysql-SECRET} "
                                  "connectionStrings:sql{connectionStrings:sql=sql-SECRET} list:0{list:0=l0-SECRET} "
                                  "list:1:x{list:1:x=x-SECRET} redisPassword{redisPassword=pw-SECRET}");
    p.destroy(in);

    in = start(file, "__", "false"); /* another separator, several bytes long */
    CHECK(serves(in, "connectionStrings__mysql", "connectionStrings__mysql{connectionStrings__mysql=mysql-SECRET}"));
    CHECK(serves(in, "list__1__x", "list__1__x{list__1__x=x-SECRET}"));
    CHECK(get(in, "connectionStrings:mysql").status == MOLT_ERR_NOT_FOUND);
    p.destroy(in);

    write_file(file, "{}");
    in = start(file, ":", "false"); /* no secrets is fine */
    CHECK_TEXT(bulk_get(in).text, "");
    p.destroy(in);
}

static void test_multi_valued(void) {
    const char *file = path_of("multi.json");
    write_file(file, "{\"db\": {\"user\": \"u-SECRET\", \"conn\": {\"a\": \"a-SECRET\"}, \"hosts\": [\"h-SECRET\"]},\n"
                     " \"plain\": \"p-SECRET\", \"empty\": {}}");
    molt_instance in = start(file, ":", "true");
    CHECK(serves(in, "db", "db{conn:a=a-SECRET,hosts:0=h-SECRET,user=u-SECRET}"));
    CHECK(serves(in, "plain", "plain{plain=p-SECRET}"));
    CHECK(get(in, "empty").status == MOLT_ERR_NOT_FOUND); /* no value, no secret */
    CHECK(get(in, "db:user").status == MOLT_ERR_NOT_FOUND);
    CHECK_TEXT(bulk_get(in).text, "db{conn:a=a-SECRET,hosts:0=h-SECRET,user=u-SECRET} plain{plain=p-SECRET}");
    p.destroy(in);
    in = start(file, ":", "True"); /* Go's ParseBool spellings */
    CHECK(serves(in, "plain", "plain{plain=p-SECRET}"));
    p.destroy(in);
    CHECK_TEXT(refusal("{}", "yes", MOLT_ERR_INVALID_ARGUMENT), "local-file: multiValued is \"yes\"; expected true or false");
}

static void test_refused_values(void) {
    CHECK_HAS(refusal("{\"db\": {\"port\": 5432}}", "false", MOLT_ERR_INVALID_ARGUMENT),
              "the value at \"db:port\" is a number; every secret must be a JSON string");
    CHECK_HAS(refusal("{\"tls\": [true]}", "false", MOLT_ERR_INVALID_ARGUMENT), "\"tls:0\" is a boolean");
    CHECK_HAS(refusal("{\"none\": null}", "false", MOLT_ERR_INVALID_ARGUMENT), "\"none\" is null");
    CHECK_HAS(refusal("{\"db\": {\"port\": 1.5}}", "true", MOLT_ERR_INVALID_ARGUMENT), "\"db:port\" is a number");
    CHECK_HAS(refusal("{\"hosts\": [\"a-SECRET\"]}", "true", MOLT_ERR_INVALID_ARGUMENT),
              "multiValued: the top-level value \"hosts\" is an array");
    CHECK_HAS(refusal("{\"a:b\": \"1-SECRET\", \"a\": {\"b\": \"2-SECRET\"}}", "false", MOLT_ERR_INVALID_ARGUMENT),
              "two values flatten to the secret \"a:b\"");
    CHECK_HAS(refusal("{\"db\": {\"a:b\": \"1-SECRET\", \"a\": {\"b\": \"2-SECRET\"}}}", "true",
                      MOLT_ERR_INVALID_ARGUMENT), "secret \"db\" has two values named \"a:b\"");
    CHECK_HAS(refusal("{\"k\": \"1-SECRET\", \"k\": \"2-SECRET\"}", "false", MOLT_OK), ""); /* last wins, as Go */
}

static void test_init_refusals(void) {
    char why[512], expected[512];
    molt_instance in;
    const char *missing = path_of("missing.json");
    CHECK(start_with(&host, missing, ":", "false", &in, why) == MOLT_ERR_INVALID_ARGUMENT);
    snprintf(expected, sizeof expected, "local-file: cannot open secretsFile %s: No such file or directory", missing);
    CHECK_TEXT(why, expected);
    CHECK(start_with(&host, NULL, ":", "false", &in, why) == MOLT_ERR_INVALID_ARGUMENT);
    CHECK_HAS(why, "missing secretsFile");
    CHECK(start_with(&host, dir, ":", "false", &in, why) == MOLT_ERR_INVALID_ARGUMENT);
    CHECK_HAS(why, "is not a regular file");

    /* jansson's column is where it stopped: the end of the bad token (SECRET, columns 8-13). */
    snprintf(expected, sizeof expected, "local-file: secretsFile %s: malformed JSON at line 3, column 13: invalid syntax",
             path_of("refused.json"));
    CHECK_TEXT(refusal("{\n  \"a\": \"a-SECRET\",\n  \"b\": SECRET\n}", "false", MOLT_ERR_INVALID_ARGUMENT), expected);
    CHECK_HAS(refusal("{\"a\": \"a-SECRET", "false", MOLT_ERR_INVALID_ARGUMENT), "line 1, column 15");
    CHECK_HAS(refusal("[\"a-SECRET\"]", "false", MOLT_ERR_INVALID_ARGUMENT), "the top level is an array; it must be a JSON object");
    CHECK_HAS(refusal("\"a-SECRET\"", "false", MOLT_ERR_INVALID_ARGUMENT), "the top level is a string");

    size_t size = (4u << 20) + 1; /* one byte over the limit */
    char *big = malloc(size + 1);
    memset(big, ' ', size);
    big[0] = '{';
    big[size - 1] = '}';
    big[size] = '\0';
    CHECK_HAS(refusal(big, "false", MOLT_ERR_INVALID_ARGUMENT), "is larger than the limit of 4 MiB (4194304 bytes)");
    big[size - 2] = '}'; /* exactly 4 MiB: accepted */
    big[size - 1] = '\0';
    CHECK_TEXT(refusal(big, "false", MOLT_OK), "");
    free(big);
}

static void test_rewrites(void) {
    const char *file = path_of("watched.json");
    write_file(file, "{\"k\": \"v1-SECRET\"}");
    molt_instance in = start(file, ":", "false");
    int changed = atomic_load(&changed_calls);

    replace_file(file, "{\"k\": \"v2-SECRET\", \"new\": \"n-SECRET\"}"); /* rename: IN_MOVED_TO */
    CHECK(WAIT_FOR(atomic_load(&changed_calls) == changed + 1));
    CHECK(serves(in, "k", "k{k=v2-SECRET}") && serves(in, "new", "new{new=n-SECRET}"));

    /* The same secrets in other bytes are no change; events are handled in order, so once the next real
     * change is reported, the first rewrite was handled without a report. */
    replace_file(file, "{ \"new\" : \"n-SECRET\",\n  \"k\": \"v2-SECRET\" }");
    write_file(file, "{\"k\": \"v3-SECRET\"}"); /* in place: IN_CLOSE_WRITE */
    CHECK(WAIT_FOR(serves(in, "k", "k{k=v3-SECRET}")));
    CHECK(reported(changed + 2));
    CHECK(get(in, "new").status == MOLT_ERR_NOT_FOUND);

    int warned = warning_count();
    replace_file(file, "{\"k\": \"v4-SECRET\",\n \"x\" }"); /* malformed: the old secrets stay */
    CHECK(WAIT_FOR(warning_count() > warned));
    pthread_mutex_lock(&log_mu);
    CHECK_HAS(last_warning, file);
    CHECK_HAS(last_warning, "malformed JSON at line 2, column 6");
    CHECK_HAS(last_warning, "still serving the secrets read before");
    pthread_mutex_unlock(&log_mu);
    CHECK(serves(in, "k", "k{k=v3-SECRET}"));
    CHECK(atomic_load(&changed_calls) == changed + 2);

    warned = warning_count();
    CHECK(unlink(file) == 0); /* removed: the old secrets stay */
    CHECK(WAIT_FOR(warning_count() > warned));
    pthread_mutex_lock(&log_mu);
    CHECK_HAS(last_warning, "was removed");
    pthread_mutex_unlock(&log_mu);
    CHECK(serves(in, "k", "k{k=v3-SECRET}"));
    replace_file(file, "{\"k\": \"v5-SECRET\"}"); /* and back */
    CHECK(WAIT_FOR(serves(in, "k", "k{k=v5-SECRET}")));
    CHECK(reported(changed + 3));
    p.destroy(in);

    /* An ABI 1.1 host has no `changed`: the new secrets are served all the same, nothing is called. */
    char why[512];
    CHECK(start_with(&host_1_1, file, ":", "false", &in, why) == MOLT_OK);
    changed = atomic_load(&changed_calls);
    replace_file(file, "{\"k\": \"v6-SECRET\"}");
    CHECK(WAIT_FOR(serves(in, "k", "k{k=v6-SECRET}")));
    CHECK(atomic_load(&changed_calls) == changed);
    p.destroy(in);
}

static molt_apply_outcome apply(molt_instance in, const char *file, const char *separator, char *why) {
    molt_kv entries[3] = {{"multiValued", "false"}, {"nestedSeparator", separator}, {"secretsFile", file}};
    molt_config config = {sizeof config, 3, entries, "secrets"};
    molt_message message = {why, 512};
    why[0] = '\0';
    return p.apply(in, &config, &message);
}

static void test_apply_config(void) {
    char why[512], other_dir[128];
    const char *first = path_of("first.json");
    snprintf(other_dir, sizeof other_dir, "%s/other", dir);
    CHECK(mkdir(other_dir, 0700) == 0);
    const char *second = path_of("other/second.json");
    write_file(first, "{\"a\": {\"b\": \"first-SECRET\"}}");
    write_file(second, "{\"a\": {\"b\": \"second-SECRET\"}}");
    molt_instance in = start(first, ":", "false");
    int changed = atomic_load(&changed_calls);

    CHECK(apply(in, path_of("missing.json"), ":", why) == MOLT_APPLY_ERROR); /* refused: nothing changes */
    CHECK_HAS(why, "missing.json: No such file or directory");
    CHECK(serves(in, "a:b", "a:b{a:b=first-SECRET}"));

    CHECK(apply(in, first, ".", why) == MOLT_APPLIED); /* a new separator, in place */
    CHECK(serves(in, "a.b", "a.b{a.b=first-SECRET}") && get(in, "a:b").status == MOLT_ERR_NOT_FOUND);
    CHECK(atomic_load(&changed_calls) == changed + 1);

    CHECK(apply(in, second, ".", why) == MOLT_APPLIED); /* another file in another directory */
    CHECK(serves(in, "a.b", "a.b{a.b=second-SECRET}"));
    CHECK(atomic_load(&changed_calls) == changed + 2);
    /* The watch moved with it: the old file's rewrite is not seen, the new one's is (in that order). */
    replace_file(first, "{\"a\": {\"b\": \"stale-SECRET\"}}");
    replace_file(second, "{\"a\": {\"b\": \"third-SECRET\"}}");
    CHECK(WAIT_FOR(serves(in, "a.b", "a.b{a.b=third-SECRET}")));
    CHECK(reported(changed + 3));
    p.destroy(in);
}

/* Readers never see a freed or half-built table while the watcher swaps them. */
static atomic_bool stop_readers;
static void *reader(void *arg) {
    molt_instance in = arg;
    long reads = 0;
    while (!atomic_load(&stop_readers)) {
        answer a = get(in, "k");
        CHECK(a.status == MOLT_OK && strncmp(a.text, "k{k=", 4) == 0 && strstr(a.text, "-SECRET}") != NULL);
        answer all = bulk_get(in);
        CHECK(strncmp(all.text, "k{k=", 4) == 0);
        reads++;
    }
    return (void *)reads;
}

static void test_readers_race_swaps(void) {
    const char *file = path_of("race.json");
    write_file(file, "{\"k\": \"0-SECRET\"}");
    molt_instance in = start(file, ":", "false");
    pthread_t readers[4];
    atomic_store(&stop_readers, false);
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&readers[i], NULL, reader, in) == 0);
    for (int round = 1; round <= 30; round++) {
        char content[64], expected[64];
        snprintf(content, sizeof content, "{\"k\": \"%d-SECRET\"}", round);
        snprintf(expected, sizeof expected, "k{k=%d-SECRET}", round);
        replace_file(file, content);
        CHECK(WAIT_FOR(serves(in, "k", expected)));
    }
    atomic_store(&stop_readers, true);
    long reads = 0;
    for (int i = 0; i < 4; i++) {
        void *n;
        pthread_join(readers[i], &n);
        reads += (long)n;
    }
    printf("  %ld reads during 30 swaps\n", reads);
    p.destroy(in);
}

static int thread_count(void) {
    DIR *tasks = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; tasks && (e = readdir(tasks)) != NULL;) n += e->d_name[0] != '.';
    if (tasks) closedir(tasks);
    return n;
}

static void test_destroy_joins_the_watcher(void) {
    const char *file = path_of("joined.json");
    write_file(file, "{}");
    int before = thread_count();
    molt_instance in = start(file, ":", "false");
    CHECK(thread_count() == before + 1);
    p.destroy(in);
    CHECK(WAIT_FOR(thread_count() == before)); /* joined: the task leaves /proc as it is reaped */
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s local-file.so\n", argv[0]); return 2; }
    void *handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    uint32_t major = 0, minor = 0;
    ((molt_abi_version_fn)load_symbol(handle, MOLT_SYMBOL_ABI_VERSION))(&major, &minor);
    CHECK(major == 1 && minor == 3);
    const molt_plugin_identity *info = ((molt_plugin_info_fn)load_symbol(handle, MOLT_SYMBOL_PLUGIN_INFO))();
    CHECK_TEXT(info->name, "local-file");
    CHECK_TEXT(info->version, "1.0.0");
    CHECK_TEXT(info->kind, MOLT_KIND_SECRETSTORE);
    CHECK(info->state_format_min == 0 && info->state_format_max == 0 && info->flags == 0);
    uint32_t count = 0;
    const molt_config_key *keys = ((molt_plugin_config_keys_fn)load_symbol(handle, MOLT_SYMBOL_PLUGIN_CONFIG_KEYS))(&count);
    CHECK(count == 3);
    CHECK(strcmp(keys[0].name, "multiValued") == 0 && strcmp(keys[0].default_value, "false") == 0 && !keys[0].required);
    CHECK(strcmp(keys[1].name, "nestedSeparator") == 0 && strcmp(keys[1].default_value, ":") == 0 && !keys[1].required);
    CHECK(strcmp(keys[2].name, "secretsFile") == 0 && keys[2].default_value == NULL && keys[2].required);
    for (uint32_t i = 0; i < count; i++) CHECK(keys[i].applies_in_place && keys[i].description != NULL);
    p.init = (molt_plugin_init_fn)load_symbol(handle, MOLT_SYMBOL_PLUGIN_INIT);
    p.destroy = (molt_plugin_destroy_fn)load_symbol(handle, MOLT_SYMBOL_PLUGIN_DESTROY);
    p.apply = (molt_plugin_apply_config_fn)load_symbol(handle, MOLT_SYMBOL_PLUGIN_APPLY_CONFIG);
    p.get = (molt_secret_get_fn)load_symbol(handle, MOLT_SYMBOL_SECRET_GET);
    p.bulk_get = (molt_secret_bulk_get_fn)load_symbol(handle, MOLT_SYMBOL_SECRET_BULK_GET);
    load_symbol(handle, MOLT_SYMBOL_PLUGIN_READINESS);

    snprintf(dir, sizeof dir, "/tmp/molt-local-file-XXXXXX");
    if (mkdtemp(dir) == NULL) { perror("mkdtemp"); return 1; }
    printf("flattening\n");
    test_flattening();
    printf("multiValued\n");
    test_multi_valued();
    printf("refused values\n");
    test_refused_values();
    printf("init refusals\n");
    test_init_refusals();
    printf("rewrites\n");
    test_rewrites();
    printf("apply_config\n");
    test_apply_config();
    printf("readers race swaps\n");
    test_readers_race_swaps();
    printf("destroy joins the watcher\n");
    test_destroy_joins_the_watcher();

    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    if (system(command) != 0) fprintf(stderr, "could not remove %s\n", dir);
    CHECK(dlclose(handle) == 0);
    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("test_local_file: all checks passed\n");
    return 0;
}
