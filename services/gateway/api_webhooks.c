/*
 * api_webhooks.c — the MTP webhook secret of a tenant (admin routes, bearer-authenticated):
 *   POST   /v1/tenants/{t}/webhooks/mtp/secret           create or rotate (shows the secret once)
 *   GET    /v1/tenants/{t}/webhooks/mtp                  whether one is configured, and how to sign
 *   DELETE /v1/tenants/{t}/webhooks/mtp/secret/previous  end the rotation grace period now
 * and gw_webhook_secrets_open, which unseals what the webhook (webhook.c) verifies against.
 *
 * Storage: hash mspsync:{t}:webhook:mtp with current_sealed, current_created_at, previous_sealed,
 * previous_valid_until_ms. Secrets are sealed (AES-256-GCM) with AAD "<t>/webhook:mtp", so a
 * sealed secret copied under another tenant does not open. A rotation is one Lua script (the old
 * current becomes the previous in the same step as the new one is written), so two concurrent
 * rotations cannot lose a secret that was already shown to a caller.
 *
 * The webhook keeps the unsealed secrets in its tenant cache (tenant_cache.c): a rotation or a
 * revoke through this gateway takes effect with the next request, through another replica
 * within the cache's refresh bound. The plaintext is shown only in the
 * 201 answer of the POST and is never logged (once stored it is registered with msp_log_redact
 * as well, gw_secret_keep; a rotation keeps the previous one registered while it stays valid
 * and revoking it forgets it — its expiry alone does not).
 */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/backoff.h"
#include "mspsync/crypto.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"

#define SECRET_PREFIX "whsec_"
#define SECRET_BYTES 32
#define DEFAULT_PREVIOUS_VALID_S 86400
#define MAX_PREVIOUS_VALID_S 604800

/*
 * KEYS[1] the hash; ARGV: new sealed secret, its created_at, seconds the old one stays valid,
 * the wall-clock ms until which it stays valid. @returns 1 when an old secret stays valid.
 */
static const char ROTATE_LUA[] =
    "local old = redis.call('HGET', KEYS[1], 'current_sealed')\n"
    "local kept = 0\n"
    "if old and tonumber(ARGV[3]) > 0 then\n"
    "  redis.call('HSET', KEYS[1], 'previous_sealed', old, 'previous_valid_until_ms', ARGV[4])\n"
    "  kept = 1\n"
    "else\n"
    "  redis.call('HDEL', KEYS[1], 'previous_sealed', 'previous_valid_until_ms')\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'current_sealed', ARGV[1], 'current_created_at', ARGV[2])\n"
    "return kept\n";

static void secret_key(char *buf, size_t size, const char *tenant) {
    msp_key(buf, size, tenant, "webhook:mtp");
}

static void secret_aad(char *buf, size_t size, const char *tenant) {
    snprintf(buf, size, "%s/webhook:mtp", tenant);
}

static json_t *iso_or_null(long long ms) {
    if (ms <= 0)
        return json_null();
    char when[32];
    msp_format_time(ms, when, sizeof(when));
    return json_string(when);
}

static void webhook_path(char *buf, size_t size, const char *tenant) {
    snprintf(buf, size, "/v1/webhooks/mtp/%s", tenant);
}

/* The previous secret's end of validity in wall-clock ms, or 0 when none is valid now. */
static long long previous_until(const char *sealed, const char *until_ms) {
    if (!sealed || !sealed[0] || !until_ms)
        return 0;
    long long until = strtoll(until_ms, NULL, 10);
    return until > msp_wall_ms() ? until : 0;
}

/* ---- the webhook's lookup ------------------------------------------------------------------ */

static char *open_secret(gw_t *gw, const char *tenant, const char *sealed) {
    char aad[96];
    secret_aad(aad, sizeof(aad), tenant);
    size_t len = 0;
    char *plain = msp_secret_open(&gw->key, aad, sealed, &len);
    if (plain && strlen(plain) != len) {  /* an embedded NUL: not one of ours */
        msp_secure_zero(plain, len);
        free(plain);
        return NULL;
    }
    return plain;
}

int gw_webhook_secrets_open(gw_t *gw, const char *tenant, const char *current_sealed,
                            const char *previous_sealed, const char *previous_valid,
                            gw_webhook_secrets_t *s, long long *previous_until_ms, char *errstr,
                            size_t errstr_size) {
    s->current = s->previous = NULL;
    *previous_until_ms = previous_until(previous_sealed, previous_valid);
    int rc = 0;
    if (current_sealed && current_sealed[0] &&
        !(s->current = open_secret(gw, tenant, current_sealed)))
        rc = -2;
    if (rc == 0 && *previous_until_ms && !(s->previous = open_secret(gw, tenant, previous_sealed)))
        rc = -2;
    if (rc == -2) {
        snprintf(errstr, errstr_size,
                 "the stored webhook secret of tenant \"%s\" cannot be "
                 "decrypted (was MSPSYNC_SECRET_KEY changed?); create a new one",
                 tenant);
        gw_webhook_secrets_clear(s);
    }
    return rc;
}

void gw_webhook_secrets_clear(gw_webhook_secrets_t *s) {
    char **p[2] = {&s->current, &s->previous};
    for (int i = 0; i < 2; i++) {
        if (*p[i]) {
            msp_secure_zero(*p[i], strlen(*p[i]));
            free(*p[i]);
            *p[i] = NULL;
        }
    }
}

/* ---- POST .../webhooks/mtp/secret ---------------------------------------------------------- */

void api_webhook_secret_create(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "webhook_secret";
    json_t *in;
    if (gw_read_json(gw, req, route, 1, &in) != 0)
        return;
    long long keep_s = DEFAULT_PREVIOUS_VALID_S;
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v) {
        if (strcmp(k, "previous_valid_seconds") != 0) {
            gw_reply_error(gw, req, route, 400, "unknown key \"%s\" (the only one is "
                           "\"previous_valid_seconds\")", k);
            json_decref(in);
            return;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > MAX_PREVIOUS_VALID_S) {
            gw_reply_error(gw, req, route, 400, "\"previous_valid_seconds\" must be an integer "
                           "between 0 and %d", MAX_PREVIOUS_VALID_S);
            json_decref(in);
            return;
        }
        keep_s = json_integer_value(v);
    }
    json_decref(in);

    char secret[sizeof(SECRET_PREFIX) + 2 * SECRET_BYTES], aad[96], key[128], err[256];
    char created[32], until[32], keep[32], path[128];
    memcpy(secret, SECRET_PREFIX, sizeof(SECRET_PREFIX));
    if (msp_random_hex(secret + strlen(SECRET_PREFIX), SECRET_BYTES) != 0) {
        gw_reply_error(gw, req, route, 500, "could not draw a secret");
        return;
    }
    secret_aad(aad, sizeof(aad), tenant);
    secret_key(key, sizeof(key), tenant);
    char *sealed = msp_secret_seal(&gw->key, aad, secret, strlen(secret));
    if (!sealed) {
        msp_secure_zero(secret, sizeof(secret));
        gw_reply_error(gw, req, route, 500, "could not encrypt the secret");
        return;
    }
    long long now_ms = msp_wall_ms(), until_ms = now_ms + keep_s * 1000;
    msp_format_time(now_ms, created, sizeof(created));
    snprintf(keep, sizeof(keep), "%lld", keep_s);
    snprintf(until, sizeof(until), "%lld", until_ms);
    redisReply *r = gw_redis(gw, err, sizeof(err), "EVAL %s 1 %s %s %s %s %s", ROTATE_LUA, key,
                             sealed, created, keep, until);
    free(sealed);
    if (!r) {
        msp_secure_zero(secret, sizeof(secret));
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    int kept = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    /* stored: redact the new secret, and the old one only while it stays valid */
    if (kept)
        gw_secret_rename(gw, tenant, "webhook:mtp", "webhook:mtp:previous");
    else
        gw_secret_keep(gw, tenant, "webhook:mtp:previous", NULL);
    gw_secret_keep(gw, tenant, "webhook:mtp", secret);
    webhook_path(path, sizeof(path), tenant);
    MSP_INFO("webhook.secret_created", tenant, "new MTP webhook secret; %s", kept
             ? "the previous one stays valid for the grace period" : "no previous one is valid");
    json_t *body = json_pack("{s:s,s:s,s:o,s:s}", "secret", secret, "created_at", created,
                             "previous_valid_until", iso_or_null(kept ? until_ms : 0),
                             "webhook_path", path);
    msp_secure_zero(secret, sizeof(secret));
    if (body)
        gw_reply(gw, req, route, 201, body);
    else
        gw_reply_error(gw, req, route, 500, "could not render the answer");
}

/* ---- GET .../webhooks/mtp ------------------------------------------------------------------ */

void api_webhook_get(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "webhook_config";
    char key[128], err[256], path[128];
    secret_key(key, sizeof(key), tenant);
    redisReply *r = gw_redis(gw, err, sizeof(err), "HGETALL %s", key);
    if (!r) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    const char *cur = gw_hget(r, "current_sealed"), *created = gw_hget(r, "current_created_at");
    int configured = cur && cur[0];
    long long until = configured ? previous_until(gw_hget(r, "previous_sealed"),
                                                  gw_hget(r, "previous_valid_until_ms"))
                                 : 0;
    webhook_path(path, sizeof(path), tenant);
    json_t *sig = json_pack("{s:s,s:s,s:s,s:I}", "header", "X-MSPSync-Signature",
                            "timestamp_header", "X-MSPSync-Timestamp", "scheme",
                            "v1=hex(hmac_sha256(secret, timestamp + \".\" + body))", "tolerance_s",
                            (json_int_t)gw->cfg.webhook_tolerance_s);
    json_t *body = json_pack("{s:b,s:o,s:o,s:s,s:o,s:I}", "configured", configured, "created_at",
                             configured && created ? json_string(created) : json_null(),
                             "previous_valid_until", iso_or_null(until), "webhook_path", path,
                             "signature", sig, "max_body", (json_int_t)gw->cfg.webhook_max_body);
    freeReplyObject(r);
    if (body)
        gw_reply(gw, req, route, 200, body);
    else
        gw_reply_error(gw, req, route, 500, "could not render the answer");
}

/* ---- DELETE .../webhooks/mtp/secret/previous ----------------------------------------------- */

void api_webhook_previous_delete(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "webhook_secret_previous";
    char key[128], err[256];
    secret_key(key, sizeof(key), tenant);
    redisReply *r = gw_redis(gw, err, sizeof(err), "HDEL %s previous_sealed "
                             "previous_valid_until_ms", key);
    if (!r) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    gw_secret_keep(gw, tenant, "webhook:mtp:previous", NULL);
    if (r->integer > 0)
        MSP_INFO("webhook.previous_revoked", tenant, "previous MTP webhook secret revoked");
    freeReplyObject(r);
    gw_reply(gw, req, route, 204, NULL);
}
