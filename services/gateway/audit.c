/*
 * audit.c — the audit log of each tenant: one entry per change made through the API.
 *
 * The router opens a record for every tenant route called with a method that changes something
 * (gw_audit_begin, after the access check passed) with the actor (key id, name and role, or
 * "operator"), the method, the route and the target path, and a snapshot of the tenant's
 * settings — its configuration keys (statekeys.h), read whole. When the request is answered
 * (gw_reply calls gw_audit_end, also for requests answered later), a 2xx answer takes a second
 * snapshot and writes one entry with the settings that differ, before and after; any other
 * answer writes nothing. Secrets never enter an entry: sealed values ("v1:...") and the hashes
 * of API keys read "[secret]". A route that changes no setting (the router's table says so: a
 * date edit, which only produces to raw.records) takes no snapshot — its entry's changes are {},
 * as the diff would be — since the two snapshots were ~18 blocking Redis round trips each on
 * the busiest admin route (bench/writeback.sh's 5,000 edits took 15-18 s to send with them).
 *
 * Entries are configuration, not Redis-only state: mspsync:{t}:audit:seq (INCR) numbers them,
 * and each is a string mspsync:{t}:audit:<seq>, journaled to the compacted `config` topic like
 * any setting (one record per entry, never overwritten, so compaction keeps them all) and
 * restored with the tenant after a loss of Redis. An offboarding deletes them with the tenant.
 *
 * Limits: two changes of one tenant in flight at once (a PUT waiting on the vendor while another
 * route answers) may each see the other's write in their snapshots; an entry that cannot be
 * written (Redis failed between the change and the answer) is logged as a warning.
 */
#include "gateway.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "query.h"
#include "mspsync/backoff.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 200

struct gw_audit_s {
    struct evhttp_request *req;
    char tenant[64];
    gw_actor_t actor;
    const char *method;
    const char *route;
    char *target;
    json_t *before;
    int settings; /* 0: the route changes no setting: no snapshot after either */
    gw_audit_t *next;
};

/* A value as an entry may show it: sealed text and key hashes replaced. Steals v; new. */
static json_t *redact(const char *suffix, json_t *v) {
    if (json_is_string(v) && strncmp(json_string_value(v), "v1:", 3) == 0) {
        json_decref(v);
        return json_string("[secret]");
    }
    if (!json_is_object(v))
        return v;
    const char *f;
    json_t *x;
    void *tmp;
    json_object_foreach_safe(v, tmp, f, x) {
        if (strcmp(suffix, "keys") == 0)
            json_object_set_new(v, f, gw_key_redacted(json_string_value(x) ?: ""));
        else
            json_object_set_new(v, f, redact(suffix, json_incref(x)));
    }
    return v;
}

typedef struct {
    gw_t *gw;
    json_t *snap;
    int ok;
} snap_t;

static void snap_one(const char *key, const char *suffix, void *arg) {
    snap_t *s = arg;
    if (!s->ok || strncmp(suffix, "audit:", 6) == 0)
        return; /* the log itself is not a setting */
    json_t *v = gw_config_value(s->gw, key, &s->ok);
    if (v)
        json_object_set_new(s->snap, suffix, redact(suffix, v));
}

/* suffix -> value of every setting of the tenant: new, or NULL on a Redis error. */
static json_t *snapshot(gw_t *gw, const char *tenant) {
    snap_t s = {gw, json_object(), 1};
    gw_config_keys_each(tenant, snap_one, &s);
    if (!s.ok) {
        json_decref(s.snap);
        return NULL;
    }
    return s.snap;
}

void gw_audit_begin(gw_t *gw, struct evhttp_request *req, const gw_actor_t *actor,
                    const char *route, const char *tenant, int settings) {
    const char *method;
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_POST: method = "POST"; break;
    case EVHTTP_REQ_PUT: method = "PUT"; break;
    case EVHTTP_REQ_PATCH: method = "PATCH"; break;
    case EVHTTP_REQ_DELETE: method = "DELETE"; break;
    default: return; /* reads are not audited */
    }
    gw_audit_t *a = calloc(1, sizeof(*a));
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!a || !(a->target = strdup(path ? path : "")) ||
        !(a->before = settings ? snapshot(gw, tenant) : json_object())) {
        MSP_WARN("audit.begin_failed", tenant, "%s %s will not be audited (Redis or memory)",
                 method, route);
        if (a)
            free(a->target);
        free(a);
        return;
    }
    a->req = req;
    a->actor = *actor;
    a->method = method;
    a->route = route;
    a->settings = settings;
    snprintf(a->tenant, sizeof(a->tenant), "%s", tenant);
    a->next = gw->audits;
    gw->audits = a;
}

static void audit_free(gw_audit_t *a) {
    json_decref(a->before);
    free(a->target);
    free(a);
}

/* The settings that differ between two snapshots: {suffix:{"before","after"}}; new. */
static json_t *diff(json_t *before, json_t *after) {
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(before, k, v) {
        json_t *w = json_object_get(after, k);
        if (!json_equal(v, w))
            json_object_set_new(out, k,
                                json_pack("{s:O,s:O}", "before", v, "after", w ? w : json_null()));
    }
    json_object_foreach(after, k, v) {
        if (!json_object_get(before, k))
            json_object_set_new(out, k, json_pack("{s:n,s:O}", "before", "after", v));
    }
    return out;
}

static json_t *actor_json(const gw_actor_t *a) {
    if (a->role == GW_ROLE_OPERATOR)
        return json_pack("{s:s}", "type", "operator");
    return json_pack("{s:s,s:s,s:s,s:s}", "type", "key", "id", a->id, "name", a->name, "role",
                     gw_role_name(a->role));
}

/* Number and store one entry. @returns 0 or -1 (err). */
static int write_entry(gw_t *gw, const gw_audit_t *a, int code, json_t *changes, char *err,
                       size_t err_size) {
    char seqkey[128], key[160], now[32];
    msp_key(seqkey, sizeof(seqkey), a->tenant, "audit:seq");
    redisReply *r = gw_redis(gw, err, err_size, "INCR %s", seqkey);
    if (!r)
        return -1;
    long long seq = r->integer;
    freeReplyObject(r);
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    json_t *e = json_pack("{s:I,s:s,s:o,s:s,s:s,s:s,s:i,s:O}", "seq", (json_int_t)seq, "at", now,
                          "actor", actor_json(&a->actor), "method", a->method, "route", a->route,
                          "target", a->target, "status", code, "changes", changes);
    char *text = e ? json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(e);
    msp_key(key, sizeof(key), a->tenant, "audit:%lld", seq);
    r = text ? gw_redis(gw, err, err_size, "SET %s %s", key, text) : NULL;
    free(text);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

void gw_audit_end(gw_t *gw, struct evhttp_request *req, int code) {
    gw_audit_t **pp = &gw->audits;
    while (*pp && (*pp)->req != req)
        pp = &(*pp)->next;
    gw_audit_t *a = *pp;
    if (!a)
        return;
    *pp = a->next;
    char err[256] = "";
    json_t *after = code < 200 || code >= 300 ? NULL
                    : a->settings             ? snapshot(gw, a->tenant)
                                              : json_object();
    json_t *changes = after ? diff(a->before, after) : NULL;
    if (code >= 200 && code < 300 &&
        (!changes || write_entry(gw, a, code, changes, err, sizeof(err)) != 0))
        MSP_WARN("audit.write_failed", a->tenant, "%s %s not audited: %s", a->method, a->target,
                 err[0] ? err : "Redis unavailable");
    json_decref(after);
    json_decref(changes);
    audit_free(a);
}

const gw_actor_t *gw_audit_actor(gw_t *gw, struct evhttp_request *req) {
    for (gw_audit_t *a = gw->audits; a; a = a->next)
        if (a->req == req)
            return &a->actor;
    return NULL;
}

void gw_audit_free_all(gw_t *gw) {
    while (gw->audits) {
        gw_audit_t *a = gw->audits;
        gw->audits = a->next;
        audit_free(a);
    }
}

/* ---- GET /v1/tenants/{t}/audit ----------------------------------------------------------- */

void api_audit_list(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "audit";
    long long limit = gw_query_int(gw, req, route, "limit", PAGE_DEFAULT, PAGE_MAX);
    long long before =
        limit < 0 ? -1 : gw_query_int(gw, req, route, "before", LLONG_MAX, LLONG_MAX);
    if (before < 0)
        return;
    char key[160], err[256];
    msp_key(key, sizeof(key), tenant, "audit:seq");
    redisReply *r = gw_redis(gw, err, sizeof(err), "GET %s", key);
    if (!r) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    long long top = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    if (before - 1 < top)
        top = before - 1;
    json_t *entries = json_array();
    long long seq = top, last = 0;
    for (; seq >= 1 && (long long)json_array_size(entries) < limit; seq--) {
        msp_key(key, sizeof(key), tenant, "audit:%lld", seq);
        r = gw_redis(gw, err, sizeof(err), "GET %s", key);
        if (!r) {
            json_decref(entries);
            gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
            return;
        }
        json_t *e = r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
        freeReplyObject(r);
        if (e) {
            json_array_append_new(entries, e);
            last = seq;
        }
    }
    json_t *next = seq >= 1 && last > 1 ? json_integer(last) : json_null();
    gw_reply(gw, req, route, 200, json_pack("{s:o,s:o}", "entries", entries, "next_before", next));
}
