/*
 * inventory.c — source records, merged assets, edits and pending date changes in Redis
 * (see inventory.h). Blocking hiredis: every step is one pipeline; any Redis error returns -1
 * and the caller repeats the whole call (every step is idempotent).
 */
#include "inventory.h"
#include "merge.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mspsync/backoff.h>
#include <mspsync/crypto.h>
#include <mspsync/json_dump.h>
#include <mspsync/log.h>
#include <mspsync/model.h>
#include <mspsync/redis.h>
#include <mspsync/statekeys.h>
#include <mspsync/trace.h>

#include "coalesce.h"
#include "par.h"
#include "resp.h"

#define KEYLEN 600

const char nz_inv_pending_done_lua[] =
    "local v = redis.call('HGET', KEYS[1], ARGV[1]) "
    "if v and string.find(v, ARGV[2], 1, true) then return redis.call('HDEL', KEYS[1], ARGV[1]) end "
    "return 0";

/* HSETNX inv:mkey <key> <asset> unless inv:ksrc says the key is demoted. */
static const char claim_lua[] =
    "if redis.call('HGET', KEYS[2], ARGV[1]) == '" NZ_KEY_DEMOTED "' then return 0 end "
    "return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])";

/* ---- a tiny pipeline ------------------------------------------------------------------------ */

typedef struct pipe_s {
    redisContext *c;
    nz_coal_t *wc; /* when set, writes are gathered per key until EXEC (coalesce.h) */
    int n;
    redisReply **r;
    int cap;
    int failed;
    char *err;
    size_t errsz;
    unsigned char *kind; /* per command: K_* (the fence's replies to check), or NULL */
    int kind_cap;
    nz_pipe_t out; /* the commands not yet handed to hiredis, RESP-encoded (resp.h) */
} pipe_t;

/* ---- the fence: no write lands in a Redis that lost its state since the batch's check ------ */

/*
 * nz_inv_fence names the state epoch the caller checked. The first pipeline of a call WATCHes
 * the epoch marker and the inventory marker and reads them back (MGET, checked against the
 * epoch): from there every MULTI/EXEC aborts if Redis was flushed, restored or rebuilt, and the
 * reads before the check are known to come from the checked state. EXEC ends the WATCH: the
 * next pipeline arms it again, and a transaction never starts unarmed (p_arm_now). A call that
 * finds the state changed returns NZ_INV_LOST. One inventory connection per thread.
 */
static _Thread_local struct {
    char epoch[64]; /* "" = no fence */
    int armed;      /* 0 no WATCH, ARM_QUEUED in the pipeline being built, ARM_CHECKED */
    int lost;       /* the call found the state changed */
} fence;

enum { K_PLAIN = 0, K_EXEC, K_WATCH, K_CHECK }; /* the fence's own replies are not the caller's */
enum { ARM_QUEUED = 1, ARM_CHECKED };

void nz_inv_fence(const char *epoch) {
    snprintf(fence.epoch, sizeof fence.epoch, "%s", epoch ? epoch : "");
    fence.armed = 0;
}

static void marker_keys(char ke[64], char ki[64]) {
    msp_key(ke, 64, "_", MSP_STATE_EPOCH_SUFFIX);
    msp_key(ki, 64, "_", MSP_STATE_INVENTORY_SUFFIX);
}

/* An MGET of the two markers names the fenced epoch in both. */
static int fence_holds(const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return 0;
    for (size_t i = 0; i < 2; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING || strcmp(r->element[i]->str, fence.epoch))
            return 0;
    return 1;
}

static void p_lost(pipe_t *p) {
    fence.lost = 1;
    snprintf(p->err, p->errsz, "Redis lost its state during the step (the state epoch changed)");
}

/* Command index p->n - 1 is of kind k. */
static void p_kind(pipe_t *p, int k) {
    if (p->n > p->kind_cap) {
        int cap = p->n < 64 ? 64 : 2 * p->n;
        unsigned char *nk = realloc(p->kind, (size_t)cap);
        if (!nk) {
            p->failed = 1;
            return;
        }
        memset(nk + p->kind_cap, K_PLAIN, (size_t)(cap - p->kind_cap));
        p->kind = nk;
        p->kind_cap = cap;
    }
    if (k != K_PLAIN || p->kind)
        p->kind[p->n - 1] = (unsigned char)k;
}

/* Encoded into p->out, handed to hiredis in one piece by p_run: redisAppendCommandArgv made an
 * sds per command and grew the connection's buffer by copies, 7.5 % of the normalizer's
 * instructions (callgrind, docs/benchmarks.md). */
static void p_append(pipe_t *p, int argc, const char **argv, const size_t *lens) {
    if (nz_pipe_cmdv(&p->out, argc, argv, lens) < 0)
        p->failed = 1;
    p->n++;
    if (p->kind)
        p_kind(p, K_PLAIN);
}

/* Queue the WATCH and its check ahead of the pipeline's first command. */
static void p_arm(pipe_t *p) {
    if (!fence.epoch[0] || fence.armed)
        return;
    char ke[64], ki[64];
    marker_keys(ke, ki);
    const char *w[] = {"WATCH", ke, ki}, *m[] = {"MGET", ke, ki};
    size_t l[] = {5, strlen(ke), strlen(ki)};
    p_append(p, 3, w, l);
    p_kind(p, K_WATCH);
    l[0] = 4;
    p_append(p, 3, m, l);
    p_kind(p, K_CHECK);
    fence.armed = ARM_QUEUED;
}

/* Arm in a round trip of its own: a transaction queued behind an unchecked WATCH in the same
 * pipeline would run even when the check fails. */
static void p_arm_now(pipe_t *p) {
    if (!fence.epoch[0] || fence.armed == ARM_CHECKED)
        return;
    if (p->n > 0 || fence.armed) { /* a write pipeline starts with its MULTI */
        snprintf(p->err, p->errsz, "internal: a transaction queued behind other commands");
        p->failed = 1;
        return;
    }
    char ke[64], ki[64];
    marker_keys(ke, ki);
    redisReply *w = redisCommand(p->c, "WATCH %s %s", ke, ki);
    redisReply *m =
        w && w->type == REDIS_REPLY_STATUS ? redisCommand(p->c, "MGET %s %s", ke, ki) : NULL;
    if (m && !fence_holds(m))
        p_lost(p);
    else if (!m)
        snprintf(p->err, p->errsz, "redis: %s", p->c->err ? p->c->errstr : "WATCH failed");
    else
        fence.armed = ARM_CHECKED;
    if (!fence.armed)
        p->failed = 1;
    if (w)
        freeReplyObject(w);
    if (m)
        freeReplyObject(m);
}

static void p_raw(pipe_t *p, int argc, const char **argv)
{
    size_t lens[64];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (!strcmp(argv[0], "MULTI"))
        p_arm_now(p);
    else
        p_arm(p);
    p_append(p, argc, argv, lens);
    if (!strcmp(argv[0], "EXEC")) {
        p_kind(p, K_EXEC);
        fence.armed = 0;
    }
}

/* The coalescer's output: a gathered command can have any number of arguments. */
static int p_emit(void *arg, int argc, const char **argv, const size_t *lens)
{
    pipe_t *p = arg;
    p_arm(p);
    p_append(p, argc, argv, lens);
    return 0;
}

static void p_cmd(pipe_t *p, int argc, const char **argv)
{
    int block_end = !strcmp(argv[0], "EXEC") || !strcmp(argv[0], "MULTI");
    if (!p->wc)
        p_raw(p, argc, argv);
    else if (block_end && nz_coal_flush(p->wc) == 0)
        p_raw(p, argc, argv);
    else if (block_end || nz_coal_cmdv(p->wc, argc, argv) < 0)
        p->failed = 1;
}

/* The start of a public call: nothing armed yet on its connection, nothing lost. */
static void fence_begin(void) {
    fence.armed = 0;
    fence.lost = 0;
}

/* The end of a public call with result rc: a WATCH left armed would make the caller's own
 * transactions on this connection conditional. @returns rc, -1 when UNWATCH failed, or
 * NZ_INV_LOST when the call failed because the state changed. */
static int fence_end(redisContext *c, int rc) {
    if (rc >= 0 && fence.armed) {
        redisReply *r = redisCommand(c, "UNWATCH");
        if (!r || r->type != REDIS_REPLY_STATUS)
            rc = -1;
        if (r)
            freeReplyObject(r);
    }
    fence.armed = 0;
    return rc < 0 && fence.lost ? NZ_INV_LOST : rc;
}

#define P(p, ...)                                                                                 \
    do {                                                                                          \
        const char *argv_[] = {__VA_ARGS__};                                                      \
        p_cmd((p), (int)(sizeof argv_ / sizeof argv_[0]), argv_);                                 \
    } while (0)

/*
 * Queue an entry of the asset's history (trace.h: trace:asset:<aid>) on p, with the writes it
 * tells of (same pipeline, same MULTI where there is one). facts stolen.
 */
static void p_history(pipe_t *p, const char *tenant, const char *aid, const char *step,
                      json_t *facts) {
    char k[KEYLEN + 32];
    char *text = msp_trace_entry(msp_wall_ms(), step, "normalizer", facts);
    if (!text) {
        p->failed = 1;
        return;
    }
    msp_key(k, sizeof k, tenant, "trace:asset:%s", aid);
    P(p, "RPUSH", k, text);
    P(p, "LTRIM", k, "-" MSP_TRACE_MAX_STR, "-1");
    P(p, "EXPIRE", k, MSP_TRACE_TTL_STR);
    msp_trace_journal(k, text, 0);
    msp_json_free(text);
}

/* The integration of a source id "<integration>:<vendor id>" as a new JSON string. */
static json_t *src_integration(const char *src_id) {
    const char *colon = strchr(src_id, ':');
    return colon ? json_stringn(src_id, (size_t)(colon - src_id)) : json_null();
}

/* The facts of a source joining or leaving: source, integration, vendor id, why. */
static json_t *src_facts(const char *src_id, const char *why, const char *match) {
    const char *colon = strchr(src_id, ':');
    return json_pack("{s:s,s:o,s:s,s:s,s:s?}", "source", src_id, "integration",
                     src_integration(src_id), "vendor_id", colon ? colon + 1 : src_id, "why", why,
                     "match_key", match);
}

/* Read every reply. @returns 0, or -1 (err set; replies freed). */
static int p_run(pipe_t *p)
{
    free(p->r);
    p->r   = calloc((size_t)(p->n ? p->n : 1), sizeof *p->r);
    p->cap = p->n;
    int rc = p->failed || !p->r ? -1 : 0;
    /* A failed pipeline is never sent (the caller drops the connection with what it holds): a
     * transaction queued after a failed fence check must not run. */
    if (rc == 0 && p->out.buf.len &&
        redisAppendFormattedCommand(p->c, p->out.buf.p, p->out.buf.len) != REDIS_OK)
        rc = -1;
    nz_pipe_reset(&p->out);
    int w = 0; /* the caller's replies are p->r[0..w), in the order of its commands */
    for (int i = 0; i < p->n && rc == 0; i++) {
        void *rep = NULL;
        if (redisGetReply(p->c, &rep) != REDIS_OK) {
            rc = -1;
            break;
        }
        const redisReply *r = rep;
        int kind = p->kind && i < p->kind_cap ? p->kind[i] : K_PLAIN;
        if (kind == K_WATCH || kind == K_CHECK) {
            int holds = kind == K_WATCH ? r->type == REDIS_REPLY_STATUS : fence_holds(r);
            freeReplyObject(rep);
            if (!holds) {
                p_lost(p);
                rc = -1;
            }
            continue;
        }
        p->r[w++] = rep;
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(p->err, p->errsz, "redis: %s", r->str);
            rc = -1;
        } else if (kind == K_EXEC && r->type != REDIS_REPLY_ARRAY) {
            p_lost(p); /* nil: a watched marker changed */
            rc = -1;
        } else if (kind == K_EXEC) {
            for (size_t e = 0; e < r->elements; e++)
                if (r->element[e]->type == REDIS_REPLY_ERROR) {
                    snprintf(p->err, p->errsz, "redis: %s", r->element[e]->str);
                    rc = -1;
                    break;
                }
        }
    }
    if (rc < 0 && p->c->err)
        snprintf(p->err, p->errsz, "redis: %s", p->c->errstr);
    else if (rc < 0 && !p->err[0])
        snprintf(p->err, p->errsz, "redis: pipeline failed");
    if (rc < 0)
        fence.armed = 0; /* the caller drops the connection */
    else if (fence.armed == ARM_QUEUED)
        fence.armed = ARM_CHECKED;
    return rc;
}

static void p_reset(pipe_t *p)
{
    for (int i = 0; i < p->cap && p->r; i++)
        if (p->r[i])
            freeReplyObject(p->r[i]);
    free(p->r);
    p->r      = NULL;
    p->n      = 0;
    p->cap    = 0;
    p->failed = 0;
    free(p->kind);
    p->kind = NULL;
    p->kind_cap = 0;
    nz_pipe_free(&p->out);
}

static const char *p_str(const pipe_t *p, int i)
{
    const redisReply *r = p->r[i];
    return r && r->type == REDIS_REPLY_STRING ? r->str : NULL;
}

static void key(char *buf, const char *tenant, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void key(char *buf, const char *tenant, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    msp_vkey(buf, KEYLEN, tenant, fmt, ap);
    va_end(ap);
}

void nz_inv_out_clear(nz_inv_out_t *out)
{
    for (size_t i = 0; i < out->n; i++) {
        free(out->pub[i].tenant);
        free(out->pub[i].asset_id);
        msp_json_free(out->pub[i].merged);
        msp_json_free(out->pub[i].change);
    }
    free(out->pub);
    free(out->slot);
    memset(out, 0, sizeof *out);
}

static size_t out_hash(const char *tenant, const char *aid) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over tenant, a separator, asset */
    for (const unsigned char *c = (const unsigned char *)tenant; *c; c++)
        h = (h ^ *c) * 1099511628211ULL;
    h = (h ^ 0x1f) * 1099511628211ULL;
    for (const unsigned char *c = (const unsigned char *)aid; *c; c++)
        h = (h ^ *c) * 1099511628211ULL;
    return (size_t)h;
}

/* The slot of tenant|aid in out's index: the entry's, or the free one to take. */
static size_t *out_slot(const nz_inv_out_t *out, const char *tenant, const char *aid) {
    size_t mask = out->nslot - 1;
    for (size_t i = out_hash(tenant, aid) & mask;; i = (i + 1) & mask) {
        size_t *s = &out->slot[i];
        if (*s == 0 || (strcmp(out->pub[*s - 1].asset_id, aid) == 0 &&
                        strcmp(out->pub[*s - 1].tenant, tenant) == 0))
            return s;
    }
}

/* Room in the index for one more entry (rebuilt larger at half full). @returns 0 / -1. */
static int out_index_grow(nz_inv_out_t *out) {
    if (2 * (out->n + 1) < out->nslot)
        return 0;
    size_t n = out->nslot ? 2 * out->nslot : 64;
    size_t *slot = calloc(n, sizeof *slot);
    if (!slot)
        return -1;
    free(out->slot);
    out->slot = slot;
    out->nslot = n;
    for (size_t i = 0; i < out->n; i++)
        *out_slot(out, out->pub[i].tenant, out->pub[i].asset_id) = i + 1;
    return 0;
}

/* Publish aid as merged (steals merged and change). One entry per asset: a later state replaces
 * the merged record; a date change is replaced only by a newer change (a quiet re-merge, such as
 * a split, leaves the parked change of the asset to be published). @returns 0 / -1 no memory. */
static int out_add(nz_inv_out_t *out, const char *tenant, const char *aid, char *merged,
                   char *change, const char *change_id)
{
    nz_inv_pub_t *e = NULL;
    if (out_index_grow(out) < 0) {
        msp_json_free(merged);
        msp_json_free(change);
        return -1;
    }
    size_t *slot = out_slot(out, tenant, aid);
    if (*slot)
        e = &out->pub[*slot - 1];
    if (!e) {
        if (out->n == out->cap) {
            size_t        cap = out->cap ? 2 * out->cap : 8;
            nz_inv_pub_t *g   = realloc(out->pub, cap * sizeof *g);
            if (!g) {
                msp_json_free(merged);
                msp_json_free(change);
                return -1;
            }
            out->pub = g;
            out->cap = cap;
        }
        e = &out->pub[out->n];
        memset(e, 0, sizeof *e);
        e->tenant   = strdup(tenant);
        e->asset_id = strdup(aid);
        if (!e->tenant || !e->asset_id) {
            free(e->tenant);
            free(e->asset_id);
            msp_json_free(merged);
            msp_json_free(change);
            return -1;
        }
        *slot = ++out->n;
    }
    msp_json_free(e->merged);
    e->merged = merged;
    if (change) {
        msp_json_free(e->change);
        e->change = change;
        snprintf(e->change_id, sizeof e->change_id, "%s", change_id ? change_id : "");
    }
    return 0;
}

/* ---- one asset: load members, merge, store ----------------------------------------------- */

typedef struct asset_ctx_s {
    nz_member_t *m;
    json_t     **recs;
    char       **ids;
    char       **wrote;     /* 2 per member */
    size_t       n;
    json_t      *prev;
    json_t      *edits;
    json_t      *pending;   /* parked change, or NULL */
} asset_ctx_t;

static void ctx_free(asset_ctx_t *a)
{
    for (size_t i = 0; i < a->n; i++) {
        json_decref(a->recs[i]);
        free(a->ids[i]);
        free(a->wrote[2 * i]);
        free(a->wrote[2 * i + 1]);
    }
    free(a->m);
    free(a->recs);
    free(a->ids);
    free(a->wrote);
    json_decref(a->prev);
    json_decref(a->edits);
    json_decref(a->pending);
    memset(a, 0, sizeof *a);
}

static int cmp_ids(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Keep member e (its record rec, stolen; wr the HMGET reply of its echo guards, or NULL) as the
 * next of the *w members kept so far; a member without a record is not part of the asset. */
static void ctx_keep(asset_ctx_t *a, size_t *w, size_t e, json_t *rec, const redisReply *wr)
{
    if (!json_is_object(rec)) {
        json_decref(rec);
        free(a->ids[e]);
        return;
    }
    size_t i   = (*w)++;
    a->ids[i]  = a->ids[e];
    a->recs[i] = rec;
    for (int f = 0; f < 2; f++)
        a->wrote[2 * i + f] =
            wr && wr->type == REDIS_REPLY_ARRAY && wr->element[f]->type == REDIS_REPLY_STRING
                ? strdup(wr->element[f]->str)
                : NULL;
    a->m[i] = (nz_member_t){a->ids[i], rec, {a->wrote[2 * i], a->wrote[2 * i + 1]}};
}

/* The four reads of an asset's head: members, merged record, edits, parked change. */
static void head_cmds(pipe_t *p, const char *tenant, const char *aid)
{
    char k[KEYLEN], k2[KEYLEN], k3[KEYLEN], k4[KEYLEN];
    key(k, tenant, "inv:members:%s", aid);
    key(k2, tenant, "inv:asset:%s", aid);
    key(k3, tenant, "inv:edit:%s", aid);
    key(k4, tenant, "inv:dpending");
    P(p, "SMEMBERS", k);
    P(p, "GET", k2);
    P(p, "HGETALL", k3);
    P(p, "HGET", k4, aid);
}

/* The head from the replies r[0..4) of head_cmds (r NULL: an asset not stored yet), with room
 * for extra more members whose ids the caller appends before ctx_sort_ids. @returns 0 / -1. */
static int ctx_head(asset_ctx_t *a, redisReply *const *r, size_t extra)
{
    const redisReply *mr = r ? r[0] : NULL, *er = r ? r[2] : NULL;
    size_t            n  = mr && mr->type == REDIS_REPLY_ARRAY ? mr->elements : 0;
    a->m     = calloc(n + extra + 1, sizeof *a->m);
    a->recs  = calloc(n + extra + 1, sizeof *a->recs);
    a->ids   = calloc(n + extra + 1, sizeof *a->ids);
    a->wrote = calloc(2 * (n + extra + 1), sizeof *a->wrote);
    a->edits = json_object();
    if (!a->m || !a->recs || !a->ids || !a->wrote || !a->edits)
        return -1;
    for (size_t i = 0; i < n; i++)
        a->ids[a->n++] = strdup(mr->element[i]->str);
    if (r && r[1]->type == REDIS_REPLY_STRING)
        a->prev = json_loads(r[1]->str, 0, NULL);
    for (size_t i = 0; er && er->type == REDIS_REPLY_ARRAY && i + 1 < er->elements; i += 2)
        json_object_set_new(a->edits, er->element[i]->str, json_string(er->element[i + 1]->str));
    if (r && r[3]->type == REDIS_REPLY_STRING)
        a->pending = json_loads(r[3]->str, 0, NULL);
    return 0;
}

/* Sort the member ids and drop repeats. */
static void ctx_sort_ids(asset_ctx_t *a)
{
    qsort(a->ids, a->n, sizeof *a->ids, cmp_ids);
    size_t w = 0;
    for (size_t e = 0; e < a->n; e++) {
        if (w && strcmp(a->ids[w - 1], a->ids[e]) == 0)
            free(a->ids[e]);
        else
            a->ids[w++] = a->ids[e];
    }
    a->n = w;
}

/* Read the asset's members (sorted by source id), their records and echo guards, the stored
 * merged record, the edits and the parked change. @returns 0 / -1. */
static int asset_load(redisContext *c, const char *tenant, const char *aid, asset_ctx_t *a,
                      char *err, size_t errsz)
{
    char   k[KEYLEN], k4[KEYLEN];
    pipe_t p = {.c = c, .err = err, .errsz = errsz};
    memset(a, 0, sizeof *a);
    head_cmds(&p, tenant, aid);
    if (p_run(&p) < 0 || ctx_head(a, p.r, 0) < 0) {
        p_reset(&p);
        return -1;
    }
    p_reset(&p);
    ctx_sort_ids(a);
    size_t n = a->n;
    if (n == 0)
        return 0;

    key(k4, tenant, "wb:wrote");
    for (size_t i = 0; i < n; i++) {
        key(k, tenant, "inv:src:asset:%s", a->ids[i]);
        P(&p, "GET", k);
        char f1[KEYLEN], f2[KEYLEN];
        snprintf(f1, sizeof f1, "%s|purchase", a->ids[i]);
        snprintf(f2, sizeof f2, "%s|warranty", a->ids[i]);
        P(&p, "HMGET", k4, f1, f2);
    }
    if (p_run(&p) < 0) {
        p_reset(&p);
        a->n = n;
        return -1;
    }
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        const char *js = p_str(&p, (int)(2 * i));
        ctx_keep(a, &w, i, js ? json_loads(js, 0, NULL) : NULL, p.r[2 * i + 1]);
    }
    a->n = w;
    p_reset(&p);
    return 0;
}

/* A merged asset ready to write: its JSON, the date change to park and publish (or NULL). */
typedef struct prep_s {
    char *mj;           /* json_dumps of the merged asset */
    char *cj;           /* date.changes JSON or NULL */
    int   park;         /* cj is new: HSET inv:dpending */
    int   gone;
    char  change_id[40];
} prep_t;

static void prep_free(prep_t *pr)
{
    msp_json_free(pr->mj);
    msp_json_free(pr->cj);
    memset(pr, 0, sizeof *pr);
}

/* Merge a's members. quiet: the re-merge of a split, which changes no date anywhere (no
 * date.changes; the parked change, if any, stays parked for the caller that made it).
 * reason "edit"/"policy". @returns 0 / -1 out of memory. */
static int asset_prep(const char *tenant, const char *aid, const asset_ctx_t *a,
                      const nz_upserted_t *up, size_t nup, unsigned edit_mask, const char *reason,
                      const char *change_id, const char *at, int quiet, prep_t *pr)
{
    memset(pr, 0, sizeof *pr);
    json_t *merged = nz_merge_asset(tenant, aid, a->m, a->n, a->edits, a->prev);
    json_t *dates  = quiet ? NULL
                           : nz_merge_change(a->prev, merged, a->m, a->n, up, nup, edit_mask);
    json_t *change = NULL;
    if (dates) {
        /* A change not yet acknowledged by Kafka is merged in, so that it is not lost. */
        json_t *all = json_is_object(a->pending) ? json_deep_copy(json_object_get(a->pending, "dates"))
                                                 : json_object();
        json_object_update(all, dates);
        const char *why = json_is_object(a->pending) &&
                                  !strcmp(json_string_value(json_object_get(a->pending, "reason")) ?: "", "edit")
                              ? "edit"
                              : reason;
        change   = nz_change_message(tenant, aid, change_id, why, all, a->m, a->n, at);
        pr->park = 1;
        json_decref(all);
        json_decref(dates);
    } else if (!quiet && json_is_object(a->pending)) {
        change = json_incref(a->pending);
    }
    pr->mj   = msp_json_dumps(merged, JSON_COMPACT);
    pr->cj   = change ? msp_json_dumps(change, JSON_COMPACT) : NULL;
    pr->gone = json_is_true(json_object_get(merged, "gone"));
    if (change)
        snprintf(pr->change_id, sizeof pr->change_id, "%s",
                 json_string_value(json_object_get(change, "change_id")) ?: "");
    json_decref(merged);
    json_decref(change);
    if (!pr->mj || (change && !pr->cj)) {
        prep_free(pr);
        return -1;
    }
    return 0;
}

/* The writes of a prepared asset (or of its deletion when pr is NULL). */
static void prep_cmds(pipe_t *p, const char *tenant, const char *aid, const prep_t *pr)
{
    char k[KEYLEN];
    if (!pr) {
        char kk[4][KEYLEN];
        key(kk[0], tenant, "inv:asset:%s", aid);
        key(kk[1], tenant, "inv:members:%s", aid);
        key(kk[2], tenant, "inv:edit:%s", aid);
        key(kk[3], tenant, "wb:%s", aid);
        P(p, "DEL", kk[0], kk[1], kk[2], kk[3]);
        key(k, tenant, "inv:assets");
        P(p, "ZREM", k, aid);
        key(k, tenant, "inv:gone:asset");
        P(p, "SREM", k, aid);
        key(k, tenant, "inv:dpending");
        P(p, "HDEL", k, aid);
        return;
    }
    /* The change is parked before the merged record is stored: a Redis that has the new record
     * (a replay then computes no change) has the parked one too, also when it was wiped between
     * the two commands (design.md "The parked date change after a Redis loss"). */
    if (pr->cj && pr->park) {
        key(k, tenant, "inv:dpending");
        P(p, "HSET", k, aid, pr->cj);
    }
    key(k, tenant, "inv:asset:%s", aid);
    P(p, "SET", k, pr->mj);
    key(k, tenant, "inv:assets");
    P(p, "ZADD", k, "0", aid);
    key(k, tenant, "inv:gone:asset");
    P(p, pr->gone ? "SADD" : "SREM", k, aid);
}

/* After the writes: hand the prepared asset to out (steals its strings). */
static int prep_out(nz_inv_out_t *out, const char *tenant, const char *aid, prep_t *pr)
{
    int rc = out_add(out, tenant, aid, pr->mj, pr->cj, pr->change_id);
    pr->mj = pr->cj = NULL;
    return rc;
}

/* Merge, store the merged record, park a date change (one asset, on its own). */
static int asset_store(redisContext *c, const char *tenant, const char *aid, asset_ctx_t *a,
                       const nz_upserted_t *up, size_t nup, unsigned edit_mask,
                       const char *reason, const char *change_id, const char *at,
                       nz_inv_out_t *out, char *err, size_t errsz)
{
    pipe_t p = {.c = c, .err = err, .errsz = errsz};
    prep_t pr;
    if (a->n == 0) {
        /* No member left: the asset is deleted (tombstone). */
        P(&p, "MULTI");
        prep_cmds(&p, tenant, aid, NULL);
        P(&p, "EXEC");
        int rc = p_run(&p);
        p_reset(&p);
        if (rc == 0 && out_add(out, tenant, aid, NULL, NULL, NULL) < 0)
            rc = -1;
        return rc;
    }
    if (asset_prep(tenant, aid, a, up, nup, edit_mask, reason, change_id, at, 0, &pr) < 0) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    P(&p, "MULTI");
    prep_cmds(&p, tenant, aid, &pr);
    P(&p, "EXEC");
    int rc = p_run(&p);
    p_reset(&p);
    if (rc == 0 && prep_out(out, tenant, aid, &pr) < 0) {
        snprintf(err, errsz, "out of memory");
        rc = -1;
    }
    prep_free(&pr);
    return rc;
}

static void new_change_id(char out[40])
{
    if (msp_random_id_hex(out, 16) != 0)
        snprintf(out, 40, "0");
}

/* Re-merge one asset after a member changed. */
static int asset_refresh(redisContext *c, const char *tenant, const char *aid,
                         const char *upserted_src, const json_t *upserted_old, const char *at,
                         nz_inv_out_t *out, char *err, size_t errsz)
{
    asset_ctx_t   a;
    char          cid[40];
    nz_upserted_t up = {upserted_src, upserted_old};
    if (asset_load(c, tenant, aid, &a, err, errsz) < 0) {
        ctx_free(&a);
        return -1;
    }
    new_change_id(cid);
    int rc = asset_store(c, tenant, aid, &a, &up, 1, 0, "policy", cid, at, out, err, errsz);
    ctx_free(&a);
    return rc;
}

/* ---- upserts, batched ------------------------------------------------------------------------ */

/*
 * nz_inv_run reads, per run of records up to the next split, in three pipelines: (1) per record
 * its link, stored record, and for each match key inv:mkey and inv:ksrc; (2) the member count of
 * every asset a key names (the NZ_ASSET_MAX_MEMBERS bound); then decides in batch order with an
 * overlay of its own decisions; (3) per touched asset its members, merged record, edits and
 * parked change, then (4) the records of the members not in the batch (at most
 * NZ_ASSET_MAX_MEMBERS) and their echo guards; merges each touched asset once and writes
 * everything in one MULTI/EXEC per tenant. A record whose key crosses the threshold while the key
 * names an asset stops the decisions there: what came before is applied, the asset is split
 * (split_asset, which patches the overlay with what it moved), and the decisions resume at that
 * record.
 */

typedef struct up_s {
    char         *tenant, *src_id;
    const json_t *canon;                     /* borrowed until nz_inv_run returns 0 */
    int           nk;
    char          keys[NZ_MKEY_MAX][NZ_MKEY_LEN];
    /* read */
    char         *link;                      /* stored inv:link, or NULL */
    json_t       *old;                       /* stored record, or NULL */
    char         *mkey[NZ_MKEY_MAX];         /* stored inv:mkey of each key, or NULL */
    char         *ksrc[NZ_MKEY_MAX];         /* stored inv:ksrc of each key, or NULL */
    /* decided */
    char          aid[KEYLEN];
    char         *ksrc_new[NZ_MKEY_MAX];     /* inv:ksrc to write (NZ_KEY_DEMOTED: demote) */
    int           claim[NZ_MKEY_MAX];        /* HSET inv:mkey key aid: it had no owner */
    int join;                                /* -2 already linked, -1 joined as a new asset,
                                                else joined through keys[join] */
    char *js;                                /* batch_apply: canon dumped (msp_json_free) */
} up_t;

struct nz_inv_s {
    int max_shared;
    nz_par_t *par; /* borrowed: the threads batch_apply merges and dumps on (may be NULL) */
    up_t *ups;
    size_t n, cap;
};

static void up_reads_free(up_t *u)
{
    free(u->link);
    u->link = NULL;
    json_decref(u->old);
    u->old = NULL;
    for (int i = 0; i < NZ_MKEY_MAX; i++) {
        free(u->mkey[i]);
        free(u->ksrc[i]);
        free(u->ksrc_new[i]);
        u->mkey[i] = u->ksrc[i] = u->ksrc_new[i] = NULL;
        u->claim[i] = 0;
    }
    u->aid[0] = '\0';
}

nz_inv_t *nz_inv_new(int max_shared)
{
    nz_inv_t *inv = calloc(1, sizeof *inv);
    if (inv)
        inv->max_shared = max_shared > 0 ? max_shared : NZ_IDENTITY_MAX_SHARED_DEFAULT;
    return inv;
}

void nz_inv_set_par(nz_inv_t *inv, nz_par_t *par) { inv->par = par; }

static void inv_clear(nz_inv_t *inv)
{
    for (size_t i = 0; i < inv->n; i++) {
        up_reads_free(&inv->ups[i]);
        free(inv->ups[i].tenant);
        free(inv->ups[i].src_id);
    }
    inv->n = 0;
}

void nz_inv_destroy(nz_inv_t *inv)
{
    if (!inv)
        return;
    inv_clear(inv);
    free(inv->ups);
    free(inv);
}

size_t nz_inv_queued(const nz_inv_t *inv) { return inv->n; }

void nz_inv_discard(nz_inv_t *inv) { inv_clear(inv); }

int nz_inv_queue(nz_inv_t *inv, const char *tenant, const char *src_id, const json_t *canon)
{
    if (inv->n == inv->cap) {
        size_t cap = inv->cap ? 2 * inv->cap : 64;
        up_t  *g   = realloc(inv->ups, cap * sizeof *g);
        if (!g)
            return -1;
        inv->ups = g;
        inv->cap = cap;
    }
    up_t *u = &inv->ups[inv->n];
    memset(u, 0, sizeof *u);
    u->tenant = strdup(tenant);
    u->src_id = strdup(src_id);
    if (!u->tenant || !u->src_id) {
        free(u->tenant);
        free(u->src_id);
        return -1;
    }
    u->canon = canon;
    u->nk    = nz_match_keys(canon, u->keys, NZ_MKEY_MAX);
    inv->n++;
    return 0;
}

static char *reply_dup(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
}

/* "<tenant>\x1f<name>": the overlay maps are per tenant. */
static const char *tk(char *buf, const char *tenant, const char *name)
{
    size_t t = strnlen(tenant, KEYLEN - 1), n = strnlen(name, KEYLEN - 1);
    memcpy(buf, tenant, t);
    buf[t] = '\x1f';
    memcpy(buf + t + 1, name, n);
    buf[t + 1 + n] = '\0';
    return buf;
}

/* A command of any length, built argument by argument. */
typedef struct argv_s {
    const char **v;
    size_t      *l;
    size_t       n, cap;
    int          oom;
} argv_t;

static void av_push(argv_t *av, const char *s)
{
    if (av->n == av->cap) {
        size_t       cap = av->cap ? av->cap * 2 : 64;
        const char **v   = realloc(av->v, cap * sizeof *v);
        size_t      *l   = v ? realloc(av->l, cap * sizeof *l) : NULL;
        if (v)
            av->v = v;
        if (!v || !l) {
            av->oom = 1;
            return;
        }
        av->l   = l;
        av->cap = cap;
    }
    av->v[av->n]   = s;
    av->l[av->n++] = strlen(s);
}

/* Queue av as one command and start the next. */
static void av_send(pipe_t *p, argv_t *av)
{
    p_arm(p);
    if (av->oom)
        p->failed = 1;
    else
        p_append(p, (int)av->n, av->v, av->l);
    av->n = 0;
}

static void av_free(argv_t *av)
{
    free(av->v);
    free(av->l);
}

/* An index into the ups or the touched assets, with its tenant: sorted, they group by tenant
 * keeping batch order within one. */
typedef struct {
    const char *tenant;
    size_t i;
} tenant_ix_t;

static int cmp_tenant_ix(const void *x, const void *y) {
    const tenant_ix_t *a = x, *b = y;
    int c = strcmp(a->tenant, b->tenant);
    return c ? c : (a->i > b->i) - (a->i < b->i);
}

/*
 * Reads (1) and (2) for every queued up. counts: tenant|asset → members stored. (1) is four
 * commands per tenant whatever the number of records: HMGET inv:link, MGET of the stored
 * records, HMGET inv:mkey and inv:ksrc of every match key.
 */
static int batch_read(nz_inv_t *inv, redisContext *c, json_t *counts, char *err, size_t errsz)
{
    pipe_t  p = {.c = c, .err = err, .errsz = errsz};
    char    k[KEYLEN];
    argv_t  av    = {0};
    tenant_ix_t *order = malloc((inv->n ? inv->n : 1) * sizeof *order);
    char  (*src)[KEYLEN] = malloc((inv->n ? inv->n : 1) * sizeof *src);
    int     rc = -1;
    if (!order || !src) {
        snprintf(err, errsz, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < inv->n; i++) {
        order[i] = (tenant_ix_t){inv->ups[i].tenant, i};
        up_reads_free(&inv->ups[i]);
        key(src[i], inv->ups[i].tenant, "inv:src:asset:%s", inv->ups[i].src_id);
    }
    qsort(order, inv->n, sizeof *order, cmp_tenant_ix);
    for (size_t g = 0, e; g < inv->n; g = e) {
        const char *tenant = inv->ups[order[g].i].tenant;
        int         nkeys  = 0;
        for (e = g; e < inv->n && strcmp(inv->ups[order[e].i].tenant, tenant) == 0; e++)
            nkeys += inv->ups[order[e].i].nk;
        key(k, tenant, "inv:link");
        av_push(&av, "HMGET");
        av_push(&av, k);
        for (size_t i = g; i < e; i++)
            av_push(&av, inv->ups[order[i].i].src_id);
        av_send(&p, &av);
        av_push(&av, "MGET");
        for (size_t i = g; i < e; i++)
            av_push(&av, src[order[i].i]);
        av_send(&p, &av);
        for (int which = 0; which < 2 && nkeys; which++) {
            key(k, tenant, which ? "inv:ksrc" : "inv:mkey");
            av_push(&av, "HMGET");
            av_push(&av, k);
            for (size_t i = g; i < e; i++)
                for (int a = 0; a < inv->ups[order[i].i].nk; a++)
                    av_push(&av, inv->ups[order[i].i].keys[a]);
            av_send(&p, &av);
        }
    }
    if (p_run(&p) < 0)
        goto out;
    int r = 0;
    for (size_t g = 0, e; g < inv->n; g = e) {
        const char *tenant = inv->ups[order[g].i].tenant;
        int         nkeys  = 0;
        for (e = g; e < inv->n && strcmp(inv->ups[order[e].i].tenant, tenant) == 0; e++)
            nkeys += inv->ups[order[e].i].nk;
        const redisReply *lr = p.r[r++], *sr = p.r[r++];
        const redisReply *mr = nkeys ? p.r[r++] : NULL, *kr = nkeys ? p.r[r++] : NULL;
        size_t            want[4] = {e - g, e - g, (size_t)nkeys, (size_t)nkeys};
        const redisReply *got[4]  = {lr, sr, mr, kr};
        for (int w = 0; w < (nkeys ? 4 : 2); w++)
            if (got[w]->type != REDIS_REPLY_ARRAY || got[w]->elements != want[w]) {
                snprintf(err, errsz, "redis: unexpected reply to the inventory reads");
                goto out;
            }
        for (size_t i = g, at = 0; i < e; i++) {
            up_t *u = &inv->ups[order[i].i];
            const redisReply *se = sr->element[i - g];
            u->link              = reply_dup(lr->element[i - g]);
            if (se->type == REDIS_REPLY_STRING)
                u->old = json_loads(se->str, 0, NULL);
            for (int a = 0; a < u->nk; a++, at++) {
                u->mkey[a] = reply_dup(mr->element[at]);
                u->ksrc[a] = reply_dup(kr->element[at]);
            }
        }
    }
    rc = 0;
out:
    p_reset(&p);
    av_free(&av);
    free(order);
    free(src);
    if (rc < 0)
        return -1;

    /* (2) the size of every asset a key of an unlinked record names */
    char tkbuf[2 * KEYLEN];
    for (size_t i = 0; i < inv->n; i++) {
        up_t *u = &inv->ups[i];
        for (int a = 0; a < u->nk && !u->link; a++) {
            if (!u->mkey[a] || json_object_get(counts, tk(tkbuf, u->tenant, u->mkey[a])))
                continue;
            json_object_set_new(counts, tkbuf, json_integer(-1));   /* asked */
            key(k, u->tenant, "inv:members:%s", u->mkey[a]);
            P(&p, "SCARD", k);
        }
    }
    if (p.n == 0)
        return 0;
    if (p_run(&p) < 0) {
        p_reset(&p);
        return -1;
    }
    r = 0;
    for (size_t i = 0; i < inv->n; i++) {
        up_t *u = &inv->ups[i];
        for (int a = 0; a < u->nk && !u->link; a++) {
            json_t *v;
            if (!u->mkey[a] || !(v = json_object_get(counts, tk(tkbuf, u->tenant, u->mkey[a]))) ||
                json_integer_value(v) != -1)
                continue;
            const redisReply *sr = p.r[r++];
            json_integer_set(v, sr->type == REDIS_REPLY_INTEGER ? sr->integer : 0);
        }
    }
    p_reset(&p);
    return 0;
}

/* The overlay's value of tenant|name, else the stored one ("" in the overlay = deleted). */
static const char *ov_get(json_t *ov, const char *tenant, const char *name, const char *stored)
{
    char          buf[2 * KEYLEN];
    const json_t *v = json_object_get(ov, tk(buf, tenant, name));
    if (!v)
        return stored;
    const char *s = json_string_value(v);
    return s && s[0] ? s : NULL;
}

static void ov_set(json_t *ov, const char *tenant, const char *name, const char *v)
{
    char buf[2 * KEYLEN];
    json_object_set_new(ov, tk(buf, tenant, name), json_string(v ? v : ""));
}

typedef struct split_s {
    char tenant[KEYLEN], aid[KEYLEN], key[NZ_MKEY_LEN];
} split_t;

/* What the run changed that its reads do not show, tenant|name → value: links, inv:mkey ("" =
 * deleted), inv:ksrc, and the member count of assets. A split patches it too, so the reads of
 * the records after it stay good and a split costs no re-read of the rest of the batch. */
typedef struct overlay_s {
    json_t *link, *mkey, *ksrc, *counts;
    json_t *written;   /* tenant|asset → true: assets this run wrote */
} overlay_t;

/* Decide ups[from..) in order. @returns the index where a split must come first (its details in
 * sp), or inv->n. */
static size_t batch_decide(nz_inv_t *inv, size_t from, overlay_t *ov, split_t *sp)
{
    json_t *ov_link = ov->link, *ov_mkey = ov->mkey, *ov_ksrc = ov->ksrc, *counts = ov->counts;
    char    buf[NZ_MKEY_MAX][KEYLEN], tkbuf[2 * KEYLEN];
    size_t  i;
    for (i = from; i < inv->n; i++) {
        up_t       *u    = &inv->ups[i];
        const char *link = ov_get(ov_link, u->tenant, u->src_id, u->link);
        const char *mk[NZ_MKEY_MAX];
        int         hr[NZ_MKEY_MAX];
        int         stop = 0;
        for (int a = 0; a < u->nk && !stop; a++) {
            mk[a] = ov_get(ov_mkey, u->tenant, u->keys[a], u->mkey[a]);
            hr[a] = nz_key_holders_add(ov_get(ov_ksrc, u->tenant, u->keys[a], u->ksrc[a]),
                                       u->src_id, inv->max_shared, buf[a], sizeof buf[a]);
            if (hr[a] == 2 && mk[a]) {
                /* The key glued machines together: split that asset first. */
                snprintf(sp->tenant, sizeof sp->tenant, "%s", u->tenant);
                snprintf(sp->aid, sizeof sp->aid, "%s", mk[a]);
                snprintf(sp->key, sizeof sp->key, "%s", u->keys[a]);
                stop = 1;
            }
        }
        if (stop)
            break;
        u->join = -2;
        if (link) {
            snprintf(u->aid, sizeof u->aid, "%s", link);
        } else {
            u->join = -1;
            /* A new source joins the first asset a live key names, if it has room. */
            for (int a = 0; a < u->nk && !u->aid[0]; a++) {
                const char *ks = ov_get(ov_ksrc, u->tenant, u->keys[a], u->ksrc[a]);
                if (!mk[a] || hr[a] == 2 || (ks && strcmp(ks, NZ_KEY_DEMOTED) == 0))
                    continue;
                json_int_t n = json_integer_value(json_object_get(counts, tk(tkbuf, u->tenant, mk[a])));
                if (n < NZ_ASSET_MAX_MEMBERS) {
                    snprintf(u->aid, sizeof u->aid, "%s", mk[a]);
                    u->join = a;
                }
            }
            if (!u->aid[0])
                snprintf(u->aid, sizeof u->aid, "%s", u->src_id);
            json_t *n = json_object_get(counts, tk(tkbuf, u->tenant, u->aid));
            json_object_set_new(counts, tkbuf, json_integer((n ? json_integer_value(n) : 0) + 1));
            ov_set(ov_link, u->tenant, u->src_id, u->aid);
        }
        for (int a = 0; a < u->nk; a++) {
            const char *ks = ov_get(ov_ksrc, u->tenant, u->keys[a], u->ksrc[a]);
            if (hr[a] != 0) {
                u->ksrc_new[a] = strdup(buf[a]);
                ov_set(ov_ksrc, u->tenant, u->keys[a], buf[a]);
            }
            if (hr[a] == 2) {
                ov_set(ov_mkey, u->tenant, u->keys[a], NULL);
            } else if (!mk[a] && !(ks && strcmp(ks, NZ_KEY_DEMOTED) == 0)) {
                u->claim[a] = 1;
                ov_set(ov_mkey, u->tenant, u->keys[a], u->aid);
            }
        }
    }
    return i;
}

/* One touched asset of a run. */
typedef struct touched_s {
    const char    *tenant, *aid;    /* borrowed from the first up of the asset */
    size_t        *ups;             /* indexes of its ups in the range, in batch order */
    size_t         nup;
    int            fresh;           /* created by this range: nothing stored to read */
    asset_ctx_t    a;
    nz_upserted_t *up;              /* what nz_merge_change needs of them */
    char cid[40];                   /* the change id a date change of this merge gets */
    int failed;                     /* asset_prep ran out of memory */
    prep_t         pr;
} touched_t;

/* The up of t that last upserted src, or NULL. */
static const up_t *batch_member(const nz_inv_t *inv, const touched_t *t, const char *src)
{
    for (size_t i = t->nup; i-- > 0;)
        if (strcmp(inv->ups[t->ups[i]].src_id, src) == 0)
            return &inv->ups[t->ups[i]];
    return NULL;
}

/* Group ups[from..to) by asset. A linear scan per up would be quadratic in the batch: the
 * touched assets are found through a jansson object keyed tenant|asset. @returns nt or -1. */
static long batch_group(nz_inv_t *inv, size_t from, size_t to, overlay_t *ov, touched_t *t)
{
    json_t *idx = json_object();
    size_t  nt  = 0;
    char    tkbuf[2 * KEYLEN];
    if (!idx)
        return -1;
    for (size_t i = from; i < to; i++) {
        up_t   *u = &inv->ups[i];
        json_t *v = json_object_get(idx, tk(tkbuf, u->tenant, u->aid));
        size_t  j = v ? (size_t)json_integer_value(v) : nt;
        if (!v) {
            t[nt].tenant = u->tenant;
            t[nt].aid    = u->aid;
            t[nt].ups    = malloc((to - i) * sizeof *t[nt].ups);
            t[nt].fresh  = !json_object_get(ov->written, tkbuf);
            if (!t[nt].ups) {
                json_decref(idx);
                return -1;
            }
            json_object_set_new(idx, tkbuf, json_integer((json_int_t)nt));
            nt++;
        }
        t[j].ups[t[j].nup++] = i;
    }
    json_decref(idx);
    /* Fresh: the asset is the new source's own (it had no link when read) and no up names it
     * through a stored link, and no earlier range of this run wrote it. Such an asset has no
     * members, record, edits, parked change or echo guards in Redis (a source gets a link when
     * it joins and loses its wb:wrote entries when it is removed). */
    for (size_t j = 0; j < nt; j++) {
        int created = 0, linked = 0;
        for (size_t e = 0; e < t[j].nup; e++) {
            const up_t *u = &inv->ups[t[j].ups[e]];
            created |= !u->link && strcmp(u->src_id, t[j].aid) == 0;
            linked |= u->link != NULL;
        }
        t[j].fresh = t[j].fresh && created && !linked;
        json_object_set_new(ov->written, tk(tkbuf, t[j].tenant, t[j].aid), json_true());
    }
    return (long)nt;
}

/*
 * The CPU of batch_apply — merge each touched asset (asset_prep) and dump each up's record —
 * on the prepare threads (par.h): items [0, nt) are the assets, [nt, nt + to - from) the ups.
 * Each item writes only its own touched_t or up_t.
 */
typedef struct {
    nz_inv_t *inv;
    touched_t *t;
    long nt;
    size_t from;
    const char *at;
} apply_cpu_t;

static void apply_cpu_share(void *arg, size_t lo, size_t hi) {
    apply_cpu_t *c = arg;
    for (size_t i = lo; i < hi; i++) {
        if (i < (size_t)c->nt) {
            touched_t *t = &c->t[i];
            t->failed = asset_prep(t->tenant, t->aid, &t->a, t->up, t->nup, 0, "policy", t->cid,
                                   c->at, 0, &t->pr) < 0;
        } else {
            up_t *u = &c->inv->ups[c->from + i - (size_t)c->nt];
            u->js = msp_json_dumps(u->canon, JSON_COMPACT);
        }
    }
}

/* Smallest share worth a hand-over to a helper thread (par.h). */
#define APPLY_MIN_SHARE 16

/* Apply the decided ups[from..to): load, merge and write each touched asset once. */
static int batch_apply(nz_inv_t *inv, redisContext *c, size_t from, size_t to, overlay_t *ov,
                       const char *at, nz_inv_out_t *out, char *err, size_t errsz)
{
    if (from == to)
        return 0;
    touched_t *t  = calloc(to - from, sizeof *t);
    long       nt = t ? batch_group(inv, from, to, ov, t) : -1;
    int        rc = -1;
    pipe_t     p  = {.c = c, .err = err, .errsz = errsz};
    nz_coal_t *wc = nz_coal_new(p_emit, &p);
    tenant_ix_t *uo = NULL, *to_ = NULL; /* ups and touched assets by tenant, then order */
    char       k[KEYLEN], k2[KEYLEN], k4[KEYLEN];
    if (nt < 0 || !wc) {
        snprintf(err, errsz, "out of memory");
        goto out;
    }
    /* (3) the touched assets that exist */
    for (long j = 0; j < nt; j++)
        if (!t[j].fresh)
            head_cmds(&p, t[j].tenant, t[j].aid);
    if (p.n && p_run(&p) < 0)
        goto out;
    for (long j = 0, r = 0; j < nt; j++) {
        asset_ctx_t *a = &t[j].a;
        t[j].up        = calloc(t[j].nup, sizeof *t[j].up);
        if (!t[j].up || ctx_head(a, t[j].fresh ? NULL : p.r + r, t[j].nup) < 0) {
            snprintf(err, errsz, "out of memory");
            goto out;
        }
        r += t[j].fresh ? 0 : 4;
        for (size_t e = 0; e < t[j].nup; e++) {
            const up_t *u = &inv->ups[t[j].ups[e]];
            a->ids[a->n++] = strdup(u->src_id);
            t[j].up[e]     = (nz_upserted_t){u->src_id, u->old};
        }
        ctx_sort_ids(a);
    }
    p_reset(&p);
    /* (4) the records of the members not in the batch, and the echo guards of the members that
     * were linked before (a source that was not has none) */
    for (long j = 0; j < nt; j++)
        for (size_t e = 0; e < t[j].a.n; e++) {
            const char *id = t[j].a.ids[e];
            const up_t *u  = batch_member(inv, &t[j], id);
            char        f1[KEYLEN], f2[KEYLEN];
            if (!u) {
                key(k, t[j].tenant, "inv:src:asset:%s", id);
                P(&p, "GET", k);
            }
            if (u && !u->link)
                continue;
            key(k4, t[j].tenant, "wb:wrote");
            snprintf(f1, sizeof f1, "%s|purchase", id);
            snprintf(f2, sizeof f2, "%s|warranty", id);
            P(&p, "HMGET", k4, f1, f2);
        }
    if (p.n && p_run(&p) < 0)
        goto out;
    int r = 0;
    for (long j = 0; j < nt; j++) {
        asset_ctx_t *a = &t[j].a;
        size_t       w = 0;
        for (size_t e = 0; e < a->n; e++) {
            const up_t *u   = batch_member(inv, &t[j], a->ids[e]);
            json_t     *rec = NULL;
            if (u)
                rec = json_incref((json_t *)u->canon);
            else if (p_str(&p, r))
                rec = json_loads(p_str(&p, r), 0, NULL);
            r += !u;
            ctx_keep(a, &w, e, rec, u && !u->link ? NULL : p.r[r++]);
        }
        a->n = w;
    }
    p_reset(&p);
    for (long j = 0; j < nt; j++)
        new_change_id(t[j].cid);
    apply_cpu_t cpu = {inv, t, nt, from, at};
    nz_par_run(inv->par, (size_t)nt + (to - from), APPLY_MIN_SHARE, apply_cpu_share, &cpu);
    for (long j = 0; j < nt; j++)
        if (t[j].failed) {
            snprintf(err, errsz, "out of memory");
            goto out;
        }
    /* the writes: one MULTI/EXEC per tenant, in batch order within it, gathered per key */
    uo = malloc((to - from) * sizeof *uo);
    to_ = malloc((size_t)(nt ? nt : 1) * sizeof *to_);
    if (!uo || !to_) {
        snprintf(err, errsz, "out of memory");
        goto out;
    }
    for (size_t i = from; i < to; i++)
        uo[i - from] = (tenant_ix_t){inv->ups[i].tenant, i};
    for (long j = 0; j < nt; j++)
        to_[j] = (tenant_ix_t){t[j].tenant, (size_t)j};
    qsort(uo, to - from, sizeof *uo, cmp_tenant_ix);
    qsort(to_, (size_t)nt, sizeof *to_, cmp_tenant_ix);
    p.wc = wc;
    P(&p, "MULTI");
    for (size_t g = 0, tj = 0, ge; g < to - from; g = ge) {
        const char *tenant = uo[g].tenant;
        for (ge = g + 1; ge < to - from && strcmp(uo[ge].tenant, tenant) == 0; ge++)
            ;
        for (size_t o = g; o < ge; o++) {
            up_t *u = &inv->ups[uo[o].i];
            if (!u->js) {
                snprintf(err, errsz, "out of memory");
                goto out;
            }
            key(k, tenant, "inv:src:asset:%s", u->src_id);
            P(&p, "SET", k, u->js);
            key(k, tenant, "inv:link");
            P(&p, "HSET", k, u->src_id, u->aid);
            key(k, tenant, "inv:members:%s", u->aid);
            P(&p, "SADD", k, u->src_id);
            if (u->join != -2 && !u->link) /* linked now, not when read: it joins */
                p_history(&p, tenant, u->aid, "joined",
                          u->join >= 0 ? src_facts(u->src_id,
                                                   "a match key it shares with the "
                                                   "asset's sources",
                                                   u->keys[u->join])
                                       : src_facts(u->src_id,
                                                   "no source of another machine "
                                                   "matched: a new asset",
                                                   NULL));
            key(k, tenant, "inv:mkey");
            key(k2, tenant, "inv:ksrc");
            for (int a = 0; a < u->nk; a++) {
                if (u->ksrc_new[a])
                    P(&p, "HSET", k2, u->keys[a], u->ksrc_new[a]);
                if (u->ksrc_new[a] && strcmp(u->ksrc_new[a], NZ_KEY_DEMOTED) == 0)
                    P(&p, "HDEL", k, u->keys[a]);
                else if (u->claim[a])   /* decided on the read: unclaimed (single writer) */
                    P(&p, "HSET", k, u->keys[a], u->aid);
            }
        }
        /* the touched assets are the ups' (same tenants, both sorted alike) */
        for (; tj < (size_t)nt && strcmp(to_[tj].tenant, tenant) == 0; tj++)
            prep_cmds(&p, tenant, t[to_[tj].i].aid, &t[to_[tj].i].pr);
    }
    P(&p, "EXEC");
    p.wc = NULL;
    if (p_run(&p) < 0)
        goto out;
    rc = 0;
    for (long j = 0; j < nt && rc == 0; j++)
        if (prep_out(out, t[j].tenant, t[j].aid, &t[j].pr) < 0) {
            snprintf(err, errsz, "out of memory");
            rc = -1;
        }
out:
    free(uo);
    free(to_);
    for (size_t i = from; i < to; i++) {
        msp_json_free(inv->ups[i].js);
        inv->ups[i].js = NULL;
    }
    p.wc = NULL;
    nz_coal_free(wc);
    p_reset(&p);
    for (size_t j = 0; t && j < to - from && t[j].aid; j++) {
        ctx_free(&t[j].a);
        prep_free(&t[j].pr);
        free(t[j].ups);
        free(t[j].up);
    }
    free(t);
    return rc;
}

/* What split_asset knows of the keys of the asset's members. */
typedef struct split_keys_s {
    const char *trigger;       /* the key that crossed the threshold */
    json_t     *ksrc;          /* key → stored inv:ksrc */
    json_t     *demote;        /* keys to mark demoted now → true */
    int         max_shared;
} split_keys_t;

static int split_demoted(const char *k, int holders, void *arg)
{
    split_keys_t *sk = arg;
    const char   *v  = json_string_value(json_object_get(sk->ksrc, k));
    if (v && strcmp(v, NZ_KEY_DEMOTED) == 0)
        return 1;
    if (strcmp(k, sk->trigger) == 0 || holders > sk->max_shared) {
        json_object_set_new(sk->demote, k, json_true());
        return 1;
    }
    return 0;
}

/*
 * The key sp->key crossed the threshold while naming asset sp->aid: demote it, and give each
 * member of the asset the asset its remaining keys give it (nz_split_asset). Every resulting
 * asset is merged quietly (no date change: the split itself writes nothing to any vendor) and
 * published. Edits and write-back state stay with the asset id that stays.
 */
static int split_asset(nz_inv_t *inv, redisContext *c, const split_t *sp, overlay_t *ov,
                       const char *at, nz_inv_out_t *out, char *err, size_t errsz)
{
    const char  *tenant = sp->tenant, *aid = sp->aid;
    asset_ctx_t  a;
    pipe_t       p = {.c = c, .err = err, .errsz = errsz};
    char         kmkey[KEYLEN], kksrc[KEYLEN], k[KEYLEN], tkbuf[2 * KEYLEN];
    split_keys_t sk = {sp->key, json_object(), json_object(), inv->max_shared};
    json_t      *mkeys = json_object();
    const char **owner = NULL;
    prep_t      *pr = NULL;
    size_t       npr = 0;
    int          rc = -1;
    key(kmkey, tenant, "inv:mkey");
    key(kksrc, tenant, "inv:ksrc");
    if (asset_load(c, tenant, aid, &a, err, errsz) < 0)
        goto out;
    for (size_t i = 0; i < a.n; i++) {
        char keys[NZ_MKEY_MAX][NZ_MKEY_LEN];
        int  nk = nz_match_keys(a.recs[i], keys, NZ_MKEY_MAX);
        for (int j = 0; j < nk; j++) {
            if (json_object_get(mkeys, keys[j]))
                continue;
            json_object_set_new(mkeys, keys[j], json_null());
            P(&p, "HGET", kmkey, keys[j]);
            P(&p, "HGET", kksrc, keys[j]);
        }
    }
    if (p.n && p_run(&p) < 0)
        goto out;
    {
        int         r = 0;
        const char *kname;
        json_t     *v;
        json_object_foreach(mkeys, kname, v) {   /* insertion order = the order asked */
            if (p_str(&p, r))
                json_object_set_new(mkeys, kname, json_string(p_str(&p, r)));
            if (p_str(&p, r + 1))
                json_object_set_new(sk.ksrc, kname, json_string(p_str(&p, r + 1)));
            r += 2;
        }
    }
    p_reset(&p);

    owner = calloc(a.n + 1, sizeof *owner);
    pr    = calloc(a.n + 1, sizeof *pr);
    if (!owner || !pr) {
        snprintf(err, errsz, "out of memory");
        goto out;
    }
    nz_split_asset(aid, a.m, a.n, inv->max_shared, split_demoted, &sk, owner);
    json_object_set_new(sk.demote, sp->key, json_true());   /* even if no member holds it now */

    P(&p, "MULTI");
    {
        const char *kname;
        json_t     *v;
        json_object_foreach(sk.demote, kname, v) {
            P(&p, "HSET", kksrc, kname, NZ_KEY_DEMOTED);
            P(&p, "HDEL", kmkey, kname);
            /* The overlay, patched as the writes are queued, is what the batch's later records
             * see (a failed run starts over with a fresh overlay). */
            ov_set(ov->ksrc, tenant, kname, NZ_KEY_DEMOTED);
            ov_set(ov->mkey, tenant, kname, NULL);
        }
    }
    for (size_t i = 0; i < a.n; i++)
        json_object_set_new(ov->counts, tk(tkbuf, tenant, owner[i]), json_integer(0));
    for (size_t i = 0; i < a.n; i++) {
        json_t *cnt = json_object_get(ov->counts, tk(tkbuf, tenant, owner[i]));
        json_integer_set(cnt, json_integer_value(cnt) + 1);
        if (owner[i] == aid)
            continue;
        key(k, tenant, "inv:members:%s", aid);
        P(&p, "SREM", k, a.ids[i]);
        key(k, tenant, "inv:members:%s", owner[i]);
        P(&p, "SADD", k, a.ids[i]);
        key(k, tenant, "inv:link");
        P(&p, "HSET", k, a.ids[i], owner[i]);
        ov_set(ov->link, tenant, a.ids[i], owner[i]);
        char why[KEYLEN + 80];
        snprintf(why, sizeof why, "the match key %s is shared by too many machines: split",
                 sp->key);
        p_history(&p, tenant, aid, "left", src_facts(a.ids[i], why, NULL));
        p_history(&p, tenant, owner[i], "joined", src_facts(a.ids[i], why, NULL));
        char keys[NZ_MKEY_MAX][NZ_MKEY_LEN];
        int  nk = nz_match_keys(a.recs[i], keys, NZ_MKEY_MAX);
        for (int j = 0; j < nk; j++) {
            const char *named = json_string_value(json_object_get(mkeys, keys[j]));
            if (named && strcmp(named, aid) == 0 && !json_object_get(sk.demote, keys[j])) {
                P(&p, "HSET", kmkey, keys[j], owner[i]);
                ov_set(ov->mkey, tenant, keys[j], owner[i]);
            }
        }
    }
    /* Each component, merged on its own: the one that keeps aid keeps its edits and prev. */
    for (size_t i = 0; i < a.n; i++) {
        int first = 1;
        for (size_t h = 0; h < i && first; h++)
            first = owner[h] != owner[i];
        if (!first)
            continue;
        asset_ctx_t sub = {0};
        nz_member_t m[a.n];
        for (size_t h = i; h < a.n; h++)
            if (owner[h] == owner[i])
                m[sub.n++] = a.m[h];
        sub.m = m;
        int keeps = owner[i] == aid;
        sub.prev  = keeps ? a.prev : NULL;
        sub.edits = keeps ? a.edits : NULL;
        if (asset_prep(tenant, owner[i], &sub, NULL, 0, 0, "policy", "", at, 1, &pr[npr]) < 0) {
            snprintf(err, errsz, "out of memory");
            goto out;
        }
        prep_cmds(&p, tenant, owner[i], &pr[npr++]);
    }
    P(&p, "EXEC");
    if (p_run(&p) < 0)
        goto out;
    rc = 0;
    for (size_t i = 0, o = 0; i < a.n && rc == 0; i++) {
        int first = 1;
        for (size_t h = 0; h < i && first; h++)
            first = owner[h] != owner[i];
        if (first && prep_out(out, tenant, owner[i], &pr[o++]) < 0)
            rc = -1;
    }
    MSP_INFO("identity.split", tenant, "key=%s asset=%s members=%zu assets=%zu", sp->key, aid,
             a.n, npr);
out:
    p_reset(&p);
    for (size_t i = 0; i < npr; i++)
        prep_free(&pr[i]);
    free(pr);
    free(owner);
    ctx_free(&a);
    json_decref(sk.ksrc);
    json_decref(sk.demote);
    json_decref(mkeys);
    return rc;
}

int nz_inv_run(nz_inv_t *inv, redisContext *c, const char *at, nz_inv_out_t *out, char *err,
               size_t errsz)
{
    overlay_t ov = {json_object(), json_object(), json_object(), json_object(), json_object()};
    fence_begin();
    int rc = batch_read(inv, c, ov.counts, err, errsz);
    for (size_t from = 0; rc == 0 && from < inv->n;) {
        split_t sp;
        size_t  to = batch_decide(inv, from, &ov, &sp);
        rc = batch_apply(inv, c, from, to, &ov, at, out, err, errsz);
        if (rc == 0 && to < inv->n)
            rc = split_asset(inv, c, &sp, &ov, at, out, err, errsz);
        from = to;
    }
    json_decref(ov.link);
    json_decref(ov.mkey);
    json_decref(ov.ksrc);
    json_decref(ov.counts);
    json_decref(ov.written);
    rc = fence_end(c, rc);
    if (rc == 0)
        inv_clear(inv);
    return rc;
}

/* ---- one source at a time ---------------------------------------------------------------- */

/* The asset a source is linked to, and the source's stored record (NULL when it has none or
 * it is not JSON). @returns 0, 1 the source is not linked, -1 Redis. */
static int source_load(redisContext *c, const char *tenant, const char *src_id, char aid[KEYLEN],
                       json_t **rec, char *err, size_t errsz)
{
    char   klink[KEYLEN], ksrc[KEYLEN];
    pipe_t p = {.c = c, .err = err, .errsz = errsz};
    *rec = NULL;
    key(klink, tenant, "inv:link");
    key(ksrc, tenant, "inv:src:asset:%s", src_id);
    P(&p, "HGET", klink, src_id);
    P(&p, "GET", ksrc);
    if (p_run(&p) < 0) {
        p_reset(&p);
        return -1;
    }
    int rc = p_str(&p, 0) ? 0 : 1;
    if (rc == 0) {
        snprintf(aid, KEYLEN, "%s", p_str(&p, 0));
        *rec = p_str(&p, 1) ? json_loads(p_str(&p, 1), 0, NULL) : NULL;
        if (*rec && !json_is_object(*rec)) {
            json_decref(*rec);
            *rec = NULL;
        }
    }
    p_reset(&p);
    return rc;
}

static int gone_one(redisContext *c, const char *tenant, const char *src_id, const char *at,
                    nz_inv_out_t *out, char *err, size_t errsz) {
    char    aid[KEYLEN], ksrc[KEYLEN];
    json_t *rec;
    int     rc = source_load(c, tenant, src_id, aid, &rec, err, errsz);
    if (rc != 0 || !rec) {
        json_decref(rec);
        return rc < 0 ? -1 : 1;
    }
    pipe_t  p   = {.c = c, .err = err, .errsz = errsz};
    json_t *old = json_deep_copy(rec);
    json_object_set_new_nocheck(rec, "gone", json_true());
    char *js = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    if (!js) {
        json_decref(old);
        return -1;
    }
    key(ksrc, tenant, "inv:src:asset:%s", src_id);
    P(&p, "MULTI");
    P(&p, "SET", ksrc, js);
    p_history(
        &p, tenant, aid, "source_gone",
        src_facts(src_id, "its vendor no longer lists it (a full sync did not see it)", NULL));
    P(&p, "EXEC");
    rc = p_run(&p);
    p_reset(&p);
    msp_json_free(js);
    if (rc == 0)
        rc = asset_refresh(c, tenant, aid, src_id, old, at, out, err, errsz);
    json_decref(old);
    return rc;
}

static int remove_one(redisContext *c, const char *tenant, const char *src_id, const char *at,
                      nz_inv_out_t *out, char *err, size_t errsz) {
    char    klink[KEYLEN], ksrc[KEYLEN], kmkey[KEYLEN], k[KEYLEN], aid[KEYLEN];
    json_t *rec;
    int     rc = source_load(c, tenant, src_id, aid, &rec, err, errsz);
    if (rc != 0)
        return rc;
    pipe_t p = {.c = c, .err = err, .errsz = errsz};
    key(klink, tenant, "inv:link");
    key(ksrc, tenant, "inv:src:asset:%s", src_id);
    key(kmkey, tenant, "inv:mkey");
    char keys[NZ_MKEY_MAX][NZ_MKEY_LEN];
    int  nk = rec ? nz_match_keys(rec, keys, NZ_MKEY_MAX) : 0;
    json_decref(rec);
    /* Drop the source, and the match keys it brought that point at this asset. */
    P(&p, "MULTI");
    P(&p, "DEL", ksrc);
    P(&p, "HDEL", klink, src_id);
    key(k, tenant, "inv:members:%s", aid);
    P(&p, "SREM", k, src_id);
    static const char *const per_src[] = {"inv:fp:asset", "inv:seen:asset"};
    for (size_t i = 0; i < 2; i++) {
        key(k, tenant, "%s", per_src[i]);
        P(&p, "HDEL", k, src_id);
    }
    key(k, tenant, "inv:srcgone:asset");
    P(&p, "SREM", k, src_id);
    p_history(&p, tenant, aid, "left", src_facts(src_id, "its integration was removed", NULL));
    for (int i = 0; i < nk; i++)
        P(&p, "EVAL",
          "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then "
          "return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0",
          "1", kmkey, keys[i], aid);
    static const char *const fields[] = {"purchase", "warranty"};
    key(k, tenant, "wb:wrote");
    for (size_t i = 0; i < 2; i++) {
        char f[KEYLEN];
        snprintf(f, sizeof f, "%s|%s", src_id, fields[i]);
        P(&p, "HDEL", k, f);
    }
    P(&p, "EXEC");
    rc = p_run(&p);
    p_reset(&p);
    if (rc < 0)
        return -1;
    /* The remaining members claim their keys again (those the removed source held). */
    asset_ctx_t a;
    if (asset_load(c, tenant, aid, &a, err, errsz) < 0) {
        ctx_free(&a);
        return -1;
    }
    char kksrc[KEYLEN];
    key(kksrc, tenant, "inv:ksrc");
    int claims = 0;
    for (size_t i = 0; i < a.n; i++) {
        char mk[NZ_MKEY_MAX][NZ_MKEY_LEN];
        int  n = nz_match_keys(a.recs[i], mk, NZ_MKEY_MAX);
        for (int j = 0; j < n; j++) { /* a demoted key names no asset, ever */
            if (claims++ == 0)
                P(&p, "MULTI");
            P(&p, "EVAL", claim_lua, "2", kmkey, kksrc, mk[j], aid);
        }
    }
    if (claims)
        P(&p, "EXEC");
    rc = p.n ? p_run(&p) : 0;
    p_reset(&p);
    char cid[40];
    new_change_id(cid);
    if (rc == 0)
        rc = asset_store(c, tenant, aid, &a, NULL, 0, 0, "policy", cid, at, out, err, errsz);
    ctx_free(&a);
    return rc;
}

static int edit_one(redisContext *c, const char *tenant, const char *asset_id, const json_t *fields,
                    const char *edit_id, const char *at, nz_inv_out_t *out, char *err,
                    size_t errsz) {
    asset_ctx_t a;
    if (asset_load(c, tenant, asset_id, &a, err, errsz) < 0) {
        ctx_free(&a);
        return -1;
    }
    if (!a.prev || a.n == 0 || json_is_true(json_object_get(a.prev, "gone"))) {
        ctx_free(&a);
        return 1;
    }
    unsigned    mask = 0;
    char        k[KEYLEN];
    const char *setv[NZ_F_COUNT] = {NULL, NULL};
    int         del[NZ_F_COUNT]  = {0, 0};
    pipe_t      p = {.c = c, .err = err, .errsz = errsz};
    for (int f = 0; f < NZ_F_COUNT; f++) {
        const char *name = nz_date_fields[f];
        json_t     *v    = json_object_get(fields, name);
        if (!v)
            continue;
        const char *was = json_string_value(json_object_get(a.edits, name));
        const char *now = json_string_value(v);
        if (now && (!was || strcmp(was, now) != 0)) {
            setv[f] = now;
            mask |= 1u << f;
        } else if (!now && was) {
            del[f] = 1;
            mask |= 1u << f;
        }
    }
    for (int f = 0; f < NZ_F_COUNT; f++) {
        if (setv[f])
            json_object_set_new(a.edits, nz_date_fields[f], json_string(setv[f]));
        else if (del[f])
            json_object_del(a.edits, nz_date_fields[f]);
    }
    /* The change is parked first and the edit stored after: a crash in between replays the
     * edit, which then finds the same difference again (and merges into the parked change). */
    int rc = asset_store(c, tenant, asset_id, &a, NULL, 0, mask, "edit", edit_id, at, out, err,
                         errsz);
    if (rc == 0 && mask) {
        key(k, tenant, "inv:edit:%s", asset_id);
        P(&p, "MULTI");
        for (int f = 0; f < NZ_F_COUNT; f++) {
            if (setv[f])
                P(&p, "HSET", k, nz_date_fields[f], setv[f]);
            else if (del[f])
                P(&p, "HDEL", k, nz_date_fields[f]);
        }
        P(&p, "EXEC");
        rc = p_run(&p);
        p_reset(&p);
    }
    ctx_free(&a);
    return rc;
}

int nz_inv_source_gone(redisContext *c, const char *tenant, const char *src_id, const char *at,
                       nz_inv_out_t *out, char *err, size_t errsz) {
    fence_begin();
    return fence_end(c, gone_one(c, tenant, src_id, at, out, err, errsz));
}

int nz_inv_source_remove(redisContext *c, const char *tenant, const char *src_id, const char *at,
                         nz_inv_out_t *out, char *err, size_t errsz) {
    fence_begin();
    return fence_end(c, remove_one(c, tenant, src_id, at, out, err, errsz));
}

int nz_inv_edit(redisContext *c, const char *tenant, const char *asset_id, const json_t *fields,
                const char *edit_id, const char *at, nz_inv_out_t *out, char *err, size_t errsz) {
    fence_begin();
    return fence_end(c, edit_one(c, tenant, asset_id, fields, edit_id, at, out, err, errsz));
}
