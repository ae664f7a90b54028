/*
 * cwrmm_token.c — the ConnectWise RMM OAuth token cache (cwrmm.h, "the token cache").
 *
 * ConnectWise locks an API key that asks for many tokens at once (HTTP 423), so a process keeps
 * one token per credential set and every process of the deployment shares it through Redis.
 * An entry is one (tenant, account, secret fingerprint); a changed secret is a new entry and can
 * never pick up a token issued for the old one. An entry answers a get from the first of:
 *
 *   1. its token in memory, while more than min(margin, lifetime / 4) of its life is left;
 *   2. a request already under way for it in this process: the waiter queues behind it;
 *   3. the sealed token in Redis (mspsync:{t}:token:cwrmm, AAD "<tenant>/cwrmm-token") when it is
 *      for the same account and secret and fresh by the same rule;
 *   4. SET mspsync:{t}:token:cwrmm:lock <random> NX PX 15000: the winner POSTs /v1/token, stores
 *      the token in memory and, sealed, in Redis (PX = its remaining life), deletes the lock if it
 *      still holds it, and answers every waiter. A loser polls Redis every 200 ms for the token,
 *      trying the lock again on each poll (it is free again once the winner finished or failed,
 *      or after its 15 s), and gives up after 45 s.
 *
 * Redis is a blocking hiredis context the caller owns and reconnects; while it is NULL or broken
 * the cache works from memory alone (single-flight per process still holds). In async mode
 * (msp_cwrmm_tokens_set_async) the same steps go on the process's async connection instead
 * (aredis.h): the entry waits in CW_REDIS for each answer, so a slow or stopped Redis delays a
 * token and never the loop; a missing answer counts as "no Redis" (the entry goes on alone).
 *
 * Invariants:
 * - A waiter's callback runs exactly once, from the cache's zero-delay delivery event, never from
 *   inside msp_cwrmm_token_get() or an HTTP callback; that event is the only place user code is
 *   entered, so destroy or cancel from a callback only has to be safe there (depth / dying).
 * - msp_http has no per-request cancel: a token request carries a small heap ticket that outlives
 *   its entry (and the cache); the HTTP callback frees it and ignores a detached one.
 * - Tokens and secrets are zeroed before they are freed and never logged.
 */
#include "mspsync/cwrmm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "mspsync/backoff.h"
#include "mspsync/log.h"
#include "mspsync/model.h"
#include "mspsync/redis.h"

#define CW_LOCK_TTL_MS      15000
#define CW_POLL_MS          200
#define CW_WAIT_LIMIT_MS    45000
#define CW_TOKEN_TIMEOUT_MS 10000 /* well inside the lock's life */
#define CW_DEFAULT_LIFETIME_MS (3599 * 1000LL)
#define CW_AUTH_PREFIX      "Authorization: Bearer "

typedef struct cw_entry_s cw_entry_t;
typedef struct cw_fetch_s cw_fetch_t;

typedef struct cw_waiter_s {
    msp_cwrmm_token_cb *cb;
    void               *opaque;
    char               *header;         /* result: owned copy, or NULL on failure */
    char               *error;          /* result on failure, owned */
    long                status;
    int64_t             retry_after_ms;
    struct cw_waiter_s *next;
} cw_waiter_t;

typedef struct cw_queue_s {
    cw_waiter_t *head, *tail;
} cw_queue_t;

typedef enum { CW_IDLE = 0, CW_FETCHING, CW_POLLING, CW_REDIS } cw_state_t;

struct cw_fetch_s {
    cw_entry_t *e; /* NULL once the entry is gone: the HTTP callback only frees the ticket */
};

struct cw_entry_s {
    msp_cwrmm_tokens_t *t;
    char         tenant[128];
    char         account[64];
    char         cred[17];        /* first 16 hex of SHA-256(secret) */
    char         base_url[512];
    char         client_id[1024];  /* 255 characters of UTF-8 */
    char        *secret;          /* owned copy, for a POST that starts after a lock wait */
    char        *token;           /* owned, NULL when none */
    int64_t      expires_at_ms;   /* wall clock */
    int64_t      lifetime_ms;
    cw_state_t   state;
    cw_queue_t   waiters;
    cw_fetch_t  *fetch;           /* while CW_FETCHING */
    char         lock_value[33];  /* our lock's value, "" when we hold none */
    struct event *poll_ev;
    int64_t wait_started_ms; /* monotonic; 0 before the entry waits for the lock */
    cw_entry_t  *next;
};

/* Async mode: a 401's deletion of the stored token, waiting for its GET (freed with the answer,
 * or by destroy). */
typedef struct cw_reject_s {
    msp_cwrmm_tokens_t *t;
    char tenant[128], account[64], cred[17];
    char *rejected; /* owned, zeroed */
    struct cw_reject_s *next;
} cw_reject_t;

struct msp_cwrmm_tokens_s {
    struct event_base *base;
    msp_http_t        *http;
    redisContext     **redis;
    msp_aredis_t *aredis; /* set: async mode (redis unused) */
    cw_reject_t *rejects; /* async mode: deletions awaiting their answer */
    msp_secret_key_t   key;
    int64_t            margin_ms;
    uint64_t           requested;
    cw_entry_t        *entries;
    cw_queue_t         ready;     /* answered, waiting for the delivery event */
    struct event      *deliver_ev;
    int                depth;     /* > 0 while callbacks run */
    int                dying;     /* destroy was called from a callback */
};

static void entry_acquire(cw_entry_t *e);
static void entry_post(cw_entry_t *e);

/* ------------------------------------------------------------------ small helpers */

static void zfree(char *s) {
    if (s) {
        msp_secure_zero(s, strlen(s));
        free(s);
    }
}

static void waiter_free(cw_waiter_t *w) {
    if (!w)
        return;
    zfree(w->header);
    free(w->error);
    free(w);
}

static void queue_push(cw_queue_t *q, cw_waiter_t *w) {
    w->next = NULL;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
}

static cw_waiter_t *queue_pop(cw_queue_t *q) {
    cw_waiter_t *w = q->head;
    if (w) {
        q->head = w->next;
        if (!q->head)
            q->tail = NULL;
        w->next = NULL;
    }
    return w;
}

static void queue_free(cw_queue_t *q) {
    cw_waiter_t *w;
    while ((w = queue_pop(q)))
        waiter_free(w);
}

/* Remove every waiter with this opaque. */
static void queue_cancel(cw_queue_t *q, void *opaque) {
    cw_waiter_t **pp = &q->head, *last = NULL;
    while (*pp) {
        cw_waiter_t *w = *pp;
        if (w->opaque == opaque) {
            *pp = w->next;
            waiter_free(w);
        } else {
            last = w;
            pp = &w->next;
        }
    }
    q->tail = last;
}

static void fingerprint(const char *secret, char out[17]) {
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    const char *s = secret ? secret : "";

    out[0] = '\0';
    if (EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL) != 1 || len < 8)
        return;
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    out[16] = '\0';
    msp_secure_zero(md, sizeof(md));
}

static redisContext *redis_of(const msp_cwrmm_tokens_t *t) {
    redisContext *c = t->redis ? *t->redis : NULL;
    return c && !c->err ? c : NULL;
}

static int needs_refresh(const msp_cwrmm_tokens_t *t, int64_t expires_at_ms, int64_t lifetime_ms,
                         int64_t now_wall_ms) {
    int64_t margin = t->margin_ms > 0 ? t->margin_ms : 0;
    if (lifetime_ms > 0 && lifetime_ms / 4 < margin)
        margin = lifetime_ms / 4;
    return expires_at_ms - now_wall_ms < margin || expires_at_ms <= now_wall_ms;
}

static int memory_valid(const cw_entry_t *e) {
    return e->token && !needs_refresh(e->t, e->expires_at_ms, e->lifetime_ms, msp_wall_ms());
}

static int key_of(const cw_entry_t *e, char *buf, size_t size, const char *suffix) {
    return msp_key(buf, size, e->tenant, "token:cwrmm%s", suffix);
}

/* ------------------------------------------------------------------ delivery */

static void schedule_delivery(msp_cwrmm_tokens_t *t) {
    static const struct timeval zero = {0, 0};
    if (t->ready.head && !t->dying)
        evtimer_add(t->deliver_ev, &zero);
}

static void deliver_cb(evutil_socket_t fd, short what, void *arg) {
    msp_cwrmm_tokens_t *t = arg;
    cw_waiter_t *w;

    (void)fd;
    (void)what;
    t->depth++;
    while (!t->dying && (w = queue_pop(&t->ready))) {
        w->cb(w->header, w->status, w->retry_after_ms, w->error, w->opaque);
        waiter_free(w);
    }
    t->depth--;
    if (t->dying && t->depth == 0) {
        event_free(t->deliver_ev);
        free(t);
    }
}

/* Move every waiter of e to the ready queue with the entry's token. */
static void entry_succeed(cw_entry_t *e) {
    msp_cwrmm_tokens_t *t = e->t;
    size_t hlen = strlen(CW_AUTH_PREFIX) + strlen(e->token) + 1;
    cw_waiter_t *w;

    e->state = CW_IDLE;
    while ((w = queue_pop(&e->waiters))) {
        w->header = malloc(hlen);
        if (w->header) {
            snprintf(w->header, hlen, "%s%s", CW_AUTH_PREFIX, e->token);
            w->status = 200;
        } else {
            w->error = strdup("out of memory");
            w->status = 0;
        }
        queue_push(&t->ready, w);
    }
    schedule_delivery(t);
}

static void entry_fail(cw_entry_t *e, long status, int64_t retry_after_ms, const char *error) {
    msp_cwrmm_tokens_t *t = e->t;
    cw_waiter_t *w;

    e->state = CW_IDLE;
    while ((w = queue_pop(&e->waiters))) {
        w->status = status;
        w->retry_after_ms = retry_after_ms;
        w->error = strdup(error ? error : "ConnectWise RMM token request failed");
        queue_push(&t->ready, w);
    }
    schedule_delivery(t);
}

/* ------------------------------------------------------------------ Redis */

/* Let go of e's token (replaced, rejected or freed): it is no longer redacted on its behalf. */
static void entry_drop_token(cw_entry_t *e) {
    if (e->token)
        msp_log_unredact(e->token);
    zfree(e->token);
    e->token = NULL;
}

/* Keep the token as e's (takes ownership of token); redacted while e keeps it. */
static void entry_set_token(cw_entry_t *e, char *token, int64_t expires_at_ms,
                            int64_t lifetime_ms) {
    entry_drop_token(e);
    e->token = token;
    e->expires_at_ms = expires_at_ms;
    e->lifetime_ms = lifetime_ms;
    msp_log_redact(token);
}

static int stored_open(const cw_entry_t *e, const char *stored, char **token,
                       int64_t *expires_at_ms, int64_t *lifetime_ms);

/*
 * The token stored in Redis, opened and parsed. @returns 1 (new *token, *expires_at_ms,
 * *lifetime_ms, and *sealed = the stored text when sealed is non-NULL), 0 none usable, -1 Redis
 * error. "Usable" ignores freshness; the caller decides.
 */
static int redis_read(cw_entry_t *e, char **token, int64_t *expires_at_ms, int64_t *lifetime_ms,
                      char **sealed) {
    redisContext *c = redis_of(e->t);
    char key[256];
    char *stored;
    int err = 0, rc;

    *token = NULL;
    if (sealed)
        *sealed = NULL;
    if (!c || key_of(e, key, sizeof(key), "") < 0)
        return -1;
    stored = msp_redis_get(c, key, &err);
    if (err) {
        free(stored);
        return -1;
    }
    if (!stored)
        return 0;
    rc = stored_open(e, stored, token, expires_at_ms, lifetime_ms);
    if (rc == 1 && sealed)
        *sealed = stored;
    else
        free(stored);
    return rc;
}

/*
 * The stored text (sealed) of e's key, opened and parsed: redis_read without the GET.
 * @returns 1 (new *token, *expires_at_ms, *lifetime_ms) or 0 none usable.
 */
static int stored_open(const cw_entry_t *e, const char *stored, char **token,
                       int64_t *expires_at_ms, int64_t *lifetime_ms) {
    const msp_cwrmm_tokens_t *t = e->t;
    char aad[160];
    char *plain;
    size_t plen = 0;
    int rc = 0;
    json_t *root;

    *token = NULL;
    snprintf(aad, sizeof(aad), "%s/cwrmm-token", e->tenant);
    plain = msp_secret_open(&t->key, aad, stored, &plen);
    if (!plain)
        return 0;
    root = json_loadb(plain, plen, 0, NULL);
    msp_secure_zero(plain, plen);
    free(plain);
    if (json_is_object(root)) {
        const char *at = json_string_value(json_object_get(root, "access_token"));
        const char *acct = json_string_value(json_object_get(root, "account"));
        const char *cred = json_string_value(json_object_get(root, "cred"));
        json_t *exp = json_object_get(root, "expires_at_ms");
        json_t *life = json_object_get(root, "lifetime_ms");
        if (at && *at && acct && cred && json_is_integer(exp) && strcmp(acct, e->account) == 0 &&
            strcmp(cred, e->cred) == 0) {
            *token = strdup(at);
            *expires_at_ms = (int64_t)json_integer_value(exp);
            /* written by an older version without it: the vendor's usual lifetime */
            *lifetime_ms = json_is_integer(life) && json_integer_value(life) > 0
                               ? (int64_t)json_integer_value(life)
                               : CW_DEFAULT_LIFETIME_MS;
            rc = *token ? 1 : 0;
        }
        /* the parsed copy holds the token too */
        if (json_is_string(json_object_get(root, "access_token")))
            msp_secure_zero((char *)json_string_value(json_object_get(root, "access_token")),
                            json_string_length(json_object_get(root, "access_token")));
    }
    json_decref(root);
    return rc;
}

/* Take a fresh token from Redis into memory. @returns 1 taken, 0 none, -1 Redis error. */
static int redis_take(cw_entry_t *e) {
    char *token = NULL;
    int64_t exp = 0, life = 0;
    int rc = redis_read(e, &token, &exp, &life, NULL);

    if (rc != 1)
        return rc;
    if (needs_refresh(e->t, exp, life, msp_wall_ms())) {
        zfree(token);
        return 0;
    }
    entry_set_token(e, token, exp, life);
    return 1;
}

/* e's token as stored in Redis: sealed JSON (new string), or NULL (out of memory). */
static char *stored_text(const cw_entry_t *e) {
    char aad[160];
    json_t *obj;
    char *plain, *sealed;

    obj = json_pack("{s:s, s:I, s:I, s:s, s:s}", "access_token", e->token, "expires_at_ms",
                    (json_int_t)e->expires_at_ms, "lifetime_ms", (json_int_t)e->lifetime_ms,
                    "account", e->account, "cred", e->cred);
    plain = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    if (obj && json_is_string(json_object_get(obj, "access_token")))
        msp_secure_zero((char *)json_string_value(json_object_get(obj, "access_token")),
                        json_string_length(json_object_get(obj, "access_token")));
    json_decref(obj);
    if (!plain)
        return NULL;
    snprintf(aad, sizeof(aad), "%s/cwrmm-token", e->tenant);
    sealed = msp_secret_seal(&e->t->key, aad, plain, strlen(plain));
    msp_secure_zero(plain, strlen(plain));
    msp_json_free(plain);
    return sealed;
}

static void async_store(cw_entry_t *e);

static void redis_store(cw_entry_t *e) {
    redisContext *c = redis_of(e->t);
    char key[256];
    int64_t ttl = e->expires_at_ms - msp_wall_ms();
    char *sealed;
    redisReply *r;

    if (e->t->aredis) {
        async_store(e);
        return;
    }
    if (!c || ttl <= 0 || key_of(e, key, sizeof(key), "") < 0)
        return;
    if (!(sealed = stored_text(e)))
        return;
    r = redisCommand(c, "SET %s %s PX %lld", key, sealed, (long long)ttl);
    if (!r || r->type == REDIS_REPLY_ERROR)
        MSP_WARN("cwrmm.token_store", e->tenant, "could not store the ConnectWise RMM token: %s",
                 r ? r->str : c->errstr);
    if (r)
        freeReplyObject(r);
    free(sealed);
}

/* SET lock NX PX. @returns 1 won, 0 held by another, -1 no Redis (or an error). */
static int lock_try(cw_entry_t *e) {
    redisContext *c = redis_of(e->t);
    char key[256], value[33];
    int rc;

    if (!c || key_of(e, key, sizeof(key), ":lock") < 0 || msp_random_hex(value, 16) != 0)
        return -1;
    rc = msp_idem_claim(c, key, value, CW_LOCK_TTL_MS, NULL);
    if (rc == 1)
        memcpy(e->lock_value, value, sizeof(value));
    return rc;
}

/* DEL the lock only while it still holds our value (it may have expired and be another's). In
 * async mode nothing waits for the answer (a lost one: the lock expires by itself). */
static void lock_release(cw_entry_t *e) {
    redisContext *c = redis_of(e->t);
    char key[256];

    if (e->lock_value[0] && key_of(e, key, sizeof(key), ":lock") >= 0) {
        if (e->t->aredis)
            msp_cursor_cas_async(e->t->aredis, key, e->lock_value, NULL, 0, NULL, NULL);
        else if (c)
            msp_cursor_cas_ex(c, key, e->lock_value, NULL, 0);
    }
    e->lock_value[0] = '\0';
}

/* ------------------------------------------------------------------ the token request */

static void token_answered(msp_http_response_t *res, void *opaque) {
    cw_fetch_t *f = opaque;
    cw_entry_t *e = f->e;
    char errstr[256], desc[768];
    char *token = NULL;
    int64_t expires_in = 0;

    free(f);
    if (!e)
        return; /* the entry (or the whole cache) is gone */
    e->fetch = NULL;

    if (res->status == 200 &&
        msp_cwrmm_parse_token(res->body, res->body_len, &token, &expires_in, errstr,
                              sizeof(errstr)) == 0) {
        int64_t life = expires_in * 1000;
        entry_set_token(e, token, msp_wall_ms() + life, life);
        redis_store(e);
        lock_release(e);
        MSP_INFO("cwrmm.token", e->tenant, "new ConnectWise RMM token for %s (expires in %lld s)",
                 e->account, (long long)expires_in);
        entry_succeed(e);
        return;
    }
    lock_release(e);
    if (res->status == 200) {
        snprintf(desc, sizeof(desc), "ConnectWise RMM POST /v1/token answered 200: %s", errstr);
        MSP_WARN("cwrmm.token_failed", e->tenant, "%s", desc);
        entry_fail(e, 200, -1, desc);
        return;
    }
    msp_cwrmm_describe(res, "POST", "/v1/token", desc, sizeof(desc));
    MSP_WARN("cwrmm.token_failed", e->tenant, "%s", desc);
    entry_fail(e, res->status, res->retry_after_ms, desc);
}

static void entry_post(cw_entry_t *e) {
    msp_cwrmm_tokens_t *t = e->t;
    const char *headers[] = {"Content-Type: application/json", "Accept: application/json", NULL};
    char url[600];
    char *body;
    msp_http_request_t req;
    cw_fetch_t *f;

    if ((size_t)snprintf(url, sizeof(url), "%s/v1/token", e->base_url) >= sizeof(url)) {
        lock_release(e);
        entry_fail(e, 0, -1, "ConnectWise RMM base URL too long");
        return;
    }
    body = msp_cwrmm_token_body(e->client_id, e->secret, NULL);
    f = calloc(1, sizeof(*f));
    if (!body || !f) {
        zfree(body);
        free(f);
        lock_release(e);
        entry_fail(e, 0, -1, "out of memory");
        return;
    }
    f->e = e;
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.url = url;
    req.headers = headers;
    req.body = body;
    req.body_len = strlen(body);
    req.timeout_ms = CW_TOKEN_TIMEOUT_MS;
    req.tenant = e->tenant;
    e->state = CW_FETCHING;
    e->fetch = f;
    t->requested++;
    if (msp_http_request(t->http, &req, token_answered, f) != 0) {
        e->fetch = NULL;
        free(f);
        zfree(body);
        lock_release(e);
        entry_fail(e, 0, -1, "ConnectWise RMM POST /v1/token could not be started");
        return;
    }
    zfree(body); /* the request copied it */
}

static void poll_cb(evutil_socket_t fd, short what, void *arg);

/* The lock is another's: look again in CW_POLL_MS (poll_cb). */
static void entry_poll_later(cw_entry_t *e) {
    static const struct timeval every = {0, CW_POLL_MS * 1000};

    if (!e->poll_ev)
        e->poll_ev = evtimer_new(e->t->base, poll_cb, e);
    if (!e->poll_ev) {
        entry_fail(e, 0, -1, "out of memory");
        return;
    }
    e->state = CW_POLLING;
    evtimer_add(e->poll_ev, &every);
}

/* ------------------------------------------------------------------ async mode */

/*
 * The steps of entry_acquire and poll_cb on the async connection, each answer going on:
 * GET the stored token (fresh: taken) → SET the lock NX PX (held by another: wait and poll
 * again; won: GET once more, as it may have been stored between the two, else POST). A missing
 * or failed answer means no Redis: the entry POSTs alone, as the blocking mode does. Every
 * command's owner is the entry (entry_free cancels its answers).
 */
static void async_read_answered(void *arg, redisReply *r, const char *why);
static void async_lock_answered(void *arg, redisReply *r, const char *why);
static void async_reread_answered(void *arg, redisReply *r, const char *why);

/* Take the fresh token of a GET's answer. @returns 1 taken, 0 none, -1 no answer. */
static int async_take(cw_entry_t *e, const redisReply *r) {
    char *token = NULL;
    int64_t exp = 0, life = 0;

    if (!r || r->type == REDIS_REPLY_ERROR)
        return -1;
    if (r->type != REDIS_REPLY_STRING || stored_open(e, r->str, &token, &exp, &life) != 1)
        return 0;
    if (needs_refresh(e->t, exp, life, msp_wall_ms())) {
        zfree(token);
        return 0;
    }
    entry_set_token(e, token, exp, life);
    return 1;
}

/* GET e's stored token; the answer comes to cb. @returns 0 sent, -1 not (no Redis). */
static int async_get(cw_entry_t *e, msp_aredis_cb *cb) {
    char key[256];

    if (key_of(e, key, sizeof(key), "") < 0)
        return -1;
    e->state = CW_REDIS;
    return msp_aredis_cmd(e->t->aredis, cb, e, "GET %s", key);
}

/* The first step (entry_acquire, poll_cb): read the stored token. */
static void async_acquire(cw_entry_t *e) {
    if (async_get(e, async_read_answered) != 0)
        entry_post(e); /* no Redis: memory only */
}

static void async_read_answered(void *arg, redisReply *r, const char *why) {
    cw_entry_t *e = arg;
    char key[256], value[33];
    int rc = async_take(e, r);

    (void)why;
    if (rc == 1) {
        entry_succeed(e);
        return;
    }
    if (rc < 0 || key_of(e, key, sizeof(key), ":lock") < 0 || msp_random_hex(value, 16) != 0 ||
        msp_aredis_cmd(e->t->aredis, async_lock_answered, e, "SET %s %s NX PX %d", key, value,
                       CW_LOCK_TTL_MS) != 0) {
        entry_post(e); /* Redis went away: go on alone */
        return;
    }
    memcpy(e->lock_value, value, sizeof(value)); /* ours once the answer says won */
}

static void async_lock_answered(void *arg, redisReply *r, const char *why) {
    cw_entry_t *e = arg;

    (void)why;
    if (r && r->type == REDIS_REPLY_STATUS) { /* won: the holder may have stored just before */
        if (async_get(e, async_reread_answered) != 0) {
            lock_release(e);
            entry_post(e);
        }
        return;
    }
    if (!r || r->type != REDIS_REPLY_NIL) {
        /* no Redis any more: memory only (the lock, if the SET ran, is released after the POST) */
        entry_post(e);
        return;
    }
    e->lock_value[0] = '\0'; /* held by another */
    if (!e->wait_started_ms) {
        e->wait_started_ms = msp_now_ms();
    } else if (msp_now_ms() - e->wait_started_ms >= CW_WAIT_LIMIT_MS) {
        entry_fail(e, 0, -1,
                   "ConnectWise RMM token: another process held the token lock for too long");
        return;
    }
    entry_poll_later(e);
}

static void async_reread_answered(void *arg, redisReply *r, const char *why) {
    cw_entry_t *e = arg;

    (void)why;
    if (async_take(e, r) == 1) {
        lock_release(e);
        entry_succeed(e);
        return;
    }
    entry_post(e); /* the lock is ours: token_answered releases it */
}

static void async_store_answered(void *arg, redisReply *r, const char *why) {
    cw_entry_t *e = arg;

    if (!r || r->type == REDIS_REPLY_ERROR)
        MSP_WARN("cwrmm.token_store", e->tenant, "could not store the ConnectWise RMM token: %s",
                 r ? r->str : why);
}

/* SET the sealed token PX its remaining life; nothing waits for the answer. */
static void async_store(cw_entry_t *e) {
    char key[256];
    int64_t ttl = e->expires_at_ms - msp_wall_ms();
    char *sealed;

    if (ttl <= 0 || key_of(e, key, sizeof(key), "") < 0 || !(sealed = stored_text(e)))
        return;
    if (msp_aredis_cmd(e->t->aredis, async_store_answered, e, "SET %s %s PX %lld", key, sealed,
                       (long long)ttl) != 0)
        MSP_WARN("cwrmm.token_store", e->tenant,
                 "could not store the ConnectWise RMM token: Redis is not connected");
    free(sealed);
}

static void reject_free(cw_reject_t *x) {
    cw_reject_t **pp = &x->t->rejects;
    while (*pp && *pp != x)
        pp = &(*pp)->next;
    if (*pp)
        *pp = x->next;
    zfree(x->rejected);
    free(x);
}

/* The stored token was read: delete it only while it still is the rejected one. */
static void reject_read(void *arg, redisReply *r, const char *why) {
    cw_reject_t *x = arg;
    cw_entry_t probe;
    char *token = NULL, key[256];
    int64_t exp = 0, life = 0;

    (void)why;
    memset(&probe, 0, sizeof(probe));
    probe.t = x->t;
    snprintf(probe.tenant, sizeof(probe.tenant), "%s", x->tenant);
    snprintf(probe.account, sizeof(probe.account), "%s", x->account);
    memcpy(probe.cred, x->cred, sizeof(probe.cred));
    if (r && r->type == REDIS_REPLY_STRING &&
        stored_open(&probe, r->str, &token, &exp, &life) == 1 && strcmp(token, x->rejected) == 0 &&
        key_of(&probe, key, sizeof(key), "") >= 0)
        msp_cursor_cas_async(x->t->aredis, key, r->str, NULL, 0, NULL, NULL);
    zfree(token);
    reject_free(x);
}

/* msp_cwrmm_token_rejected's Redis part in async mode: GET, then (reject_read) the CAS. */
static void async_reject(msp_cwrmm_tokens_t *t, const char *tenant, const char *account,
                         const char *cred, const char *rejected) {
    cw_reject_t *x = calloc(1, sizeof(*x));
    char key[256];

    if (!x || strlen(tenant) >= sizeof(x->tenant) || !(x->rejected = strdup(rejected))) {
        free(x);
        return;
    }
    x->t = t;
    snprintf(x->tenant, sizeof(x->tenant), "%s", tenant);
    snprintf(x->account, sizeof(x->account), "%s", account);
    memcpy(x->cred, cred, sizeof(x->cred));
    x->next = t->rejects;
    t->rejects = x;
    if (msp_key(key, sizeof(key), tenant, "token:cwrmm") < 0 ||
        msp_aredis_cmd(t->aredis, reject_read, x, "GET %s", key) != 0)
        reject_free(x);
}

/* ------------------------------------------------------------------ lock waiting */

static void poll_cb(evutil_socket_t fd, short what, void *arg) {
    cw_entry_t *e = arg;
    static const struct timeval every = {0, CW_POLL_MS * 1000};
    int rc;

    (void)fd;
    (void)what;
    if (e->state != CW_POLLING)
        return;
    if (e->t->aredis) {
        async_acquire(e);
        return;
    }
    rc = redis_take(e);
    if (rc == 1) {
        entry_succeed(e);
        return;
    }
    if (rc < 0) { /* Redis went away: go on alone */
        entry_post(e);
        return;
    }
    rc = lock_try(e);
    if (rc != 0) {
        /* won (or no Redis any more); the holder may have stored just before releasing */
        if (rc == 1 && redis_take(e) == 1) {
            lock_release(e);
            entry_succeed(e);
            return;
        }
        entry_post(e);
        return;
    }
    if (msp_now_ms() - e->wait_started_ms >= CW_WAIT_LIMIT_MS) {
        entry_fail(e, 0, -1,
                   "ConnectWise RMM token: another process held the token lock for too long");
        return;
    }
    evtimer_add(e->poll_ev, &every);
}

/* Memory had nothing fresh: Redis, then the lock, then the POST. */
static void entry_acquire(cw_entry_t *e) {
    int rc;

    if (e->t->aredis) {
        e->wait_started_ms = 0;
        async_acquire(e);
        return;
    }
    if (redis_take(e) == 1) {
        entry_succeed(e);
        return;
    }
    rc = lock_try(e);
    if (rc == 1 && redis_take(e) == 1) { /* stored between our read and our lock */
        lock_release(e);
        entry_succeed(e);
        return;
    }
    if (rc != 0) { /* won, or no Redis: memory only */
        entry_post(e);
        return;
    }
    e->wait_started_ms = msp_now_ms();
    entry_poll_later(e);
}

/* ------------------------------------------------------------------ entries */

static void entry_free(cw_entry_t *e) {
    if (!e)
        return;
    if (e->fetch)
        e->fetch->e = NULL;
    msp_aredis_cancel(e->t ? e->t->aredis : NULL, e);
    if (e->poll_ev)
        event_free(e->poll_ev);
    if (e->lock_value[0] && e->t)
        lock_release(e);
    queue_free(&e->waiters);
    zfree(e->secret);
    entry_drop_token(e);
    msp_secure_zero(e, sizeof(*e));
    free(e);
}

static int entry_idle(const cw_entry_t *e) {
    return e->state == CW_IDLE && !e->waiters.head;
}

static cw_entry_t *entry_find(msp_cwrmm_tokens_t *t, const char *tenant, const char *account,
                              const char *cred) {
    for (cw_entry_t *e = t->entries; e; e = e->next)
        if (strcmp(e->tenant, tenant) == 0 && strcmp(e->account, account) == 0 &&
            strcmp(e->cred, cred) == 0)
            return e;
    return NULL;
}

static cw_entry_t *entry_get(msp_cwrmm_tokens_t *t, const char *tenant,
                             const msp_cwrmm_integration_t *in) {
    char cred[17];
    cw_entry_t *e, **pp;

    fingerprint(in->client_secret, cred);
    e = entry_find(t, tenant, in->account, cred);
    if (e)
        return e;
    if (strlen(tenant) >= sizeof(e->tenant))
        return NULL;
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->secret = strdup(in->client_secret ? in->client_secret : "");
    if (!e->secret) {
        free(e);
        return NULL;
    }
    e->t = t;
    snprintf(e->tenant, sizeof(e->tenant), "%s", tenant);
    snprintf(e->account, sizeof(e->account), "%s", in->account);
    memcpy(e->cred, cred, sizeof(cred));
    snprintf(e->base_url, sizeof(e->base_url), "%s", in->base_url);
    snprintf(e->client_id, sizeof(e->client_id), "%s", in->client_id);

    /* A tenant whose credentials changed leaves its old idle entries behind: drop them. */
    for (pp = &t->entries; *pp;) {
        cw_entry_t *old = *pp;
        if (strcmp(old->tenant, tenant) == 0 && entry_idle(old)) {
            *pp = old->next;
            entry_free(old);
        } else {
            pp = &old->next;
        }
    }
    e->next = t->entries;
    t->entries = e;
    return e;
}

/* ------------------------------------------------------------------ API */

msp_cwrmm_tokens_t *msp_cwrmm_tokens_new(struct event_base *base, msp_http_t *http,
                                         redisContext **redis, const msp_secret_key_t *key,
                                         int64_t margin_ms) {
    msp_cwrmm_tokens_t *t;

    if (!base || !http)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->base = base;
    t->http = http;
    t->redis = redis;
    if (key)
        t->key = *key;
    t->margin_ms = margin_ms;
    t->deliver_ev = evtimer_new(base, deliver_cb, t);
    if (!t->deliver_ev) {
        free(t);
        return NULL;
    }
    return t;
}

void msp_cwrmm_tokens_set_async(msp_cwrmm_tokens_t *t, msp_aredis_t *a) {
    if (t)
        t->aredis = a;
}

int msp_cwrmm_token_get(msp_cwrmm_tokens_t *t, const char *tenant,
                        const msp_cwrmm_integration_t *in, msp_cwrmm_token_cb *cb, void *opaque) {
    cw_entry_t *e;
    cw_waiter_t *w;

    if (!t || t->dying || !tenant || !*tenant || !in || !cb)
        return -1;
    w = calloc(1, sizeof(*w));
    if (!w)
        return -1;
    w->cb = cb;
    w->opaque = opaque;
    w->retry_after_ms = -1;
    e = entry_get(t, tenant, in);
    if (!e) {
        free(w);
        return -1;
    }
    queue_push(&e->waiters, w);
    if (e->state != CW_IDLE)
        return 0; /* a request for this entry is under way: wait for it */
    if (memory_valid(e))
        entry_succeed(e);
    else
        entry_acquire(e);
    return 0;
}

void msp_cwrmm_token_rejected(msp_cwrmm_tokens_t *t, const char *tenant,
                              const msp_cwrmm_integration_t *in, const char *auth_header) {
    char cred[17], key[256];
    const char *rejected;
    cw_entry_t *e, probe;
    char *stored_token = NULL, *sealed = NULL;
    int64_t exp = 0, life = 0;

    if (!t || !tenant || !in || !auth_header ||
        strncmp(auth_header, CW_AUTH_PREFIX, strlen(CW_AUTH_PREFIX)) != 0)
        return;
    rejected = auth_header + strlen(CW_AUTH_PREFIX);
    fingerprint(in->client_secret, cred);
    e = entry_find(t, tenant, in->account, cred);
    if (e && e->token && strcmp(e->token, rejected) == 0) {
        entry_drop_token(e);
        e->expires_at_ms = 0;
    }

    /* Redis: delete it only while it still holds the rejected token (same sealed text). */
    if (t->aredis) {
        async_reject(t, tenant, in->account, cred, rejected);
        return;
    }
    if (!e) {
        memset(&probe, 0, sizeof(probe));
        probe.t = t;
        snprintf(probe.tenant, sizeof(probe.tenant), "%s", tenant);
        snprintf(probe.account, sizeof(probe.account), "%s", in->account);
        memcpy(probe.cred, cred, sizeof(cred));
        e = &probe;
    }
    if (redis_read(e, &stored_token, &exp, &life, &sealed) == 1 &&
        strcmp(stored_token, rejected) == 0 && key_of(e, key, sizeof(key), "") >= 0)
        msp_cursor_cas_ex(redis_of(t), key, sealed, NULL, 0);
    zfree(stored_token);
    free(sealed);
}

void msp_cwrmm_token_cancel(msp_cwrmm_tokens_t *t, void *opaque) {
    if (!t)
        return;
    queue_cancel(&t->ready, opaque);
    for (cw_entry_t *e = t->entries; e; e = e->next)
        queue_cancel(&e->waiters, opaque);
    /* an entry left waiting for nobody finishes its request anyway: the token is kept */
}

uint64_t msp_cwrmm_tokens_requested(const msp_cwrmm_tokens_t *t) {
    return t ? t->requested : 0;
}

void msp_cwrmm_tokens_destroy(msp_cwrmm_tokens_t *t) {
    cw_entry_t *e;

    if (!t || t->dying)
        return;
    while (t->rejects) {
        msp_aredis_cancel(t->aredis, t->rejects);
        reject_free(t->rejects);
    }
    while ((e = t->entries)) {
        t->entries = e->next;
        entry_free(e);
    }
    queue_free(&t->ready);
    msp_secure_zero(&t->key, sizeof(t->key));
    if (t->depth > 0) { /* inside deliver_cb: it frees t when it unwinds */
        t->dying = 1;
        return;
    }
    event_free(t->deliver_ev);
    free(t);
}
