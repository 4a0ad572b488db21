/*
 * misbehaving-load: a plugin library that misbehaves as soon as it is mapped, before any plugin function
 * is called (an ELF constructor), so that reading its identity for the catalog crashes or never returns
 * (it never gets further, so it defines only its identity). Exactly one macro picks the variant (see fixture.mk):
 *   FIX_CRASH_ON_LOAD  the constructor writes through a null pointer (SIGSEGV)
 *   FIX_HANG_ON_LOAD   the constructor sleeps for ever
 * Built outside the fixtures directory proper ($(FIXTURES)/misbehaving/), so that serving or listing the
 * fixtures directory never maps them.
 */
#define _POSIX_C_SOURCE 200809L

#include "fixture_lock.h"

#include <stdint.h>
#include <unistd.h>

#if defined(FIX_CRASH_ON_LOAD)
#define FX_NAME "crash-on-load"
/* An address the compiler cannot prove null (a null store it could drop as undefined behaviour). */
static volatile uintptr_t fx_nowhere = 0;
static void fx_misbehave(void) { *(volatile int *)fx_nowhere = 1; }
#elif defined(FIX_HANG_ON_LOAD)
#define FX_NAME "hang-on-load"
static void fx_misbehave(void) {
    for (;;) pause();
}
#else
#error "define FIX_CRASH_ON_LOAD or FIX_HANG_ON_LOAD"
#endif

__attribute__((constructor)) static void fx_on_load(void) { fx_misbehave(); }

static const molt_plugin_identity fx_info = {
    .struct_size = sizeof(molt_plugin_identity),
    .name = FX_NAME,
    .version = "1.0.0",
    .kind = MOLT_KIND_LOCK,
    .description = "test fixture " FX_NAME,
};

MOLT_DEFINE_ABI_VERSION()
FX_DEFINE_PLUGIN_INFO(fx_info)
