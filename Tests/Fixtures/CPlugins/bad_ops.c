/*
 * bad_ops: binding plugins (ABI 1.2) whose operation declarations break exactly one rule of molt_plugin.h, so
 * the loader must refuse each, naming the operation and the field. One source; exactly one BAD_OPS_* macro
 * picks the variant (see fixture.mk):
 *   BAD_OPS_UNKNOWN_TYPE     echo's parameter 'text' has type 9
 *   BAD_OPS_DUPLICATE_NAME   two operations named 'echo'
 *   BAD_OPS_MISSING_SYMBOL   echo's symbol 'bad_ops_absent' is not defined at all
 *   BAD_OPS_HIDDEN_SYMBOL    echo's symbol 'bad_ops_hidden' is defined in hidden_op.c, a file without the header,
 *                            so -fvisibility=hidden hides it
 *   BAD_OPS_TOO_MANY_FIELDS  echo has MOLT_OPERATION_MAX_FIELDS + 1 parameters
 *   BAD_OPS_BAD_NAME         an operation named 'Echo'
 *   BAD_OPS_DUPLICATE_FIELD  echo has a parameter and a result both named 'text'
 *   BAD_OPS_UNKNOWN_FLAG     echo's flags set 0x4
 *   BAD_OPS_NONE             kind binding declaring no operation
 * Otherwise each is a correct binding whose one operation is echo(text: string) -> (echoed: string).
 */
#define _POSIX_C_SOURCE 200809L

#include "molt_plugin.h"

#include <stdlib.h>
#include <string.h>

MOLT_DEFINE_ABI_VERSION()

static const molt_plugin_identity info = {
    .struct_size = sizeof(molt_plugin_identity), .name = "bad-ops", .version = "1.0.0", .kind = MOLT_KIND_BINDING,
    .description = "a binding whose operation declarations break one rule (test fixture)",
};

const molt_plugin_identity *molt_plugin_info(void) { return &info; }

molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host, molt_instance *instance_out,
                             molt_message *error_out) {
    (void)config;
    (void)host;
    (void)error_out;
    *instance_out = malloc(1);
    return MOLT_OK;
}

molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out) {
    (void)instance;
    (void)message_out;
    return MOLT_READY;
}

void molt_plugin_destroy(molt_instance instance) { free(instance); }

MOLT_EXPORT molt_status bad_ops_echo(molt_instance instance, const char *text, char **echoed, molt_message *error_out);
molt_status bad_ops_echo(molt_instance instance, const char *text, char **echoed, molt_message *error_out) {
    (void)instance;
    (void)error_out;
    *echoed = malloc(strlen(text) + 1);
    if (*echoed != NULL) strcpy(*echoed, text);
    return MOLT_OK;
}

#if defined(BAD_OPS_UNKNOWN_TYPE)
#define TEXT_TYPE 9
#else
#define TEXT_TYPE MOLT_TYPE_STRING
#endif
#if defined(BAD_OPS_DUPLICATE_FIELD)
#define RESULT_NAME "text"
#else
#define RESULT_NAME "echoed"
#endif
#if defined(BAD_OPS_MISSING_SYMBOL)
#define ECHO_SYMBOL "bad_ops_absent"
#elif defined(BAD_OPS_HIDDEN_SYMBOL)
#define ECHO_SYMBOL "bad_ops_hidden"
#else
#define ECHO_SYMBOL "bad_ops_echo"
#endif
#if defined(BAD_OPS_UNKNOWN_FLAG)
#define ECHO_FLAGS 0x4u
#else
#define ECHO_FLAGS 0u
#endif
#if defined(BAD_OPS_BAD_NAME)
#define ECHO_NAME "Echo"
#else
#define ECHO_NAME "echo"
#endif

static const molt_operation_field parameters[MOLT_OPERATION_MAX_FIELDS + 1] = {
    {.name = "text", .type = TEXT_TYPE, .description = "what to echo"},
};
static const molt_operation_field results[] = {{.name = RESULT_NAME, .type = MOLT_TYPE_STRING, .description = NULL}};

#if defined(BAD_OPS_TOO_MANY_FIELDS)
#define PARAMETER_COUNT (MOLT_OPERATION_MAX_FIELDS + 1)
#else
#define PARAMETER_COUNT 1
#endif

static const molt_operation operations[] = {
    {.name = ECHO_NAME, .description = "echoes its text", .symbol = ECHO_SYMBOL, .flags = ECHO_FLAGS,
     .parameter_count = PARAMETER_COUNT, .parameters = parameters, .result_count = 1, .results = results},
    {.name = "echo", .description = "the same name again", .symbol = "bad_ops_echo", .flags = 0,
     .parameter_count = 1, .parameters = parameters, .result_count = 1, .results = results},
};

const molt_operation *molt_plugin_operations(uint32_t *count_out) {
#if defined(BAD_OPS_NONE)
    *count_out = 0;
#elif defined(BAD_OPS_DUPLICATE_NAME)
    *count_out = 2;
#else
    *count_out = 1;
#endif
    return operations;
}
