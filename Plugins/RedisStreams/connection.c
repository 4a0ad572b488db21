/*
 * connection.c: opening a blocking hiredis connection as the settings say (dial timeout, AUTH, SELECT,
 * PING). Every thread that talks to Redis owns its own connection (the command thread, each consumer
 * thread); a redisContext is never shared between threads.
 */
#include "redis_streams.h"

#include <stdio.h>
#include <string.h>

static struct timeval rs_timeval(int64_t ms) {
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

/* Runs one command on c; true when the reply is not an error. On failure writes why (the command's
 * name, not its arguments: they may hold the password). */
static bool rs_simple(redisContext *c, const rs_settings *s, int argc, const char **argv, char *why, size_t size) {
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (r == NULL) {
        snprintf(why, size, RS_NAME ": Redis at %s: %s failed: %s", s->address, argv[0], c->errstr);
        return false;
    }
    bool ok = r->type != REDIS_REPLY_ERROR;
    if (!ok) snprintf(why, size, RS_NAME ": Redis at %s refused %s: %.200s", s->address, argv[0], r->str);
    freeReplyObject(r);
    return ok;
}

redisContext *rs_connect(const rs_settings *s, char *why, size_t why_size) {
    redisContext *c = redisConnectWithTimeout(s->host, s->port, rs_timeval(s->dial_timeout_ms));
    if (c == NULL || c->err) {
        snprintf(why, why_size, RS_NAME ": cannot connect to Redis at %s: %s", s->address,
                 c != NULL ? c->errstr : "out of memory");
        if (c != NULL) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, rs_timeval(RS_COMMAND_TIMEOUT_MS));
    bool ok = true;
    if (s->password != NULL) {
        const char *argv[3] = {"AUTH", s->username != NULL ? s->username : s->password, s->password};
        ok = rs_simple(c, s, s->username != NULL ? 3 : 2, argv, why, why_size);
    }
    if (ok && s->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", s->db);
        const char *argv[2] = {"SELECT", db};
        ok = rs_simple(c, s, 2, argv, why, why_size);
    }
    if (ok) {
        const char *argv[1] = {"PING"};
        ok = rs_simple(c, s, 1, argv, why, why_size);
    }
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}
