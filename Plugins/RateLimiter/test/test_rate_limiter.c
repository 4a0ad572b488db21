/* test_rate_limiter.c: loads rate-limiter .so files with dlopen, as molt does, finds each declared
 * operation's symbol with dlsym and calls it with the C signature molt_plugin.h gives its declared
 * types; checks the declarations, allow/peek/reset/acquire semantics, argument validation, in-place
 * config, concurrent calls, and state transfer within a version and across versions both ways
 * (corrupt and truncated states refused). Usage: test_rate_limiter V1.so [V2.so ...] */
#include "molt_plugin.h"
#include "plugin_check.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int failures; /* plugin_check.h */

/* The operations' C form, from their declared types (molt_plugin.h, "Declared operations"). */
typedef molt_status (*allow_fn)(molt_instance, const char *key, int64_t cost, bool *allowed, int64_t *remaining,
                                int64_t *retry_after_ms, molt_message *);
typedef molt_status (*peek_fn)(molt_instance, const char *key, double *tokens, int64_t *capacity, molt_message *);
typedef molt_status (*reset_fn)(molt_instance, const char *key, bool *existed, molt_message *);
typedef molt_status (*acquire_fn)(molt_instance, const char *key, int64_t cost, int64_t max_wait_ms, bool *allowed,
                                  int64_t *waited_ms, int64_t *retry_after_ms, molt_message *);

typedef struct {
    const char *path;
    void *handle;
    const molt_plugin_identity *info;
    molt_plugin_init_fn init;
    molt_plugin_destroy_fn destroy;
    molt_plugin_apply_config_fn apply_config;
    molt_plugin_export_state_fn export_state;
    molt_plugin_import_state_fn import_state;
    allow_fn allow;
    peek_fn peek;
    reset_fn reset;
    acquire_fn acquire;
} plugin;

static void *symbol(const plugin *p, const char *name) {
    void *s = dlsym(p->handle, name);
    if (s == NULL) { fprintf(stderr, "%s: missing symbol %s\n", p->path, name); exit(1); }
    return s;
}

/* The declared operation `name`, checked against the expected types and flags; returns its function. */
static void *operation(const plugin *p, const molt_operation *ops, uint32_t count, const char *name, uint32_t flags,
                       const char *parameters, const char *results) {
    static const char letters[] = "?idbsy"; /* MOLT_TYPE_INT64 i, DOUBLE d, BOOL b, STRING s, BYTES y */
    for (uint32_t i = 0; i < count; i++) {
        if (strcmp(ops[i].name, name) != 0) continue;
        char got_p[MOLT_OPERATION_MAX_FIELDS + 1] = "", got_r[MOLT_OPERATION_MAX_FIELDS + 1] = "";
        for (uint32_t k = 0; k < ops[i].parameter_count; k++) got_p[k] = letters[ops[i].parameters[k].type];
        for (uint32_t k = 0; k < ops[i].result_count; k++) got_r[k] = letters[ops[i].results[k].type];
        if (strcmp(got_p, parameters) != 0 || strcmp(got_r, results) != 0 || ops[i].flags != flags) {
            fprintf(stderr, "FAIL %s: operation %s is (%s) -> (%s) flags %u, expected (%s) -> (%s) flags %u\n", p->path,
                    name, got_p, got_r, ops[i].flags, parameters, results, flags);
            failures++;
        }
        CHECK(ops[i].description != NULL && ops[i].description[0] != '\0');
        return symbol(p, ops[i].symbol);
    }
    fprintf(stderr, "%s: operation %s is not declared\n", p->path, name);
    exit(1);
}

static plugin load(const char *path) {
    plugin p = {.path = path};
    p.handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (p.handle == NULL) { fprintf(stderr, "dlopen: %s\n", dlerror()); exit(1); }
    uint32_t major = 0, minor = 0;
    ((molt_abi_version_fn)symbol(&p, MOLT_SYMBOL_ABI_VERSION))(&major, &minor);
    CHECK(major == MOLT_ABI_VERSION_MAJOR && minor == MOLT_ABI_VERSION_MINOR); /* the header it was built with */
    p.info = ((molt_plugin_info_fn)symbol(&p, MOLT_SYMBOL_PLUGIN_INFO))();
    printf("%s %s (state formats %u..%u)\n", p.info->name, p.info->version, p.info->state_format_min,
           p.info->state_format_max);
    CHECK(strcmp(p.info->name, "rate-limiter") == 0);
    CHECK(strcmp(p.info->kind, MOLT_KIND_BINDING) == 0);
    CHECK(p.info->struct_size >= MOLT_PLUGIN_IDENTITY_SIZE_1_1 && (p.info->flags & MOLT_PLUGIN_HOLDS_STATE));
    CHECK(p.info->state_format_min == 1);

    uint32_t key_count = 0;
    const molt_config_key *keys = ((molt_plugin_config_keys_fn)symbol(&p, MOLT_SYMBOL_PLUGIN_CONFIG_KEYS))(&key_count);
    static const char *const expected[][2] = {{"capacity", "10"}, {"refillPerSecond", "5"}, {"maxBuckets", "100000"}};
    CHECK(key_count == 3);
    for (uint32_t i = 0; i < key_count && i < 3; i++) {
        CHECK(strcmp(keys[i].name, expected[i][0]) == 0 && strcmp(keys[i].default_value, expected[i][1]) == 0);
        CHECK(keys[i].applies_in_place && !keys[i].required);
    }

    p.init = (molt_plugin_init_fn)symbol(&p, MOLT_SYMBOL_PLUGIN_INIT);
    p.destroy = (molt_plugin_destroy_fn)symbol(&p, MOLT_SYMBOL_PLUGIN_DESTROY);
    p.apply_config = (molt_plugin_apply_config_fn)symbol(&p, MOLT_SYMBOL_PLUGIN_APPLY_CONFIG);
    p.export_state = (molt_plugin_export_state_fn)symbol(&p, MOLT_SYMBOL_PLUGIN_EXPORT_STATE);
    p.import_state = (molt_plugin_import_state_fn)symbol(&p, MOLT_SYMBOL_PLUGIN_IMPORT_STATE);
    symbol(&p, MOLT_SYMBOL_PLUGIN_READINESS);

    uint32_t count = 0;
    const molt_operation *ops = ((molt_plugin_operations_fn)symbol(&p, MOLT_SYMBOL_PLUGIN_OPERATIONS))(&count);
    CHECK(ops != NULL && count == 4);
    p.allow = (allow_fn)operation(&p, ops, count, "allow", 0, "si", "bii");
    p.peek = (peek_fn)operation(&p, ops, count, "peek", 0, "s", "di");
    p.reset = (reset_fn)operation(&p, ops, count, "reset", 0, "s", "b");
    p.acquire = (acquire_fn)operation(&p, ops, count, "acquire", MOLT_OPERATION_BLOCKING, "sii", "bii");
    return p;
}

static void host_log(void *context, molt_log_level level, const char *message) {
    (void)context;
    printf("  log(%d): %s\n", level, message);
}
static const molt_host_services host = {.struct_size = MOLT_HOST_SERVICES_SIZE_1_0, .log = host_log};

/* A config as the host hands it over: every declared key, defaults filled in, sorted bytewise. */
static molt_config config_of(molt_kv entries[3], const char *capacity, const char *max_buckets, const char *refill) {
    entries[0] = (molt_kv){"capacity", capacity};
    entries[1] = (molt_kv){"maxBuckets", max_buckets};
    entries[2] = (molt_kv){"refillPerSecond", refill};
    return (molt_config){sizeof(molt_config), 3, entries, "limits"};
}

static molt_instance start(const plugin *p, const char *capacity, const char *max_buckets, const char *refill) {
    molt_kv entries[3];
    molt_config config = config_of(entries, capacity, max_buckets, refill);
    char text[256] = "";
    molt_message error = {text, sizeof text};
    molt_instance in = NULL;
    if (p->init(&config, &host, &in, &error) != MOLT_OK || in == NULL) {
        fprintf(stderr, "%s: init failed: %s\n", p->path, text);
        exit(1);
    }
    return in;
}

static molt_apply_outcome apply(const plugin *p, molt_instance in, const char *capacity, const char *max_buckets,
                                const char *refill, char *text, uint32_t capacity_of_text) {
    molt_kv entries[3];
    molt_config config = config_of(entries, capacity, max_buckets, refill);
    molt_message message = {text, capacity_of_text};
    text[0] = '\0';
    return p->apply_config(in, &config, &message);
}

/* Operation wrappers: a fresh host message per call, results zeroed as the host does. */
typedef struct { molt_status status; bool allowed; int64_t remaining, retry_after_ms, waited_ms; char text[256]; } taken;

static taken allow(const plugin *p, molt_instance in, const char *key, int64_t cost) {
    taken t = {0};
    molt_message m = {t.text, sizeof t.text};
    t.status = p->allow(in, key, cost, &t.allowed, &t.remaining, &t.retry_after_ms, &m);
    return t;
}

static taken acquire(const plugin *p, molt_instance in, const char *key, int64_t cost, int64_t max_wait_ms) {
    taken t = {0};
    molt_message m = {t.text, sizeof t.text};
    t.status = p->acquire(in, key, cost, max_wait_ms, &t.allowed, &t.waited_ms, &t.retry_after_ms, &m);
    return t;
}

static double peek(const plugin *p, molt_instance in, const char *key, int64_t *capacity_out) {
    double tokens = -1;
    int64_t capacity = -1;
    char text[256] = "";
    molt_message m = {text, sizeof text};
    CHECK(p->peek(in, key, &tokens, &capacity, &m) == MOLT_OK);
    if (capacity_out) *capacity_out = capacity;
    return tokens;
}

static bool reset(const plugin *p, molt_instance in, const char *key) {
    bool existed = false;
    char text[256] = "";
    molt_message m = {text, sizeof text};
    CHECK(p->reset(in, key, &existed, &m) == MOLT_OK);
    return existed;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A refill of 0.001/s adds < 0.01 tokens over any test: levels are exact to 0.01. */
#define SLOW "0.001"
#define NEAR(a, b) (fabs((a) - (b)) < 0.01)

static void test_semantics(const plugin *p) {
    molt_instance in = start(p, "10", "100000", SLOW);
    taken t = allow(p, in, "alice", 4); /* a new key starts full */
    CHECK(t.status == MOLT_OK && t.allowed && t.remaining == 6 && t.retry_after_ms == 0);
    t = allow(p, in, "alice", 7); /* not there: nothing taken, retry after one token's refill (1000 s) */
    CHECK(t.status == MOLT_OK && !t.allowed && t.remaining == 6);
    CHECK(t.retry_after_ms > 990000 && t.retry_after_ms <= 1000000);
    int64_t capacity = 0;
    CHECK(NEAR(peek(p, in, "alice", &capacity), 6) && capacity == 10);
    CHECK(NEAR(peek(p, in, "alice", NULL), 6)); /* peek takes nothing */
    t = allow(p, in, "alice", 6);
    CHECK(t.allowed && t.remaining == 0);
    CHECK(peek(p, in, "nobody", NULL) == 10); /* no bucket: full, and peek creates none */
    CHECK(!reset(p, in, "nobody"));
    CHECK(reset(p, in, "alice"));
    CHECK(!reset(p, in, "alice"));
    CHECK(peek(p, in, "alice", NULL) == 10); /* reset: starts full again */
    CHECK(allow(p, in, "héllo wörld ✓", 10).allowed);

    /* bad arguments: INVALID_ARGUMENT, the argument named, nothing taken */
    t = allow(p, in, "bob", 0);
    CHECK(t.status == MOLT_ERR_INVALID_ARGUMENT && strstr(t.text, "cost") != NULL);
    t = allow(p, in, "bob", -3);
    CHECK(t.status == MOLT_ERR_INVALID_ARGUMENT && strstr(t.text, "cost") != NULL);
    t = allow(p, in, "bob", 11);
    CHECK(t.status == MOLT_ERR_INVALID_ARGUMENT && strstr(t.text, "capacity") != NULL);
    t = allow(p, in, "", 1);
    CHECK(t.status == MOLT_ERR_INVALID_ARGUMENT && strstr(t.text, "key") != NULL);
    char *long_key = malloc(5000);
    memset(long_key, 'k', 4999);
    long_key[4999] = '\0';
    t = allow(p, in, long_key, 1);
    CHECK(t.status == MOLT_ERR_INVALID_ARGUMENT && strstr(t.text, "4096") != NULL);
    long_key[4096] = '\0'; /* exactly the limit: fine */
    CHECK(allow(p, in, long_key, 1).allowed);
    free(long_key);
    t = acquire(p, in, "bob", 1, 10001);
    CHECK(t.status == MOLT_ERR_INVALID_ARGUMENT && strstr(t.text, "max_wait_ms") != NULL);
    t = acquire(p, in, "bob", 1, -1);
    CHECK(t.status == MOLT_ERR_INVALID_ARGUMENT);
    CHECK(!reset(p, in, "bob"));
    double tokens = 0;
    char text[256] = "";
    molt_message m = {text, sizeof text};
    CHECK(p->peek(in, "", &tokens, &capacity, &m) == MOLT_ERR_INVALID_ARGUMENT && strstr(text, "key") != NULL);
    bool existed = false;
    CHECK(p->reset(in, "", &existed, &m) == MOLT_ERR_INVALID_ARGUMENT);
    p->destroy(in);
}

static void test_config(const plugin *p) {
    char text[256];
    molt_kv entries[3];
    molt_config bad = config_of(entries, "10", "100000", "fast");
    molt_message message = {text, sizeof text};
    molt_instance none = NULL;
    CHECK(p->init(&bad, &host, &none, &message) == MOLT_ERR_INVALID_ARGUMENT && strstr(text, "refillPerSecond"));
    bad = config_of(entries, "0", "100000", "5");
    CHECK(p->init(&bad, &host, &none, &message) == MOLT_ERR_INVALID_ARGUMENT && strstr(text, "capacity"));
    molt_config empty = {sizeof empty, 0, NULL, "limits"}; /* a host that fills in no defaults */
    CHECK(p->init(&empty, &host, &none, &message) == MOLT_OK && none != NULL);
    int64_t capacity = 0;
    CHECK(peek(p, none, "x", &capacity) == 10 && capacity == 10);
    p->destroy(none);

    molt_instance in = start(p, "10", "100000", SLOW);
    CHECK(allow(p, in, "a", 10).allowed);
    /* in place: capacity 20 (cost 15 becomes valid), a fast refill, at most 2 buckets */
    CHECK(apply(p, in, "20", "2", "1000", text, sizeof text) == MOLT_APPLIED);
    CHECK(peek(p, in, "b", &capacity) == 20 && capacity == 20);
    CHECK(allow(p, in, "b", 15).allowed);
    CHECK(allow(p, in, "c", 20).allowed);                   /* a third key: a, the least recently used, is dropped */
    CHECK(!reset(p, in, "a") && reset(p, in, "b"));
    sleep_ms(40); /* 1000/s: c is full again after 20 ms */
    CHECK(peek(p, in, "c", NULL) == 20);
    /* a refused change leaves everything as it was */
    CHECK(apply(p, in, "lots", "2", "1000", text, sizeof text) == MOLT_APPLY_ERROR && strstr(text, "capacity"));
    CHECK(apply(p, in, "20", "-1", "1000", text, sizeof text) == MOLT_APPLY_ERROR && strstr(text, "maxBuckets"));
    CHECK(apply(p, in, "20", "2", "0", text, sizeof text) == MOLT_APPLY_ERROR && strstr(text, "refillPerSecond"));
    CHECK(peek(p, in, "z", &capacity) == 20 && capacity == 20);
    /* a lower capacity caps fuller buckets */
    CHECK(apply(p, in, "5", "2", SLOW, text, sizeof text) == MOLT_APPLIED);
    CHECK(peek(p, in, "c", NULL) == 5);
    taken t = allow(p, in, "c", 6);
    CHECK(t.status == MOLT_ERR_INVALID_ARGUMENT);
    CHECK(apply(p, in, "20", "2", SLOW, text, sizeof text) == MOLT_APPLIED); /* raised again: the excess is gone */
    CHECK(NEAR(peek(p, in, "c", NULL), 5));
    p->destroy(in);
}

static void test_acquire(const plugin *p) {
    molt_instance in = start(p, "1", "100000", "20"); /* one token per 50 ms */
    taken t = acquire(p, in, "k", 1, 0);
    CHECK(t.status == MOLT_OK && t.allowed && t.waited_ms == 0);
    int64_t started = now_ms();
    t = acquire(p, in, "k", 1, 1000); /* reserved at once, then waits out the refill */
    int64_t elapsed = now_ms() - started;
    CHECK(t.status == MOLT_OK && t.allowed && t.waited_ms > 0 && t.waited_ms <= 50 && t.retry_after_ms == 0);
    CHECK(elapsed >= t.waited_ms - 1);
    t = allow(p, in, "k", 1); /* repaid just now: the next token is ~50 ms away */
    CHECK(!t.allowed && t.retry_after_ms > 0 && t.retry_after_ms <= 50);
    t = acquire(p, in, "k", 1, 1); /* too far for 1 ms: refused, nothing reserved */
    CHECK(t.status == MOLT_OK && !t.allowed && t.waited_ms == 0 && t.retry_after_ms > 1);
    p->destroy(in);
}

typedef struct { const plugin *p; molt_instance in; int allowed; } worker;
static void *hammer(void *arg) {
    worker *w = arg;
    for (int i = 0; i < 2000; i++) {
        taken t = allow(w->p, w->in, i % 2 ? "shared" : "shared-2", 1);
        if (t.status == MOLT_OK && t.allowed) w->allowed++;
    }
    return NULL;
}

/* Concurrent callers never take more than the buckets hold. */
static void test_threads(const plugin *p) {
    molt_instance in = start(p, "1000", "100000", SLOW);
    worker workers[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        workers[i] = (worker){p, in, 0};
        CHECK(pthread_create(&threads[i], NULL, hammer, &workers[i]) == 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        total += workers[i].allowed;
    }
    CHECK(total == 2000); /* 1000 per key, 4000 asked */
    p->destroy(in);
}

typedef struct { uint8_t *bytes; size_t length; } buffer;
static int32_t append(void *context, const void *bytes, size_t length) {
    buffer *b = context;
    b->bytes = realloc(b->bytes, b->length + length);
    memcpy(b->bytes + b->length, bytes, length);
    b->length += length;
    return 0;
}
static int32_t refuse(void *context, const void *bytes, size_t length) {
    (void)context, (void)bytes, (void)length;
    return 1;
}

static molt_status import(const plugin *p, molt_instance in, uint32_t format, const void *bytes, size_t length,
                          char *text, uint32_t capacity) {
    molt_message message = {text, capacity};
    text[0] = '\0';
    return p->import_state(in, format, bytes, length, &message);
}

/* Buckets from `from` reach `to` in the highest format both know (the host's choice), LRU order kept. */
static void test_transfer(const plugin *from, const plugin *to) {
    uint32_t format = from->info->state_format_max < to->info->state_format_max ? from->info->state_format_max
                                                                                  : to->info->state_format_max;
    printf("  state %s -> %s, format %u\n", from->info->version, to->info->version, format);
    char text[256];
    molt_message message = {text, sizeof text};
    molt_instance a = start(from, "10", "100000", SLOW);
    CHECK(allow(from, a, "alice", 7).allowed);
    CHECK(allow(from, a, "bob", 2).allowed);
    CHECK(allow(from, a, "carol", 10).allowed);
    buffer state = {NULL, 0};
    CHECK(from->export_state(a, format, append, &state, &message) == MOLT_OK);
    if (from->info->state_format_max < 2) /* a format it does not know */
        CHECK(from->export_state(a, 2, append, &(buffer){0}, &message) == MOLT_ERR_UNSUPPORTED);
    buffer refused = {NULL, 0};
    CHECK(from->export_state(a, format, refuse, &refused, &message) != MOLT_OK && text[0] != '\0');
    from->destroy(a);

    molt_instance b = start(to, "10", "100000", SLOW);
    CHECK(import(to, b, format, state.bytes, state.length, text, sizeof text) == MOLT_OK);
    CHECK(NEAR(peek(to, b, "alice", NULL), 3) && NEAR(peek(to, b, "bob", NULL), 8) && NEAR(peek(to, b, "carol", NULL), 0));
    CHECK(!allow(to, b, "carol", 1).allowed);
    CHECK(apply(to, b, "10", "2", SLOW, text, sizeof text) == MOLT_APPLIED); /* alice is the least recently used */
    CHECK(!reset(to, b, "alice") && reset(to, b, "bob") && reset(to, b, "carol"));
    to->destroy(b);

    /* into a smaller instance: the least recently used beyond maxBuckets are dropped; a smaller capacity caps */
    molt_instance c = start(to, "5", "2", SLOW);
    CHECK(import(to, c, format, state.bytes, state.length, text, sizeof text) == MOLT_OK);
    CHECK(!reset(to, c, "alice") && NEAR(peek(to, c, "bob", NULL), 5) && NEAR(peek(to, c, "carol", NULL), 0));
    to->destroy(c);

    /* corrupt or truncated: refused with a message, and the instance is left as it was */
    molt_instance d = start(to, "10", "100000", SLOW);
    CHECK(allow(to, d, "dave", 4).allowed);
    for (size_t cut = 0; cut < state.length; cut += (cut < 40 ? 1 : 7)) {
        CHECK(import(to, d, format, state.bytes, cut, text, sizeof text) == MOLT_ERR_INVALID_ARGUMENT);
        CHECK(strstr(text, "corrupt") != NULL);
    }
    printf("  truncated: %s\n", text);
    uint8_t *longer = malloc(state.length + 1);
    memcpy(longer, state.bytes, state.length);
    longer[state.length] = 0;
    CHECK(import(to, d, format, longer, state.length + 1, text, sizeof text) == MOLT_ERR_INVALID_ARGUMENT);
    memcpy(longer, state.bytes, state.length);
    longer[0] ^= 0x20; /* magic */
    CHECK(import(to, d, format, longer, state.length, text, sizeof text) == MOLT_ERR_INVALID_ARGUMENT && strstr(text, "magic"));
    memcpy(longer, state.bytes, state.length);
    longer[state.length / 2] ^= 0x01; /* format 2: the checksum; format 1: a length, a key or tokens */
    molt_status flipped = import(to, d, format, longer, state.length, text, sizeof text);
    if (format == 2) CHECK(flipped == MOLT_ERR_INVALID_ARGUMENT && strstr(text, "checksum"));
    printf("  flipped byte: %s\n", flipped == MOLT_OK ? "(still a valid state)" : text);
    free(longer);
    CHECK(import(to, d, to->info->state_format_max + 1, state.bytes, state.length, text, sizeof text) == MOLT_ERR_UNSUPPORTED);
    CHECK(NEAR(peek(to, d, "dave", NULL), 6) && peek(to, d, "alice", NULL) == 10);
    to->destroy(d);
    free(state.bytes);
}

/* Hand-made format 1 states that parse to the end but hold bad records. */
static void test_bad_records(const plugin *p) {
    char text[256];
    molt_instance in = start(p, "10", "100000", SLOW);
    const uint8_t nan_tokens[] = {'R', 'L', 'S', '1', 1, 0, 0, 0, 1, 0, 0, 0, 'k', 0, 0, 0, 0, 0, 0, 0xf8, 0x7f};
    CHECK(import(p, in, 1, nan_tokens, sizeof nan_tokens, text, sizeof text) == MOLT_ERR_INVALID_ARGUMENT && strstr(text, "tokens"));
    const uint8_t twice[] = {'R', 'L', 'S', '1', 2, 0, 0, 0, 1, 0, 0, 0, 'k', 0, 0, 0, 0, 0, 0, 0xf0, 0x3f,
                             1, 0, 0, 0, 'k', 0, 0, 0, 0, 0, 0, 0xf0, 0x3f};
    CHECK(import(p, in, 1, twice, sizeof twice, text, sizeof text) == MOLT_ERR_INVALID_ARGUMENT && strstr(text, "repeats"));
    const uint8_t empty_key[] = {'R', 'L', 'S', '1', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0};
    CHECK(import(p, in, 1, empty_key, sizeof empty_key, text, sizeof text) == MOLT_ERR_INVALID_ARGUMENT && strstr(text, "key length"));
    const uint8_t one[] = {'R', 'L', 'S', '1', 1, 0, 0, 0, 1, 0, 0, 0, 'k', 0, 0, 0, 0, 0, 0, 0xf0, 0x3f}; /* k: 1.0 */
    CHECK(import(p, in, 1, one, sizeof one, text, sizeof text) == MOLT_OK && NEAR(peek(p, in, "k", NULL), 1));
    const uint8_t none[] = {'R', 'L', 'S', '1', 0, 0, 0, 0};
    CHECK(import(p, in, 1, none, sizeof none, text, sizeof text) == MOLT_OK && !reset(p, in, "k")); /* replaces */
    p->destroy(in);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PLUGIN.so [PLUGIN.so ...]\n", argv[0]); return 2; }
    plugin plugins[8];
    int count = argc - 1 < 8 ? argc - 1 : 8;
    for (int i = 0; i < count; i++) plugins[i] = load(argv[i + 1]);
    for (int i = 0; i < count; i++) {
        printf("%s %s: semantics, config, acquire, threads\n", plugins[i].info->name, plugins[i].info->version);
        test_semantics(&plugins[i]);
        test_config(&plugins[i]);
        test_acquire(&plugins[i]);
        test_threads(&plugins[i]);
        test_bad_records(&plugins[i]);
    }
    for (int i = 0; i < count; i++) /* every pair, both ways, and each into itself */
        for (int j = 0; j < count; j++) test_transfer(&plugins[i], &plugins[j]);
    for (int i = 0; i < count; i++) dlclose(plugins[i].handle);
    printf(failures ? "test_rate_limiter: %d check(s) failed\n" : "test_rate_limiter: all checks passed\n", failures);
    return failures ? 1 : 0;
}
