/*
 * api_billing.c — usage billing as far as the admin API is concerned:
 *   GET/PUT  /v1/tenants/{t}/billing           the billing config (enable, time zone, push time,
 *                                              grace days, product → invoice line mappings)
 *   POST     /v1/tenants/{t}/billing/push      push now (a request on usage.events, 202)
 *   GET      /v1/tenants/{t}/billing/preview   what the next push would write, per customer and
 *                                              line, with the last quantity we know and the new
 *   GET      /v1/tenants/{t}/billing/status    per customer and line: last pushed quantity and
 *                                              time, pending, error; unmapped orgs and products
 *                                              with their latest counts; late reports; last push
 *   GET      /v1/tenants/{t}/billing/history   ?schedule_id=&line_id=: the quantity changes we
 *                                              wrote to that line, newest first
 *
 * The config is stored as `billing:config` (complete, defaults filled in) and the tenant joins
 * the set `mspsync:{_}:billing:tenants` while billing is enabled (the billing service's daily
 * schedule walks it). Everything else is written by the billing service (services/billing) and
 * only read here. The current period is the month of the billing clock (msp_billing_now_ms) in
 * the tenant's zone.
 */
#include "gateway.h"
#include "mspsync/vendor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mspsync/backoff.h"
#include "mspsync/billing.h"
#include "mspsync/crypto.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/org_match.h"
#include "mspsync/redis.h"

#define MAX_LIST 1000

/* The tenant's config (defaults when none was saved). @returns 1 configured, 0 defaults, -1
 * Redis (err), -2 a stored config that no longer reads (err). */
static int load_conf(gw_t *gw, const char *tenant, msp_billing_conf_t *c, char *err,
                     size_t err_size) {
    char key[200];
    msp_key(key, sizeof(key), tenant, "billing:config");
    redisReply *r = gw_redis(gw, err, err_size, "GET %s", key);
    if (!r)
        return -1;
    json_t *doc = r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
    int configured = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    json_t *empty = json_object();
    int rc = msp_billing_conf_parse(doc ? doc : empty, c, err, err_size);
    json_decref(doc);
    json_decref(empty);
    return rc != 0 ? -2 : configured;
}

static int conf_or_reply(gw_t *gw, struct evhttp_request *req, const char *route,
                         const char *tenant, msp_billing_conf_t *c) {
    char err[512];
    int rc = load_conf(gw, tenant, c, err, sizeof(err));
    if (rc == -1)
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
    else if (rc == -2)
        gw_reply_error(gw, req, route, 500, "the stored billing config does not read: %s", err);
    return rc;
}

void api_billing_get(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "billing";
    msp_billing_conf_t c;
    int rc = conf_or_reply(gw, req, route, tenant, &c);
    if (rc < 0)
        return;
    json_t *body = json_deep_copy(c.doc);
    json_object_set_new(body, "configured", json_boolean(rc == 1));
    msp_billing_conf_clear(&c);
    gw_reply(gw, req, route, 200, body);
}

/* The tenant's hash <suffix> whose values are JSON, as an object (values parsed), or NULL
 * (Redis): billing:lines (line name → {"counted", "recurring_type_id"}, what pushes saw on the
 * recurring invoices) and billing:pushed ("<customer>\t<product>" → the line's state). */
static json_t *json_hash(gw_t *gw, const char *tenant, const char *suffix, char *err,
                         size_t err_size) {
    char key[200];
    msp_key(key, sizeof(key), tenant, "%s", suffix);
    redisReply *r = gw_redis(gw, err, err_size, "HGETALL %s", key);
    if (!r)
        return NULL;
    json_t *out = json_object();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        json_t *v = json_loads(r->element[i + 1]->str, 0, NULL);
        if (v)
            json_object_set_new(out, r->element[i]->str, v);
    }
    freeReplyObject(r);
    return out;
}

/* A product mapped to a line Syncro counts (known from a push): @returns 1 with err. */
static int maps_counted_line(const msp_billing_conf_t *c, json_t *lines, char *err,
                             size_t err_size) {
    for (size_t i = 0; i < c->nproducts; i++) {
        const char *name;
        json_t *v;
        json_object_foreach(lines, name, v) {
            if (strcasecmp(name, c->products[i].line_name) != 0 ||
                !json_is_true(json_object_get(v, "counted")))
                continue;
            snprintf(err, err_size,
                     "products.%s.line_name: \"%s\" is a counted line on the "
                     "recurring invoices (recurring_type_id %" JSON_INTEGER_FORMAT "): Syncro "
                     "computes its quantity and ignores ours; map the product to a "
                     "fixed-quantity line",
                     c->products[i].product, name,
                     json_integer_value(json_object_get(v, "recurring_type_id")));
            return 1;
        }
    }
    return 0;
}

void api_billing_put(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "billing";
    json_t *in;
    if (gw_read_json(gw, req, route, 0, &in) != 0)
        return;
    char err[700], key[200], set[200];
    msp_billing_conf_t c;
    if (msp_billing_conf_parse(in, &c, err, sizeof(err)) != 0) {
        json_decref(in);
        gw_reply_error(gw, req, route, 400, "%s", err);
        return;
    }
    json_decref(in);
    json_t *lines = json_hash(gw, tenant, "billing:lines", err, sizeof(err));
    if (!lines || maps_counted_line(&c, lines, err, sizeof(err))) {
        gw_reply_error(gw, req, route, lines ? 400 : 503, lines ? "%s" : "redis unavailable: %s",
                       err);
        json_decref(lines);
        msp_billing_conf_clear(&c);
        return;
    }
    json_decref(lines);
    if (c.enabled) {
        /* the Syncro key must be able to read and edit recurring invoices now, not when the
         * first push is dead-lettered (the "billing" feature of the vendor row) */
        json_t *missing = NULL;
        if (gw_integ_check_features(gw, tenant, &msp_vendor_syncro, "billing",
                                    "grant the permissions to the API key's group in Syncro and "
                                    "save the Syncro integration again, then enable billing",
                                    &missing, err, sizeof(err)) < 0) {
            msp_billing_conf_clear(&c);
            gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
            return;
        }
        if (missing) {
            msp_billing_conf_clear(&c);
            gw_reply(gw, req, route, 422, missing);
            return;
        }
    }
    char *text = json_dumps(c.doc, JSON_COMPACT);
    msp_key(key, sizeof(key), tenant, "billing:config");
    msp_key(set, sizeof(set), "_", "billing:tenants");
    redisReply *r = text ? gw_redis(gw, err, sizeof(err), "SET %s %s", key, text) : NULL;
    if (r) {
        freeReplyObject(r);
        r = gw_redis(gw, err, sizeof(err), c.enabled ? "SADD %s %s" : "SREM %s %s", set, tenant);
    }
    free(text);
    if (!r) {
        msp_billing_conf_clear(&c);
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    freeReplyObject(r);
    MSP_INFO("billing.config_saved", tenant, "enabled=%d products=%zu time_zone=%s", c.enabled,
             c.nproducts, c.time_zone);
    json_t *body = json_deep_copy(c.doc);
    json_object_set_new(body, "configured", json_true());
    msp_billing_conf_clear(&c);
    gw_reply(gw, req, route, 200, body);
}

void api_billing_push(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "billing_push";
    msp_billing_conf_t c;
    if (conf_or_reply(gw, req, route, tenant, &c) < 0)
        return;
    int enabled = c.enabled;
    msp_billing_conf_clear(&c);
    if (!enabled) {
        gw_reply_error(gw, req, route, 409,
                       "billing is not enabled for tenant \"%s\"; enable it "
                       "with PUT /v1/tenants/%s/billing",
                       tenant, tenant);
        return;
    }
    char id[33], key[200];
    if (msp_random_hex(id, 16) != 0) {
        gw_reply_error(gw, req, route, 500, "could not draw a push id");
        return;
    }
    json_t *msg = json_pack("{s:i,s:s,s:s,s:s,s:s,s:I}", "schema_version", 1, "kind", "push",
                            "tenant", tenant, "push_id", id, "reason", "api", "requested_at_ms",
                            (json_int_t)msp_billing_now_ms());
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    snprintf(key, sizeof(key), "%s/push", tenant);
    gw_held_t *held = gw_hold(gw, req, route);
    if (!held) {
        free(text);
        gw_reply_error(gw, req, route, 500, "out of memory");
        return;
    }
    MSP_INFO("billing.push_requested", tenant, "push %s", id);
    gw_produce_reply(gw, held, msp_topic(MSP_TOPIC_USAGE_EVENTS), key, text, "the push", 202,
                     json_pack("{s:s,s:s}", "status", "queued", "push_id", id), NULL, NULL);
    free(text);
}

/* The current period's plan (msp_billing_plan) or NULL with the answer sent. */
static json_t *plan_or_reply(gw_t *gw, struct evhttp_request *req, const char *route,
                             const char *tenant, msp_billing_conf_t *c) {
    char err[512], period[8];
    if (msp_billing_period(c->time_zone, msp_billing_now_ms(), period, err, sizeof(err)) != 0) {
        gw_reply_error(gw, req, route, 500, "%s", err);
        return NULL;
    }
    /* through gw_redis: on the request's coroutine, the reads do not hold the loop */
    char keys[3][300];
    redisReply *r[3] = {0};
    int ok = 1;
    msp_billing_plan_keys(tenant, period, keys);
    for (int i = 0; i < 3 && ok; i++) {
        r[i] = gw_redis(gw, err, sizeof(err), "HGETALL %s", keys[i]);
        if (r[i] && r[i]->type != REDIS_REPLY_ARRAY)
            snprintf(err, sizeof(err), "unexpected reply to HGETALL");
        ok = r[i] && r[i]->type == REDIS_REPLY_ARRAY;
    }
    json_t *plan = ok ? msp_billing_plan_of(r, c, period) : NULL;
    for (int i = 0; i < 3; i++)
        if (r[i])
            freeReplyObject(r[i]);
    if (!plan && ok)
        gw_reply_error(gw, req, route, 500, "out of memory");
    else if (!plan)
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
    return plan;
}

void api_billing_preview(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "billing_preview";
    msp_billing_conf_t c;
    if (conf_or_reply(gw, req, route, tenant, &c) < 0)
        return;
    char err[512];
    json_t *plan = plan_or_reply(gw, req, route, tenant, &c);
    json_t *pushed = plan ? json_hash(gw, tenant, "billing:pushed", err, sizeof(err)) : NULL;
    if (plan && !pushed)
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
    if (!plan || !pushed) {
        json_decref(plan);
        msp_billing_conf_clear(&c);
        return;
    }
    json_t *rows = json_array();
    const char *cid, *product;
    json_t *cu, *ln;
    json_object_foreach(json_object_get(plan, "customers"), cid, cu) {
        json_object_foreach(json_object_get(cu, "lines"), product, ln) {
            char f[400];
            snprintf(f, sizeof(f), "%s\t%s", cid, product);
            json_t *st = json_object_get(pushed, f);
            json_t *old = json_object_get(st, "quantity");
            json_int_t want = json_integer_value(json_object_get(ln, "quantity"));
            const char *state = json_string_value(json_object_get(st, "state"));
            const char *action = state && !strcmp(state, "refused") ? "refused"
                                 : !json_is_integer(old)            ? "write"
                                 : json_integer_value(old) == want  ? "unchanged"
                                                                    : "write";
            json_array_append_new(
                rows,
                json_pack("{s:s,s:O,s:s,s:O,s:O,s:I,s:s,s:O}", "customer_id", cid, "customer_name",
                          json_object_get(cu, "customer_name"), "product", product, "line_name",
                          json_object_get(ln, "line_name"), "old_quantity", old ? old : json_null(),
                          "new_quantity", want, "action", action, "error",
                          json_object_get(st, "error") ? json_object_get(st, "error")
                                                       : json_null()));
        }
    }
    json_t *body = json_pack("{s:b,s:O,s:o,s:O}", "enabled", c.enabled, "period",
                             json_object_get(plan, "period"), "lines", rows, "unmapped",
                             json_object_get(plan, "unmapped"));
    json_decref(plan);
    json_decref(pushed);
    msp_billing_conf_clear(&c);
    gw_reply(gw, req, route, 200, body);
}

/* A list key's first MAX_LIST entries, parsed, or NULL (Redis). */
static json_t *list_json(gw_t *gw, const char *key, char *err, size_t err_size) {
    redisReply *r = gw_redis(gw, err, err_size, "LRANGE %s 0 %d", key, MAX_LIST - 1);
    if (!r)
        return NULL;
    json_t *out = json_array();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        json_t *v = json_loads(r->element[i]->str, 0, NULL);
        if (v)
            json_array_append_new(out, v);
    }
    freeReplyObject(r);
    return out;
}

/* A hash key as an object of strings (numbers as integers), or NULL (Redis). */
static json_t *hash_json(gw_t *gw, const char *key, char *err, size_t err_size) {
    redisReply *r = gw_redis(gw, err, err_size, "HGETALL %s", key);
    if (!r)
        return NULL;
    json_t *out = json_object();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        char *end;
        long long v = strtoll(r->element[i + 1]->str, &end, 10);
        json_object_set_new(out, r->element[i]->str,
                            r->element[i + 1]->str[0] && !*end
                                ? json_integer(v)
                                : json_string(r->element[i + 1]->str));
    }
    freeReplyObject(r);
    return out;
}

/* Add "suggestions" (up to 3 fixed-quantity line names alike the product's name, best first)
 * to every unmapped entry whose product has no mapping. */
static void suggest_lines(json_t *unmapped, json_t *lines, const msp_billing_conf_t *c) {
    size_t i;
    json_t *u;
    json_array_foreach(unmapped, i, u) {
        const char *product = json_string_value(json_object_get(u, "product"));
        json_t *sug = json_array();
        if (product && !msp_billing_product(c, product)) {
            const char *best[3] = {0};
            double score[3] = {0};
            const char *name;
            json_t *v;
            json_object_foreach(lines, name, v) {
                if (json_is_true(json_object_get(v, "counted")))
                    continue;
                double sc = org_match_score_str(product, name);
                for (int k = 0; k < 3; k++) {
                    if (sc > 0 && sc > score[k]) {
                        for (int m = 2; m > k; m--) {
                            best[m] = best[m - 1];
                            score[m] = score[m - 1];
                        }
                        best[k] = name;
                        score[k] = sc;
                        break;
                    }
                }
            }
            for (int k = 0; k < 3 && best[k]; k++)
                json_array_append_new(
                    sug, json_pack("{s:s,s:f}", "line_name", best[k], "score", score[k]));
        }
        json_object_set_new(u, "suggestions", sug);
    }
}

void api_billing_status(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "billing_status";
    msp_billing_conf_t c;
    if (conf_or_reply(gw, req, route, tenant, &c) < 0)
        return;
    char err[512], klate[200], kpush[200], kstats[200];
    json_t *plan = plan_or_reply(gw, req, route, tenant, &c);
    if (!plan) {
        msp_billing_conf_clear(&c);
        return;
    }
    msp_key(klate, sizeof(klate), tenant, "billing:late");
    msp_key(kpush, sizeof(kpush), tenant, "billing:push");
    msp_key(kstats, sizeof(kstats), tenant, "billing:stats");
    json_t *pushed = json_hash(gw, tenant, "billing:pushed", err, sizeof(err));
    json_t *late = pushed ? list_json(gw, klate, err, sizeof(err)) : NULL;
    json_t *last = late ? hash_json(gw, kpush, err, sizeof(err)) : NULL;
    json_t *stats = last ? hash_json(gw, kstats, err, sizeof(err)) : NULL;
    json_t *lines = stats ? json_hash(gw, tenant, "billing:lines", err, sizeof(err)) : NULL;
    if (!lines) {
        json_decref(stats);
        json_decref(plan);
        json_decref(pushed);
        json_decref(late);
        json_decref(last);
        msp_billing_conf_clear(&c);
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    /* per customer: its lines' states, with the mark the next push would write */
    json_t *customers = json_object();
    const char *f;
    json_t *st;
    json_object_foreach(pushed, f, st) {
        const char *tab = strchr(f, '\t');
        if (!tab)
            continue;
        char cid[64];
        snprintf(cid, sizeof(cid), "%.*s", (int)(tab - f), f);
        json_t *cu = json_object_get(customers, cid);
        if (!cu) {
            cu = json_pack("{s:s,s:[]}", "customer_id", cid, "lines");
            json_object_set_new(customers, cid, cu);
        }
        json_t *row = json_deep_copy(st);
        json_object_set_new(row, "product", json_string(tab + 1));
        json_t *ln = json_object_get(
            json_object_get(json_object_get(json_object_get(plan, "customers"), cid), "lines"),
            tab + 1);
        json_object_set(row, "mark", ln ? json_object_get(ln, "quantity") : json_null());
        json_array_append_new(json_object_get(cu, "lines"), row);
    }
    json_t *list = json_array();
    json_t *cu;
    const char *cid;
    json_object_foreach(customers, cid, cu) json_array_append(list, cu);
    json_decref(customers);
    suggest_lines(json_object_get(plan, "unmapped"), lines, &c);
    json_decref(lines);
    json_t *body = json_pack("{s:b,s:O,s:o,s:O,s:o,s:o,s:o}", "enabled", c.enabled, "period",
                             json_object_get(plan, "period"), "customers", list, "unmapped",
                             json_object_get(plan, "unmapped"), "late_reports", late, "last_push",
                             last, "stats", stats);
    json_decref(plan);
    json_decref(pushed);
    msp_billing_conf_clear(&c);
    gw_reply(gw, req, route, 200, body);
}

void api_billing_history(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "billing_history";
    char *sid = gw_query_param(req, "schedule_id"), *lid = gw_query_param(req, "line_id");
    char err[512], key[300];
    if (!sid || !lid || !gw_valid_record_id(sid) || !gw_valid_record_id(lid)) {
        gw_reply_error(gw, req, route, 400, "schedule_id and line_id (Syncro ids) are required");
    } else if (!gw_traces_reply_pending(gw, req, route)) { /* not while it is rebuilt */
        msp_key(key, sizeof(key), tenant, "billing:history:%s:%s", sid, lid);
        json_t *h = list_json(gw, key, err, sizeof(err));
        if (!h)
            gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        else
            gw_reply(gw, req, route, 200,
                     json_pack("{s:s,s:s,s:o}", "schedule_id", sid, "line_id", lid, "changes", h));
    }
    free(sid);
    free(lid);
}
