/* etcd_server.h: a real etcd (Debian etcd-server, /usr/bin/etcd) for the test, run as a child process on
 * loopback ports in a temporary directory, and the writes the test makes through its JSON gateway. */
#ifndef ETCD_SERVER_H
#define ETCD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct etcd_server {
    pid_t pid;              /* 0: not running */
    uint16_t client_port;   /* chosen by the first etcd_start, kept across restarts */
    uint16_t peer_port;
    char dir[64];           /* the temporary directory: data/ and etcd.log */
    char url[64];           /* http://127.0.0.1:client_port */
} etcd_server;

/* A loopback TCP port nobody listens on now (bound to port 0, then released). */
uint16_t free_port(void);

/* Starts etcd: the first time in a new temporary directory on free ports, later on the same ones with
 * the same data (a restart). Waits until the gateway answers (at most 30 s); false (with etcd.log shown)
 * otherwise. The child dies with the test (PR_SET_PDEATHSIG). */
bool etcd_start(etcd_server *e);
/* SIGTERM, then SIGKILL after 10 s; waits for the child. Safe when not running. */
void etcd_stop(etcd_server *e);
/* etcd_stop, then removes the temporary directory. */
void etcd_destroy(etcd_server *e);

/* Writes through the gateway; the store revision after the write goes to *revision (may be NULL). */
bool etcd_put(const etcd_server *e, const char *key, const char *value, size_t value_length, int64_t *revision);
bool etcd_delete(const etcd_server *e, const char *key, int64_t *revision);
/* Compacts the history up to `revision` (physical: the call waits until it is done). */
bool etcd_compact(const etcd_server *e, int64_t revision);

#endif /* ETCD_SERVER_H */
