/*
 * store.c — the gateway's synchronous Redis access.
 *
 * One blocking hiredis context on loopback. Every command first makes sure the context is usable
 * (msp_redis_ensure reconnects a context in error), and folds connection errors and error
 * replies into one NULL + errstr, which handlers turn into 503 {"error":"redis unavailable: …"}.
 *
 * A connection the server closed while it sat idle (Redis restarted, failed over, or dropped
 * idle clients) is only noticed by the next command, which reads EOF. That command is sent once
 * more on a fresh connection (msp_redis_stale), so the first request after a Redis restart is
 * answered instead of failing with 503 "Server closed the connection". A connection made for
 * this very command is never retried: an error there is the server's state, not a stale socket.
 * A command the server ran just before dying would run twice; every gateway command is a read,
 * a whole-value write, a Lua script that checks before it writes, or the integration's
 * `generation` HINCRBY (which only has to change), for which that is harmless.
 */
#include "gateway.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mspsync/log.h"
#include "mspsync/redis.h"

static redisReply *checked(gw_t *gw, redisReply *r, char *errstr, size_t errstr_size) {
    if (!r) {
        snprintf(errstr, errstr_size, "%s",
                 gw->redis && gw->redis->err ? gw->redis->errstr : "no reply");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "%s", r->str ? r->str : "error reply");
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* A usable context; *fresh = 1 when it was connected just now. */
static int ensure(gw_t *gw, int *fresh, char *errstr, size_t errstr_size) {
    *fresh = !gw->redis || gw->redis->err;
    return msp_redis_ensure(&gw->redis, gw->cfg.redis_url, errstr, errstr_size);
}

/* The command failed on a connection that was already open and the server had closed: go again
 * on a new one. @returns 1 when the caller should resend. */
static int resend(gw_t *gw, const redisReply *r, int fresh) {
    if (r || fresh || !msp_redis_stale(gw->redis))
        return 0;
    MSP_INFO("redis.reconnect", NULL, "connection closed by the server (%s); sending again",
             gw->redis->errstr);
    return 1;
}

redisReply *gw_redis(gw_t *gw, char *errstr, size_t errstr_size, const char *fmt, ...) {
    redisReply *r = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh;
        if (ensure(gw, &fresh, errstr, errstr_size) != 0)
            return NULL;
        va_list ap;
        va_start(ap, fmt);
        r = redisvCommand(gw->redis, fmt, ap);
        va_end(ap);
        if (!resend(gw, r, fresh))
            break;
    }
    return checked(gw, r, errstr, errstr_size);
}

redisReply *gw_redis_argv(gw_t *gw, char *errstr, size_t errstr_size, int argc,
                          const char **argv, const size_t *argvlen) {
    redisReply *r = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh;
        if (ensure(gw, &fresh, errstr, errstr_size) != 0)
            return NULL;
        r = redisCommandArgv(gw->redis, argc, argv, argvlen);
        if (!resend(gw, r, fresh))
            break;
    }
    return checked(gw, r, errstr, errstr_size);
}

int gw_redis_ping(gw_t *gw, char *errstr, size_t errstr_size) {
    redisReply *r = gw_redis(gw, errstr, errstr_size, "PING");
    if (!r)
        return 0;
    freeReplyObject(r);
    return 1;
}

int gw_tenant_exists(gw_t *gw, const char *tenant, char *errstr, size_t errstr_size) {
    char key[128];
    msp_key(key, sizeof(key), "_", "tenants");
    redisReply *r = gw_redis(gw, errstr, errstr_size, "SISMEMBER %s %s", key, tenant);
    if (!r)
        return -1;
    int yes = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return yes;
}

const char *gw_hget(const redisReply *r, const char *field) {
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, field) == 0 &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            return r->element[i + 1]->str;
    return NULL;
}
