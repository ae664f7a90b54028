/*
 * api_cwrmm.c — PUT /v1/tenants/{t}/integrations/cwrmm: the gateway's one piece of ConnectWise
 * RMM code. GET and DELETE are every vendor's (integrations.c, integration_remove.c, from the
 * row's admin part).
 *
 * Saving proves the credentials before anything is stored, like the Syncro PUT does with /me:
 *   1. a token from the gateway's msp_cwrmm_tokens_t (its auth state of the row: the cache
 *      every process shares through Redis, so saving never asks for a second token while a
 *      worker holds one: ConnectWise locks keys that ask for too many);
 *   2. GET companies (scope platform.companies.read);
 *   3. the device list of the first company, one device (platform.devices.read; a 404 means
 *      "no devices" and is fine);
 *   4. when write-back is opted into: GET custom-field definitions (…definitions.read).
 * A vendor 4xx answers 422 {"error": msp_cwrmm_describe text, "vendor_status": N} (401 wrong
 * secret, 403 naming the scope, 423 locked key); a 5xx, 429 or transport failure answers 502.
 * A rejected token is forgotten (memory and Redis), so fixing the API client's scopes at the
 * vendor and saving again asks for a fresh token. Only then is the secret sealed (AAD
 * "<t>/cwrmm") and written, and a full sync produced; the client hears 201 (new) or 200
 * (replaced) with the GET body once the job is in Kafka.
 *
 * The plaintext secret lives in one heap buffer (msp_cwrmm_integration_t.client_secret), zeroed
 * when the request state is freed; the parsed request body is wiped too. Once stored (not
 * before: a refused secret may be any word) the secret is registered with msp_log_redact
 * (gw_secret_keep), and forgotten when the integration is removed, disabled or re-saved.
 */
#include "gateway.h"
#include "mspsync/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/backoff.h"
#include "mspsync/crypto.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/vcall.h"

#define MAX_CLIENT_ID 255
#define MAX_SECRET 1024

#define VENDOR (&msp_vendor_cwrmm) /* this file is the gateway's code for ConnectWise RMM */

/* The keys (after the tenant) that go with the integration besides integration:/status:. */
static const char *const OWN_KEYS[] = {"token:cwrmm", "token:cwrmm:lock", "cwrmm:defs",
                                       "sched:cwrmm", NULL};

/* ---- PUT ---------------------------------------------------------------------------------- */

/* The gateway's token cache: its auth state of this row (vendor_cwrmm.c made it). */
static msp_cwrmm_tokens_t *tokens(gw_t *gw) { return msp_vendor_auth_state(&gw->auth, VENDOR); }

typedef enum { CHECK_COMPANIES, CHECK_DEVICES, CHECK_DEFINITIONS, CHECK_DONE } check_t;

static const struct {
    const char *method, *path;
} CHECKS[] = {
    [CHECK_COMPANIES] = {"GET", "/api/platform/v1/company/companies"},
    [CHECK_DEVICES] = {"POST", "/api/platform/v2/device/categories/all/endpoints"},
    [CHECK_DEFINITIONS] = {"GET", "/api/platform/v1/custom-field/definitions"},
};

typedef struct cwput_s {
    gw_t                    *gw;
    gw_held_t               *held;
    int64_t                  started_ms;
    char                     tenant[64];
    char                     region[8];
    msp_cwrmm_integration_t  in;           /* in.client_secret: plaintext, zeroed on free */
    int                      wb_purchase, wb_warranty;  /* -1 = not given */
    check_t                  step;
    int                      waiting_token;
    char                    *auth;         /* "Authorization: Bearer …", zeroed on free */
    char                     company[128]; /* first company id, "" when none */
} cwput_t;

static void cwput_free(cwput_t *p) {
    if (!p)
        return;
    if (p->auth) {
        msp_secure_zero(p->auth, strlen(p->auth));
        free(p->auth);
    }
    msp_cwrmm_integration_clear(&p->in);
    free(p);
}

/* Shutdown while waiting for the token (the vendor calls are cancelled by msp_http_destroy,
 * whose callbacks answer before held requests are failed). */
static void cwput_cancel(void *arg) {
    cwput_t *p = arg;
    if (p->waiting_token)
        msp_cwrmm_token_cancel(tokens(p->gw), p);
    gw_held_reply_error(p->held, 503, "the gateway is shutting down");
    cwput_free(p);
}

static void cwput_fail(cwput_t *p, long status, const char *desc, const char *scope) {
    MSP_INFO("integration.rejected", p->tenant, "cwrmm: %s", desc);
    /* A vendor 4xx is the caller's to fix (422); the rest is ours or the vendor's (502). */
    if (msp_vcall_refused(status)) {
        json_t *body = json_pack("{s:s,s:I}", "error", desc, "vendor_status", (json_int_t)status);
        if (body && scope)
            json_object_set_new(body, "missing_scope", json_string(scope));
        gw_held_reply(p->held, 422, body);
    } else if (status) {
        gw_held_reply(p->held, 502, json_pack("{s:s,s:I}", "error", desc, "vendor_status",
                                              (json_int_t)status));
    } else {
        gw_held_reply_error(p->held, 502, "%s", desc);
    }
}

static void cwput_store(cwput_t *p);
static void cwput_next(cwput_t *p);

static void cwput_check_cb(msp_http_response_t *res, void *arg) {
    cwput_t *p = arg;
    gw_t *gw = p->gw;
    gw_vendor_metric(gw, VENDOR->name, msp_http_outcome_name(msp_http_classify(res)));
    if (gw->stopping) {
        gw_held_reply_error(p->held, 503, "the gateway is shutting down");
        cwput_free(p);
        return;
    }
    long st = res->status;
    const char *method = CHECKS[p->step].method, *path = CHECKS[p->step].path;
    if ((st >= 200 && st < 300) || (st == 404 && p->step == CHECK_DEVICES)) {
        if (p->step == CHECK_COMPANIES) {
            json_t *list = json_loadb(res->body, res->body_len, 0, NULL);
            json_t *first = json_is_array(list) ? json_array_get(list, 0) : NULL;
            const char *id = json_string_value(json_object_get(first, "id"));
            if (!json_is_array(list)) {
                json_decref(list);
                gw_held_reply_error(p->held, 502, "ConnectWise RMM answered GET %s with an "
                                    "unexpected body (not a JSON array)", path);
                cwput_free(p);
                return;
            }
            snprintf(p->company, sizeof(p->company), "%s", id && strlen(id) < 128 ? id : "");
            json_decref(list);
        }
        p->step++;
        cwput_next(p);
        return;
    }
    char desc[768];
    msp_cwrmm_describe(res, method, path, desc, sizeof(desc));
    if (st == 401 || st == 403)  /* a fixed client needs a fresh token */
        msp_cwrmm_token_rejected(tokens(gw), p->tenant, &p->in, p->auth);
    cwput_fail(p, st, desc, st == 403 ? msp_cwrmm_scope_for(method, path) : NULL);
    cwput_free(p);
}

/* Run the current check, skipping the ones that do not apply; store after the last. */
static void cwput_next(cwput_t *p) {
    gw_t *gw = p->gw;
    if (p->step == CHECK_DEVICES && !p->company[0])
        p->step++;  /* no company, no devices to ask for */
    if (p->step == CHECK_DEFINITIONS && p->wb_purchase != 1 && p->wb_warranty != 1)
        p->step++;
    if (p->step == CHECK_DONE) {
        cwput_store(p);
        cwput_free(p);
        return;
    }
    char url[1024];
    char *body = NULL;
    if (p->step == CHECK_DEVICES) {
        const char *ids[1] = {p->company};
        body = msp_cwrmm_devices_body(ids, 1);
        if (msp_cwrmm_devices_url(p->in.base_url, 1, NULL, url, sizeof(url)) != 0 || !body) {
            free(body);
            gw_held_reply_error(p->held, 500, "could not build the device list request");
            cwput_free(p);
            return;
        }
    } else {
        snprintf(url, sizeof(url), "%s%s", p->in.base_url, CHECKS[p->step].path);
    }
    const char *headers[] = {p->auth, "Accept: application/json", "Content-Type: application/json",
                             NULL};
    int64_t left = gw->cfg.vendor_timeout_ms - (msp_now_ms() - p->started_ms);
    msp_http_request_t r = {.method = CHECKS[p->step].method, .url = url, .headers = headers,
                            .body = body, .body_len = body ? strlen(body) : 0,
                            .timeout_ms = (long)(left < 1000 ? 1000 : left)};
    int rc = msp_http_request(gw->vendor, &r, cwput_check_cb, p);
    free(body);
    if (rc != 0) {
        gw_held_reply_error(p->held, 502, "could not start the request to ConnectWise RMM");
        cwput_free(p);
    }
}

static void cwput_token_cb(const char *auth_header, long status, int64_t retry_after_ms,
                           const char *error, void *opaque) {
    cwput_t *p = opaque;
    p->waiting_token = 0;
    if (p->gw->stopping) {
        gw_held_reply_error(p->held, 503, "the gateway is shutting down");
        cwput_free(p);
        return;
    }
    if (!auth_header) {
        cwput_fail(p, status, error ? error : "could not get a ConnectWise RMM token", NULL);
        cwput_free(p);
        return;
    }
    p->auth = strdup(auth_header);
    if (!p->auth) {
        gw_held_reply_error(p->held, 500, "out of memory");
        cwput_free(p);
        return;
    }
    /* from here the vendor calls own the request; they are answered on shutdown */
    gw_held_on_shutdown(p->held, NULL, NULL);
    cwput_next(p);
}

/* Seal and store the credentials, reset the status, queue the first full sync. Answers held;
 * the caller frees p. */
static void cwput_store(cwput_t *p) {
    gw_t *gw = p->gw;
    const gw_integ_t *integ = gw_integ_of(VENDOR);
    char aad[96], ikey[128], key[128], err[256], now[32], job_id[33];
    snprintf(aad, sizeof(aad), "%s/%s", p->tenant, VENDOR->name);
    msp_key(ikey, sizeof(ikey), p->tenant, "integration:%s", VENDOR->name);
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    if (msp_random_hex(job_id, 16) != 0) {
        gw_held_reply_error(p->held, 500, "could not draw a job id");
        return;
    }
    char *sealed = msp_secret_seal(&gw->key, aad, p->in.client_secret,
                                   strlen(p->in.client_secret));
    if (!sealed) {
        gw_held_reply_error(p->held, 500, "could not encrypt the client secret");
        return;
    }
    /* another partner's custom-field ids and tokens do not carry over */
    redisReply *old = gw_redis(gw, err, sizeof(err), "HGET %s account_id", ikey);
    int ok = old != NULL;
    if (old && old->type == REDIS_REPLY_STRING && strcmp(old->str, p->in.account) != 0) {
        for (int i = 0; ok && OWN_KEYS[i]; i++) {
            msp_key(key, sizeof(key), p->tenant, "%s", OWN_KEYS[i]);
            redisReply *d = gw_redis(gw, err, sizeof(err), "DEL %s", key);
            ok = d != NULL;
            if (d)
                freeReplyObject(d);
        }
    }
    if (old)
        freeReplyObject(old);
    const char *fields[] = {"base_url",
                            p->in.base_url,
                            "region",
                            p->region,
                            "client_id",
                            p->in.client_id,
                            VENDOR->sealed_field,
                            sealed,
                            "account_id",
                            p->in.account,
                            "enabled",
                            "1",
                            "updated_at",
                            now,
                            NULL};
    int created = 0;
    ok = ok && gw_integ_store(gw, p->tenant, integ, fields, 0, p->wb_purchase, p->wb_warranty,
                              job_id, now, &created, err, sizeof(err)) == 0;
    free(sealed);
    if (!ok) {
        gw_held_reply_error(p->held, 503, "redis unavailable: %s", err);
        return;
    }
    gw_secret_keep(gw, p->tenant, VENDOR->name, p->in.client_secret); /* stored: ours to redact */
    MSP_INFO("integration.saved", p->tenant, "cwrmm integration saved (base %s, account %s)",
             p->in.base_url, p->in.account);
    int code = 500;
    json_t *body = gw_integ_render(gw, p->tenant, integ, &code, err, sizeof(err));
    if (!body) {
        gw_held_reply_error(p->held, code, "%s", err);
        return;
    }
    const char *types[MSP_VENDOR_TYPES_MAX + 1];
    gw_integ_all_types(VENDOR, types);
    gw_job_queue(gw, p->held, p->tenant, VENDOR->name, job_id, types, "full", "integration_saved",
                 created ? 201 : 200, body);
}

/* A string field of 1..max characters (as the document's maxLength counts) without NUL.
 * @returns the value (borrowed) or NULL. */
static const char *str_field(const json_t *in, const char *name, size_t max) {
    json_t *v = json_object_get(in, name);
    const char *s = json_string_value(v);
    if (!s || !s[0] || strlen(s) != json_string_length(v) || msp_utf8_chars(s) > max)
        return NULL;
    return s;
}

void api_cwrmm_put(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "integration";
    json_t *in;
    if (gw_read_json(gw, req, route, 0, &in) != 0)
        return;
    static const char *const known[] = {"region", "base_url", "client_id", "client_secret",
                                        "writeback", NULL};
    char base[512], err[300];
    if (gw_json_only_keys(in, known, err, sizeof(err)) != 0) {
        gw_reply_error(gw, req, route, 400, "%s", err);
        goto out;
    }
    json_t *jregion = json_object_get(in, "region"), *jbase = json_object_get(in, "base_url");
    const char *client_id = str_field(in, "client_id", MAX_CLIENT_ID);
    const char *secret = str_field(in, "client_secret", MAX_SECRET);
    int wb_purchase = -1, wb_warranty = -1;
    if ((jregion && !json_is_string(jregion)) || (jbase && !json_is_string(jbase))) {
        gw_reply_error(gw, req, route, 400, "\"region\" and \"base_url\" must be strings");
    } else if ((jregion && !json_string_length(jregion)) || (jbase && !json_string_length(jbase))) {
        /* an empty one is not "absent": the document's oneOf counts the keys sent */
        gw_reply_error(gw, req, route, 400, "\"region\" and \"base_url\" must not be empty");
    } else if (!client_id) {
        gw_reply_error(gw, req, route, 400, "\"client_id\" must be a non-empty string of at most "
                       "%d characters", MAX_CLIENT_ID);
    } else if (!secret) {
        gw_reply_error(gw, req, route, 400, "\"client_secret\" must be a non-empty string of at "
                       "most %d characters", MAX_SECRET);
    } else if (gw_integ_parse_writeback(json_object_get(in, "writeback"), &wb_purchase,
                                        &wb_warranty, err, sizeof(err)) < 0) {
        gw_reply_error(gw, req, route, 400, "%s", err);
    } else if (msp_cwrmm_base_url(json_string_value(jregion), json_string_value(jbase), base,
                                  sizeof(base), err, sizeof(err)) != 0) {
        gw_reply_error(gw, req, route, 400, "%s", err);
    } else {
        cwput_t *p = calloc(1, sizeof(*p));
        if (p)
            p->in.client_secret = strdup(secret);
        if (!p || !p->in.client_secret) {
            cwput_free(p);
            gw_reply_error(gw, req, route, 500, "out of memory");
            goto out;
        }
        p->gw = gw;
        p->started_ms = msp_now_ms();
        p->wb_purchase = wb_purchase;
        p->wb_warranty = wb_warranty;
        snprintf(p->tenant, sizeof(p->tenant), "%s", tenant);
        if (jregion)  /* msp_cwrmm_base_url accepted it: na, eu or au in any case */
            for (size_t i = 0; i + 1 < sizeof(p->region) && json_string_value(jregion)[i]; i++)
                p->region[i] = (char)(json_string_value(jregion)[i] | 0x20);
        snprintf(p->in.base_url, sizeof(p->in.base_url), "%s", base);
        snprintf(p->in.client_id, sizeof(p->in.client_id), "%s", client_id);
        msp_cwrmm_account_id(base, client_id, p->in.account, sizeof(p->in.account));
        char tag[96];
        snprintf(tag, sizeof(tag), "cwrmm:%s", p->in.account);
        msp_key(p->in.bucket_key, sizeof(p->in.bucket_key), tag, "rl");
        p->in.writeback_purchase = wb_purchase == 1;
        p->in.writeback_warranty = wb_warranty == 1;
        p->held = gw_hold(gw, req, route);
        if (!p->held) {
            cwput_free(p);
            gw_reply_error(gw, req, route, 500, "out of memory");
            goto out;
        }
        gw_held_on_shutdown(p->held, cwput_cancel, p);
        p->waiting_token = 1;
        if (msp_cwrmm_token_get(tokens(gw), tenant, &p->in, cwput_token_cb, p) != 0) {
            p->waiting_token = 0;
            gw_held_reply_error(p->held, 500, "out of memory");
            cwput_free(p);
        }
    }
out:
    /* the parsed body holds the secret too: wipe it before letting go */
    if (json_string_value(json_object_get(in, "client_secret")))
        msp_secure_zero((char *)json_string_value(json_object_get(in, "client_secret")),
                        json_string_length(json_object_get(in, "client_secret")));
    json_decref(in);
}

const gw_integ_t gw_cwrmm_integ = {VENDOR, api_cwrmm_put};
