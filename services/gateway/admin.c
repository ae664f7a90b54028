/*
 * admin.c — every admin request runs on a coroutine of its own (coro.h), so that its handler's
 * synchronous Redis calls wait on the loop's async connection instead of holding the loop.
 *
 * The handlers (~120 gw_redis calls: auth, tenant checks, audit snapshots, settings) are written
 * as a sequence of blocking steps. Run on the loop's own stack, each step held the whole loop for
 * as long as Redis took: with Redis stalled, one admin request stopped the webhook intake and
 * /healthz for the blocking context's 5 s timeout, per command. Now the router's callback
 * (main.c) starts each request that is not a webhook on a coroutine; store.c sends a command made
 * inside one on the async connection (aredis.h) and the coroutine yields until its reply — or the
 * connection's stall limit, which answers NULL as the blocking timeout did — comes back on the
 * loop. The handler's code is unchanged; the loop serves everything else meanwhile.
 *
 *   - ADMIN_COROS requests run at once; more wait in arrival order (ADMIN_QUEUE_MAX, then 503),
 *     and a coroutine that finishes takes the next waiting request itself.
 *   - The loop's other work that calls gw_redis runs the same way (gw_admin_call): the
 *     configuration journal's pass (journal.c), the completions of held requests — delivery
 *     reports (jobs.c), an integration's proof (integration_put.c), a dead-letter replay
 *     (api_history.c) — whose answers take the audit snapshot and store what was proven.
 *   - A command issued while the async connection is down (lost, reconnecting every 500 ms)
 *     waits up to UP_WAIT_MS for it, polling on a timer, then fails as "not connected" (503).
 *   - Requests interleave only where a handler waits on Redis, as they already did where one
 *     waited on a vendor or a Kafka acknowledgement; every handler already had to be correct
 *     against another gateway replica doing the same at the same moment.
 *   - Shutdown (gw_admin_stop, after the async connection was freed and so answered every
 *     command in flight): sleepers wake and fail, waiting requests are answered 503.
 *
 * What still blocks the loop: code that takes the blocking context itself rather than going
 * through gw_redis — the ConnectWise RMM token store during an integration's vendor proof —
 * and, at shutdown, whatever runs after the async connection is gone.
 */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/http.h>

#include "mspsync/aredis.h"
#include "mspsync/backoff.h"
#include "mspsync/coro.h"
#include "mspsync/log.h"

#define ADMIN_COROS 64
#define ADMIN_QUEUE_MAX 4096
#define UP_WAIT_MS 2000
#define UP_POLL_MS 50
/* jansson parses up to 2048 levels of nesting recursively (a request body): room for that, and
 * for the sanitizer's larger frames; only the pages touched are committed */
#if defined(__SANITIZE_ADDRESS__)
#define ADMIN_STACK (4 * 1024 * 1024)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ADMIN_STACK (4 * 1024 * 1024)
#endif
#endif
#ifndef ADMIN_STACK
#define ADMIN_STACK (1024 * 1024)
#endif

typedef struct queued_s {
    gw_task_fn *fn;
    void *arg;
    int request; /* arg is a request: answered 503 at shutdown instead of run */
    struct queued_s *next;
} queued_t;

typedef struct sleeper_s {
    msp_coro_t *co;
    struct event *ev;
    int woken;
    struct sleeper_s *prev, *next;
} sleeper_t;

struct gw_admin_s {
    gw_t *gw;
    msp_coro_pool_t *pool;
    queued_t *head, *tail;
    size_t queued;
    sleeper_t *sleepers;
};

typedef struct {
    gw_admin_t *ad;
    gw_task_fn *fn;
    void *arg;
} job_t;

int gw_admin_start(gw_t *gw) {
    gw_admin_t *ad = calloc(1, sizeof(*ad));
    if (!ad || !(ad->pool = msp_coro_pool_new(ADMIN_STACK, ADMIN_COROS))) {
        free(ad);
        return -1;
    }
    ad->gw = gw;
    gw->admin = ad;
    return 0;
}

/* A coroutine: the task it was started with, then every task that waits meanwhile. */
static void run(void *arg) {
    job_t j = *(job_t *)arg; /* the starter's frame goes away at the first yield */
    gw_admin_t *ad = j.ad;
    j.fn(ad->gw, j.arg);
    while (ad->head && !ad->gw->stopping) {
        queued_t *q = ad->head;
        ad->head = q->next;
        if (!ad->head)
            ad->tail = NULL;
        ad->queued--;
        gw_task_fn *fn = q->fn;
        void *qarg = q->arg;
        free(q);
        fn(ad->gw, qarg);
    }
}

/* @returns 0 started or queued, -1 neither (the caller runs or refuses it). */
static int submit(gw_t *gw, gw_task_fn *fn, void *arg, int request) {
    gw_admin_t *ad = gw->admin;
    if (!ad || gw->stopping || msp_coro_self())
        return -1;
    job_t j = {ad, fn, arg};
    if (!ad->head && msp_coro_start(ad->pool, run, &j) == 0)
        return 0;
    if (msp_coro_busy(ad->pool) == 0) /* no stack could be mapped: nothing would run it later */
        return -1;
    queued_t *q = ad->queued < ADMIN_QUEUE_MAX || !request ? calloc(1, sizeof(*q)) : NULL;
    if (!q)
        return -1;
    q->fn = fn;
    q->arg = arg;
    q->request = request;
    if (ad->tail)
        ad->tail->next = q;
    else
        ad->head = q;
    ad->tail = q;
    ad->queued++;
    return 0;
}

void gw_admin_call(gw_t *gw, gw_task_fn *fn, void *arg) {
    if (submit(gw, fn, arg, 0) != 0)
        fn(gw, arg); /* on a coroutine already, stopping, or out of memory: here and now */
}

void gw_admin_serve(gw_t *gw, struct evhttp_request *req, gw_task_fn *fn) {
    gw_admin_t *ad = gw->admin;
    if (submit(gw, fn, req, 1) == 0)
        return;
    if (ad && !gw->stopping && msp_coro_busy(ad->pool) > 0) { /* the queue is full */
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        gw_reply_error(gw, req, "busy", 503, "too many admin requests waiting; retry");
        return;
    }
    fn(gw, req);
}

/* ---- Redis from inside a request --------------------------------------------------------- */

/* A deep copy that freeReplyObject frees (hiredis's default allocator is malloc). */
static redisReply *reply_copy(const redisReply *r) {
    redisReply *c = malloc(sizeof(*c));
    if (!c)
        return NULL;
    memcpy(c, r, sizeof(*c));
    c->str = NULL;
    c->element = NULL;
    c->elements = 0;
    if (r->str) {
        if (!(c->str = malloc(r->len + 1))) {
            freeReplyObject(c);
            return NULL;
        }
        memcpy(c->str, r->str, r->len);
        c->str[r->len] = '\0';
    }
    if (r->element) {
        if (!(c->element = calloc(r->elements ? r->elements : 1, sizeof(*c->element)))) {
            freeReplyObject(c);
            return NULL;
        }
        for (size_t i = 0; i < r->elements; i++) {
            c->elements = i + 1; /* what freeReplyObject walks if the next copy fails */
            if (r->element[i] && !(c->element[i] = reply_copy(r->element[i]))) {
                freeReplyObject(c);
                return NULL;
            }
        }
        c->elements = r->elements;
    }
    return c;
}

typedef struct {
    msp_coro_t *co;
    redisReply *reply; /* a copy, or NULL with why */
    char why[200];
    int done;
} wait_t;

static void on_reply(void *arg, redisReply *r, const char *why) {
    wait_t *w = arg;
    if (r && !(w->reply = reply_copy(r)))
        snprintf(w->why, sizeof(w->why), "out of memory");
    else if (!r)
        snprintf(w->why, sizeof(w->why), "%s", why ? why : "no reply");
    w->done = 1;
    msp_coro_resume(w->co);
}

static void wake(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    sleeper_t *s = arg;
    s->woken = 1;
    msp_coro_resume(s->co);
}

/* Yield for ms (or until shutdown). @returns 0, -1 no timer (out of memory). */
static int co_sleep(gw_admin_t *ad, int ms) {
    sleeper_t s = {.co = msp_coro_self()};
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (!(s.ev = evtimer_new(ad->gw->base, wake, &s)) || evtimer_add(s.ev, &tv) != 0) {
        if (s.ev)
            event_free(s.ev);
        return -1;
    }
    s.next = ad->sleepers;
    if (ad->sleepers)
        ad->sleepers->prev = &s;
    ad->sleepers = &s;
    while (!s.woken)
        msp_coro_yield();
    if (s.prev)
        s.prev->next = s.next;
    else
        ad->sleepers = s.next;
    if (s.next)
        s.next->prev = s.prev;
    event_free(s.ev);
    return 0;
}

redisReply *gw_admin_redis(gw_t *gw, const char *cmd, size_t len, char *errstr,
                           size_t errstr_size) {
    int64_t deadline = msp_now_ms() + UP_WAIT_MS;
    for (;;) {
        if (gw->stopping || !gw->aredis) {
            snprintf(errstr, errstr_size, "the gateway is shutting down");
            return NULL;
        }
        wait_t w = {.co = msp_coro_self()};
        if (msp_aredis_cmdformatted(gw->aredis, on_reply, &w, cmd, len) == 0) {
            while (!w.done)
                msp_coro_yield();
            if (!w.reply) {
                snprintf(errstr, errstr_size, "%s", w.why);
                return NULL;
            }
            if (w.reply->type == REDIS_REPLY_ERROR) {
                snprintf(errstr, errstr_size, "%s", w.reply->str ? w.reply->str : "error reply");
                freeReplyObject(w.reply);
                return NULL;
            }
            return w.reply;
        }
        if (msp_now_ms() >= deadline || co_sleep(gw->admin, UP_POLL_MS) != 0) {
            snprintf(errstr, errstr_size, "not connected to Redis");
            return NULL;
        }
    }
}

int gw_admin_active(const gw_t *gw) { return gw->admin && msp_coro_self() != NULL; }

void gw_admin_stop(gw_t *gw) {
    gw_admin_t *ad = gw->admin;
    if (!ad)
        return;
    while (ad->sleepers) { /* each unlinks itself, then fails: gw->stopping */
        sleeper_t *s = ad->sleepers;
        event_del(s->ev);
        s->woken = 1;
        msp_coro_resume(s->co);
        if (ad->sleepers == s) { /* did not go on (cannot happen): do not spin */
            MSP_ERROR("admin.stop", NULL, "a sleeping request did not wake");
            ad->sleepers = s->next;
        }
    }
    while (ad->head) { /* stopping: a task runs here (its Redis calls block), a request fails */
        queued_t *q = ad->head;
        ad->head = q->next;
        if (q->request)
            gw_reply_error(gw, q->arg, "stopping", 503, "the gateway is shutting down");
        else
            q->fn(gw, q->arg);
        free(q);
    }
    ad->tail = NULL;
    ad->queued = 0;
    msp_coro_pool_free(ad->pool); /* logs any request still suspended */
    free(ad);
    gw->admin = NULL;
}
