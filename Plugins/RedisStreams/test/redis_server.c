/* redis_server.c: see redis_server.h. */
#define _GNU_SOURCE /* mkdtemp, prctl */
#include "redis_server.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint16_t free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof address) != 0 ||
        getsockname(fd, (struct sockaddr *)&address, &length) != 0) {
        perror("free_port");
        exit(1);
    }
    close(fd);
    return ntohs(address.sin_port);
}

static redisReply *command(uint16_t port, const char *format, const char *a, const char *b) {
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == NULL || c->err) { if (c) redisFree(c); return NULL; }
    redisReply *r = redisCommand(c, format, a, b);
    redisFree(c);
    return r;
}

bool redis_start(redis_server *r) {
    if (r->dir[0] == '\0') {
        snprintf(r->dir, sizeof r->dir, "/tmp/test-redis-streams.XXXXXX");
        if (mkdtemp(r->dir) == NULL) { perror("mkdtemp"); return false; }
        r->port = free_port();
    }
    char port[16], log[96];
    snprintf(port, sizeof port, "%u", r->port);
    snprintf(log, sizeof log, "%s/redis.log", r->dir);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return false; }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly",
               "no", "--dir", r->dir, "--loglevel", "warning", "--logfile", log, (char *)NULL);
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < 200; i++) { /* 10 s */
        redisReply *reply = command(r->port, "PING", NULL, NULL);
        bool up = reply != NULL && reply->type == REDIS_REPLY_STATUS;
        if (reply) freeReplyObject(reply);
        if (up) return true;
        if (waitpid(pid, NULL, WNOHANG) == pid) { r->pid = 0; break; }
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    fprintf(stderr, "redis-server did not start on port %u\n", r->port);
    redis_stop(r);
    return false;
}

void redis_stop(redis_server *r) {
    if (r->pid <= 0) return;
    kill(r->pid, SIGTERM);
    for (int i = 0; i < 100; i++) { /* 5 s */
        if (waitpid(r->pid, NULL, WNOHANG) == r->pid) { r->pid = 0; return; }
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

long long redis_pending(uint16_t port, const char *stream, const char *group) {
    redisReply *r = command(port, "XPENDING %s %s", stream, group);
    long long n = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                  r->element[0]->type == REDIS_REPLY_INTEGER ? r->element[0]->integer : -1;
    if (r) freeReplyObject(r);
    return n;
}

long long redis_xlen(uint16_t port, const char *stream) {
    redisReply *r = command(port, "XLEN %s", stream, NULL);
    long long n = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r) freeReplyObject(r);
    return n;
}
