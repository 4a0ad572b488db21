/* fake_loop.h: a test host with ABI 1.1 I/O: FAKE_LOOPS event-loop threads, each a poll() loop running the
 * plugin's streams (non-blocking TCP to an IPv4 address) and timers, with molt's rules: callbacks on the
 * stream's or timer's loop, `closed` last and once, on a later turn after stream_close. */
#ifndef FAKE_LOOP_H
#define FAKE_LOOP_H

#include "molt_plugin.h"

#define FAKE_LOOPS 2

extern const molt_host_services loop_host;

void fake_loops_start(void);
void fake_loops_stop(void);           /* after every instance using loop_host is destroyed */
uint32_t fake_current_loop(void);     /* the caller's loop, or MOLT_NO_LOOP */
void run_on_loop(uint32_t loop, molt_timer_fn fn, void *context); /* a zero-delay timer */
int fake_streams_opened(void);        /* stream_open calls so far */
int fake_callbacks_owed(void);        /* streams not yet closed + timers not yet fired */

#endif /* FAKE_LOOP_H */
