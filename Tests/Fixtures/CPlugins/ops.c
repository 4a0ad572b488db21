/*
 * ops: declared operations (ABI 1.2) of every type, and every way a call of one can end, for the host's
 * operation tests. One source; the variant is picked by a macro (see fixture.mk):
 *   (none)     "ops" 1.0.0, kind binding
 *   OPS_V1_1   "ops" 1.1.0: 1.0.0 plus `multiply` (an added operation: a swap to it is fine)
 *   OPS_V2     "ops" 2.0.0: `add` takes and returns doubles, `negate` removed (a swap to it is refused unless
 *              the apply accepts operation changes)
 *   OPS_LOCK   "ops-lock" 1.0.0, kind lock (fixture_lock), declaring `add` and `count`: any kind may declare
 *              operations
 * Operations (1.0.0):
 *   add(a: int64, b: int64) -> (sum: int64)           INVALID_ARGUMENT "add: ... overflows int64" on overflow
 *   divide(x: double, y: double) -> (q: double)        y = 0 gives an infinity, which the host refuses
 *   negate(flag: bool) -> (result: bool)
 *   echo(text: string, data: bytes) -> (upper: string, reversed: bytes, length: int64)
 *   mix(i: int64, y: bytes, d: double, s: string, b: bool) -> (summary: string, bytesOut: bytes, iOut: int64,
 *       dOut: double, bOut: bool)                      every type, bytes between others: argument order
 *   sleep(ms: int64) -> (slept: int64)                 MOLT_OPERATION_BLOCKING: sleeps ms milliseconds
 *   fail(code: int64, message: string) -> (partial: string)
 *                                                      returns `code` with `message` after allocating `partial`
 *                                                      (the host must free it and ignore it)
 *   null_string() -> (text: string)                    MOLT_OK with the string result left NULL
 *   bad_utf8() -> (text: string)                       MOLT_OK with "\xff\xfe"
 *   vsum(a: int64, b: double, label: string, data: bytes, flag: bool) -> (total: double, tagged: string,
 *       doubled: bytes, inverted: bool)                the values form (MOLT_OPERATION_VALUES)
 *   count() -> (calls: int64)                          calls of `count` on this instance so far, this one included
 *   rendezvous(parties: int64, timeout_ms: int64) -> (met: bool, seen: int64)
 *                                                      MOLT_OPERATION_BLOCKING: waits until `parties` callers are inside
 *                                                      at once (met) or timeout_ms passed; seen: the most inside at once.
 *                                                      Blocking calls parked on the cooperative pool could never meet.
 *   inside() -> (waiting: int64)                       callers inside rendezvous now
 */
#define _POSIX_C_SOURCE 200809L

#include "fixture_lock.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(OPS_V1_1)
#define OPS_NAME "ops"
#define OPS_VERSION "1.1.0"
#elif defined(OPS_V2)
#define OPS_NAME "ops"
#define OPS_VERSION "2.0.0"
#elif defined(OPS_LOCK)
#define OPS_NAME "ops-lock"
#define OPS_VERSION "1.0.0"
#else
#define OPS_NAME "ops"
#define OPS_VERSION "1.0.0"
#endif

typedef struct {
    atomic_llong count_calls;
    pthread_mutex_t rendezvous_mutex; /* guards the two counts below */
    pthread_cond_t rendezvous_changed;
    int64_t rendezvous_inside, rendezvous_most; /* most: since the rendezvous was last empty */
#ifdef OPS_LOCK
    fx_table table;
#endif
} ops_instance;

MOLT_DEFINE_ABI_VERSION()

static const molt_plugin_identity info = {
    .struct_size = sizeof(molt_plugin_identity),
    .name = OPS_NAME,
    .version = OPS_VERSION,
#ifdef OPS_LOCK
    .kind = MOLT_KIND_LOCK,
#else
    .kind = MOLT_KIND_BINDING,
#endif
    .description = "declared operations of every type (test fixture)",
};
FX_DEFINE_PLUGIN_INFO(info)

molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host, molt_instance *instance_out,
                             molt_message *error_out) {
    (void)config;
    (void)host;
    ops_instance *instance = calloc(1, sizeof *instance);
    if (instance == NULL) {
        molt_message_set(error_out, "out of memory");
        return MOLT_ERR_INTERNAL;
    }
#ifdef OPS_LOCK
    if (fx_table_init(&instance->table) != 0) {
        free(instance);
        molt_message_set(error_out, "cannot initialize the lock table");
        return MOLT_ERR_INTERNAL;
    }
#endif
    pthread_mutex_init(&instance->rendezvous_mutex, NULL);
    pthread_cond_init(&instance->rendezvous_changed, NULL);
    *instance_out = instance;
    return MOLT_OK;
}

molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
    (void)instance;
    (void)message_out;
    return MOLT_READY;
}

void molt_plugin_destroy(molt_instance instance) {
    pthread_mutex_destroy(&((ops_instance *)instance)->rendezvous_mutex);
    pthread_cond_destroy(&((ops_instance *)instance)->rendezvous_changed);
#ifdef OPS_LOCK
    fx_table_destroy(&((ops_instance *)instance)->table);
#endif
    free(instance);
}

#ifdef OPS_LOCK
void molt_lock_try_lock(molt_instance instance, const molt_lock_request *request, molt_try_lock_done done, void *call_context) {
    molt_try_lock_result result = {.struct_size = sizeof result};
    fx_try_lock(&((ops_instance *)instance)->table, request, &result);
    done(call_context, &result);
}

void molt_lock_unlock(molt_instance instance, const molt_lock_request *request, molt_unlock_done done, void *call_context) {
    molt_unlock_result result = {.struct_size = sizeof result};
    fx_unlock(&((ops_instance *)instance)->table, request, &result);
    done(call_context, &result);
}
#endif

/* ---- The operations. Each has a prototype (the header cannot declare them), exported with MOLT_EXPORT. ---- */

static char *copy_string(const char *text) {
    size_t length = strlen(text);
    char *copy = malloc(length + 1);
    if (copy != NULL) memcpy(copy, text, length + 1);
    return copy;
}

#ifndef OPS_V2
MOLT_EXPORT molt_status ops_add(molt_instance instance, int64_t a, int64_t b, int64_t *sum, molt_message *error_out);
molt_status ops_add(molt_instance instance, int64_t a, int64_t b, int64_t *sum, molt_message *error_out) {
    (void)instance;
    if (__builtin_add_overflow(a, b, sum)) {
        char text[128];
        snprintf(text, sizeof text, "add: %lld + %lld overflows int64", (long long)a, (long long)b);
        molt_message_set(error_out, text);
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    return MOLT_OK;
}
#else
MOLT_EXPORT molt_status ops_add_double(molt_instance instance, double a, double b, double *sum, molt_message *error_out);
molt_status ops_add_double(molt_instance instance, double a, double b, double *sum, molt_message *error_out) {
    (void)instance;
    (void)error_out;
    *sum = a + b;
    return MOLT_OK;
}
#endif

#ifdef OPS_V1_1
MOLT_EXPORT molt_status ops_multiply(molt_instance instance, int64_t a, int64_t b, int64_t *product, molt_message *error_out);
molt_status ops_multiply(molt_instance instance, int64_t a, int64_t b, int64_t *product, molt_message *error_out) {
    (void)instance;
    if (__builtin_mul_overflow(a, b, product)) {
        molt_message_set(error_out, "multiply: overflows int64");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    return MOLT_OK;
}
#endif

MOLT_EXPORT molt_status ops_divide(molt_instance instance, double x, double y, double *q, molt_message *error_out);
molt_status ops_divide(molt_instance instance, double x, double y, double *q, molt_message *error_out) {
    (void)instance;
    (void)error_out;
    *q = x / y;
    return MOLT_OK;
}

MOLT_EXPORT molt_status ops_negate(molt_instance instance, bool flag, bool *result, molt_message *error_out);
molt_status ops_negate(molt_instance instance, bool flag, bool *result, molt_message *error_out) {
    (void)instance;
    (void)error_out;
    *result = !flag;
    return MOLT_OK;
}

MOLT_EXPORT molt_status ops_echo(molt_instance instance, const char *text, const uint8_t *data, size_t data_length,
                                 char **upper, uint8_t **reversed, size_t *reversed_length, int64_t *length,
                                 molt_message *error_out);
molt_status ops_echo(molt_instance instance, const char *text, const uint8_t *data, size_t data_length, char **upper,
                     uint8_t **reversed, size_t *reversed_length, int64_t *length, molt_message *error_out) {
    (void)instance;
    size_t text_length = strlen(text);
    *upper = malloc(text_length + 1);
    *reversed = data_length > 0 ? malloc(data_length) : NULL;
    if (*upper == NULL || (data_length > 0 && *reversed == NULL)) {
        molt_message_set(error_out, "echo: out of memory");
        return MOLT_ERR_INTERNAL;  /* the host frees whichever was allocated */
    }
    for (size_t i = 0; i <= text_length; i++) {
        char c = text[i];
        (*upper)[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    for (size_t i = 0; i < data_length; i++) (*reversed)[i] = data[data_length - 1 - i];
    *reversed_length = data_length;
    *length = (int64_t)(text_length + data_length);
    return MOLT_OK;
}

MOLT_EXPORT molt_status ops_mix(molt_instance instance, int64_t i, const uint8_t *y, size_t y_length, double d, const char *s,
                                bool b, char **summary, uint8_t **bytes_out, size_t *bytes_out_length, int64_t *i_out,
                                double *d_out, bool *b_out, molt_message *error_out);
molt_status ops_mix(molt_instance instance, int64_t i, const uint8_t *y, size_t y_length, double d, const char *s, bool b,
                    char **summary, uint8_t **bytes_out, size_t *bytes_out_length, int64_t *i_out, double *d_out, bool *b_out,
                    molt_message *error_out) {
    (void)instance;
    char text[512];
    snprintf(text, sizeof text, "i=%lld y=%zu d=%g s=%s b=%d", (long long)i, y_length, d, s, b ? 1 : 0);
    *summary = copy_string(text);
    if (*summary == NULL) {
        molt_message_set(error_out, "mix: out of memory");
        return MOLT_ERR_INTERNAL;
    }
    if (y_length > 0) {
        *bytes_out = malloc(y_length);
        if (*bytes_out == NULL) {
            molt_message_set(error_out, "mix: out of memory");
            return MOLT_ERR_INTERNAL;
        }
        memcpy(*bytes_out, y, y_length);
    }
    *bytes_out_length = y_length;
    *i_out = i;
    *d_out = d;
    *b_out = b;
    return MOLT_OK;
}

MOLT_EXPORT molt_status ops_sleep(molt_instance instance, int64_t ms, int64_t *slept, molt_message *error_out);
molt_status ops_sleep(molt_instance instance, int64_t ms, int64_t *slept, molt_message *error_out) {
    (void)instance;
    if (ms < 0 || ms > 60000) {
        molt_message_set(error_out, "sleep: ms must be within 0...60000");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    struct timespec delay = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&delay, &delay) != 0) {}
    *slept = ms;
    return MOLT_OK;
}

MOLT_EXPORT molt_status ops_fail(molt_instance instance, int64_t code, const char *message, char **partial,
                                 molt_message *error_out);
molt_status ops_fail(molt_instance instance, int64_t code, const char *message, char **partial, molt_message *error_out) {
    (void)instance;
    *partial = copy_string("allocated before failing");
    molt_message_set(error_out, message);
    return (molt_status)code;
}

MOLT_EXPORT molt_status ops_null_string(molt_instance instance, char **text, molt_message *error_out);
molt_status ops_null_string(molt_instance instance, char **text, molt_message *error_out) {
    (void)instance;
    (void)text;
    (void)error_out;
    return MOLT_OK;
}

MOLT_EXPORT molt_status ops_bad_utf8(molt_instance instance, char **text, molt_message *error_out);
molt_status ops_bad_utf8(molt_instance instance, char **text, molt_message *error_out) {
    (void)instance;
    (void)error_out;
    *text = copy_string("\xff\xfe");
    return MOLT_OK;
}

MOLT_EXPORT molt_status ops_vsum(molt_instance instance, const molt_value *parameters, molt_value *results, molt_message *error_out);
molt_status ops_vsum(molt_instance instance, const molt_value *parameters, molt_value *results, molt_message *error_out) {
    (void)instance;
    if (parameters[0].type != MOLT_TYPE_INT64 || parameters[1].type != MOLT_TYPE_DOUBLE || parameters[2].type != MOLT_TYPE_STRING
        || parameters[3].type != MOLT_TYPE_BYTES || parameters[4].type != MOLT_TYPE_BOOL || results[0].type != MOLT_TYPE_DOUBLE
        || results[1].type != MOLT_TYPE_STRING || results[2].type != MOLT_TYPE_BYTES || results[3].type != MOLT_TYPE_BOOL) {
        molt_message_set(error_out, "vsum: the host set wrong types");
        return MOLT_ERR_INTERNAL;
    }
    results[0].as.float64 = (double)parameters[0].as.int64 + parameters[1].as.float64;
    const char *label = parameters[2].as.string;
    char *tagged = malloc(strlen(label) + 3);
    molt_bytes data = parameters[3].as.bytes;
    uint8_t *doubled = data.length > 0 ? malloc(2 * data.length) : NULL;
    if (tagged == NULL || (data.length > 0 && doubled == NULL)) {
        free(tagged);
        free(doubled);
        molt_message_set(error_out, "vsum: out of memory");
        return MOLT_ERR_INTERNAL;
    }
    sprintf(tagged, "[%s]", label);
    results[1].as.string = tagged;
    for (size_t i = 0; i < data.length; i++) doubled[i] = doubled[i + data.length] = data.data[i];
    results[2].as.bytes = (molt_bytes){.data = doubled, .length = 2 * data.length};
    results[3].as.boolean = !parameters[4].as.boolean;
    return MOLT_OK;
}

MOLT_EXPORT molt_status ops_count(molt_instance instance, int64_t *calls, molt_message *error_out);
molt_status ops_count(molt_instance instance, int64_t *calls, molt_message *error_out) {
    (void)error_out;
    *calls = atomic_fetch_add(&((ops_instance *)instance)->count_calls, 1) + 1;
    return MOLT_OK;
}

MOLT_EXPORT molt_status ops_rendezvous(molt_instance instance, int64_t parties, int64_t timeout_ms, bool *met, int64_t *seen,
                                       molt_message *error_out);
molt_status ops_rendezvous(molt_instance instance, int64_t parties, int64_t timeout_ms, bool *met, int64_t *seen,
                           molt_message *error_out) {
    ops_instance *ops = instance;
    if (timeout_ms < 0 || timeout_ms > 60000) {
        molt_message_set(error_out, "rendezvous: timeout_ms must be within 0...60000");
        return MOLT_ERR_INVALID_ARGUMENT;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ops->rendezvous_mutex);
    ops->rendezvous_inside += 1;
    if (ops->rendezvous_inside > ops->rendezvous_most) ops->rendezvous_most = ops->rendezvous_inside;
    pthread_cond_broadcast(&ops->rendezvous_changed);
    while (ops->rendezvous_most < parties) {
        if (pthread_cond_timedwait(&ops->rendezvous_changed, &ops->rendezvous_mutex, &deadline) != 0) break;
    }
    *met = ops->rendezvous_most >= parties;
    *seen = ops->rendezvous_most;
    ops->rendezvous_inside -= 1;
    if (ops->rendezvous_inside == 0) ops->rendezvous_most = 0;
    pthread_mutex_unlock(&ops->rendezvous_mutex);
    return MOLT_OK;
}

MOLT_EXPORT molt_status ops_inside(molt_instance instance, int64_t *waiting, molt_message *error_out);
molt_status ops_inside(molt_instance instance, int64_t *waiting, molt_message *error_out) {
    (void)error_out;
    ops_instance *ops = instance;
    pthread_mutex_lock(&ops->rendezvous_mutex);
    *waiting = ops->rendezvous_inside;
    pthread_mutex_unlock(&ops->rendezvous_mutex);
    return MOLT_OK;
}

/* ---- The declarations ---- */

#define FIELD(n, t) {.name = (n), .type = (t), .description = NULL}
/* Some variants leave some of these unused. */
#define FIELDS static const molt_operation_field __attribute__((unused))
#define OPERATION(n, s, f, P, R)                                                                                     \
    {.name = (n), .description = n " (test fixture)", .symbol = (s), .flags = (f),                                   \
     .parameter_count = sizeof(P) / sizeof(molt_operation_field), .parameters = (P),                                 \
     .result_count = sizeof(R) / sizeof(molt_operation_field), .results = (R)}
#define OPERATION_NO_PARAMETERS(n, s, f, R)                                                                          \
    {.name = (n), .description = n " (test fixture)", .symbol = (s), .flags = (f), .parameter_count = 0,             \
     .parameters = NULL, .result_count = sizeof(R) / sizeof(molt_operation_field), .results = (R)}

#ifndef OPS_V2
FIELDS add_parameters[] = {FIELD("a", MOLT_TYPE_INT64), FIELD("b", MOLT_TYPE_INT64)};
FIELDS add_results[] = {FIELD("sum", MOLT_TYPE_INT64)};
#else
FIELDS add_parameters[] = {FIELD("a", MOLT_TYPE_DOUBLE), FIELD("b", MOLT_TYPE_DOUBLE)};
FIELDS add_results[] = {FIELD("sum", MOLT_TYPE_DOUBLE)};
#endif
#ifdef OPS_V1_1
FIELDS multiply_results[] = {FIELD("product", MOLT_TYPE_INT64)};
#endif
FIELDS divide_parameters[] = {FIELD("x", MOLT_TYPE_DOUBLE), FIELD("y", MOLT_TYPE_DOUBLE)};
FIELDS divide_results[] = {FIELD("q", MOLT_TYPE_DOUBLE)};
FIELDS negate_parameters[] = {FIELD("flag", MOLT_TYPE_BOOL)};
FIELDS negate_results[] = {FIELD("result", MOLT_TYPE_BOOL)};
FIELDS echo_parameters[] = {FIELD("text", MOLT_TYPE_STRING), FIELD("data", MOLT_TYPE_BYTES)};
FIELDS echo_results[] = {FIELD("upper", MOLT_TYPE_STRING), FIELD("reversed", MOLT_TYPE_BYTES),
                                                    FIELD("length", MOLT_TYPE_INT64)};
FIELDS mix_parameters[] = {FIELD("i", MOLT_TYPE_INT64), FIELD("y", MOLT_TYPE_BYTES),
                                                      FIELD("d", MOLT_TYPE_DOUBLE), FIELD("s", MOLT_TYPE_STRING),
                                                      FIELD("b", MOLT_TYPE_BOOL)};
FIELDS mix_results[] = {FIELD("summary", MOLT_TYPE_STRING), FIELD("bytesOut", MOLT_TYPE_BYTES),
                                                   FIELD("iOut", MOLT_TYPE_INT64), FIELD("dOut", MOLT_TYPE_DOUBLE),
                                                   FIELD("bOut", MOLT_TYPE_BOOL)};
FIELDS sleep_parameters[] = {FIELD("ms", MOLT_TYPE_INT64)};
FIELDS sleep_results[] = {FIELD("slept", MOLT_TYPE_INT64)};
FIELDS fail_parameters[] = {FIELD("code", MOLT_TYPE_INT64), FIELD("message", MOLT_TYPE_STRING)};
FIELDS fail_results[] = {FIELD("partial", MOLT_TYPE_STRING)};
FIELDS text_results[] = {FIELD("text", MOLT_TYPE_STRING)};
FIELDS vsum_parameters[] = {FIELD("a", MOLT_TYPE_INT64), FIELD("b", MOLT_TYPE_DOUBLE),
                                                       FIELD("label", MOLT_TYPE_STRING), FIELD("data", MOLT_TYPE_BYTES),
                                                       FIELD("flag", MOLT_TYPE_BOOL)};
FIELDS vsum_results[] = {FIELD("total", MOLT_TYPE_DOUBLE), FIELD("tagged", MOLT_TYPE_STRING),
                                                    FIELD("doubled", MOLT_TYPE_BYTES), FIELD("inverted", MOLT_TYPE_BOOL)};
FIELDS count_results[] = {FIELD("calls", MOLT_TYPE_INT64)};
FIELDS rendezvous_parameters[] = {FIELD("parties", MOLT_TYPE_INT64), FIELD("timeout_ms", MOLT_TYPE_INT64)};
FIELDS rendezvous_results[] = {FIELD("met", MOLT_TYPE_BOOL), FIELD("seen", MOLT_TYPE_INT64)};
FIELDS inside_results[] = {FIELD("waiting", MOLT_TYPE_INT64)};

static const molt_operation operations[] = {
#ifndef OPS_V2
    OPERATION("add", "ops_add", 0, add_parameters, add_results),
#else
    OPERATION("add", "ops_add_double", 0, add_parameters, add_results),
#endif
    OPERATION_NO_PARAMETERS("count", "ops_count", 0, count_results),
#ifndef OPS_LOCK /* the lock declares add and count only */
#ifdef OPS_V1_1
    OPERATION("multiply", "ops_multiply", 0, add_parameters, multiply_results),
#endif
    OPERATION("divide", "ops_divide", 0, divide_parameters, divide_results),
#ifndef OPS_V2
    OPERATION("negate", "ops_negate", 0, negate_parameters, negate_results),
#endif
    OPERATION("echo", "ops_echo", 0, echo_parameters, echo_results),
    OPERATION("mix", "ops_mix", 0, mix_parameters, mix_results),
    OPERATION("sleep", "ops_sleep", MOLT_OPERATION_BLOCKING, sleep_parameters, sleep_results),
    OPERATION("fail", "ops_fail", 0, fail_parameters, fail_results),
    OPERATION_NO_PARAMETERS("null_string", "ops_null_string", 0, text_results),
    OPERATION_NO_PARAMETERS("bad_utf8", "ops_bad_utf8", 0, text_results),
    OPERATION("vsum", "ops_vsum", MOLT_OPERATION_VALUES, vsum_parameters, vsum_results),
    OPERATION("rendezvous", "ops_rendezvous", MOLT_OPERATION_BLOCKING, rendezvous_parameters, rendezvous_results),
    OPERATION_NO_PARAMETERS("inside", "ops_inside", 0, inside_results),
#endif
};

const molt_operation *molt_plugin_operations(uint32_t *count_out) {
    *count_out = sizeof operations / sizeof operations[0];
    return operations;
}
