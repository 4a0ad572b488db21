/*
 * hidden_op: the function of bad-ops-hidden-symbol.so's operation, in a file that does not include
 * molt_plugin.h, so nothing marks it MOLT_EXPORT and -fvisibility=hidden keeps it out of the dynamic
 * symbols: defined, but not exported (the loader must say so).
 */
#include <stdint.h>

int32_t bad_ops_hidden(void *instance, const char *text, char **echoed, void *error_out);
int32_t bad_ops_hidden(void *instance, const char *text, char **echoed, void *error_out) {
    (void)instance;
    (void)text;
    (void)echoed;
    (void)error_out;
    return 0;
}
