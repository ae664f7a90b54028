/*
 * api_traces.c — "what happened to this incident / this asset?" (docs/design.md, "Traces").
 *
 *   GET /v1/tenants/{t}/incidents/{ref}       ref = a 64-hex fingerprint or the portal's
 *                                             incident id: per fingerprint its ticket record and
 *                                             its trace entries, in order
 *   GET /v1/tenants/{t}/assets/{id}/history   the asset's history, oldest first, paged
 *
 * The services append the entries (trace.h) in round trips they make anyway; this file only
 * reads. A crash-replayed step leaves the same (event id, step) twice: readers keep the first
 * (msp_trace_entry_key), so a replay never shows as a second ticket. Entries are ordered by
 * their `at_ms` (stable): the normalizer writes its entries when its batch commits, which can be
 * after the ticket-creator wrote its own. Every key read is the tenant's own; another tenant's
 * fingerprint or incident id is simply not there (404). While the lists are rebuilt after a
 * loss of Redis (trace_rebuild.c) both answer 503 with Retry-After.
 */
#include "gateway.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/trace.h"

#define HISTORY_PAGE_DEFAULT 50
#define HISTORY_PAGE_MAX 200
/* An incident id names this many fingerprints at most in an answer (one per alert type...). */
#define FPS_MAX 20

/* 1 when s is 64 lowercase hex characters (a fingerprint). */
static int is_fingerprint(const char *s) {
    if (strlen(s) != 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

static int cmp_at(const void *a, const void *b) {
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t p = json_integer_value(json_object_get(x, "at_ms"));
    json_int_t q = json_integer_value(json_object_get(y, "at_ms"));
    if (p != q)
        return p < q ? -1 : 1;
    /* stable: the position each entry had in the list */
    json_int_t i = json_integer_value(json_object_get(x, "_pos"));
    json_int_t j = json_integer_value(json_object_get(y, "_pos"));
    return i < j ? -1 : i > j;
}

/*
 * The entries of an LRANGE reply: parsed, the first of each (event id, step) kept, ordered by
 * at_ms. @returns new array.
 */
static json_t *entries_of(const redisReply *r, const char *tenant) {
    size_t n = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    json_t **v = calloc(n ? n : 1, sizeof(*v));
    json_t *seen = json_object();
    size_t k = 0;
    for (size_t i = 0; v && i < n; i++) {
        const redisReply *e = r->element[i];
        json_t *o = e->type == REDIS_REPLY_STRING ? json_loadb(e->str, e->len, 0, NULL) : NULL;
        if (!json_is_object(o)) {
            MSP_WARN("trace.bad_entry", tenant, "a trace entry is not a JSON object; skipped");
            json_decref(o);
            continue;
        }
        char id[1200];
        msp_trace_entry_key(o, id, sizeof(id));
        if (id[0] && json_object_get(seen, id)) { /* a replay's repetition */
            json_decref(o);
            continue;
        }
        if (id[0])
            json_object_set_new(seen, id, json_true());
        json_object_set_new(o, "_pos", json_integer((json_int_t)i));
        v[k++] = o;
    }
    json_decref(seen);
    if (k > 1)
        qsort(v, k, sizeof(*v), cmp_at);
    json_t *out = json_array();
    for (size_t i = 0; i < k; i++) {
        json_object_del(v[i], "_pos");
        json_array_append_new(out, v[i]);
    }
    free(v);
    return out;
}

/* The ticket record tk:<fp> as the answer shows it, or null when there is none. */
static json_t *ticket_of(const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0)
        return json_null();
    json_t *t = json_object();
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
        if (!f || !v)
            continue;
        if (!strcmp(f, "ticket_id") || !strcmp(f, "ticket_number") || !strcmp(f, "gen")) {
            long long x = atoll(v);
            json_object_set_new(t, f, x > 0 || !strcmp(f, "gen") ? json_integer(x) : json_null());
        } else if (!strcmp(f, "state") || !strcmp(f, "customer_id") || !strcmp(f, "last_status")) {
            json_object_set_new(t, f, json_string(v));
        }
    }
    static const char *const keys[] = {"state",       "gen",         "ticket_id", "ticket_number",
                                       "customer_id", "last_status", NULL};
    for (int i = 0; keys[i]; i++) /* the documented shape, every key present */
        if (!json_object_get(t, keys[i]))
            json_object_set_new(t, keys[i], json_null());
    return t;
}

/* The first string value of field in the entries (e.g. the incident id of `normalized`). */
static const char *entries_str(const json_t *entries, const char *field) {
    size_t i;
    const json_t *e;
    json_array_foreach(entries, i, e) {
        const char *s = json_string_value(json_object_get(e, field));
        if (s)
            return s;
    }
    return NULL;
}

void api_incident_trace_get(gw_t *gw, struct evhttp_request *req, const char *tenant,
                            const char *ref) {
    const char *route = "incident_trace";
    char key[400], err[256];
    if (gw_traces_reply_pending(gw, req, route))
        return;
    if (!ref[0] || strlen(ref) > MSP_TRACE_INCID_MAX) {
        gw_reply_error(gw, req, route, 404, "no incident \"%.64s\" for tenant \"%s\"", ref, tenant);
        return;
    }
    /* The fingerprints ref names: itself when it is one that left a trace, and those indexed
     * under it as an incident id. */
    const char *fps[FPS_MAX + 1];
    size_t nfp = 0;
    redisReply *idx = NULL, *ex = NULL;
    if (is_fingerprint(ref)) {
        msp_key(key, sizeof(key), tenant, "trace:inc:%s", ref);
        char tk[400];
        msp_key(tk, sizeof(tk), tenant, "tk:%s", ref);
        ex = gw_redis(gw, err, sizeof(err), "EXISTS %s %s", key, tk);
        if (!ex) {
            gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
            return;
        }
        if (ex->type == REDIS_REPLY_INTEGER && ex->integer > 0)
            fps[nfp++] = ref;
    }
    msp_key(key, sizeof(key), tenant, "trace:incid:%s", ref);
    idx = gw_redis(gw, err, sizeof(err), "SMEMBERS %s", key);
    msp_key(key, sizeof(key), tenant, "trace:rej:%s", ref);
    redisReply *rej = idx ? gw_redis(gw, err, sizeof(err), "LRANGE %s 0 -1", key) : NULL;
    if (!idx || !rej) {
        if (idx)
            freeReplyObject(idx);
        if (ex)
            freeReplyObject(ex);
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    for (size_t i = 0; idx->type == REDIS_REPLY_ARRAY && i < idx->elements && nfp < FPS_MAX; i++)
        if (idx->element[i]->type == REDIS_REPLY_STRING && is_fingerprint(idx->element[i]->str) &&
            (nfp == 0 || strcmp(fps[0], idx->element[i]->str) != 0))
            fps[nfp++] = idx->element[i]->str;
    json_t *rejected = entries_of(rej, tenant);
    freeReplyObject(rej);
    if (nfp == 0 && json_array_size(rejected) == 0) {
        json_decref(rejected);
        freeReplyObject(idx);
        if (ex)
            freeReplyObject(ex);
        gw_reply_error(gw, req, route, 404, "no incident \"%.64s\" for tenant \"%s\"", ref, tenant);
        return;
    }

    json_t *incidents = json_array();
    for (size_t i = 0; i < nfp; i++) {
        msp_key(key, sizeof(key), tenant, "tk:%s", fps[i]);
        redisReply *tk = gw_redis(gw, err, sizeof(err), "HGETALL %s", key);
        msp_key(key, sizeof(key), tenant, "trace:inc:%s", fps[i]);
        redisReply *tr = tk ? gw_redis(gw, err, sizeof(err), "LRANGE %s 0 -1", key) : NULL;
        if (!tk || !tr) {
            if (tk)
                freeReplyObject(tk);
            json_decref(incidents);
            json_decref(rejected);
            freeReplyObject(idx);
            if (ex)
                freeReplyObject(ex);
            gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
            return;
        }
        json_t *entries = entries_of(tr, tenant);
        const char *incid = entries_str(entries, "incident_id");
        const char *org = entries_str(entries, "org_id");
        const char *atype = entries_str(entries, "alert_type");
        json_array_append_new(incidents,
                              json_pack("{s:s,s:s?,s:s?,s:s?,s:o,s:o}", "fingerprint", fps[i],
                                        "incident_id", incid, "org_id", org, "alert_type", atype,
                                        "ticket", ticket_of(tk), "entries", entries));
        freeReplyObject(tk);
        freeReplyObject(tr);
    }
    freeReplyObject(idx);
    if (ex)
        freeReplyObject(ex);
    /* the documented shape: the optional facts present as null */
    size_t i;
    json_t *inc;
    json_array_foreach(incidents, i, inc) {
        static const char *const opt[] = {"incident_id", "org_id", "alert_type", NULL};
        for (int j = 0; opt[j]; j++)
            if (!json_object_get(inc, opt[j]))
                json_object_set_new(inc, opt[j], json_null());
    }
    gw_reply(gw, req, route, 200,
             json_pack("{s:s,s:s,s:o,s:o}", "tenant", tenant, "ref", ref, "incidents", incidents,
                       "rejected", rejected));
}

/* A query parameter that is an integer from min to max, def when absent. @returns the value,
 * or -1 (400 sent). */
static long long query_range(gw_t *gw, struct evhttp_request *req, const char *route,
                             const char *name, long long def, long long min, long long max) {
    char *v = gw_query_param(req, name);
    if (!v)
        return def;
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    int bad = !v[0] || *end || n < min || n > max;
    free(v);
    if (bad) {
        gw_reply_error(gw, req, route, 400, "\"%s\" must be an integer from %lld to %lld", name,
                       min, max);
        return -1;
    }
    return n;
}

void api_asset_history_get(gw_t *gw, struct evhttp_request *req, const char *tenant,
                           const char *id) {
    const char *route = "asset_history";
    long long limit =
        query_range(gw, req, route, "limit", HISTORY_PAGE_DEFAULT, 1, HISTORY_PAGE_MAX);
    long long cursor = limit < 0 ? -1 : query_range(gw, req, route, "cursor", 0, 0, 1000000);
    if (cursor < 0 || gw_traces_reply_pending(gw, req, route))
        return;
    char key[400], hkey[400], err[256];
    if (!gw_valid_record_id(id)) {
        gw_reply_error(gw, req, route, 404, "no asset with that id");
        return;
    }
    msp_key(key, sizeof(key), tenant, "inv:asset:%s", id);
    msp_key(hkey, sizeof(hkey), tenant, "trace:asset:%s", id);
    /* the whole list (at most MSP_TRACE_MAX entries): ordered by at_ms as the incident route
     * orders (the normalizer's entry lands when its batch commits, which can be after the
     * write-back wrote the outcome of the same change), then paged */
    redisReply *ex = gw_redis(gw, err, sizeof(err), "EXISTS %s %s", key, hkey);
    redisReply *r = ex ? gw_redis(gw, err, sizeof(err), "LRANGE %s 0 -1", hkey) : NULL;
    if (!ex || !r) {
        if (ex)
            freeReplyObject(ex);
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    int known = ex->type == REDIS_REPLY_INTEGER && ex->integer > 0;
    freeReplyObject(ex);
    if (!known) {
        freeReplyObject(r);
        gw_reply_error(gw, req, route, 404, "no asset \"%s\" for tenant \"%s\"", id, tenant);
        return;
    }
    json_t *all = entries_of(r, tenant), *entries = json_array();
    freeReplyObject(r);
    long long total = (long long)json_array_size(all);
    for (long long i = cursor; i < cursor + limit && i < total; i++)
        json_array_append(entries, json_array_get(all, (size_t)i));
    json_decref(all);
    size_t got = json_array_size(entries);
    long long next = cursor + (long long)got;
    gw_reply(gw, req, route, 200,
             json_pack("{s:s,s:I,s:o,s:o}", "asset_id", id, "total", (json_int_t)total, "entries",
                       entries, "next_cursor",
                       got && next < total ? json_integer(next) : json_null()));
}
