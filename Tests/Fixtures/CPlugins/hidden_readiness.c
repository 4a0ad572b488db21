/*
 * hidden_readiness: molt_plugin_readiness for basic.c's FIX_HIDDEN_READINESS, in a file that does not
 * include molt_plugin.h and so lacks its MOLT_EXPORT prototype: under -fvisibility=hidden the function
 * is defined but not exported, the mistake the loader must explain ("defines it but does not export it").
 */
#include <stdint.h>

int32_t molt_plugin_readiness(void *instance, void *message_out);

int32_t molt_plugin_readiness(void *instance, void *message_out) {
    (void)instance;
    (void)message_out;
    return 0; /* MOLT_READY */
}
