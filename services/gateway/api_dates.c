/*
 * api_dates.c — an asset's purchase and warranty dates as edited in mspsync, and what write-back
 * did with them:
 *   PUT /v1/tenants/{t}/assets/{id}/dates       {"purchase_date":"YYYY-MM-DD"|null,
 *                                               "warranty_expires":"YYYY-MM-DD"|null}
 *   GET /v1/tenants/{t}/assets/{id}/writeback   the hash wb:<asset id>
 *
 * The gateway does not write the inventory: an edit becomes one "edit" envelope on raw.records,
 * keyed by the tenant like the tenant's sync records, so the normalizer (the inventory's one
 * writer) applies it in order with them, records it in inv:edit:<id> and emits date.changes for
 * the write-back. The caller hears 202 {"edit_id","asset_id"} once Kafka has the envelope, 503
 * when it could not be queued (nothing was produced; send it again). Omitted fields are left as
 * they are; null clears the edited value.
 */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/backoff.h"
#include "mspsync/crypto.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"

/*
 * 1 when inv:asset:<id> exists and the asset is not gone (need_live), 0 when not (the 404 has
 * been sent), -1 Redis (503 sent).
 */
static int asset_exists(gw_t *gw, struct evhttp_request *req, const char *route,
                        const char *tenant, const char *id, int need_live) {
    char key[400], gone[128], err[256];
    if (!gw_valid_record_id(id)) {
        gw_reply_error(gw, req, route, 404, "no asset with that id");
        return 0;
    }
    msp_key(key, sizeof(key), tenant, "inv:asset:%s", id);
    msp_key(gone, sizeof(gone), tenant, "inv:gone:asset");
    redisReply *e = gw_redis(gw, err, sizeof(err), "EXISTS %s", key);
    redisReply *g = e && need_live ? gw_redis(gw, err, sizeof(err), "SISMEMBER %s %s", gone, id)
                                   : NULL;
    if (!e || (need_live && !g)) {
        if (e)
            freeReplyObject(e);
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return -1;
    }
    int exists = e->integer == 1, is_gone = g && g->integer == 1;
    freeReplyObject(e);
    if (g)
        freeReplyObject(g);
    if (!exists && gw_inventory_pending(gw) == 1) {
        gw_reply_rebuilding(gw, req, route); /* it may simply not be back yet */
        return -1;
    }
    if (!exists)
        gw_reply_error(gw, req, route, 404, "no asset \"%s\" for tenant \"%s\"", id, tenant);
    else if (is_gone)
        gw_reply_error(gw, req, route, 404, "asset \"%s\" is gone from every integration; its "
                       "dates cannot be edited", id);
    return exists && !is_gone;
}

/*
 * One date field of the request: absent (nothing), null (clear) or a date msp_date_normalize
 * reads. Sets *out to a new JSON value (a "YYYY-MM-DD" string or null) when present.
 * @returns 1 present, 0 absent, -1 invalid (err names the field).
 */
static int date_field(const json_t *body, const char *field, json_t **out, char *err,
                      size_t err_size) {
    json_t *v = json_object_get(body, field);
    char day[11];
    *out = NULL;
    if (!v)
        return 0;
    if (json_is_null(v)) {
        *out = json_null();
        return 1;
    }
    if (json_is_string(v) && json_string_length(v) < 64 &&
        msp_date_normalize(json_string_value(v), day) == 0) {
        *out = json_string(day);
        return 1;
    }
    snprintf(err, err_size, "\"%s\" must be a date \"YYYY-MM-DD\" or null (got %s)", field,
             json_is_string(v) ? "an unreadable date" : gw_json_kind(v));
    return -1;
}

void api_asset_dates_put(gw_t *gw, struct evhttp_request *req, const char *tenant,
                         const char *id) {
    const char *route = "asset_dates";
    json_t *body;
    if (gw_read_json(gw, req, route, 0, &body) != 0)
        return;
    char err[300];
    json_t *purchase = NULL, *warranty = NULL;
    static const char *const known[] = {"purchase_date", "warranty_expires", NULL};
    if (gw_json_only_keys(body, known, err, sizeof(err)) != 0) {
        gw_reply_error(gw, req, route, 400, "%s", err);
        json_decref(body);
        return;
    }
    int np = date_field(body, "purchase_date", &purchase, err, sizeof(err));
    int nw = np < 0 ? 0 : date_field(body, "warranty_expires", &warranty, err, sizeof(err));
    json_decref(body);
    if (np < 0 || nw < 0 || np + nw == 0) {
        json_decref(purchase);
        json_decref(warranty);
        if (np + nw == 0)
            snprintf(err, sizeof(err), "send \"purchase_date\" and/or \"warranty_expires\" "
                     "(\"YYYY-MM-DD\", or null to clear)");
        gw_reply_error(gw, req, route, 400, "%s", err);
        return;
    }
    if (asset_exists(gw, req, route, tenant, id, 1) != 1) {
        json_decref(purchase);
        json_decref(warranty);
        return;
    }
    char edit_id[33], now[32];
    if (msp_random_hex(edit_id, 16) != 0) {
        json_decref(purchase);
        json_decref(warranty);
        gw_reply_error(gw, req, route, 500, "could not draw an edit id");
        return;
    }
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    json_t *fields = json_object();
    if (purchase)
        json_object_set_new(fields, "purchase", purchase);
    if (warranty)
        json_object_set_new(fields, "warranty", warranty);
    json_t *msg = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s}", "schema_version", 1, "kind",
                            "edit", "tenant", tenant, "integration", "mspsync", "type", "asset",
                            "asset_id", id, "edit_id", edit_id, "fields", fields, "requested_at",
                            now);
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    gw_held_t *held = text ? gw_hold(gw, req, route) : NULL;
    if (!held) {
        free(text);
        gw_reply_error(gw, req, route, 500, "out of memory");
        return;
    }
    MSP_INFO("asset.dates_edited", tenant, "edit %s of asset %s queued", edit_id, id);
    gw_produce_reply(gw, held, msp_topic(MSP_TOPIC_RAW_RECORDS), tenant, text, "the edit", 202,
                     json_pack("{s:s,s:s}", "edit_id", edit_id, "asset_id", id), NULL, NULL);
    free(text);
}

void api_asset_writeback_get(gw_t *gw, struct evhttp_request *req, const char *tenant,
                             const char *id) {
    const char *route = "asset_writeback";
    if (asset_exists(gw, req, route, tenant, id, 0) != 1)
        return;
    char key[400], err[256];
    msp_key(key, sizeof(key), tenant, "wb:%s", id);
    redisReply *r = gw_redis(gw, err, sizeof(err), "HGETALL %s", key);
    if (!r) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    json_t *targets = json_object();
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *val = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
            continue;
        json_t *t = json_loadb(val->str, val->len, 0, NULL);
        if (!json_is_object(t)) {
            MSP_WARN("writeback.bad_entry", tenant, "wb:%s field %s is not a JSON object", id,
                     f->str);
            json_decref(t);
            continue;
        }
        /* the documented shape, every key present */
        static const char *const keys[] = {"state", "value", "change_id", "error", "at", NULL};
        json_t *o = json_object();
        for (int j = 0; keys[j]; j++) {
            json_t *x = json_object_get(t, keys[j]);
            json_object_set_new(o, keys[j], x ? json_incref(x) : json_null());
        }
        json_decref(t);
        json_object_set_new(targets, f->str, o);
    }
    freeReplyObject(r);
    gw_reply(gw, req, route, 200, json_pack("{s:s,s:o}", "asset_id", id, "targets", targets));
}
