/*
 * api_tenants.c — POST /v1/tenants, GET /v1/tenants, GET /v1/tenants/{t}.
 *
 * A tenant is a member of mspsync:{_}:tenants plus the hash mspsync:{t}:tenant (name,
 * created_at). SADD is the claim: of two concurrent creates, only the one that added the id
 * writes the hash and answers 201; the other answers 409.
 *
 * DELETE /v1/tenants/{t} (operator) offboards a tenant: a tombstone for every inventory id on
 * the compacted customers / assets topics first (as an integration's removal does), and only
 * once Kafka has them all — a failed publish leaves everything in place, and the DELETE can
 * simply be retried — the tenant leaves the tenants set (its keys answer 401 from then on) and
 * every Redis key of the tenant, mspsync:{t}:* (integrations with their sealed credentials,
 * inventory, tickets, mappings, webhook secrets, API keys, audit log, status and cursors), is
 * unlinked. store.c names each unlinked key to the journal, which turns the configuration keys
 * into tombstones on the `config` topic, so a restore cannot bring the tenant back.
 * Limit: a sync job of the tenant still running in the fetcher may write status or inventory
 * keys again after the offboarding; disable its integrations (or wait for the job) first.
 */
#include "gateway.h"
#include "mspsync/utf8.h"

#include <stdlib.h>
#include <string.h>

#include "mspsync/backoff.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"

#define MAX_NAME 200

static json_t *str_or_null(const redisReply *r) {
    return (r && r->type == REDIS_REPLY_STRING) ? json_stringn(r->str, r->len) : json_null();
}

void api_tenants_create(gw_t *gw, struct evhttp_request *req) {
    const char *route = "tenants";
    json_t *in;
    if (gw_read_json(gw, req, route, 0, &in) != 0)
        return;
    const char *id = json_string_value(json_object_get(in, "id"));
    const char *name = json_string_value(json_object_get(in, "name"));
    if (!id || !gw_valid_tenant_id(id)) {
        gw_reply_error(gw, req, route, 400,
                       "\"id\" must be a string matching ^[a-z0-9][a-z0-9_-]{0,62}$");
        json_decref(in);
        return;
    }
    if (!name || !name[0] || msp_utf8_chars(name) > MAX_NAME) {
        gw_reply_error(gw, req, route, 400, "\"name\" must be a non-empty string of at most %d "
                       "characters", MAX_NAME);
        json_decref(in);
        return;
    }

    char set[128], key[128], err[256], now[32];
    msp_key(set, sizeof(set), "_", "tenants");
    msp_key(key, sizeof(key), id, "tenant");
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    redisReply *r = gw_redis(gw, err, sizeof(err), "SADD %s %s", set, id);
    if (!r) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
    } else if (r->integer == 0) {
        gw_reply_error(gw, req, route, 409, "tenant \"%s\" already exists", id);
    } else {
        redisReply *h = gw_redis(gw, err, sizeof(err), "HSET %s name %s created_at %s", key,
                                 name, now);
        if (!h) {
            gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        } else {
            MSP_INFO("tenant.created", id, "tenant created");
            gw_reply(gw, req, route, 201,
                     json_pack("{s:s,s:s,s:s}", "id", id, "name", name, "created_at", now));
            freeReplyObject(h);
        }
    }
    if (r)
        freeReplyObject(r);
    json_decref(in);
}

/* {"id","name","created_at"} of one tenant, or NULL with err on a Redis error. */
static json_t *tenant_object(gw_t *gw, const char *id, char *err, size_t err_size) {
    char key[128];
    msp_key(key, sizeof(key), id, "tenant");
    redisReply *r = gw_redis(gw, err, err_size, "HMGET %s name created_at", key);
    if (!r)
        return NULL;
    json_t *o = json_pack("{s:s,s:o,s:o}", "id", id, "name",
                          str_or_null(r->elements > 0 ? r->element[0] : NULL), "created_at",
                          str_or_null(r->elements > 1 ? r->element[1] : NULL));
    freeReplyObject(r);
    return o;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void api_tenants_list(gw_t *gw, struct evhttp_request *req) {
    const char *route = "tenants";
    char set[128], err[256];
    msp_key(set, sizeof(set), "_", "tenants");
    redisReply *r = gw_redis(gw, err, sizeof(err), "SMEMBERS %s", set);
    if (!r) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    const char **ids = calloc(r->elements + 1, sizeof(*ids));
    size_t n = 0;
    for (size_t i = 0; ids && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            ids[n++] = r->element[i]->str;
    if (n)
        qsort(ids, n, sizeof(*ids), cmp_str);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = tenant_object(gw, ids[i], err, sizeof(err));
        if (!o) {
            json_decref(arr);
            arr = NULL;
            break;
        }
        json_array_append_new(arr, o);
    }
    free(ids);
    freeReplyObject(r);
    if (!arr)
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
    else
        gw_reply(gw, req, route, 200, json_pack("{s:o}", "tenants", arr));
}

void api_tenant_get(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "tenant";
    char err[256];
    json_t *o = tenant_object(gw, tenant, err, sizeof(err));
    if (!o) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    json_t *integ = json_array();
    for (size_t i = 0; i < MSP_VENDOR_COUNT; i++) {
        const msp_vendor_t *v = msp_vendor_at(i);
        int exists = gw_integ_exists(gw, tenant, v, err, sizeof(err));
        if (exists < 0) {
            json_decref(integ);
            json_decref(o);
            gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
            return;
        }
        if (exists)
            json_array_append_new(integ, json_string(v->name));
    }
    json_object_set_new(o, "integrations", integ);
    gw_reply(gw, req, route, 200, o);
}

/* ---- DELETE /v1/tenants/{t} ---------------------------------------------------------------- */

typedef struct offboard_s {
    gw_held_t *held;
    char tenant[64];
    long long tombstones;
    char redis_error[256]; /* reading the inventory ids failed */
} offboard_t;

/* Every key of the tenant is gone (or could not be): the answer. */
static void offboard_unlinked(gw_t *gw, void *arg, const char *err) {
    offboard_t *o = arg;
    if (err) {
        gw_held_reply_error(o->held, 503, "redis unavailable: %s; try again", err);
    } else {
        for (size_t i = 0; i < MSP_VENDOR_COUNT; i++)
            gw_secret_keep(gw, o->tenant, msp_vendor_at(i)->name, NULL);
        gw_secret_keep(gw, o->tenant, "webhook:mtp", NULL);
        gw_secret_keep(gw, o->tenant, "webhook:mtp:previous", NULL);
        MSP_INFO("tenant.deleted", o->tenant, "tenant offboarded, %lld inventory tombstones",
                 o->tombstones);
        gw_held_reply(o->held, 204, NULL);
    }
    free(o);
}

static void offboard_delivered(gw_t *gw, void *arg, const char *error) {
    offboard_t *o = arg;
    char set[128], prefix[128], err[256];
    msp_key(set, sizeof(set), "_", "tenants");
    msp_key(prefix, sizeof(prefix), o->tenant, "%s", "");
    redisReply *r = NULL;
    if (o->redis_error[0]) {
        gw_held_reply_error(o->held, 503, "redis unavailable: %s; nothing was deleted",
                            o->redis_error);
    } else if (error) {
        MSP_WARN("tenant.delete_failed", o->tenant, "tombstones not delivered: %s", error);
        gw_held_reply_error(o->held, 503,
                            "could not publish the tombstones: %s; nothing was "
                            "deleted, try again",
                            error);
    } else if (!(r = gw_redis(gw, err, sizeof(err), "SREM %s %s", set, o->tenant))) {
        gw_held_reply_error(o->held, 503, "redis unavailable: %s; try again", err);
    } else {
        freeReplyObject(r);
        gw_unlink_prefix(gw, prefix, offboard_unlinked, o); /* answers and frees o */
        return;
    }
    free(o);
}

void api_tenant_delete(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "tenant";
    offboard_t *o = calloc(1, sizeof(*o));
    gw_batch_t *b = o ? gw_batch_new(gw, offboard_delivered, o) : NULL;
    gw_held_t *held = b ? gw_hold(gw, req, route) : NULL;
    if (!held) {
        free(b);
        free(o);
        gw_reply_error(gw, req, route, 500, "out of memory");
        return;
    }
    o->held = held;
    snprintf(o->tenant, sizeof(o->tenant), "%s", tenant);
    gw_tombstone_inventory(gw, b, tenant, &o->tombstones, o->redis_error, sizeof(o->redis_error));
    gw_batch_seal(b); /* may answer right away (no ids) */
}
