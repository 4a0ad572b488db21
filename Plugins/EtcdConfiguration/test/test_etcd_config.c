/* test_etcd_config.c: loads etcd-config-*.so with dlopen, as molt does, with fake hosts (a log sink and a
 * thread-safe `changed` recorder per instance), against a real etcd it runs itself (etcd_server.c), and
 * proves: identity and declared keys; init refusals (missing endpoints, a bad dialTimeout; a dead endpoint
 * and a silent one fail within dialTimeout naming them); the first Range (keys outside the prefix, the
 * prefix itself and a non-UTF-8 value left out); get of every item, some, a missing key, a key asked twice;
 * versions (mod_revision); PUTs and DELETEs after init reaching the cache and `changed(key)`; a host without
 * `changed`; the cache serving while etcd is down; etcd restarted on the same port and data (the watch
 * resumes); a watch cut while etcd compacts its history (full re-read, `changed(NULL)`); destroy prompt
 * (< 1 s) in any state, its threads joined. Every value contains "VALUE"; no log line may.
 * Waits are bounded polls, never fixed sleeps.
 * Usage: test_etcd_config etcd-config-1.0.0.so */
#include "etcd_server.h"
#include "molt_plugin.h"
#include "plugin_check.h"
#include "tcp_proxy.h"

#include <curl/curl.h>
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

int failures; /* plugin_check.h */

static struct {
    molt_plugin_info_fn info;
    molt_plugin_config_keys_fn keys;
    molt_plugin_init_fn init;
    molt_plugin_readiness_fn readiness;
    molt_plugin_destroy_fn destroy;
    molt_configuration_get_fn get;
} p;

static etcd_server etcd;
static void cleanup(void) { etcd_destroy(&etcd); }

/* ---- the fake host: one recorder per instance, passed as host_context ---- */
typedef struct recorder {
    molt_host_services host;
    pthread_mutex_t mu;
    char changed[4096]; /* every changed(key) as " key", changed(NULL) as " *" */
    atomic_int warnings;
} recorder;

static void host_log(void *context, molt_log_level level, const char *message) {
    recorder *r = context;
    printf("  log(%d): %s\n", level, message);
    CHECK(strstr(message, "VALUE") == NULL);
    if (level == MOLT_LOG_WARNING) atomic_fetch_add(&r->warnings, 1);
}

static void host_changed(void *context, const char *key) {
    recorder *r = context;
    pthread_mutex_lock(&r->mu);
    size_t n = strlen(r->changed);
    snprintf(r->changed + n, sizeof r->changed - n, " %s", key ? key : "*");
    pthread_mutex_unlock(&r->mu);
}

static void recorder_init(recorder *r, uint32_t struct_size) {
    *r = (recorder){.host = {.struct_size = struct_size, .log = host_log}};
    r->host.host_context = r;
    if (struct_size >= MOLT_HOST_SERVICES_SIZE_1_3) r->host.changed = host_changed;
    pthread_mutex_init(&r->mu, NULL);
}

/* Whether changed(`key`) (NULL: changed(NULL)) was recorded. */
static bool was_changed(recorder *r, const char *key) {
    char needle[128];
    snprintf(needle, sizeof needle, " %s ", key ? key : "*");
    pthread_mutex_lock(&r->mu);
    char all[sizeof r->changed + 2];
    snprintf(all, sizeof all, "%s ", r->changed);
    bool found = strstr(all, needle) != NULL;
    pthread_mutex_unlock(&r->mu);
    return found;
}

/* ---- answers: "name=value@version name=value@version" ---- */
typedef struct { int calls; molt_status status; char text[4096]; } answer;

static void on_done(void *context, const molt_configuration_result *r) {
    answer *a = context;
    a->calls++;
    a->status = r->status;
    size_t n = 0;
    for (uint32_t i = 0; i < r->item_count && n < sizeof a->text; i++)
        n += (size_t)snprintf(a->text + n, sizeof a->text - n, "%s%s=%s@%s", i ? " " : "", r->items[i].key,
                              r->items[i].value, r->items[i].version ? r->items[i].version : "");
}

static answer get(molt_instance in, uint32_t count, const char *const *keys) {
    answer a = {0};
    molt_configuration_request request = {sizeof request, count, keys, 0, NULL};
    p.get(in, &request, on_done, &a);
    CHECK(a.calls == 1 && a.status == MOLT_OK); /* inline: done before get returned */
    return a;
}

/* The value@version of one item, or "" when get leaves it out. */
static const char *item(molt_instance in, const char *key) {
    static char text[512];
    answer a = get(in, 1, (const char *[]){key});
    const char *eq = strchr(a.text, '=');
    snprintf(text, sizeof text, "%s", eq ? eq + 1 : "");
    return text;
}

static char *version_text(int64_t revision) {
    static char texts[8][32];
    static int next;
    char *t = texts[next++ % 8];
    snprintf(t, sizeof texts[0], "%lld", (long long)revision);
    return t;
}

/* ---- lifecycle ---- */
static molt_status start_with(recorder *r, const char *endpoints, const char *prefix, const char *timeout,
                              molt_instance *in, char *why) {
    molt_kv entries[3];
    uint32_t n = 0; /* sorted bytewise, defaults filled in, as the host does */
    entries[n++] = (molt_kv){"dialTimeout", timeout ? timeout : "5s"};
    if (endpoints) entries[n++] = (molt_kv){"endpoints", endpoints};
    entries[n++] = (molt_kv){"keyPrefix", prefix ? prefix : ""};
    molt_config config = {sizeof config, n, entries, "configstore"};
    molt_message error = {why, 1024};
    why[0] = '\0';
    *in = NULL;
    molt_status status = p.init(&config, &r->host, in, &error);
    CHECK((status == MOLT_OK) == (*in != NULL));
    CHECK(status == MOLT_OK || why[0] != '\0');
    if (status != MOLT_OK) printf("  refused: %s\n", why);
    return status;
}

static molt_instance start(recorder *r, const char *endpoints, const char *prefix) {
    char why[1024];
    molt_instance in;
    if (start_with(r, endpoints, prefix, "5s", &in, why) != MOLT_OK) {
        fprintf(stderr, "init failed: %s\n", why);
        exit(1);
    }
    molt_message message = {why, sizeof why};
    CHECK(p.readiness(in, &message) == MOLT_READY);
    return in;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polls `condition` every 5 ms for at most 30 s (a bound for slow CI, not an expected duration). */
#define WAIT_FOR(condition)                                                                              \
    ({ int64_t deadline_ = now_ms() + 30000; bool met_;                                                  \
       while (!(met_ = (condition)) && now_ms() < deadline_) nanosleep(&(struct timespec){0, 5000000}, NULL); \
       if (!met_) { fprintf(stderr, "FAIL line %d: timed out waiting for %s\n", __LINE__, #condition); failures++; } \
       met_; })

static int thread_count(void) {
    int n = 0;
    DIR *tasks = opendir("/proc/self/task");
    for (struct dirent *e; tasks && (e = readdir(tasks)) != NULL;) n += e->d_name[0] != '.';
    if (tasks) closedir(tasks);
    return n;
}

/* destroy returns within 1 s, whatever the watcher is doing. */
static void destroy_promptly(molt_instance in) {
    int64_t started = now_ms();
    p.destroy(in);
    int64_t took = now_ms() - started;
    printf("  destroy took %lld ms\n", (long long)took);
    CHECK(took < 1000);
}

static void put(const char *key, const char *value, int64_t *revision) {
    if (!etcd_put(&etcd, key, value, strlen(value), revision)) exit(1);
}

static void *symbol(void *handle, const char *name) {
    void *s = dlsym(handle, name);
    if (s == NULL) { fprintf(stderr, "missing %s\n", name); exit(1); }
    return s;
}

/* A listener that completes TCP handshakes (the kernel does) but never answers: an endpoint that hangs. */
static int silent_listener(uint16_t *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &length) != 0) { perror("silent_listener"); exit(1); }
    *port = ntohs(a.sin_port);
    return fd;
}

/* ---- scenarios ---- */
static void identity_and_keys(void) {
    const molt_plugin_identity *id = p.info();
    CHECK_TEXT(id->name, "etcd-config");
    CHECK_TEXT(id->version, "1.0.0");
    CHECK_TEXT(id->kind, MOLT_KIND_CONFIGURATION);
    uint32_t count = 0;
    const molt_config_key *keys = p.keys(&count);
    CHECK(count == 3);
    CHECK_TEXT(keys[0].name, "dialTimeout");
    CHECK_TEXT(keys[1].name, "endpoints");
    CHECK(keys[1].required && keys[1].default_value == NULL);
    CHECK_TEXT(keys[2].name, "keyPrefix");
}

static void refusals(recorder *r, uint16_t live_port) {
    char why[1024], endpoints[128];
    molt_instance in;
    CHECK(start_with(r, NULL, "app/", "5s", &in, why) == MOLT_ERR_INVALID_ARGUMENT);
    CHECK_HAS(why, "endpoints");
    snprintf(endpoints, sizeof endpoints, "127.0.0.1:%u", live_port);
    CHECK(start_with(r, endpoints, "app/", "soon", &in, why) == MOLT_ERR_INVALID_ARGUMENT);
    CHECK_HAS(why, "dialTimeout");
    CHECK(start_with(r, "ftp://127.0.0.1:1", "app/", "5s", &in, why) == MOLT_ERR_INVALID_ARGUMENT);

    /* A dead endpoint: refused at once, named. */
    uint16_t dead = free_port();
    snprintf(endpoints, sizeof endpoints, "127.0.0.1:%u", dead);
    int64_t started = now_ms();
    CHECK(start_with(r, endpoints, "app/", "1s", &in, why) == MOLT_ERR_UNAVAILABLE);
    CHECK(now_ms() - started < 1500);
    CHECK_HAS(why, endpoints);
    /* A silent endpoint (and a dead one): the whole init stays within dialTimeout. */
    uint16_t silent;
    int listener = silent_listener(&silent);
    snprintf(endpoints, sizeof endpoints, "127.0.0.1:%u,127.0.0.1:%u", silent, dead);
    started = now_ms();
    CHECK(start_with(r, endpoints, "app/", "1s", &in, why) == MOLT_ERR_UNAVAILABLE);
    int64_t took = now_ms() - started;
    printf("  a silent endpoint refused after %lld ms\n", (long long)took);
    CHECK(took >= 900 && took < 2000); /* dialTimeout, and slack for a loaded machine */
    char named[64];
    snprintf(named, sizeof named, "127.0.0.1:%u", silent);
    CHECK_HAS(why, named);
    CHECK_HAS(why, "dialTimeout 1s");
    close(listener);
}

static void first_range(molt_instance in, const int64_t *revisions) {
    char expected[512];
    snprintf(expected, sizeof expected, "a=VALUE-1@%s b=VALUE-two@%s c=VALUE-three@%s", version_text(revisions[0]),
             version_text(revisions[1]), version_text(revisions[2]));
    CHECK_TEXT(get(in, 0, NULL).text, expected); /* not other/x, not "app/" itself, not app/binary */
    snprintf(expected, sizeof expected, "c=VALUE-three@%s a=VALUE-1@%s", version_text(revisions[2]),
             version_text(revisions[0]));
    CHECK_TEXT(get(in, 2, (const char *[]){"c", "a"}).text, expected);
    snprintf(expected, sizeof expected, "b=VALUE-two@%s", version_text(revisions[1]));
    CHECK_TEXT(get(in, 3, (const char *[]){"missing", "b", "b"}).text, expected); /* missing left out, b once */
    CHECK_TEXT(get(in, 1, (const char *[]){"x"}).text, "");
    CHECK_TEXT(get(in, 1, (const char *[]){"binary"}).text, "");
}

static void changes_reach_the_cache(molt_instance in, recorder *r) {
    int64_t revision;
    put("app/d", "VALUE-4", &revision);
    CHECK(WAIT_FOR(strncmp(item(in, "d"), "VALUE-4@", 8) == 0 && was_changed(r, "d")));
    char expected[64];
    snprintf(expected, sizeof expected, "VALUE-4@%s", version_text(revision));
    CHECK_TEXT(item(in, "d"), expected);
    put("app/a", "VALUE-uno", &revision);
    snprintf(expected, sizeof expected, "VALUE-uno@%s", version_text(revision));
    CHECK(WAIT_FOR(strcmp(item(in, "a"), expected) == 0 && was_changed(r, "a")));
    put("other/y", "VALUE-out", NULL);
    CHECK(etcd_delete(&etcd, "app/b", NULL));
    CHECK(WAIT_FOR(item(in, "b")[0] == '\0' && was_changed(r, "b")));
    CHECK(!was_changed(r, "y") && !was_changed(r, "other/y"));
}

static void restart(molt_instance in, recorder *r, molt_instance bare) {
    int warnings = atomic_load(&r->warnings);
    etcd_stop(&etcd);
    CHECK(WAIT_FOR(atomic_load(&r->warnings) > warnings)); /* the watch noticed */
    CHECK_HAS(get(in, 0, NULL).text, "a=VALUE-uno@"); /* the cache keeps serving */
    if (!etcd_start(&etcd)) exit(1);
    put("app/e", "VALUE-5", NULL);
    CHECK(WAIT_FOR(strncmp(item(in, "e"), "VALUE-5@", 8) == 0 && was_changed(r, "e")));
    CHECK(WAIT_FOR(strncmp(item(bare, "e"), "VALUE-5@", 8) == 0)); /* a host without `changed` */
}

static void compaction_while_cut(recorder *r, tcp_proxy *proxy, uint16_t proxy_port) {
    char endpoints[64];
    snprintf(endpoints, sizeof endpoints, "127.0.0.1:%u", proxy_port);
    molt_instance in = start(r, endpoints, "app/");
    CHECK_HAS(get(in, 0, NULL).text, "c=VALUE-three@");
    int warnings = atomic_load(&r->warnings);
    proxy_cut(proxy);
    CHECK(WAIT_FOR(atomic_load(&r->warnings) > warnings)); /* the watch lost its connection */
    int64_t revision;
    put("app/f", "VALUE-6", NULL);
    CHECK(etcd_delete(&etcd, "app/c", &revision));
    CHECK(etcd_compact(&etcd, revision));
    proxy_restore(proxy);
    CHECK(WAIT_FOR(was_changed(r, NULL)));
    CHECK(strncmp(item(in, "f"), "VALUE-6@", 8) == 0);
    CHECK_TEXT(item(in, "c"), "");
    put("app/g", "VALUE-7", NULL); /* and the watch goes on from the re-read revision */
    CHECK(WAIT_FOR(strncmp(item(in, "g"), "VALUE-7@", 8) == 0 && was_changed(r, "g")));
    /* destroy while the watch is retrying */
    warnings = atomic_load(&r->warnings);
    proxy_cut(proxy);
    CHECK(WAIT_FOR(atomic_load(&r->warnings) > warnings));
    destroy_promptly(in);
    proxy_restore(proxy);
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s etcd-config-1.0.0.so\n", argv[0]); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    void *handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    p.info = (molt_plugin_info_fn)symbol(handle, MOLT_SYMBOL_PLUGIN_INFO);
    p.keys = (molt_plugin_config_keys_fn)symbol(handle, MOLT_SYMBOL_PLUGIN_CONFIG_KEYS);
    p.init = (molt_plugin_init_fn)symbol(handle, MOLT_SYMBOL_PLUGIN_INIT);
    p.readiness = (molt_plugin_readiness_fn)symbol(handle, MOLT_SYMBOL_PLUGIN_READINESS);
    p.destroy = (molt_plugin_destroy_fn)symbol(handle, MOLT_SYMBOL_PLUGIN_DESTROY);
    p.get = (molt_configuration_get_fn)symbol(handle, MOLT_SYMBOL_CONFIGURATION_GET);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    atexit(cleanup);
    if (!etcd_start(&etcd)) return 1;
    printf("etcd at %s, data in %s\n", etcd.url, etcd.dir);

    int64_t revisions[3];
    put("app/a", "VALUE-1", &revisions[0]);
    put("app/b", "VALUE-two", &revisions[1]);
    put("app/c", "VALUE-three", &revisions[2]);
    put("app/", "VALUE-self", NULL);
    put("other/x", "VALUE-out", NULL);
    if (!etcd_put(&etcd, "app/binary", "VALUE\xff\xfe", 7, NULL)) return 1;

    uint16_t proxy_port;
    tcp_proxy *proxy = proxy_start(etcd.client_port, &proxy_port);
    int threads_before = thread_count();
    recorder r, bare_r, cut_r, refused_r;
    recorder_init(&r, sizeof(molt_host_services));
    recorder_init(&bare_r, MOLT_HOST_SERVICES_SIZE_1_1);
    recorder_init(&cut_r, sizeof(molt_host_services));
    recorder_init(&refused_r, sizeof(molt_host_services));

    printf("identity and keys\n");
    identity_and_keys();
    printf("refusals\n");
    refusals(&refused_r, etcd.client_port);
    printf("first range (endpoints tried in turn: a dead one first)\n");
    char endpoints[128];
    snprintf(endpoints, sizeof endpoints, " 127.0.0.1:%u , http://127.0.0.1:%u/", free_port(), etcd.client_port);
    molt_instance in = start(&r, endpoints, "app/");
    snprintf(endpoints, sizeof endpoints, "127.0.0.1:%u", etcd.client_port);
    molt_instance bare = start(&bare_r, endpoints, "app/");
    CHECK(atomic_load(&r.warnings) == 2); /* app/binary and "app/" itself left out */
    first_range(in, revisions);
    printf("changes after init\n");
    changes_reach_the_cache(in, &r);
    printf("etcd restarted\n");
    restart(in, &r, bare);
    printf("compaction while the watch is cut\n");
    compaction_while_cut(&cut_r, proxy, proxy_port);
    printf("destroy\n");
    destroy_promptly(in);
    destroy_promptly(bare);
    CHECK(WAIT_FOR(thread_count() == threads_before)); /* joined: the task leaves /proc as it is reaped */
    proxy_stop(proxy);
    curl_global_cleanup();
    if (failures) { fprintf(stderr, "%d failures\n", failures); return 1; }
    printf("etcd-config: all tests passed\n");
    return 0;
}
