/*
 * access.c — who is calling: the operator token or a tenant API key, and what a role may do.
 *
 * Two kinds of bearer token:
 *   - the operator token (MSPSYNC_ADMIN_TOKEN): creates and deletes tenants, issues their keys,
 *     runs the operator routes (/v1/secrets). It is accepted on every route — bootstrap, support
 *     and the deployments from before keys — but tenant keys are the daily path;
 *   - a tenant key "msk_<tenant>_<id>_<secret>" (id: 16 hex digits, secret: 64). It is stored in
 *     the tenant's hash mspsync:{t}:keys, field <id>, as {"name","role","hash","created_at",
 *     "expires_at"} where hash is HMAC-SHA256(key=id, secret): the secret is 256 random bits, so
 *     a plain hash is enough and the clear key exists only in the one 201 answer that shows it.
 *     Lookups compare the hash in constant time. A revoked key is a deleted field, an expired key
 *     one whose expires_at has passed: both answer 401 at once (no cache). The hash is
 *     configuration (statekeys.h): journaled to `config` and restored with the tenant.
 * Roles: owner (everything of its tenant, keys and audit included), sync (integrations, sync now,
 * mappings, ticketing rules, asset dates), billing (billing configuration and preview), viewer
 * (read-only). What each route needs is one column of the router's table (router.c); this file
 * only knows how roles compare: owner covers all, viewer is covered by all, sync and billing do
 * not cover each other, and the operator routes take the operator token alone.
 */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/http.h>

#include "mspsync/backoff.h"
#include "mspsync/crypto.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/utf8.h"

#define KEY_PREFIX "msk_"
#define ID_HEX 16
#define SECRET_HEX 64
#define MAX_KEY_NAME 100
#define MAX_KEYS 100 /* per tenant */

static const char *const ROLE_NAMES[] = {
    [GW_ROLE_UNSET] = "unset",       [GW_ROLE_PUBLIC] = "public",   [GW_ROLE_VIEWER] = "viewer",
    [GW_ROLE_SYNC] = "sync",         [GW_ROLE_BILLING] = "billing", [GW_ROLE_OWNER] = "owner",
    [GW_ROLE_OPERATOR] = "operator",
};

const char *gw_role_name(gw_role_t r) { return r <= GW_ROLE_OPERATOR ? ROLE_NAMES[r] : "?"; }

/* A role a key may carry, by name; GW_ROLE_UNSET when it is none. */
static gw_role_t key_role(const char *name) {
    for (gw_role_t r = GW_ROLE_VIEWER; name && r <= GW_ROLE_OWNER; r++)
        if (strcmp(name, ROLE_NAMES[r]) == 0)
            return r;
    return GW_ROLE_UNSET;
}

int gw_role_allows(gw_role_t have, gw_role_t need) {
    if (need == GW_ROLE_UNSET)
        return 0;
    if (need == GW_ROLE_PUBLIC || have == GW_ROLE_OPERATOR)
        return 1;
    if (need == GW_ROLE_OPERATOR)
        return 0;
    return have == GW_ROLE_OWNER || have == need || need == GW_ROLE_VIEWER;
}

/* "YYYY-MM-DDTHH:MM:SSZ" → wall ms, or -1. */
static int64_t parse_utc(const char *s) {
    struct tm tm = {0};
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
    if (!end || *end != '\0')
        return -1;
    time_t t = timegm(&tm);
    return t < 0 ? -1 : (int64_t)t * 1000;
}

static int all_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdef", s[i]))
            return 0;
    return 1;
}

/* Split "msk_<tenant>_<id>_<secret>". @returns 1 with the parts copied, 0 when it is not one. */
static int parse_token(const char *tok, char *tenant, size_t tenant_size, char id[ID_HEX + 1],
                       char secret[SECRET_HEX + 1]) {
    size_t n = strlen(tok), pre = strlen(KEY_PREFIX), tail = 1 + ID_HEX + 1 + SECRET_HEX;
    if (strncmp(tok, KEY_PREFIX, pre) != 0 || n <= pre + tail)
        return 0;
    const char *p = tok + n - tail;
    if (p[0] != '_' || p[1 + ID_HEX] != '_' || !all_hex(p + 1, ID_HEX) ||
        !all_hex(p + 2 + ID_HEX, SECRET_HEX))
        return 0;
    size_t tl = (size_t)(p - tok) - pre;
    if (tl >= tenant_size)
        return 0;
    memcpy(tenant, tok + pre, tl);
    tenant[tl] = '\0';
    memcpy(id, p + 1, ID_HEX);
    id[ID_HEX] = '\0';
    memcpy(secret, p + 2 + ID_HEX, SECRET_HEX + 1);
    return gw_valid_tenant_id(tenant);
}

int gw_actor_identify(gw_t *gw, struct evhttp_request *req, gw_actor_t *a, char *err,
                      size_t err_size) {
    memset(a, 0, sizeof(*a));
    if (gw_auth_ok(gw, req)) {
        a->role = GW_ROLE_OPERATOR;
        snprintf(a->name, sizeof(a->name), "operator");
        return 1;
    }
    const char *v = gw_bearer(req);
    char secret[SECRET_HEX + 1], key[128], mac[65];
    if (!v || !parse_token(v, a->tenant, sizeof(a->tenant), a->id, secret))
        return 0;
    msp_key(key, sizeof(key), a->tenant, "keys");
    redisReply *r = gw_redis(gw, err, err_size, "HGET %s %s", key, a->id);
    if (!r) {
        msp_secure_zero(secret, sizeof(secret));
        return -1;
    }
    json_t *k = r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
    freeReplyObject(r);
    msp_hmac_sha256_hex(a->id, ID_HEX, secret, SECRET_HEX, mac);
    msp_secure_zero(secret, sizeof(secret));
    const char *hash = json_string_value(json_object_get(k, "hash"));
    const char *exp = json_string_value(json_object_get(k, "expires_at"));
    int ok = hash && msp_consttime_streq(mac, hash) && (!exp || parse_utc(exp) > msp_wall_ms());
    if (ok) {
        a->role = key_role(json_string_value(json_object_get(k, "role")));
        snprintf(a->name, sizeof(a->name), "%s",
                 json_string_value(json_object_get(k, "name")) ?: "");
        ok = a->role != GW_ROLE_UNSET;
    }
    json_decref(k);
    return ok;
}

/* ---- /v1/tenants/{t}/keys ------------------------------------------------------------------ */

/* The public view of one stored key (never its hash): new, or NULL when it does not parse. */
static json_t *key_view(const char *id, const char *stored, size_t len) {
    json_t *k = json_loadb(stored, len, 0, NULL);
    if (!json_is_object(k)) {
        json_decref(k);
        return NULL;
    }
    json_object_del(k, "hash");
    json_object_set_new(k, "id", json_string(id));
    if (!json_object_get(k, "expires_at"))
        json_object_set_new(k, "expires_at", json_null());
    return k;
}

json_t *gw_key_redacted(const char *stored) {
    json_t *k = json_loads(stored, 0, NULL);
    if (json_is_object(k) && json_object_get(k, "hash"))
        json_object_set_new(k, "hash", json_string("[secret]"));
    return k ? k : json_string("[unreadable]");
}

void api_keys_create(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "keys";
    static const char *const ALLOWED[] = {"name", "role", "expires_at", NULL};
    json_t *in;
    char err[256];
    if (gw_read_json(gw, req, route, 0, &in) != 0)
        return;
    const char *name = json_string_value(json_object_get(in, "name"));
    const char *role = json_string_value(json_object_get(in, "role"));
    json_t *jexp = json_object_get(in, "expires_at");
    const char *exp = json_string_value(jexp);
    int64_t exp_ms = exp ? parse_utc(exp) : 0;
    if (gw_json_only_keys(in, ALLOWED, err, sizeof(err)) != 0) {
        gw_reply_error(gw, req, route, 400, "%s", err);
    } else if (!name || !name[0] || msp_utf8_chars(name) > MAX_KEY_NAME) {
        gw_reply_error(gw, req, route, 400,
                       "\"name\" must be a non-empty string of at most %d characters",
                       MAX_KEY_NAME);
    } else if (key_role(role) == GW_ROLE_UNSET) {
        gw_reply_error(gw, req, route, 400, "\"role\" must be one of owner, sync, billing, viewer");
    } else if (jexp && !json_is_null(jexp) && (!exp || exp_ms < 0)) {
        gw_reply_error(gw, req, route, 400,
                       "\"expires_at\" must be a UTC time like 2030-01-31T23:59:59Z, or null");
    } else if (exp && exp_ms <= msp_wall_ms()) {
        gw_reply_error(gw, req, route, 400, "\"expires_at\" is in the past");
    } else {
        char key[128], id[ID_HEX + 1], secret[SECRET_HEX + 1], mac[65], now[32];
        msp_key(key, sizeof(key), tenant, "keys");
        redisReply *c = gw_redis(gw, err, sizeof(err), "HLEN %s", key);
        long long have = c && c->type == REDIS_REPLY_INTEGER ? c->integer : -1;
        if (c)
            freeReplyObject(c);
        if (have < 0) {
            gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        } else if (have >= MAX_KEYS) {
            gw_reply_error(gw, req, route, 409, "the tenant has %d keys already: revoke one first",
                           MAX_KEYS);
        } else if (msp_random_hex(id, ID_HEX / 2) != 0 ||
                   msp_random_hex(secret, SECRET_HEX / 2) != 0) {
            gw_reply_error(gw, req, route, 500, "no randomness available");
        } else {
            msp_hmac_sha256_hex(id, ID_HEX, secret, SECRET_HEX, mac);
            msp_format_time(msp_wall_ms(), now, sizeof(now));
            json_t *rec = json_pack("{s:s,s:s,s:s,s:s}", "name", name, "role", role, "hash", mac,
                                    "created_at", now);
            if (exp)
                json_object_set_new(rec, "expires_at", json_string(exp));
            char *text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
            json_decref(rec);
            redisReply *r =
                text ? gw_redis(gw, err, sizeof(err), "HSET %s %s %s", key, id, text) : NULL;
            json_t *view = r ? key_view(id, text, strlen(text)) : NULL;
            free(text);
            if (!r) {
                gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
            } else {
                char *tok = NULL;
                if (asprintf(&tok, KEY_PREFIX "%s_%s_%s", tenant, id, secret) < 0)
                    tok = NULL;
                json_object_set_new(view, "key", json_string(tok ? tok : ""));
                MSP_INFO("key.created", tenant, "API key %s (%s) created", id, role);
                gw_reply(gw, req, route, 201, view);
                if (tok)
                    msp_secure_zero(tok, strlen(tok));
                free(tok);
                freeReplyObject(r);
            }
            msp_secure_zero(secret, sizeof(secret));
        }
    }
    json_decref(in);
}

static int cmp_created(const void *a, const void *b) {
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c = strcmp(json_string_value(json_object_get(x, "created_at")) ?: "",
                   json_string_value(json_object_get(y, "created_at")) ?: "");
    return c ? c
             : strcmp(json_string_value(json_object_get(x, "id")) ?: "",
                      json_string_value(json_object_get(y, "id")) ?: "");
}

void api_keys_list(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "keys";
    char key[128], err[256];
    msp_key(key, sizeof(key), tenant, "keys");
    redisReply *r = gw_redis(gw, err, sizeof(err), "HGETALL %s", key);
    if (!r) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    size_t n = 0;
    json_t **v = calloc(r->elements / 2 + 1, sizeof(*v));
    for (size_t i = 0; v && i + 1 < r->elements; i += 2) {
        json_t *k = key_view(r->element[i]->str, r->element[i + 1]->str, r->element[i + 1]->len);
        if (k)
            v[n++] = k;
    }
    freeReplyObject(r);
    if (n)
        qsort(v, n, sizeof(*v), cmp_created);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, v[i]);
    free(v);
    gw_reply(gw, req, route, 200, json_pack("{s:o}", "keys", arr));
}

void api_key_delete(gw_t *gw, struct evhttp_request *req, const char *tenant, const char *id) {
    const char *route = "key";
    char key[128], err[256];
    msp_key(key, sizeof(key), tenant, "keys");
    redisReply *r = gw_redis(gw, err, sizeof(err), "HDEL %s %s", key, id);
    if (!r) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
    } else if (r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
        gw_reply_error(gw, req, route, 404, "no key \"%s\"", id);
    } else {
        MSP_INFO("key.revoked", tenant, "API key %s revoked", id);
        gw_reply(gw, req, route, 204, NULL);
    }
    if (r)
        freeReplyObject(r);
}
