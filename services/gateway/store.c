/*
 * store.c — the gateway's synchronous Redis access.
 *
 * Inside an admin request or loop task (admin.c: each runs on a coroutine) a command goes out
 * on the loop's async connection and the coroutine waits for the reply while the loop goes on:
 * the same call, the same reply and errors, nothing held. Elsewhere (at shutdown, or with no
 * coroutine to be had): one blocking hiredis context on loopback, counted in
 * mspsync_redis_blocking_commands_total. Every command first makes sure the context is usable
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
 *
 * Every successful write names its keys to the configuration journal (journal.c), which
 * journals those that are configuration (statekeys.h) to the `config` topic, and to the
 * webhooks' tenant cache (tenant_cache.c), which drops what they changed.
 */
#include "gateway.h"

#include <event2/event.h>

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mspsync/aredis.h"
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

/* Argument i of a formatted command ("*N\r\n$len\r\n<arg>\r\n..."): pointer and length, or
 * NULL when there is no such argument. */
static const char *resp_arg(const char *cmd, size_t len, int i, size_t *alen) {
    const char *p = cmd, *end = cmd + len;
    if (p >= end || *p != '*')
        return NULL;
    p = memchr(p, '\n', (size_t)(end - p));
    for (int k = 0; p && p + 1 < end; k++) {
        p++;
        if (*p != '$')
            return NULL;
        long n = strtol(p + 1, NULL, 10);
        p = memchr(p, '\n', (size_t)(end - p));
        if (!p || n < 0 || p + 1 + n > end)
            return NULL;
        if (k == i) {
            *alen = (size_t)n;
            return p + 1;
        }
        p = p + 1 + n + 1; /* the arg, then "\r"; p is at "\n" */
        if (p >= end)
            return NULL;
    }
    return NULL;
}

/* After a successful write, tell the journal which keys it touched (journal.c). */
static void journal_writes(gw_t *gw, const char *cmd, size_t len) {
    static const char *const WRITES[] = {"HSET",  "HSETNX", "HDEL", "HINCRBY", "HMSET",
                                         "SET",   "DEL",    "SADD", "SREM",    "UNLINK",
                                         "SETNX", "INCR",   NULL};
    size_t n = 0, kl = 0;
    const char *name = resp_arg(cmd, len, 0, &n);
    if (!name)
        return;
    int first = 1, last = 1; /* the key arguments */
    if (n == 4 && strncasecmp(name, "EVAL", 4) == 0) {
        const char *nk = resp_arg(cmd, len, 2, &kl);
        last = 2 + (nk ? atoi(nk) : 0);
        first = 3;
    } else {
        int w = 0;
        for (int i = 0; WRITES[i] && !w; i++)
            w = strlen(WRITES[i]) == n && strncasecmp(name, WRITES[i], n) == 0;
        if (!w)
            return;
        if ((n == 3 && strncasecmp(name, "DEL", 3) == 0) ||
            (n == 6 && strncasecmp(name, "UNLINK", 6) == 0))
            last = INT_MAX; /* DEL k1 k2 ...: every key (an offboarding unlinks many) */
    }
    for (int i = first; i <= last; i++) {
        const char *k = resp_arg(cmd, len, i, &kl);
        if (!k)
            break;
        char key[400];
        if (kl >= sizeof(key))
            continue;
        memcpy(key, k, kl);
        key[kl] = '\0';
        gw_journal_note(gw, key);
        gw_tc_note(gw, key); /* the webhooks' tenant cache drops what this changed */
    }
}

/* Send a formatted command (once more on a stale connection), journal it when it wrote. */
static redisReply *send_formatted(gw_t *gw, const char *cmd, long long len, char *errstr,
                                  size_t errstr_size) {
    redisReply *r = NULL;
    if (len < 0) {
        snprintf(errstr, errstr_size, "cannot format the command");
        return NULL;
    }
    if (gw_admin_active(gw)) { /* an admin request: its coroutine waits, the loop goes on */
        r = gw_admin_redis(gw, cmd, (size_t)len, errstr, errstr_size);
        if (r)
            journal_writes(gw, cmd, (size_t)len);
        return r;
    }
    { /* on the loop's own stack: this command holds the loop until Redis answers */
        size_t nl = 0;
        const char *name = resp_arg(cmd, (size_t)len, 0, &nl);
        msp_metric_add(gw->metrics, "mspsync_redis_blocking_commands_total", NULL, 1);
        MSP_DEBUG("redis.blocking", NULL, "%.*s on the blocking connection", (int)nl,
                  name ? name : "?");
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh;
        void *reply = NULL;
        if (ensure(gw, &fresh, errstr, errstr_size) != 0)
            return NULL;
        if (redisAppendFormattedCommand(gw->redis, cmd, (size_t)len) == REDIS_OK &&
            redisGetReply(gw->redis, &reply) == REDIS_OK)
            r = reply;
        if (!resend(gw, r, fresh))
            break;
    }
    r = checked(gw, r, errstr, errstr_size);
    if (r)
        journal_writes(gw, cmd, (size_t)len);
    return r;
}

redisReply *gw_redis(gw_t *gw, char *errstr, size_t errstr_size, const char *fmt, ...) {
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    redisReply *r = send_formatted(gw, cmd, len, errstr, errstr_size);
    redisFreeCommand(cmd);
    return r;
}

redisReply *gw_redis_argv(gw_t *gw, char *errstr, size_t errstr_size, int argc, const char **argv,
                          const size_t *argvlen) {
    char *cmd = NULL;
    long long len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    redisReply *r = send_formatted(gw, cmd, len, errstr, errstr_size);
    redisFreeCommand(cmd);
    return r;
}

/* ---- the same on the async connection ----------------------------------------------------- */

typedef struct {
    gw_t *gw;
    gw_redis_cb *cb;
    void *arg;
    char *cmd; /* formatted: journal_writes reads its keys once it succeeded */
    long long len;
    struct event *ev; /* a failure to send, answered on the loop */
} async_cmd_t;

static void async_free(async_cmd_t *c) {
    if (c->ev)
        event_free(c->ev);
    redisFreeCommand(c->cmd);
    free(c);
}

static void async_reply(void *arg, redisReply *r, const char *why) {
    async_cmd_t *c = arg;
    if (r && r->type == REDIS_REPLY_ERROR) {
        c->cb(c->gw, c->arg, NULL, r->str ? r->str : "error reply");
    } else if (!r) {
        c->cb(c->gw, c->arg, NULL, why);
    } else {
        journal_writes(c->gw, c->cmd, (size_t)c->len);
        c->cb(c->gw, c->arg, r, NULL);
    }
    async_free(c);
}

static void async_unsent(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    async_cmd_t *c = arg;
    c->cb(c->gw, c->arg, NULL, "not connected to Redis");
    async_free(c);
}

void gw_redis_async_argv(gw_t *gw, gw_redis_cb *cb, void *arg, int argc, const char **argv,
                         const size_t *argvlen) {
    async_cmd_t *c = calloc(1, sizeof(*c));
    if (c) {
        c->gw = gw;
        c->cb = cb;
        c->arg = arg;
        c->len = redisFormatCommandArgv(&c->cmd, argc, argv, argvlen);
    }
    if (c && c->len >= 0 &&
        msp_aredis_cmdformatted(gw->aredis, async_reply, c, c->cmd, (size_t)c->len) == 0)
        return;
    /* not sent: the answer still comes on the loop, as the API says */
    struct timeval now = {0, 0};
    if (c && (c->ev = evtimer_new(gw->base, async_unsent, c)) && evtimer_add(c->ev, &now) == 0)
        return;
    if (c)
        async_free(c);
    MSP_ERROR("redis.async_oom", NULL, "out of memory sending a Redis command");
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
