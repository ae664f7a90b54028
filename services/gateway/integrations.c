/*
 * integrations.c — what every vendor's integration shares.
 *
 * Each integration is one row of the descriptor table below, at its vendor's id (built from the
 * registry, vendors.def, like the vendor table itself): the vendor's row (vendor.h: its name —
 * the key suffix of mspsync:{t}:integration:<name> / status:<name> and the "integration" of its
 * sync jobs —, the field that holds its sealed secret, the prefix of its end-of-type markers in
 * inv:stats, the keys a disable drops, its GET and DELETE, its PUT's body and proof). Routes whose
 * logic does not depend on the vendor live here, once (PUT in integration_put.c, DELETE in
 * integration_remove.c):
 *   GET   .../integrations/{name}           the status, with the fields the row's admin part
 *                                           shows (gw_integ_render)
 *   POST  .../integrations/{name}/sync      queue an incremental sync (202 with the job id)
 *   PATCH .../integrations/{name}           change the write-back opt-in (200 with the GET body)
 *   POST  .../integrations/{name}/disable   drop the sealed secret (and cached tokens), keep the
 *                                           settings and the inventory; the workers load the
 *                                           integration with *_integration_load, which treats a
 *                                           missing secret as "no integration"
 *
 * Invariant: an integration is disabled exactly when its hash exists without the sealed secret.
 * GET says "Disabled" from that, not from the status hash, so that a job finishing after the
 * disable cannot make it look connected again.
 */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/backoff.h"
#include "mspsync/crypto.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/utf8.h"

/* One descriptor per line of the registry (vendors.def), at its row's id. */
static const gw_integ_t INTEGRATIONS[MSP_VENDOR_COUNT] = {
#define MSP_VENDOR(ID, name) [MSP_VENDOR_##ID] = {&msp_vendor_##name},
#include "mspsync/vendors.def"
};

const gw_integ_t *gw_integ_of(const msp_vendor_t *v) { return &INTEGRATIONS[v->id]; }

void gw_integ_all_types(const msp_vendor_t *v, const char **out) {
    size_t n = 0;
    for (; n < v->types_cnt && n < MSP_VENDOR_TYPES_MAX; n++)
        out[n] = v->types[n].plural;
    out[n] = NULL;
}

void gw_list_add(char *out, size_t out_size, const char *item) {
    msp_vendor_list_add(out, out_size, item);
}

/* "\"assets\", \"customers\" or …": v's feature names (no options) for messages. */
static void feature_names(const msp_vendor_t *v, char *out, size_t out_size) {
    size_t len = 0;
    out[0] = '\0';
    for (const msp_vendor_feature_t *f = v->features; f->feature && len < out_size; f++)
        if (!f->option_of) {
            int k = snprintf(out + len, out_size - len, "%s\"%s\"", len ? ", " : "", f->feature);
            len += k > 0 ? (size_t)k : 0;
        }
}

int gw_integ_parse_features(const msp_vendor_t *v, const json_t *arr, char *out, size_t out_size,
                            char *err, size_t err_size) {
    char names[300];
    size_t i;
    const json_t *x;
    feature_names(v, names, sizeof(names));
    out[0] = '\0';
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        snprintf(err, err_size, "\"features\" must be a non-empty array of %s", names);
        return -1;
    }
    json_array_foreach(arr, i, x) {
        const msp_vendor_feature_t *f = msp_vendor_feature(v, json_string_value(x));
        if (!f || f->option_of) {
            snprintf(err, err_size, "unknown feature %s%.*s%s: expected %s",
                     json_is_string(x) ? "\"" : "",
                     MSP_UTF8_CUT(json_is_string(x) ? json_string_value(x) : "(not a string)", 64),
                     json_is_string(x) ? "\"" : "", names);
            return -1;
        }
    }
    for (const msp_vendor_feature_t *f = v->features; f->feature; f++) /* the row's order */
        json_array_foreach(arr, i, x) if (!strcmp(json_string_value(x), f->feature)) {
            gw_list_add(out, out_size, f->feature);
            break;
        }
    return 0;
}

json_t *gw_integ_missing_json(const msp_vendor_t *v, const char *wanted, const char *granted) {
    char all[GW_FEATURES_MAX] = "", text[700] = "";
    json_t *by = json_object(), *list = json_array();
    for (const msp_vendor_feature_t *f = v->features; f->feature; f++) {
        const char *miss[16];
        size_t n =
            msp_vendor_list_has(wanted, f->feature) ? msp_vendor_missing(f, granted, miss, 16) : 0;
        if (!n)
            continue;
        json_t *fl = json_array();
        size_t len = strlen(text);
        snprintf(text + len, sizeof(text) - len, "%s%s needs ", len ? "; " : "", f->feature);
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(fl, json_string(miss[i]));
            len = strlen(text);
            snprintf(text + len, sizeof(text) - len, "%s\"%s\"", i ? ", " : "", miss[i]);
            if (!msp_vendor_list_has(all, miss[i])) {
                gw_list_add(all, sizeof(all), miss[i]);
                json_array_append_new(list, json_string(miss[i]));
            }
        }
        json_object_set_new(by, f->feature, fl);
    }
    if (json_array_size(list) == 0) {
        json_decref(by);
        json_decref(list);
        return NULL;
    }
    char msg[900];
    snprintf(msg, sizeof(msg), "the %s API key lacks permissions: %s", v->label, text);
    return json_pack("{s:s,s:o,s:o}", "error", msg, "missing_permissions", list,
                     "missing_by_feature", by);
}

json_t *gw_integ_features_json(const msp_vendor_t *v, const char *features, const char *granted) {
    json_t *o = json_object();
    for (const msp_vendor_feature_t *f = v->features; f->feature; f++) {
        const char *miss[16];
        size_t n = features ? msp_vendor_missing(f, granted, miss, 16) : 0;
        int on = f->option_of ? n == 0 && (!features || msp_vendor_list_has(features, f->option_of))
                              : !features || msp_vendor_list_has(features, f->feature);
        json_t *perms = json_array(), *missing = json_array();
        for (const char *const *p = f->permissions; *p; p++)
            json_array_append_new(perms, json_string(*p));
        for (size_t i = 0; i < n; i++)
            json_array_append_new(missing, json_string(miss[i]));
        json_t *e = json_pack("{s:b,s:o,s:o}", "enabled", on, "permissions", perms,
                              "missing_permissions", missing);
        if (f->option_of)
            json_object_set_new(e, "option_of", json_string(f->option_of));
        if (!on)
            json_object_set_new(e, "reason",
                                json_string(n ? "the API key lacks the permissions named in "
                                                "missing_permissions"
                                            : f->option_of ? "its feature is not enabled"
                                                           : "not requested"));
        json_object_set_new(o, f->feature, e);
    }
    return o;
}

int gw_integ_parse_interval(const json_t *v, int *minutes, char *err, size_t err_size) {
    static const int allowed[] = {5, 15, 30, 60, 120, 240, 720, 1440};
    if (!v)
        return 0;
    for (size_t i = 0; json_is_integer(v) && i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (json_integer_value(v) == allowed[i]) {
            *minutes = allowed[i];
            return 0;
        }
    snprintf(err, err_size,
             "\"sync_interval_minutes\" must be one of " GW_SYNC_INTERVALS " (got %s)",
             json_is_integer(v) ? "another number" : gw_json_kind(v));
    return -1;
}

int gw_integ_check_features(gw_t *gw, const char *tenant, const msp_vendor_t *v, const char *wanted,
                            const char *hint, json_t **missing, char *err, size_t err_size) {
    char ikey[128];
    *missing = NULL;
    msp_key(ikey, sizeof(ikey), tenant, "integration:%s", v->name);
    redisReply *r = gw_redis(gw, err, err_size, "HGET %s granted", ikey);
    if (!r)
        return -1;
    int known = r->type == REDIS_REPLY_STRING;
    if (known && (*missing = gw_integ_missing_json(v, wanted, r->str)))
        json_object_set_new(*missing, "hint", json_string(hint));
    freeReplyObject(r);
    return known ? 0 : 1;
}

const gw_integ_t *gw_integ_find(const char *name) {
    const msp_vendor_t *v = msp_vendor_find(name);
    return v ? gw_integ_of(v) : NULL;
}

int gw_integ_exists(gw_t *gw, const char *tenant, const msp_vendor_t *v, char *err,
                    size_t err_size) {
    char key[128];
    msp_key(key, sizeof(key), tenant, "integration:%s", v->name);
    redisReply *r = gw_redis(gw, err, err_size, "EXISTS %s", key);
    if (!r)
        return -1;
    int exists = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return exists;
}

int gw_integ_others(gw_t *gw, const char *tenant, const msp_vendor_t *except, char *err,
                    size_t err_size) {
    for (size_t i = 0; i < MSP_VENDOR_COUNT; i++) {
        const msp_vendor_t *v = msp_vendor_at(i);
        int rc = v == except ? 0 : gw_integ_exists(gw, tenant, v, err, err_size);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void gw_vendor_metric(gw_t *gw, const char *vendor, const char *outcome) {
    char labels[96];
    snprintf(labels, sizeof(labels), "vendor=\"%s\",outcome=\"%s\"", vendor, outcome);
    msp_metric_add(gw->metrics, "mspsync_vendor_requests_total", labels, 1);
}

/* ---- checks ------------------------------------------------------------------------------ */

int gw_integ_require(gw_t *gw, struct evhttp_request *req, const char *route, const char *tenant,
                     const gw_integ_t *in, int need_enabled) {
    char key[128], err[256];
    msp_key(key, sizeof(key), tenant, "integration:%s", in->vendor->name);
    redisReply *r = gw_redis(gw, err, sizeof(err), "HEXISTS %s %s", key, in->vendor->sealed_field);
    redisReply *e = r ? gw_redis(gw, err, sizeof(err), "EXISTS %s", key) : NULL;
    if (!e) {
        if (r)
            freeReplyObject(r);
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return 0;
    }
    int exists = e->integer == 1, enabled = r->integer == 1;
    freeReplyObject(r);
    freeReplyObject(e);
    if (!exists) {
        gw_reply_error(gw, req, route, 404, "tenant \"%s\" has no %s integration", tenant,
                       in->vendor->name);
        return 0;
    }
    if (need_enabled && !enabled) {
        gw_reply_error(gw, req, route, 409,
                       "the %s integration of tenant \"%s\" is disabled; "
                       "save it again with its credentials (PUT) to enable it",
                       in->vendor->name, tenant);
        return 0;
    }
    return 1;
}

int gw_integ_parse_writeback(const json_t *v, int *purchase, int *warranty, char *err,
                             size_t err_size) {
    if (!v)
        return 0;
    if (!json_is_object(v)) {
        snprintf(err, err_size, "\"writeback\" must be an object like {\"purchase_date\":true,"
                 "\"warranty_expires\":false} (got %s)", gw_json_kind(v));
        return -1;
    }
    int n = 0;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
        int *dst = strcmp(k, "purchase_date") == 0      ? purchase
                   : strcmp(k, "warranty_expires") == 0 ? warranty
                                                        : NULL;
        if (!dst) {
            snprintf(err, err_size, "unknown key \"writeback.%.*s\" (expected \"purchase_date\" "
                     "and/or \"warranty_expires\")", MSP_UTF8_CUT(k, 64));
            return -1;
        }
        if (!json_is_boolean(x)) {
            snprintf(err, err_size, "\"writeback.%s\" must be true or false (got %s)", k,
                     gw_json_kind(x));
            return -1;
        }
        *dst = json_is_true(x);
        n++;
    }
    return n;
}

int gw_integ_store_writeback(gw_t *gw, const char *ikey, int purchase, int warranty, char *err,
                             size_t err_size) {
    const char *field[2] = {"writeback_purchase", "writeback_warranty"};
    int value[2] = {purchase, warranty};
    for (int i = 0; i < 2; i++) {
        redisReply *r = value[i] < 0
                            ? gw_redis(gw, err, err_size, "HSETNX %s %s 0", ikey, field[i])
                            : gw_redis(gw, err, err_size, "HSET %s %s %s", ikey, field[i],
                                       value[i] ? "1" : "0");
        if (!r)
            return -1;
        freeReplyObject(r);
    }
    return 0;
}

int gw_integ_mark_syncing(gw_t *gw, const char *tenant, const gw_integ_t *in, const char *job_id,
                          const char *now, char *err, size_t err_size) {
    char skey[128];
    msp_key(skey, sizeof(skey), tenant, "status:%s", in->vendor->name);
    redisReply *r = gw_redis(gw, err, err_size, "HSET %s state syncing job_id %s job_started_at %s "
                             "last_error %s hint %s paused 0", skey, job_id, now, "", "");
    if (!r)
        return -1;
    freeReplyObject(r);
    if (gw_ticketing_resume(gw, tenant, in->vendor->name, err, err_size) != 0)
        return -1;
    r = gw_redis(gw, err, err_size, "HDEL %s last_error_at", skey);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

#define STORE_FIELDS_MAX 12 /* fields a PUT stores in one HSET, at most */

int gw_integ_store(gw_t *gw, const char *tenant, const gw_integ_t *in, const char *const *fields,
                   int interval, int wb_purchase, int wb_warranty, const char *job_id,
                   const char *now, int *created, char *err, size_t err_size) {
    char ikey[128];
    const char *argv[2 * STORE_FIELDS_MAX + 2];
    int argc = 0;
    msp_key(ikey, sizeof(ikey), tenant, "integration:%s", in->vendor->name);
    argv[argc++] = "HSET";
    argv[argc++] = ikey;
    for (int i = 0; fields[i] && fields[i + 1] && i < 2 * STORE_FIELDS_MAX; i += 2) {
        argv[argc++] = fields[i];
        argv[argc++] = fields[i + 1];
    }
    redisReply *r[4] = {0};
    r[0] = gw_redis_argv(gw, err, err_size, argc, argv, NULL);
    if (r[0])
        r[1] = gw_redis(gw, err, err_size, "HSETNX %s created_at %s", ikey, now);
    if (r[1])
        r[2] = gw_redis(gw, err, err_size, "HINCRBY %s generation 1", ikey);
    if (r[2])
        r[3] = interval
                   ? gw_redis(gw, err, err_size, "HSET %s sync_interval_minutes %d", ikey, interval)
                   : gw_redis(gw, err, err_size, "PING");
    int ok = r[3] != NULL;
    *created = ok && r[1]->integer == 1;
    for (int i = 0; i < 4; i++)
        if (r[i])
            freeReplyObject(r[i]);
    if (!ok || gw_integ_store_writeback(gw, ikey, wb_purchase, wb_warranty, err, err_size) != 0 ||
        gw_integ_mark_syncing(gw, tenant, in, job_id, now, err, err_size) != 0)
        return -1;
    return 0;
}

/* ---- rendering ---------------------------------------------------------------------------- */

static json_t *jstr(const char *s) { return s ? json_string(s) : json_null(); }
static json_t *jint(const char *s) { return json_integer(s ? strtoll(s, NULL, 10) : 0); }
static int is1(const char *s) { return s && strcmp(s, "1") == 0; }

static const char *state_label(const char *state) {
    if (state && strcmp(state, "syncing") == 0)
        return "Syncing";
    if (state && strcmp(state, "error") == 0)
        return "Error";
    if (state && strcmp(state, "disabled") == 0)
        return "Disabled";
    return "Connected";
}

/*
 * The fetcher says "connected" once every page of the job is in Kafka; the inventory is current
 * only when the normalizer has also processed the job's end-of-type markers (it records
 * inv:stats <prefix><type>_complete_job). @returns 1 when some type of the job is still pending.
 */
static int inventory_pending(const gw_integ_t *in, const redisReply *status,
                             const redisReply *stats) {
    const char *job = gw_hget(status, "job_id"), *types = gw_hget(status, "job_types");
    if (!job || !types || !types[0])
        return 0;
    char list[64], field[64];
    snprintf(list, sizeof(list), "%s", types);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        snprintf(field, sizeof(field), "%s%s_complete_job", in->vendor->stats_prefix, t);
        const char *done = gw_hget(stats, field);
        if (!done || strcmp(done, job) != 0)
            return 1;
    }
    return 0;
}

/* The fetcher's "skipped_types" (types left out of the last job, feature not enabled). */
static json_t *skipped_types(const char *list) {
    json_t *a = json_array();
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n)
            json_array_append_new(a, json_stringn(p, n));
        p = e ? e + 1 : p + n;
    }
    return a;
}

json_t *gw_integ_status_json(const gw_integ_t *in, const redisReply *ri, const redisReply *rs,
                             const redisReply *rst) {
    const char *sealed = gw_hget(ri, in->vendor->sealed_field);
    int enabled = sealed && sealed[0];
    const char *state = enabled ? state_label(gw_hget(rs, "state")) : "Disabled";
    int pending = !strcmp(state, "Connected") && inventory_pending(in, rs, rst);
    if (pending)
        state = "Syncing"; /* fetched, not yet all in the inventory */
    const char *last_error = gw_hget(rs, "last_error"), *hint = gw_hget(rs, "hint");
    if (enabled && is1(gw_hget(rs, "ticketing_paused"))) {
        /* ticketing paused by a 401/403: Syncro's words and the permission to grant */
        state = "Error";
        last_error = gw_hget(rs, "ticketing_error");
        hint = gw_hget(rs, "ticketing_hint");
    }
    if (!enabled)
        hint = "disabled: the secret was removed; save the integration again (PUT) with its "
               "credentials to enable it";
    json_t *progress = json_pack(
        "{s:o,s:o,s:o,s:o,s:o}", "type", jstr(gw_hget(rs, "progress_type")), "page",
        jint(gw_hget(rs, "progress_page")), "total_pages",
        jint(gw_hget(rs, "progress_total_pages")), "customers_fetched",
        jint(gw_hget(rs, "customers_fetched")), "assets_fetched",
        jint(gw_hget(rs, "assets_fetched")));
    const char *interval = gw_hget(ri, "sync_interval_minutes");
    return json_pack(
        "{s:s,s:b,s:s,s:s,s:o,s:o,s:b,s:o,s:b,s:{s:b,s:b},s:o,s:o,s:o,s:o,s:o}", "state", state,
        "enabled", enabled, "last_error", last_error ? last_error : "", "hint", hint ? hint : "",
        "last_sync_at", jstr(gw_hget(rs, "last_sync_at")), "job_id", jstr(gw_hget(rs, "job_id")),
        "paused", is1(gw_hget(rs, "paused")), "progress", progress, "inventory_pending", pending,
        "writeback", "purchase_date", is1(gw_hget(ri, "writeback_purchase")), "warranty_expires",
        is1(gw_hget(ri, "writeback_warranty")), "created_at", jstr(gw_hget(ri, "created_at")),
        "updated_at", jstr(gw_hget(ri, "updated_at")), "features",
        gw_integ_features_json(in->vendor, gw_hget(ri, "features"), gw_hget(ri, "granted")),
        "sync_interval_minutes", interval ? jint(interval) : json_null(), "skipped_types",
        skipped_types(gw_hget(rs, "skipped_types")));
}

int gw_integ_load(gw_t *gw, const char *tenant, const gw_integ_t *in, redisReply **ri,
                  redisReply **rs, redisReply **rst, char *err, size_t err_size) {
    char ikey[128], skey[128], stkey[128];
    msp_key(ikey, sizeof(ikey), tenant, "integration:%s", in->vendor->name);
    msp_key(skey, sizeof(skey), tenant, "status:%s", in->vendor->name);
    msp_key(stkey, sizeof(stkey), tenant, "inv:stats");
    *ri = *rs = *rst = NULL;
    if ((*ri = gw_redis(gw, err, err_size, "HGETALL %s", ikey)) &&
        (*rs = gw_redis(gw, err, err_size, "HGETALL %s", skey)) &&
        (*rst = gw_redis(gw, err, err_size, "HGETALL %s", stkey)))
        return 0;
    return -1;
}

void gw_integ_free(redisReply *ri, redisReply *rs, redisReply *rst) {
    if (ri)
        freeReplyObject(ri);
    if (rs)
        freeReplyObject(rs);
    if (rst)
        freeReplyObject(rst);
}

/* A shown field of the integration hash as the row asks for it (msp_vendor_shown_as_t). */
static json_t *shown_json(const redisReply *ri, const msp_vendor_shown_t *f) {
    const char *s = gw_hget(ri, f->field);
    if (f->as == MSP_SHOWN_EMPTY)
        return json_string(s ? s : "");
    return s && (s[0] || f->as == MSP_SHOWN_NULL) ? json_string(s) : json_null();
}

json_t *gw_integ_render(gw_t *gw, const char *tenant, const gw_integ_t *in, int *code, char *err,
                        size_t err_size) {
    const msp_vendor_t *v = in->vendor;
    const msp_vendor_admin_t *admin = v->admin;
    redisReply *ri, *rs, *rst;
    json_t *o = NULL, *counts = NULL, *ticketing = NULL;
    char why[256];
    *code = 503;
    if (gw_integ_load(gw, tenant, in, &ri, &rs, &rst, why, sizeof(why)) != 0) {
        snprintf(err, err_size, "redis unavailable: %s", why);
    } else if (ri->elements == 0) {
        *code = 404;
        snprintf(err, err_size, "tenant \"%s\" has no %s integration", tenant, v->name);
    } else if (!(counts = gw_integ_counts(gw, tenant, v->name, why, sizeof(why)))) {
        snprintf(err, err_size, "redis unavailable: %s", why);
    } else if (!(o = gw_integ_status_json(in, ri, rs, rst))) {
        *code = 500;
        snprintf(err, err_size, "could not render the integration status");
    } else if (admin->show_ticketing &&
               !(ticketing = gw_ticketing_summary(gw, tenant, why, sizeof(why)))) {
        snprintf(err, err_size, "redis unavailable: %s", why);
        json_decref(o);
        o = NULL;
    } else {
        json_object_set_new(o, "integration", json_string(v->name));
        for (const msp_vendor_shown_t *f = admin->shown; f && f->field; f++)
            json_object_set_new(o, f->field, shown_json(ri, f));
        json_object_set_new(o, "counts", counts);
        counts = NULL;
        if (ticketing)
            json_object_set_new(o, "ticketing", ticketing);
    }
    json_decref(counts);
    gw_integ_free(ri, rs, rst);
    return o;
}

/* Answer with the integration's GET body. */
static void reply_rendered(gw_t *gw, struct evhttp_request *req, const char *route,
                           const gw_integ_t *in, const char *tenant) {
    char err[256];
    int code = 500;
    json_t *body = gw_integ_render(gw, tenant, in, &code, err, sizeof(err));
    if (body)
        gw_reply(gw, req, route, 200, body);
    else
        gw_reply_error(gw, req, route, code, "%s", err);
}

void api_integration_get(gw_t *gw, struct evhttp_request *req, const char *tenant,
                         const char *name) {
    reply_rendered(gw, req, "integration", gw_integ_find(name), tenant);
}

/* ---- POST .../sync ----------------------------------------------------------------------- */

/*
 * The job types a "sync now" asks for: every type of v when jt is absent, else those jt names,
 * in v's order. @returns 0 (out NULL-terminated, MSP_VENDOR_TYPES_MAX + 1 slots), or -1 with
 * the 400 text in err.
 */
static int want_types(const msp_vendor_t *v, const json_t *jt, const char **out, char *err,
                      size_t err_size) {
    char said[200];
    int idx[MSP_VENDOR_TYPES_MAX];
    size_t n = 0;
    if (!jt) {
        gw_integ_all_types(v, out);
        return 0;
    }
    if (!json_is_array(jt) || json_array_size(jt) == 0) {
        snprintf(err, err_size, "\"types\" must be a non-empty array of %s",
                 msp_vendor_type_names(v, " and/or ", said, sizeof(said)));
        return -1;
    }
    int bad = msp_vendor_types_wanted(v, jt, idx, &n);
    if (bad >= 0) {
        const char *s = json_string_value(json_array_get(jt, (size_t)bad));
        snprintf(err, err_size, "unknown type %s%s%s: expected %s", s ? "\"" : "",
                 s ? s : "(not a string)", s ? "\"" : "",
                 msp_vendor_type_names(v, " or ", said, sizeof(said)));
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = v->types[idx[i]].plural;
    out[n] = NULL;
    return 0;
}

void api_integration_sync(gw_t *gw, struct evhttp_request *req, const char *tenant,
                          const char *name) {
    const char *route = "integration_sync";
    const gw_integ_t *in = gw_integ_find(name);
    char err[1024];
    json_t *body;
    if (gw_read_json(gw, req, route, 1, &body) != 0)
        return;
    const char *types[MSP_VENDOR_TYPES_MAX + 1];
    int want_all = !body || !json_object_get(body, "types");
    int rc = want_types(in->vendor, body ? json_object_get(body, "types") : NULL, types, err,
                        sizeof(err));
    json_decref(body);
    if (rc != 0) {
        gw_reply_error(gw, req, route, 400, "%s", err);
        return;
    }

    char skey[128], ikey[128], job_id[33];
    if (!gw_integ_require(gw, req, route, tenant, in, 1))
        return;
    msp_key(ikey, sizeof(ikey), tenant, "integration:%s", in->vendor->name);
    redisReply *r = gw_redis(gw, err, sizeof(err), "HGET %s features", ikey);
    if (!r) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    /* a type named whose feature is off is refused; without "types" the fetcher leaves such
     * types out itself (and says so in the status) */
    const char *features = r->type == REDIS_REPLY_STRING ? r->str : NULL;
    const msp_vendor_type_t *off = NULL;
    for (size_t i = 0; types[i] && !off; i++) {
        const msp_vendor_type_t *t = msp_vendor_type(in->vendor, types[i]);
        if (!msp_vendor_type_enabled(t, features))
            off = t;
    }
    if (off && !want_all) {
        gw_reply_error(gw, req, route, 409,
                       "the \"%s\" feature is not enabled on this integration, so %s are not "
                       "synced; enable it with PATCH {\"features\":[...]} (the API key needs "
                       "its permissions)",
                       off->feature, off->plural);
        freeReplyObject(r);
        return;
    }
    freeReplyObject(r);
    msp_key(skey, sizeof(skey), tenant, "status:%s", in->vendor->name);
    r = gw_redis(gw, err, sizeof(err), "HSET %s paused 0", skey);
    if (!r) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    freeReplyObject(r);
    if (msp_random_hex(job_id, 16) != 0) {
        gw_reply_error(gw, req, route, 500, "could not draw a job id");
        return;
    }
    gw_held_t *held = gw_hold(gw, req, route);
    if (!held) {
        gw_reply_error(gw, req, route, 500, "out of memory");
        return;
    }
    gw_job_queue(gw, held, tenant, in->vendor->name, job_id, types, "incremental", "sync_now", 202,
                 json_pack("{s:s}", "job_id", job_id));
}

/* ---- PATCH --------------------------------------------------------------------------------- */

void api_integration_patch(gw_t *gw, struct evhttp_request *req, const char *tenant,
                           const char *name) {
    const char *route = "integration";
    const gw_integ_t *in = gw_integ_find(name);
    json_t *body;
    if (gw_read_json(gw, req, route, 0, &body) != 0)
        return;
    char err[300], ikey[128], now[32], features[GW_FEATURES_MAX] = "";
    int purchase = -1, warranty = -1, given = 0, minutes = 0;
    static const char *const known[] = {"writeback", "features", "sync_interval_minutes", NULL};
    if (gw_json_only_keys(body, known, err, sizeof(err)) != 0) {
        gw_reply_error(gw, req, route, 400, "%s; credentials are changed with PUT", err);
        json_decref(body);
        return;
    }
    const json_t *jf = json_object_get(body, "features");
    given = gw_integ_parse_writeback(json_object_get(body, "writeback"), &purchase, &warranty,
                                     err, sizeof(err));
    if (given >= 0 && jf &&
        gw_integ_parse_features(in->vendor, jf, features, sizeof(features), err, sizeof(err)) != 0)
        given = -1;
    if (given >= 0 && gw_integ_parse_interval(json_object_get(body, "sync_interval_minutes"),
                                              &minutes, err, sizeof(err)) != 0)
        given = -1;
    json_decref(body);
    if (given < 0) {
        gw_reply_error(gw, req, route, 400, "%s", err);
        return;
    }
    if (given == 0 && !features[0] && !minutes) {
        gw_reply_error(gw, req, route, 400,
                       "nothing to change: send {\"writeback\":"
                       "{\"purchase_date\":true|false,\"warranty_expires\":true|false}}, "
                       "{\"features\":[...]} or {\"sync_interval_minutes\":N}");
        return;
    }
    if (!gw_integ_require(gw, req, route, tenant, in, 0))
        return;
    msp_key(ikey, sizeof(ikey), tenant, "integration:%s", in->vendor->name);
    redisReply *r = NULL;
    if (features[0]) {
        /* the same check as a save, against the permissions the key showed when it was saved */
        json_t *missing = NULL;
        int rc = gw_integ_check_features(gw, tenant, in->vendor, features,
                                         "grant the permissions in Syncro, then save the "
                                         "integration again (PUT) so that the key is checked anew",
                                         &missing, err, sizeof(err));
        if (rc < 0) {
            gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
            return;
        }
        if (rc == 1) {
            gw_reply_error(gw, req, route, 409,
                           "features cannot be chosen for this %s integration: its permissions "
                           "were not checked when it was saved (saved before features existed, "
                           "or a vendor whose integration syncs every type)",
                           in->vendor->label);
            return;
        }
        if (missing) {
            gw_reply(gw, req, route, 422, missing);
            return;
        }
        if (!(r = gw_redis(gw, err, sizeof(err), "HSET %s features %s", ikey, features))) {
            gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
            return;
        }
        freeReplyObject(r);
    }
    if (minutes) {
        if (!(r = gw_redis(gw, err, sizeof(err), "HSET %s sync_interval_minutes %d", ikey,
                           minutes))) {
            gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
            return;
        }
        freeReplyObject(r);
    }
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    if (gw_integ_store_writeback(gw, ikey, purchase, warranty, err, sizeof(err)) != 0 ||
        gw_ticketing_resume(gw, tenant, in->vendor->name, err, sizeof(err)) != 0 ||
        !(r = gw_redis(gw, err, sizeof(err), "HSET %s updated_at %s", ikey, now))) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    freeReplyObject(r);
    MSP_INFO("integration.patched", tenant,
             "%s: write-back purchase %s, warranty %s; features %s; interval %d min",
             in->vendor->name,
             purchase < 0 ? "unchanged"
             : purchase   ? "on"
                          : "off",
             warranty < 0 ? "unchanged"
             : warranty   ? "on"
                          : "off",
             features[0] ? features : "unchanged", minutes);
    reply_rendered(gw, req, route, in, tenant);
}

/* ---- POST .../disable ---------------------------------------------------------------------- */

void api_integration_disable(gw_t *gw, struct evhttp_request *req, const char *tenant,
                             const char *name) {
    const char *route = "integration_disable";
    const gw_integ_t *in = gw_integ_find(name);
    json_t *body;
    if (gw_read_json(gw, req, route, 1, &body) != 0)
        return;
    int nonempty = body && json_object_size(body) > 0;
    json_decref(body);
    if (nonempty) {
        gw_reply_error(gw, req, route, 400, "disable takes no parameters");
        return;
    }
    if (!gw_integ_require(gw, req, route, tenant, in, 0))
        return;
    char ikey[128], skey[128], key[128], err[256], now[32];
    msp_key(ikey, sizeof(ikey), tenant, "integration:%s", in->vendor->name);
    msp_key(skey, sizeof(skey), tenant, "status:%s", in->vendor->name);
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    redisReply *r = gw_redis(gw, err, sizeof(err), "HDEL %s %s", ikey, in->vendor->sealed_field);
    for (int i = 0; r && in->vendor->extra_keys && in->vendor->extra_keys[i]; i++) {
        freeReplyObject(r);
        msp_key(key, sizeof(key), tenant, "%s", in->vendor->extra_keys[i]);
        r = gw_redis(gw, err, sizeof(err), "DEL %s", key);
    }
    if (r) {
        freeReplyObject(r);
        r = gw_redis(gw, err, sizeof(err), "HSET %s enabled 0 updated_at %s", ikey, now);
    }
    if (r) {
        freeReplyObject(r);
        r = gw_redis(gw, err, sizeof(err), "HSET %s state disabled", skey);
    }
    if (!r) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    freeReplyObject(r);
    gw_secret_keep(gw, tenant, in->vendor->name, NULL);
    MSP_INFO("integration.disabled", tenant, "%s integration disabled (secret removed)",
             in->vendor->name);
    reply_rendered(gw, req, route, in, tenant);
}

/* ---- counts --------------------------------------------------------------------------------- */

/* Members of a set (SSCAN) or fields of a hash (HSCAN) matching pattern. @returns n or -1. */
static long long scan_count(gw_t *gw, const char *cmd, const char *key, const char *pattern,
                            char *err, size_t err_size) {
    long long n = 0;
    int per = strcmp(cmd, "HSCAN") == 0 ? 2 : 1;
    char cursor[32] = "0";
    do {
        redisReply *r = gw_redis(gw, err, err_size, "%s %s %s MATCH %s COUNT 1000", cmd, key,
                                 cursor, pattern);
        if (!r)
            return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            snprintf(err, err_size, "unexpected %s reply", cmd);
            freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        n += (long long)(r->element[1]->elements / per);
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

/*
 * An integration's own share of the inventory: its customers (ids "<integ>:…" in inv:customers),
 * its source asset records (inv:link fields "<integ>:…": one per vendor asset, whichever merged
 * asset they joined) and the gone ones of each.
 */
json_t *gw_integ_counts(gw_t *gw, const char *tenant, const char *integ, char *err,
                        size_t err_size) {
    char lo[48], hi[48], pat[48];
    snprintf(lo, sizeof(lo), "[%s:", integ);
    snprintf(hi, sizeof(hi), "(%s;", integ);   /* ';' follows ':' */
    snprintf(pat, sizeof(pat), "%s:*", integ);
    char k[4][128];
    msp_key(k[0], sizeof(k[0]), tenant, "inv:customers");
    msp_key(k[1], sizeof(k[1]), tenant, "inv:gone:customer");
    msp_key(k[2], sizeof(k[2]), tenant, "inv:link");
    msp_key(k[3], sizeof(k[3]), tenant, "inv:srcgone:asset");
    redisReply *r = gw_redis(gw, err, err_size, "ZLEXCOUNT %s %s %s", k[0], lo, hi);
    if (!r)
        return NULL;
    long long customers = r->integer, n[3];
    freeReplyObject(r);
    if ((n[0] = scan_count(gw, "SSCAN", k[1], pat, err, err_size)) < 0 ||
        (n[1] = scan_count(gw, "HSCAN", k[2], pat, err, err_size)) < 0 ||
        (n[2] = scan_count(gw, "SSCAN", k[3], pat, err, err_size)) < 0)
        return NULL;
    return json_pack("{s:I,s:I,s:I,s:I}", "customers", (json_int_t)customers, "customers_gone",
                     (json_int_t)n[0], "assets", (json_int_t)n[1], "assets_gone",
                     (json_int_t)n[2]);
}
