/* redis_server.h: a real redis-server for the test, started on a free loopback port and stopped at the end
 * (the child dies with the test too: PR_SET_PDEATHSIG), plus a small hiredis client to look inside. */
#ifndef REDIS_SERVER_H
#define REDIS_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;      /* 0: not running */
    uint16_t port;
    char dir[64];   /* working directory (no persistence is configured) */
} redis_server;

uint16_t free_port(void);
bool redis_start(redis_server *r);          /* forks redis-server, waits until PING answers (10 s) */
void redis_stop(redis_server *r);           /* SIGTERM, then SIGKILL after 5 s; idempotent */
long long redis_pending(uint16_t port, const char *stream, const char *group); /* XPENDING count; -1: error */
long long redis_xlen(uint16_t port, const char *stream);

#endif /* REDIS_SERVER_H */
