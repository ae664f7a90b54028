/*
 * inventory.c — source records, merged assets, edits and pending date changes in Redis
 * (see inventory.h). Blocking hiredis: every step is one pipeline; any Redis error returns -1
 * and the caller repeats the whole call (every step is idempotent).
 */
#include "inventory.h"
#include "merge.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mspsync/crypto.h>
#include <mspsync/model.h>
#include <mspsync/redis.h>

#define KEYLEN 600

const char nz_inv_pending_done_lua[] =
    "local v = redis.call('HGET', KEYS[1], ARGV[1]) "
    "if v and string.find(v, ARGV[2], 1, true) then return redis.call('HDEL', KEYS[1], ARGV[1]) end "
    "return 0";

/* ---- a tiny pipeline ------------------------------------------------------------------------ */

typedef struct pipe_s {
    redisContext *c;
    int           n;
    redisReply  **r;
    int           cap;
    int           failed;
    char         *err;
    size_t        errsz;
} pipe_t;

static void p_cmd(pipe_t *p, int argc, const char **argv)
{
    size_t lens[64];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (redisAppendCommandArgv(p->c, argc, argv, lens) != REDIS_OK)
        p->failed = 1;
    p->n++;
}

#define P(p, ...)                                                                                 \
    do {                                                                                          \
        const char *argv_[] = {__VA_ARGS__};                                                      \
        p_cmd((p), (int)(sizeof argv_ / sizeof argv_[0]), argv_);                                 \
    } while (0)

/* Read every reply. @returns 0, or -1 (err set; replies freed). */
static int p_run(pipe_t *p)
{
    free(p->r);
    p->r   = calloc((size_t)(p->n ? p->n : 1), sizeof *p->r);
    p->cap = p->n;
    int rc = p->failed || !p->r ? -1 : 0;
    for (int i = 0; i < p->n && p->r; i++) {
        void *rep = NULL;
        if (redisGetReply(p->c, &rep) != REDIS_OK) {
            rc = -1;
            break;
        }
        p->r[i] = rep;
        if (p->r[i]->type == REDIS_REPLY_ERROR) {
            snprintf(p->err, p->errsz, "redis: %s", p->r[i]->str);
            rc = -1;
        }
    }
    if (rc < 0 && p->c->err)
        snprintf(p->err, p->errsz, "redis: %s", p->c->errstr);
    else if (rc < 0 && !p->err[0])
        snprintf(p->err, p->errsz, "redis: pipeline failed");
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
}

static const char *p_str(const pipe_t *p, int i)
{
    const redisReply *r = p->r[i];
    return r && r->type == REDIS_REPLY_STRING ? r->str : NULL;
}

static void key(char *buf, const char *tenant, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void key(char *buf, const char *tenant, const char *fmt, ...)
{
    char    rest[KEYLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof rest, fmt, ap);
    va_end(ap);
    msp_key(buf, KEYLEN, tenant, "%s", rest);
}

void nz_inv_out_clear(nz_inv_out_t *out)
{
    for (int i = 0; i < out->n; i++) {
        free(out->asset_id[i]);
        msp_json_free(out->merged[i]);
    }
    msp_json_free(out->change);
    free(out->change_asset);
    memset(out, 0, sizeof *out);
}

static void out_add(nz_inv_out_t *out, const char *aid, char *merged)
{
    if (out->n >= NZ_INV_MAX_OUT) {
        msp_json_free(merged);
        return;
    }
    out->asset_id[out->n] = strdup(aid);
    out->merged[out->n++] = merged;
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

/* Read the asset's members (sorted by source id), their records and echo guards, the stored
 * merged record, the edits and the parked change. @returns 0 / -1. */
static int asset_load(redisContext *c, const char *tenant, const char *aid, asset_ctx_t *a,
                      char *err, size_t errsz)
{
    char   k[KEYLEN], k2[KEYLEN], k3[KEYLEN], k4[KEYLEN];
    pipe_t p = {.c = c, .err = err, .errsz = errsz};
    memset(a, 0, sizeof *a);
    key(k, tenant, "inv:members:%s", aid);
    key(k2, tenant, "inv:asset:%s", aid);
    key(k3, tenant, "inv:edit:%s", aid);
    key(k4, tenant, "inv:dpending");
    P(&p, "SMEMBERS", k);
    P(&p, "GET", k2);
    P(&p, "HGETALL", k3);
    P(&p, "HGET", k4, aid);
    if (p_run(&p) < 0) {
        p_reset(&p);
        return -1;
    }
    const redisReply *mr = p.r[0];
    size_t n = mr->type == REDIS_REPLY_ARRAY ? mr->elements : 0;
    a->m     = calloc(n + 1, sizeof *a->m);
    a->recs  = calloc(n + 1, sizeof *a->recs);
    a->ids   = calloc(n + 1, sizeof *a->ids);
    a->wrote = calloc(2 * n + 2, sizeof *a->wrote);
    for (size_t i = 0; i < n; i++)
        a->ids[i] = strdup(mr->element[i]->str);
    qsort(a->ids, n, sizeof *a->ids, cmp_ids);
    if (p_str(&p, 1))
        a->prev = json_loads(p_str(&p, 1), 0, NULL);
    a->edits = json_object();
    const redisReply *er = p.r[2];
    for (size_t i = 0; er->type == REDIS_REPLY_ARRAY && i + 1 < er->elements; i += 2)
        json_object_set_new(a->edits, er->element[i]->str, json_string(er->element[i + 1]->str));
    if (p_str(&p, 3))
        a->pending = json_loads(p_str(&p, 3), 0, NULL);
    p_reset(&p);
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
        json_t     *rec = js ? json_loads(js, 0, NULL) : NULL;
        if (!json_is_object(rec)) {   /* a member without a record: not part of the asset */
            json_decref(rec);
            free(a->ids[i]);
            continue;
        }
        const redisReply *wr = p.r[2 * i + 1];
        a->ids[w]  = a->ids[i];
        a->recs[w] = rec;
        for (int f = 0; f < 2; f++)
            a->wrote[2 * w + f] =
                wr->type == REDIS_REPLY_ARRAY && wr->element[f]->type == REDIS_REPLY_STRING
                    ? strdup(wr->element[f]->str)
                    : NULL;
        a->m[w].src_id = a->ids[w];
        a->m[w].rec    = rec;
        a->m[w].wrote[0] = a->wrote[2 * w];
        a->m[w].wrote[1] = a->wrote[2 * w + 1];
        w++;
    }
    a->n = w;
    p_reset(&p);
    return 0;
}

/* Merge, store the merged record, park a date change. reason "edit"/"policy". */
static int asset_store(redisContext *c, const char *tenant, const char *aid, asset_ctx_t *a,
                       const char *upserted_src, const json_t *upserted_old, unsigned edit_mask,
                       const char *reason, const char *change_id, const char *at,
                       nz_inv_out_t *out, char *err, size_t errsz)
{
    char   k[KEYLEN];
    pipe_t p = {.c = c, .err = err, .errsz = errsz};
    if (a->n == 0) {
        /* No member left: the asset is deleted (tombstone). */
        char kk[4][KEYLEN];
        key(kk[0], tenant, "inv:asset:%s", aid);
        key(kk[1], tenant, "inv:members:%s", aid);
        key(kk[2], tenant, "inv:edit:%s", aid);
        key(kk[3], tenant, "wb:%s", aid);
        P(&p, "DEL", kk[0], kk[1], kk[2], kk[3]);
        key(k, tenant, "inv:assets");
        P(&p, "ZREM", k, aid);
        key(k, tenant, "inv:gone:asset");
        P(&p, "SREM", k, aid);
        key(k, tenant, "inv:dpending");
        P(&p, "HDEL", k, aid);
        int rc = p_run(&p);
        p_reset(&p);
        if (rc == 0)
            out_add(out, aid, NULL);
        return rc;
    }
    json_t *merged = nz_merge_asset(tenant, aid, a->m, a->n, a->edits, a->prev);
    json_t *dates  = nz_merge_change(a->prev, merged, a->m, a->n, upserted_src, upserted_old,
                                     edit_mask);
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
        change = nz_change_message(tenant, aid, change_id, why, all, a->m, a->n, at);
        json_decref(all);
        json_decref(dates);
    } else if (json_is_object(a->pending)) {
        change = json_incref(a->pending);
    }
    char *mj = json_dumps(merged, JSON_COMPACT);
    char *cj = change ? json_dumps(change, JSON_COMPACT) : NULL;
    int   gone = json_is_true(json_object_get(merged, "gone"));
    json_decref(merged);
    if (!mj || (change && !cj)) {
        msp_json_free(mj);
        msp_json_free(cj);
        json_decref(change);
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    key(k, tenant, "inv:asset:%s", aid);
    P(&p, "SET", k, mj);
    key(k, tenant, "inv:assets");
    P(&p, "ZADD", k, "0", aid);
    key(k, tenant, "inv:gone:asset");
    P(&p, gone ? "SADD" : "SREM", k, aid);
    if (cj && change != a->pending) {
        key(k, tenant, "inv:dpending");
        P(&p, "HSET", k, aid, cj);
    }
    int rc = p_run(&p);
    p_reset(&p);
    if (rc < 0) {
        msp_json_free(mj);
        msp_json_free(cj);
        json_decref(change);
        return -1;
    }
    out_add(out, aid, mj);
    if (cj) {
        out->change       = cj;
        out->change_asset = strdup(aid);
        snprintf(out->change_id, sizeof out->change_id, "%s",
                 json_string_value(json_object_get(change, "change_id")) ?: "");
    }
    json_decref(change);
    return 0;
}

static void new_change_id(char out[40])
{
    if (msp_random_hex(out, 16) != 0)
        snprintf(out, 40, "0");
}

/* Re-merge one asset after a member changed. */
static int asset_refresh(redisContext *c, const char *tenant, const char *aid,
                         const char *upserted_src, const json_t *upserted_old, const char *at,
                         nz_inv_out_t *out, char *err, size_t errsz)
{
    asset_ctx_t a;
    char        cid[40];
    if (asset_load(c, tenant, aid, &a, err, errsz) < 0) {
        ctx_free(&a);
        return -1;
    }
    new_change_id(cid);
    int rc = asset_store(c, tenant, aid, &a, upserted_src, upserted_old, 0, "policy", cid, at, out,
                         err, errsz);
    ctx_free(&a);
    return rc;
}

/* ---- the calls ----------------------------------------------------------------------------- */

int nz_inv_upsert(redisContext *c, const char *tenant, const char *src_id, const json_t *canon,
                  const char *at, nz_inv_out_t *out, char *err, size_t errsz)
{
    char   keys[NZ_MKEY_MAX][NZ_MKEY_LEN];
    int    nk = nz_match_keys(canon, keys, NZ_MKEY_MAX);
    char   klink[KEYLEN], ksrc[KEYLEN], kmkey[KEYLEN], k[KEYLEN];
    pipe_t p = {.c = c, .err = err, .errsz = errsz};
    key(klink, tenant, "inv:link");
    key(ksrc, tenant, "inv:src:asset:%s", src_id);
    key(kmkey, tenant, "inv:mkey");
    P(&p, "HGET", klink, src_id);
    P(&p, "GET", ksrc);
    for (int i = 0; i < nk; i++)
        P(&p, "HGET", kmkey, keys[i]);
    if (p_run(&p) < 0) {
        p_reset(&p);
        return -1;
    }
    char aid[KEYLEN];
    snprintf(aid, sizeof aid, "%s", p_str(&p, 0) ? p_str(&p, 0) : "");
    json_t *old = p_str(&p, 1) ? json_loads(p_str(&p, 1), 0, NULL) : NULL;
    /* A source keeps the asset it joined; a new one joins the first asset a key names. */
    for (int i = 0; i < nk && !aid[0]; i++)
        if (p_str(&p, 2 + i))
            snprintf(aid, sizeof aid, "%s", p_str(&p, 2 + i));
    if (!aid[0])
        snprintf(aid, sizeof aid, "%s", src_id);
    p_reset(&p);

    char *js = json_dumps(canon, JSON_COMPACT);
    if (!js) {
        json_decref(old);
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    P(&p, "SET", ksrc, js);
    P(&p, "HSET", klink, src_id, aid);
    key(k, tenant, "inv:members:%s", aid);
    P(&p, "SADD", k, src_id);
    for (int i = 0; i < nk; i++)
        P(&p, "HSETNX", kmkey, keys[i], aid);
    int rc = p_run(&p);
    p_reset(&p);
    msp_json_free(js);
    if (rc == 0)
        rc = asset_refresh(c, tenant, aid, src_id, old, at, out, err, errsz);
    json_decref(old);
    return rc;
}

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

int nz_inv_source_gone(redisContext *c, const char *tenant, const char *src_id, const char *at,
                       nz_inv_out_t *out, char *err, size_t errsz)
{
    char    aid[KEYLEN], ksrc[KEYLEN];
    json_t *rec;
    int     rc = source_load(c, tenant, src_id, aid, &rec, err, errsz);
    if (rc != 0 || !rec) {
        json_decref(rec);
        return rc < 0 ? -1 : 1;
    }
    pipe_t  p   = {.c = c, .err = err, .errsz = errsz};
    json_t *old = json_deep_copy(rec);
    json_object_set_new(rec, "gone", json_true());
    char *js = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    if (!js) {
        json_decref(old);
        return -1;
    }
    key(ksrc, tenant, "inv:src:asset:%s", src_id);
    P(&p, "SET", ksrc, js);
    rc = p_run(&p);
    p_reset(&p);
    msp_json_free(js);
    if (rc == 0)
        rc = asset_refresh(c, tenant, aid, src_id, old, at, out, err, errsz);
    json_decref(old);
    return rc;
}

int nz_inv_source_remove(redisContext *c, const char *tenant, const char *src_id, const char *at,
                         nz_inv_out_t *out, char *err, size_t errsz)
{
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
    for (size_t i = 0; i < a.n; i++) {
        char mk[NZ_MKEY_MAX][NZ_MKEY_LEN];
        int  n = nz_match_keys(a.recs[i], mk, NZ_MKEY_MAX);
        for (int j = 0; j < n; j++)
            P(&p, "HSETNX", kmkey, mk[j], aid);
    }
    rc = p.n ? p_run(&p) : 0;
    p_reset(&p);
    char cid[40];
    new_change_id(cid);
    if (rc == 0)
        rc = asset_store(c, tenant, aid, &a, NULL, NULL, 0, "policy", cid, at, out, err, errsz);
    ctx_free(&a);
    return rc;
}

int nz_inv_edit(redisContext *c, const char *tenant, const char *asset_id, const json_t *fields,
                const char *edit_id, const char *at, nz_inv_out_t *out, char *err, size_t errsz)
{
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
    int rc = asset_store(c, tenant, asset_id, &a, NULL, NULL, mask, "edit", edit_id, at, out, err,
                         errsz);
    if (rc == 0 && mask) {
        key(k, tenant, "inv:edit:%s", asset_id);
        for (int f = 0; f < NZ_F_COUNT; f++) {
            if (setv[f])
                P(&p, "HSET", k, nz_date_fields[f], setv[f]);
            else if (del[f])
                P(&p, "HDEL", k, nz_date_fields[f]);
        }
        rc = p_run(&p);
        p_reset(&p);
    }
    ctx_free(&a);
    return rc;
}
