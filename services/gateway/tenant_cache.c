/*
 * tenant_cache.c — what the signed webhooks need of a tenant, kept in memory, and the gateway's
 * asynchronous Redis connection (msp_aredis_t: hiredis async on the libevent loop).
 *
 * The webhook path (webhook.c, usage.c) makes no blocking call: per tenant the cache holds
 * whether the tenant exists and its webhook secrets (current, and previous with its end of
 * validity), unsealed once when loaded and wiped when replaced or freed. A request for a tenant
 * in the cache is checked at once; one for a tenant not in it (or invalidated) is held while
 * one pipelined load (GET epoch marker, SISMEMBER tenants, HMGET webhook:mtp) runs on the async
 * connection, and every request queued meanwhile is answered by that one load. A load that gets
 * no answer within LOAD_TIMEOUT_MS answers its requests 503 "redis unavailable" (the sender
 * retries); the loop never waits. An unknown tenant is never kept (ids are the sender's choice).
 *
 * Invalidation:
 *   - a change through this gateway: every write of store.c names its keys (gw_tc_note); a write
 *     of a tenant's webhook:mtp hash or of the tenants set drops the entries concerned at once,
 *     so the next request waits for a fresh load.
 *   - a change through another replica (or a restore): every REFRESH_MS the cache reloads each
 *     entry in use in the background, serving the previous value until the answer comes. A
 *     rotated secret or a deleted tenant is refused at most REFRESH_MS plus one Redis round trip
 *     after the change. A generation counter drops a load that raced with a local change.
 *     While Redis does not answer, no change can be made either; the last value read serves.
 *   - entries unused for IDLE_MS are freed instead of refreshed, so the background reads stay
 *     proportional to the tenants actually sending.
 *
 * The connection is the process's msp_aredis_t (aredis.h; made in gw_tc_start, used by journal.c
 * too): it reconnects by itself, and a command unanswered for LOAD_TIMEOUT_MS fails, so a load
 * never stays in flight for ever. When it is down a miss answers 503 at once. Writes the webhook makes (the ticketing:orgs suggestion) go
 * through it too (gw_tc_org_seen): sent at once when none is in flight and none went out in the
 * last ORGS_FLUSH_MS, otherwise coalesced per org and sent by the tick once the previous ones
 * have been answered — a busy org costs Redis at most one write per ORGS_FLUSH_MS, and a stalled
 * Redis holds at most one pending value per org, never the loop.
 */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/http.h>

#include "mspsync/aredis.h"
#include "mspsync/backoff.h"
#include "mspsync/crypto.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"

#define TICK_MS 100
#define REFRESH_MS 500       /* a change through another replica is seen this fast */
#define IDLE_MS 60000        /* an entry unused this long is freed */
#define LOAD_TIMEOUT_MS 5000 /* a held request waits this long for Redis (as store.c's 5 s) */
#define BUCKETS 1024
#define MAX_ORGS_PENDING 100000 /* coalesced suggestions held while Redis is slow */
#define ORGS_FLUSH_MS 100       /* at most one round of suggestion writes this often */

typedef struct waiter_s {
    gw_held_t *held;
    const char *route;
    gw_tc_cb_t *cb;
    const gw_webhook_then_t *then;
    int64_t since_ms;
    struct waiter_s *next;
} waiter_t;

typedef struct entry_s {
    char tenant[64];
    int ready; /* the fields below hold a loaded value */
    int exists;
    int rc; /* 0, or -2: a stored secret does not open */
    char *current, *previous;
    msp_hmac_key_t *current_key, *previous_key; /* prepared from them once (NULL: no memory) */
    long long previous_until_ms;
    int64_t used_ms;
    unsigned gen; /* bumped by a local change: a load started before is stale */
    int loading;  /* a load is in flight (the entry is not freed meanwhile) */
    waiter_t *waiters;
    struct entry_s *next; /* hash chain */
} entry_t;

/* One load in flight: the replies of its three commands, collected as they arrive. */
typedef struct {
    gw_tcache_t *tc;
    entry_t *e;
    unsigned gen;
    int queued, replies, failed;
    int epoch_present, exists;
    char *field[3]; /* HMGET: current_sealed, previous_sealed, previous_valid_until */
} load_t;

struct gw_tcache_s {
    gw_t *gw;
    entry_t *buckets[BUCKETS];
    struct event *tick_ev;
    int64_t last_refresh_ms;
    json_t *orgs; /* "tenant\x1forg" -> {"n": name|null, "t": ms} not yet sent */
    int orgs_inflight;
    int64_t orgs_flushed_ms;
};

/* ---- entries ------------------------------------------------------------------------------- */

static unsigned bucket_of(const char *tenant) {
    unsigned h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)tenant; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % BUCKETS;
}

static entry_t *find(gw_tcache_t *tc, const char *tenant) {
    for (entry_t *e = tc->buckets[bucket_of(tenant)]; e; e = e->next)
        if (strcmp(e->tenant, tenant) == 0)
            return e;
    return NULL;
}

static void wipe(char **s) {
    if (*s) {
        msp_secure_zero(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

static void forget_value(entry_t *e) {
    e->ready = 0;
    wipe(&e->current);
    wipe(&e->previous);
    msp_hmac_key_free(e->current_key);
    msp_hmac_key_free(e->previous_key);
    e->current_key = e->previous_key = NULL;
}

/* What a request sees of a loaded entry: the previous secret only while it is valid. */
static gw_tc_view_t view_of(const entry_t *e) {
    int previous = e->previous_until_ms > msp_wall_ms();
    return (gw_tc_view_t){.tenant = e->tenant,
                          .exists = e->exists,
                          .rc = e->rc,
                          .current = e->current,
                          .current_key = e->current_key,
                          .previous = previous ? e->previous : NULL,
                          .previous_key = previous ? e->previous_key : NULL};
}

static void entry_free(gw_tcache_t *tc, entry_t *e) {
    entry_t **pp = &tc->buckets[bucket_of(e->tenant)];
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp)
        *pp = e->next;
    forget_value(e);
    free(e);
}

/* Hand the entry's value to one held request (which the cache no longer holds). */
static void answer(gw_tcache_t *tc, entry_t *e, waiter_t *w, int rc, const char *err) {
    struct evhttp_request *req = gw_held_release(w->held);
    if (req) {
        gw_tc_view_t v = {.tenant = e->tenant, .rc = rc, .err = err};
        if (rc == 0)
            v = view_of(e);
        w->cb(tc->gw, req, &v, w->route, w->then);
    }
    free(w);
}

/* Answer every waiter of e with rc (0 = its value) and free e when nothing keeps it. */
static void answer_all(gw_tcache_t *tc, entry_t *e, int rc, const char *err) {
    waiter_t *w = e->waiters;
    e->waiters = NULL;
    while (w) {
        waiter_t *next = w->next;
        answer(tc, e, w, rc, err);
        w = next;
    }
    if (!e->loading && !e->waiters && (!e->ready || !e->exists))
        entry_free(tc, e);
}

/* ---- loading ------------------------------------------------------------------------------- */

static void start_load(gw_tcache_t *tc, entry_t *e);

static void load_done(load_t *l) {
    gw_tcache_t *tc = l->tc;
    entry_t *e = l->e;
    e->loading = 0;
    if (l->failed) {
        /* a refresh that failed keeps the value; held requests hear 503 */
        answer_all(tc, e, -1, "no answer from Redis (connection lost)");
    } else if (l->gen != e->gen) {
        if (e->waiters || e->ready)
            start_load(tc, e); /* a local change raced with this load: read again */
        else
            entry_free(tc, e);
    } else if (!l->epoch_present) {
        /* Redis lost its state: the journal restores it; the sender retries the 503 */
        gw_journal_epoch(tc->gw, NULL);
        forget_value(e);
        answer_all(tc, e, -3, "restoring");
    } else {
        char err[256];
        gw_webhook_secrets_t s = {NULL, NULL};
        long long until = 0;
        int rc = gw_webhook_secrets_open(tc->gw, e->tenant, l->field[0], l->field[1], l->field[2],
                                         &s, &until, err, sizeof(err));
        int was_unreadable = e->ready && e->rc == -2;
        forget_value(e);
        e->ready = 1;
        e->exists = l->exists;
        e->rc = rc;
        e->current = s.current;
        e->previous = s.previous;
        e->previous_until_ms = until;
        e->current_key = s.current ? msp_hmac_key_new(s.current, strlen(s.current)) : NULL;
        e->previous_key = s.previous ? msp_hmac_key_new(s.previous, strlen(s.previous)) : NULL;
        if (rc != 0 && !was_unreadable) /* once, not at every refresh */
            MSP_ERROR("webhook.secret_unreadable", e->tenant, "%s", err);
        answer_all(tc, e, 0, NULL);
    }
    for (int k = 0; k < 3; k++)
        free(l->field[k]);
    free(l);
}

/* One reply of a load (NULL: the connection was lost or freed). */
static void load_reply(void *arg, redisReply *r, const char *why) {
    (void)why;
    load_t *l = arg;
    int i = l->replies++;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        l->failed = 1;
    } else if (i == 0) {
        l->epoch_present = r->type == REDIS_REPLY_STRING;
    } else if (i == 1) {
        l->exists = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        for (int k = 0; k < 3; k++) /* copies: hiredis frees the reply after this callback */
            if (r->element[k]->type == REDIS_REPLY_STRING &&
                !(l->field[k] = strdup(r->element[k]->str)))
                l->failed = 1;
    } else {
        l->failed = 1;
    }
    if (l->replies == l->queued)
        load_done(l);
}

static void start_load(gw_tcache_t *tc, entry_t *e) {
    gw_t *gw = tc->gw;
    if (!msp_aredis_up(gw->aredis)) {
        answer_all(tc, e, -1, "not connected to Redis");
        return;
    }
    load_t *l = calloc(1, sizeof(*l));
    if (!l) {
        answer_all(tc, e, -1, "out of memory");
        return;
    }
    l->tc = tc;
    l->e = e;
    l->gen = e->gen;
    e->loading = 1;
    char epoch[64], tenants[64], secrets[128];
    msp_key(epoch, sizeof(epoch), "_", MSP_STATE_EPOCH_SUFFIX);
    msp_key(tenants, sizeof(tenants), "_", "tenants");
    msp_key(secrets, sizeof(secrets), e->tenant, "webhook:mtp");
    /* three commands, one callback each, answered in order (replies counts them). A command
     * the connection refuses to queue (it is closing) gets no callback. */
    int ok =
        msp_aredis_cmd(gw->aredis, load_reply, l, "GET %s", epoch) == 0 && ++l->queued &&
        msp_aredis_cmd(gw->aredis, load_reply, l, "SISMEMBER %s %s", tenants, e->tenant) == 0 &&
        ++l->queued &&
        msp_aredis_cmd(gw->aredis, load_reply, l,
                       "HMGET %s current_sealed previous_sealed previous_valid_until_ms",
                       secrets) == 0 &&
        ++l->queued;
    if (!ok) {
        l->failed = 1;
        if (l->replies == l->queued) /* nothing outstanding: no callback will finish it */
            load_done(l);
    }
}

/* ---- the webhook's lookup ------------------------------------------------------------------ */

void gw_tc_lookup(gw_t *gw, struct evhttp_request *req, const char *tenant, const char *route,
                  gw_tc_cb_t *cb, const gw_webhook_then_t *then) {
    gw_tcache_t *tc = gw->tcache;
    entry_t *e = tc ? find(tc, tenant) : NULL;
    if (e && e->ready) {
        e->used_ms = msp_now_ms();
        gw_tc_view_t v = view_of(e);
        cb(gw, req, &v, route, then);
        return;
    }
    waiter_t *w = tc ? calloc(1, sizeof(*w)) : NULL;
    gw_held_t *held = w ? gw_hold(gw, req, route) : NULL;
    if (!e && held && strlen(tenant) < sizeof(e->tenant) && (e = calloc(1, sizeof(*e)))) {
        snprintf(e->tenant, sizeof(e->tenant), "%s", tenant);
        unsigned b = bucket_of(tenant);
        e->next = tc->buckets[b];
        tc->buckets[b] = e;
    }
    if (!e) {
        if (held)
            gw_held_release(held);
        free(w);
        gw_tc_view_t v = {.tenant = tenant, .rc = -1, .err = "out of memory"};
        cb(gw, req, &v, route, then);
        return;
    }
    *w = (waiter_t){.held = held,
                    .route = route,
                    .cb = cb,
                    .then = then,
                    .since_ms = msp_now_ms(),
                    .next = e->waiters};
    e->waiters = w;
    e->used_ms = w->since_ms;
    if (!e->loading)
        start_load(tc, e);
}

/* ---- invalidation -------------------------------------------------------------------------- */

static void invalidate(gw_tcache_t *tc, entry_t *e) {
    e->gen++;
    if (e->loading || e->waiters)
        forget_value(e); /* the load in flight is stale: load_done reads again */
    else
        entry_free(tc, e);
}

void gw_tc_note(gw_t *gw, const char *key) {
    gw_tcache_t *tc = gw->tcache;
    if (!tc || strncmp(key, "mspsync:{", 9) != 0)
        return;
    const char *tenant = key + 9, *close = strchr(tenant, '}');
    if (!close || close[1] != ':')
        return;
    const char *rest = close + 2;
    size_t tl = (size_t)(close - tenant);
    if (tl == 1 && tenant[0] == '_' && strcmp(rest, "tenants") == 0) {
        gw_tc_invalidate_all(gw); /* a tenant added or removed: rare */
    } else if (strcmp(rest, "webhook:mtp") == 0 && tl < 64) {
        char t[64];
        memcpy(t, tenant, tl);
        t[tl] = '\0';
        entry_t *e = find(tc, t);
        if (e)
            invalidate(tc, e);
    }
}

void gw_tc_invalidate_all(gw_t *gw) {
    gw_tcache_t *tc = gw->tcache;
    for (int b = 0; tc && b < BUCKETS; b++) {
        entry_t *e = tc->buckets[b];
        while (e) {
            entry_t *next = e->next;
            invalidate(tc, e);
            e = next;
        }
    }
}

/* ---- mapping suggestions ------------------------------------------------------------------- */

/*
 * KEYS[1] the tenant's ticketing:orgs hash; ARGV: org id, its name, "1" when the name was sent,
 * the time seen. Without a name the last known one stays.
 */
static const char ORG_SEEN_LUA[] =
    "local name = cjson.null\n"
    "if ARGV[3] == '1' then name = ARGV[2] else\n"
    "  local old = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "  if old then\n"
    "    local ok, o = pcall(cjson.decode, old)\n"
    "    if ok and type(o) == 'table' and type(o.org_name) == 'string' then name = o.org_name end\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({org_name = name, last_seen_at = ARGV[4]}))\n"
    "return 1\n";

static void org_sent(void *arg, redisReply *r, const char *why) {
    gw_tcache_t *tc = arg;
    tc->orgs_inflight--;
    if (!r || r->type == REDIS_REPLY_ERROR)
        MSP_WARN("webhook.org_seen_failed", NULL, "could not record an org as seen: %s",
                 r ? r->str : why);
}

/* Send every coalesced suggestion (one EVAL each). */
static void orgs_flush(gw_tcache_t *tc) {
    msp_aredis_t *ac = tc->gw->aredis;
    if (!msp_aredis_up(ac) || tc->orgs_inflight > 0 || json_object_size(tc->orgs) == 0)
        return;
    tc->orgs_flushed_ms = msp_now_ms();
    const char *k;
    json_t *v;
    json_object_foreach(tc->orgs, k, v) {
        const char *sep = strchr(k, '\x1f');
        if (!sep || sep - k >= 64)
            continue;
        char key[128], tenant[64], when[32];
        memcpy(tenant, k, (size_t)(sep - k));
        tenant[sep - k] = '\0';
        msp_key(key, sizeof(key), tenant, "ticketing:orgs");
        const char *name = json_string_value(json_object_get(v, "n"));
        msp_format_time(json_integer_value(json_object_get(v, "t")), when, sizeof(when));
        if (msp_aredis_cmd(ac, org_sent, tc, "EVAL %s 1 %s %s %s %s %s", ORG_SEEN_LUA, key, sep + 1,
                           name ? name : "", name ? "1" : "0", when) == 0)
            tc->orgs_inflight++;
    }
    json_object_clear(tc->orgs);
}

void gw_tc_org_seen(gw_t *gw, const char *tenant, const char *org_id, const char *org_name) {
    gw_tcache_t *tc = gw->tcache;
    if (!tc)
        return;
    char k[64 + 1 + 1024 + 1]; /* a tenant id, 0x1f, an org id of at most 256 characters */
    if ((size_t)snprintf(k, sizeof(k), "%s\x1f%s", tenant, org_id) >= sizeof(k))
        return;
    json_t *old = json_object_get(tc->orgs, k);
    json_t *t = json_object_get(old, "t"), *n = json_object_get(old, "n");
    if (t && (!org_name || (json_is_string(n) && strcmp(json_string_value(n), org_name) == 0))) {
        json_integer_set(t, (json_int_t)msp_wall_ms()); /* an org seen again: only the time */
    } else if (!old && json_object_size(tc->orgs) >= MAX_ORGS_PENDING) {
        MSP_WARN("webhook.org_seen_dropped", tenant,
                 "org %s not recorded as seen: %d "
                 "suggestions already wait for Redis",
                 org_id, MAX_ORGS_PENDING);
    } else {
        json_t *name = org_name ? json_string(org_name) : json_incref(json_object_get(old, "n"));
        json_object_set_new(
            tc->orgs, k,
            json_pack("{s:o,s:I}", "n", name ? name : json_null(), "t", (json_int_t)msp_wall_ms()));
    }
    if (msp_now_ms() - tc->orgs_flushed_ms >= ORGS_FLUSH_MS) /* else the tick sends it */
        orgs_flush(tc);
}

/* ---- the tick: time out held requests, refresh, flush ---------------------------- */

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    gw_tcache_t *tc = arg;
    int64_t now = msp_now_ms();
    int refresh = now - tc->last_refresh_ms >= REFRESH_MS;
    if (refresh)
        tc->last_refresh_ms = now;
    for (int b = 0; b < BUCKETS; b++) {
        entry_t *e = tc->buckets[b];
        while (e) {
            entry_t *next = e->next;
            /* held requests that waited too long: 503 (the load stays in flight) */
            waiter_t **pp = &e->waiters;
            while (*pp) {
                waiter_t *w = *pp;
                if (now - w->since_ms < LOAD_TIMEOUT_MS) {
                    pp = &w->next;
                    continue;
                }
                *pp = w->next;
                answer(tc, e, w, -1, "no answer from Redis in time");
            }
            if (refresh && !e->loading && !e->waiters) {
                if (now - e->used_ms >= IDLE_MS)
                    entry_free(tc, e);
                else if (e->ready)
                    start_load(tc, e);
            }
            e = next;
        }
    }
    orgs_flush(tc);
}

int gw_tc_start(gw_t *gw) {
    gw_tcache_t *tc = calloc(1, sizeof(*tc));
    if (!tc)
        return -1;
    tc->gw = gw;
    tc->orgs = json_object();
    tc->tick_ev = event_new(gw->base, -1, EV_PERSIST, tick_cb, tc);
    if (!tc->orgs || !tc->tick_ev) {
        json_decref(tc->orgs);
        if (tc->tick_ev)
            event_free(tc->tick_ev);
        free(tc);
        return -1;
    }
    gw->aredis = msp_aredis_new(gw->base, gw->cfg.redis_url, LOAD_TIMEOUT_MS);
    if (!gw->aredis) {
        json_decref(tc->orgs);
        event_free(tc->tick_ev);
        free(tc);
        return -1;
    }
    gw->tcache = tc;
    struct timeval tv = {0, TICK_MS * 1000};
    event_add(tc->tick_ev, &tv);
    return 0;
}

void gw_tc_stop(gw_t *gw) {
    gw_tcache_t *tc = gw->tcache;
    if (!tc)
        return;
    event_free(tc->tick_ev);
    msp_aredis_free(gw->aredis); /* pending loads finish as failed: their requests hear 503 */
    gw->aredis = NULL;
    for (int b = 0; b < BUCKETS; b++)
        while (tc->buckets[b]) {
            entry_t *e = tc->buckets[b];
            answer_all(tc, e, -1, "the gateway is shutting down");
            if (tc->buckets[b] == e)
                entry_free(tc, e);
        }
    json_decref(tc->orgs);
    free(tc);
    gw->tcache = NULL;
}
