/*
 * store.c — the gateway's synchronous Redis access.
 *
 * One blocking hiredis context on loopback. Every command first makes sure the context is usable
 * (msp_redis_ensure reconnects a context in error), and folds connection errors and error
 * replies into one NULL + errstr, which handlers turn into 503 {"error":"redis unavailable: …"}.
 */
#include "gateway.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

redisReply *gw_redis(gw_t *gw, char *errstr, size_t errstr_size, const char *fmt, ...) {
    if (msp_redis_ensure(&gw->redis, gw->cfg.redis_url, errstr, errstr_size) != 0)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(gw->redis, fmt, ap);
    va_end(ap);
    return checked(gw, r, errstr, errstr_size);
}

redisReply *gw_redis_argv(gw_t *gw, char *errstr, size_t errstr_size, int argc,
                          const char **argv, const size_t *argvlen) {
    if (msp_redis_ensure(&gw->redis, gw->cfg.redis_url, errstr, errstr_size) != 0)
        return NULL;
    redisReply *r = redisCommandArgv(gw->redis, argc, argv, argvlen);
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
