/*
 * api_secrets.c — GET /v1/secrets and POST /v1/secrets/reseal: master-key rotation.
 *
 * Every secret mspsync keeps is sealed with the master key (crypto.h): each tenant's vendor
 * credential (integration:<vendor>, the row's sealed_field, AAD "<t>/<vendor>") and its MTP
 * webhook secrets (webhook:mtp current_sealed / previous_sealed, AAD "<t>/webhook:mtp"). With a
 * key ring (MSPSYNC_SECRET_KEYS, newest first) the gateway opens each with whichever key sealed
 * it; these routes find out which one that was:
 *   GET  counts the secrets sealed with the newest key, with an older key of the ring, and with
 *        none of them (a key that was removed too early, or another deployment's) — those are
 *        listed by tenant and integration with what to do: save the integration (or create the
 *        webhook secret) again;
 *   POST re-seals every secret opened by an older key with the newest, each with a compare-and-
 *        set script (a save that raced the re-seal wins, the re-seal of that value is skipped),
 *        and answers the same report afterwards.
 * Both set the gauge mspsync_secrets{key="newest|older|unreadable"}, so a dashboard shows a
 * rotation that was never finished. ConnectWise RMM's cached OAuth tokens are sealed too but are
 * a cache: one that no key opens is fetched again, so they are not counted or re-sealed.
 *
 * Operator routes (the admin bearer token); nothing in the answers is secret: no plaintext, no
 * sealed text. A tenant's secrets are read and re-sealed one command at a time on the gateway's
 * blocking Redis context: a rotation is a rare operator action, sized by the number of tenants.
 */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/crypto.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/vendor.h"

/* Replace a hash field only if it still holds what was read. */
static const char CAS_LUA[] = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then "
                              "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) return 1 end return 0";

typedef struct {
    long long newest, older, unreadable, resealed, raced;
    json_t *needs; /* [{tenant, secret, hint}] */
} scan_t;

/* One sealed value in a hash field: count it, and re-seal it when asked. @returns 0, -1 Redis. */
static int visit(gw_t *gw, scan_t *sc, int reseal, const char *tenant, const char *hkey,
                 const char *field, const char *aad, const char *what, const char *hint, char *err,
                 size_t err_size) {
    redisReply *r = gw_redis(gw, err, err_size, "HGET %s %s", hkey, field);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_STRING || r->len == 0) {
        freeReplyObject(r);
        return 0;
    }
    size_t len = 0;
    int which = -1;
    char *plain = msp_secret_open_ex(&gw->key, aad, r->str, &len, &which);
    if (!plain) {
        sc->unreadable++;
        json_array_append_new(sc->needs, json_pack("{s:s, s:s, s:s}", "tenant", tenant, "secret",
                                                   what, "hint", hint));
    } else if (which == 0) {
        sc->newest++;
    } else if (!reseal) {
        sc->older++;
    } else {
        char *sealed = msp_secret_seal(&gw->key, aad, plain, len);
        redisReply *c = sealed ? gw_redis(gw, err, err_size, "EVAL %s 1 %s %s %s %s", CAS_LUA, hkey,
                                          field, r->str, sealed)
                               : NULL;
        free(sealed);
        if (!c) {
            msp_secure_zero(plain, len);
            free(plain);
            freeReplyObject(r);
            if (!err[0])
                snprintf(err, err_size, "out of memory");
            return -1;
        }
        if (c->type == REDIS_REPLY_INTEGER && c->integer == 1) {
            sc->newest++;
            sc->resealed++;
            MSP_INFO("secret.resealed", tenant, "%s re-sealed with the newest key", what);
        } else {
            sc->raced++; /* saved meanwhile, with the newest key */
            sc->newest++;
        }
        freeReplyObject(c);
    }
    if (plain) {
        msp_secure_zero(plain, len);
        free(plain);
    }
    freeReplyObject(r);
    return 0;
}

static int scan_tenant(gw_t *gw, scan_t *sc, int reseal, const char *t, char *err,
                       size_t err_size) {
    char hkey[160], aad[160], what[64], hint[200];
    for (size_t i = 0; msp_vendor_at(i); i++) {
        const msp_vendor_t *v = msp_vendor_at(i);
        msp_key(hkey, sizeof(hkey), t, "integration:%s", v->name);
        snprintf(aad, sizeof(aad), "%s/%s", t, v->name);
        snprintf(what, sizeof(what), "integration:%s", v->name);
        snprintf(hint, sizeof(hint), "no key of MSPSYNC_SECRET_KEYS opens it: %s",
                 v->hints[MSP_HINT_SEALED]);
        if (visit(gw, sc, reseal, t, hkey, v->sealed_field, aad, what, hint, err, err_size) != 0)
            return -1;
    }
    static const char *const wh_fields[] = {"current_sealed", "previous_sealed"};
    msp_key(hkey, sizeof(hkey), t, "webhook:mtp");
    snprintf(aad, sizeof(aad), "%s/webhook:mtp", t);
    for (size_t i = 0; i < 2; i++) {
        snprintf(what, sizeof(what), "webhook:mtp %s", i ? "previous" : "current");
        snprintf(hint, sizeof(hint),
                 "no key of MSPSYNC_SECRET_KEYS opens it: create a new webhook secret (POST "
                 "/v1/tenants/%s/webhooks/mtp/secret) and give it to the portal",
                 t);
        if (visit(gw, sc, reseal, t, hkey, wh_fields[i], aad, what, hint, err, err_size) != 0)
            return -1;
    }
    return 0;
}

static void secrets_scan(gw_t *gw, struct evhttp_request *req, const char *route, int reseal) {
    char set[64], err[256] = "";
    msp_key(set, sizeof(set), "_", "tenants");
    redisReply *ts = gw_redis(gw, err, sizeof(err), "SMEMBERS %s", set);
    if (!ts) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    scan_t sc = {0};
    sc.needs = json_array();
    int failed = 0;
    for (size_t i = 0; !failed && ts->type == REDIS_REPLY_ARRAY && i < ts->elements; i++)
        if (ts->element[i]->type == REDIS_REPLY_STRING)
            failed = scan_tenant(gw, &sc, reseal, ts->element[i]->str, err, sizeof(err)) != 0;
    freeReplyObject(ts);
    if (failed) {
        /* what was re-sealed stays re-sealed: the next call goes on from there */
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        json_decref(sc.needs);
        return;
    }
    msp_metric_set(gw->metrics, "mspsync_secrets", "key=\"newest\"", (double)sc.newest);
    msp_metric_set(gw->metrics, "mspsync_secrets", "key=\"older\"", (double)sc.older);
    msp_metric_set(gw->metrics, "mspsync_secrets", "key=\"unreadable\"", (double)sc.unreadable);
    json_t *out = json_pack("{s:I, s:I, s:I, s:I, s:o}", "keys_in_ring",
                            (json_int_t)(gw->key.older_cnt + 1), "sealed_with_newest",
                            (json_int_t)sc.newest, "sealed_with_older", (json_int_t)sc.older,
                            "unreadable", (json_int_t)sc.unreadable, "needs_saving", sc.needs);
    if (reseal) {
        json_object_set_new(out, "resealed", json_integer(sc.resealed));
        json_object_set_new(out, "changed_meanwhile", json_integer(sc.raced));
    }
    gw_reply(gw, req, route, 200, out);
}

void api_secrets_get(gw_t *gw, struct evhttp_request *req) { secrets_scan(gw, req, "secrets", 0); }

void api_secrets_reseal(gw_t *gw, struct evhttp_request *req) {
    secrets_scan(gw, req, "secrets_reseal", 1);
}
