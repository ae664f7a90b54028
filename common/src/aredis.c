/*
 * aredis.c — the asynchronous Redis connection of a service (aredis.h).
 *
 * hiredis keeps its own queue of callbacks; this file wraps each command in a pending_t, kept
 * in send order in a doubly linked list, so that it knows how long the oldest one has waited
 * (the stall limit), can drop the callbacks of an owner that went away (cancel), and can say
 * why a reply is missing. Redis answers a connection's commands in order, so the list's head is
 * always the next reply.
 *
 * A tick (every TICK_MS) reconnects a lost connection and enforces the stall limit: commands
 * wait and no reply came for stall_ms since the oldest was sent. hiredis frees
 * a context by itself when its connection fails or is lost; its callbacks then run with NULL
 * replies while the context is still the one in a->ac, so a command queued from such a callback
 * is refused (the context is freeing) and the caller retries later, as it does for any failure.
 */
#include "mspsync/aredis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>

#include "mspsync/backoff.h"
#include "mspsync/errstr.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"

#define TICK_MS 100
#define LATE_TICK_MS 1000 /* a tick this late means the loop was held, not Redis */
#define RECONNECT_MS 500
#define DEFAULT_STALL_MS 5000

typedef struct pending_s {
    msp_aredis_t *a;
    msp_aredis_cb *cb; /* NULL (and fcb NULL): cancelled, or no reply wanted */
    msp_aredis_fn_cb *fcb;
    void (*fn)(void);
    void *arg;
    int64_t sent_ms;
    struct pending_s *prev, *next;
} pending_t;

struct msp_aredis_s {
    struct event_base *base;
    char *url;
    redisAsyncContext *ac; /* NULL while down */
    struct event *tick;
    int stall_ms;
    int64_t last_connect_ms, answered_ms;
    int64_t last_tick_ms, forgiven_ms; /* a tick that came late: the loop itself was held */
    pending_t *head, *tail;
    size_t npending;
    char why[160]; /* why the replies in flight are missing (set when this side drops them) */
};

/* ---- the pending list ---------------------------------------------------------------------- */

static void unlink_pending(msp_aredis_t *a, pending_t *p) {
    if (p->prev)
        p->prev->next = p->next;
    else
        a->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        a->tail = p->prev;
    a->npending--;
}

static void reply_cb(redisAsyncContext *ac, void *r, void *privdata) {
    pending_t *p = privdata;
    msp_aredis_t *a = p->a;
    unlink_pending(a, p);
    const char *why = NULL;
    if (!r) {
        why = a->why[0] ? a->why : (ac->errstr[0] ? ac->errstr : "the Redis connection was lost");
    } else {
        a->answered_ms = msp_now_ms();
    }
    msp_aredis_cb *cb = p->cb;
    msp_aredis_fn_cb *fcb = p->fcb;
    void (*fn)(void) = p->fn;
    void *arg = p->arg;
    free(p);
    if (cb)
        cb(arg, r, why);
    else if (fcb)
        fcb(arg, fn, r, why);
}

/* ---- the connection ------------------------------------------------------------------------ */

static void on_connect(const redisAsyncContext *ac, int status) {
    msp_aredis_t *a = ac->data;
    if (status != REDIS_OK) {
        MSP_WARN("redis.async_connect", NULL, "%s (retrying)", ac->errstr);
        if (a->ac == ac)
            a->ac = NULL; /* hiredis frees it */
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    msp_aredis_t *a = ac->data;
    if (status != REDIS_OK)
        MSP_WARN("redis.async_lost", NULL, "%s (reconnecting)", ac->errstr);
    if (a->ac == ac)
        a->ac = NULL; /* hiredis frees it; the callbacks in flight got NULL replies */
}

static void connect_now(msp_aredis_t *a) {
    char err[256];
    a->last_connect_ms = msp_now_ms();
    a->why[0] = '\0';
    redisAsyncContext *ac = msp_redis_async_connect(a->url, a->base, err, sizeof(err));
    if (!ac) {
        MSP_WARN("redis.async_connect", NULL, "%s (retrying)", err);
        return;
    }
    ac->data = a;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    a->ac = ac;
}

/* Free the context: hiredis answers every callback in flight with NULL (why = a->why). */
static void drop(msp_aredis_t *a, const char *why) {
    redisAsyncContext *ac = a->ac;
    if (!ac)
        return;
    snprintf(a->why, sizeof(a->why), "%s", why);
    redisAsyncFree(ac); /* on_disconnect clears a->ac */
    a->ac = NULL;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    msp_aredis_t *a = arg;
    int64_t now = msp_now_ms();
    /* Stalled: commands wait, and neither the oldest of them nor any reply since came within
     * the limit. A busy loop reads a long backlog of replies a buffer at a time: replies still
     * arriving are progress, not a stall (the oldest command alone may be seconds old then). */
    if (a->last_tick_ms && now - a->last_tick_ms > LATE_TICK_MS)
        a->forgiven_ms = now; /* the loop was held (a long callback): replies could not be read */
    a->last_tick_ms = now;
    int64_t since = 0;
    if (a->head) {
        since = a->answered_ms > a->head->sent_ms ? a->answered_ms : a->head->sent_ms;
        if (a->forgiven_ms > since)
            since = a->forgiven_ms;
    }
    if (a->ac && a->head && now - since >= a->stall_ms) {
        char why[160];
        snprintf(why, sizeof(why), "no answer from Redis in %d ms", a->stall_ms);
        MSP_WARN("redis.stalled", NULL, "%s: %zu commands dropped (reconnecting)", why,
                 a->npending);
        drop(a, why);
    }
    if (!a->ac && now - a->last_connect_ms >= RECONNECT_MS)
        connect_now(a);
}

msp_aredis_t *msp_aredis_new(struct event_base *base, const char *url, int stall_ms) {
    msp_aredis_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->base = base;
    a->stall_ms = stall_ms > 0 ? stall_ms : DEFAULT_STALL_MS;
    a->url = strdup(url ? url : "");
    a->tick = event_new(base, -1, EV_PERSIST, tick_cb, a);
    if (!a->url || !a->tick) {
        free(a->url);
        if (a->tick)
            event_free(a->tick);
        free(a);
        return NULL;
    }
    struct timeval tv = {0, TICK_MS * 1000};
    event_add(a->tick, &tv);
    connect_now(a);
    return a;
}

void msp_aredis_free(msp_aredis_t *a) {
    if (!a)
        return;
    event_free(a->tick);
    drop(a, "shutting down");
    /* Commands never handed to hiredis do not exist: every pending_t was answered by the drop. */
    free(a->url);
    free(a);
}

/* ---- commands ------------------------------------------------------------------------------ */

static int usable(const msp_aredis_t *a) {
    return a && a->ac && !(a->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING));
}

static pending_t *pending_new(msp_aredis_t *a, msp_aredis_cb *cb, void *arg) {
    pending_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->a = a;
    p->cb = cb;
    p->arg = arg;
    p->sent_ms = msp_now_ms();
    p->prev = a->tail;
    if (a->tail)
        a->tail->next = p;
    else
        a->head = p;
    a->tail = p;
    a->npending++;
    return p;
}

static void pending_undo(msp_aredis_t *a, pending_t *p) {
    unlink_pending(a, p);
    free(p);
}

static int vsubmit(msp_aredis_t *a, msp_aredis_cb *cb, msp_aredis_fn_cb *fcb, void (*fn)(void),
                   void *arg, const char *fmt, va_list ap) {
    if (!usable(a))
        return -1;
    pending_t *p = pending_new(a, cb, arg);
    if (!p)
        return -1;
    p->fcb = fcb;
    p->fn = fn;
    if (redisvAsyncCommand(a->ac, reply_cb, p, fmt, ap) != REDIS_OK) {
        pending_undo(a, p);
        return -1;
    }
    return 0;
}

int msp_aredis_cmd(msp_aredis_t *a, msp_aredis_cb *cb, void *arg, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vsubmit(a, cb, NULL, NULL, arg, fmt, ap);
    va_end(ap);
    return rc;
}

int msp_aredis_cmd_fn(msp_aredis_t *a, msp_aredis_fn_cb *cb, void *arg, void (*fn)(void),
                      const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vsubmit(a, NULL, cb, fn, arg, fmt, ap);
    va_end(ap);
    return rc;
}

int msp_aredis_cmdargv(msp_aredis_t *a, msp_aredis_cb *cb, void *arg, int argc, const char **argv,
                       const size_t *argvlen) {
    if (!usable(a))
        return -1;
    pending_t *p = pending_new(a, cb, arg);
    if (!p)
        return -1;
    if (redisAsyncCommandArgv(a->ac, reply_cb, p, argc, argv, argvlen) != REDIS_OK) {
        pending_undo(a, p);
        return -1;
    }
    return 0;
}

int msp_aredis_cmdformatted(msp_aredis_t *a, msp_aredis_cb *cb, void *arg, const char *cmd,
                            size_t len) {
    if (!usable(a))
        return -1;
    pending_t *p = pending_new(a, cb, arg);
    if (!p)
        return -1;
    if (redisAsyncFormattedCommand(a->ac, reply_cb, p, cmd, len) != REDIS_OK) {
        pending_undo(a, p);
        return -1;
    }
    return 0;
}

void msp_aredis_cancel(msp_aredis_t *a, const void *arg) {
    if (!a)
        return;
    for (pending_t *p = a->head; p; p = p->next)
        if (p->arg == arg) {
            p->cb = NULL;
            p->fcb = NULL;
        }
}

int msp_aredis_up(const msp_aredis_t *a) { return usable(a); }

int64_t msp_aredis_answered_ms(const msp_aredis_t *a) { return a ? a->answered_ms : 0; }

size_t msp_aredis_pending(const msp_aredis_t *a) { return a ? a->npending : 0; }

/* ---- GCRA ---------------------------------------------------------------------------------- */

static int gcra_send(msp_gcra_async_t *t);

static void gcra_reply(void *arg, redisReply *r, const char *why) {
    msp_gcra_async_t *t = arg;
    char err[1300];
    if (!r) {
        snprintf(err, sizeof(err), "GCRA %s: %s", t->key, why);
        t->cb(t->arg, -1, 0, err);
        return;
    }
    if (t->evalsha && r->type == REDIS_REPLY_ERROR && r->str && !strncmp(r->str, "NOSCRIPT", 8)) {
        t->evalsha = 0; /* the script cache was flushed (a restart, SCRIPT FLUSH): send it whole */
        if (gcra_send(t) == 0)
            return;
        snprintf(err, sizeof(err), "GCRA %s: the Redis connection was lost", t->key);
        t->cb(t->arg, -1, 0, err);
        return;
    }
    int64_t wait_ms = 0;
    int rc = msp_gcra_reply(r, t->key, &wait_ms, err, sizeof(err));
    t->cb(t->arg, rc, wait_ms, rc < 0 ? err : NULL);
}

static int gcra_send(msp_gcra_async_t *t) {
    const char *argv[] = {t->evalsha ? "EVALSHA" : "EVAL",
                          t->evalsha ? msp_gcra_script_sha() : msp_gcra_script_body(),
                          "1",
                          t->key,
                          t->rate,
                          t->burst,
                          t->cost};
    return msp_aredis_cmdargv(t->a, gcra_reply, t, 7, argv, NULL);
}

int msp_gcra_take_async(msp_aredis_t *a, msp_gcra_async_t *t, const char *key, double rate_per_sec,
                        int burst, int cost, msp_gcra_cb *cb, void *arg, char *err,
                        size_t err_size) {
    if (!key || strlen(key) >= sizeof(t->key)) {
        msp_set_err(err, err_size, "GCRA: no key, or a key longer than %zu bytes",
                    sizeof(t->key) - 1);
        return -1;
    }
    if (msp_gcra_format(rate_per_sec, burst, cost, t->rate, t->burst, t->cost) != 0) {
        msp_set_err(err, err_size, "GCRA: invalid bucket (rate %g/s, burst %d, cost %d)",
                    rate_per_sec, burst, cost);
        return -1;
    }
    t->a = a;
    t->cb = cb;
    t->arg = arg;
    t->evalsha = 1;
    snprintf(t->key, sizeof(t->key), "%s", key);
    if (gcra_send(t) != 0) {
        msp_set_err(err, err_size, "GCRA %s: Redis is not connected", key);
        return -2;
    }
    return 0;
}

void msp_gcra_cancel(msp_gcra_async_t *t) {
    if (!t)
        return;
    if (t->a)
        msp_aredis_cancel(t->a, t);
    t->cb = NULL;
}
