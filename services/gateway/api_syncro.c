/*
 * api_syncro.c — PUT /v1/tenants/{t}/integrations/syncro: the gateway's one piece of Syncro code.
 * GET and DELETE are every vendor's (integrations.c, integration_remove.c, from the row's admin
 * part); .../sync, PATCH (write-back opt-in) and .../disable too (integrations.c).
 *
 * Saving an integration proves the key before anything is stored: the gateway takes a token
 * from the Syncro account's shared GCRA bucket (the one the fetcher uses, so the two never add
 * up past Syncro's 180/min), waits on an evtimer when the bucket is empty, calls GET /me and
 * checks the permissions asset sync needs. Only then is the key sealed (AES-256-GCM, AAD
 * "<t>/syncro") and written, and a full sync job produced; the client hears 201 once the job is
 * in Kafka.
 *
 * The plaintext key lives in one heap buffer owned by put_t; it is zeroed when put_t is freed
 * and is never logged. As a second line of defence a stored key is registered with
 * msp_log_redact (gw_secret_keep) — only once stored: a key Syncro refused may be any word — and
 * forgotten when the integration is removed, disabled or saved with another key.
 */
#include "gateway.h"
#include "mspsync/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "mspsync/backoff.h"
#include "mspsync/crypto.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/syncro.h"
#include "mspsync/vcall.h"

#define MAX_API_KEY 1024

#define VENDOR (&msp_vendor_syncro) /* this file is the gateway's code for Syncro */

static void vendor_metric(gw_t *gw, const char *outcome) {
    gw_vendor_metric(gw, VENDOR->name, outcome);
}

/* ---- PUT ---------------------------------------------------------------------------------- */

typedef struct put_s {
    gw_t *gw;
    gw_held_t *held;
    struct event *timer; /* rate-limit wait */
    int64_t started_ms;
    char tenant[64];
    char base_url[512];
    char account_id[512];
    char *api_key; /* plaintext: zeroed on free */
    size_t api_key_len;
    int writeback_purchase, writeback_warranty; /* -1 = not given */
    int interval;                               /* sync_interval_minutes, 0 = not given */
    char wanted[GW_FEATURES_MAX];               /* requested features; "" = what the key serves */
    /* the permission check: step 0 is GET /me, step i > 0 probes probes[i - 1] */
    json_t *me_perms;       /* GET /me "permissions" (new) */
    const char *probes[32]; /* permissions /me cannot tell (borrowed from the row) */
    size_t probes_cnt, step;
    char granted[GW_FEATURES_MAX]; /* permissions the key holds, comma list */
} put_t;

static void put_free(put_t *p) {
    if (!p)
        return;
    if (p->timer)
        event_free(p->timer);
    json_decref(p->me_perms);
    if (p->api_key) {
        msp_secure_zero(p->api_key, p->api_key_len);
        free(p->api_key);
    }
    free(p);
}

static void put_call(put_t *p);

/* Shutdown while waiting for a rate-limit token. */
static void put_cancel(void *arg) {
    put_t *p = arg;
    gw_held_reply_error(p->held, 503, "the gateway is shutting down");
    put_free(p);
}

static void put_rate_step(evutil_socket_t fd, short what, void *arg) {
    put_t *p = arg;
    gw_t *gw = p->gw;
    if (gw->stopping) {
        gw_held_reply_error(p->held, 503, "the gateway is shutting down");
        put_free(p);
        return;
    }
    char key[700], err[256];
    char tag[560];
    snprintf(tag, sizeof(tag), "%s%s", VENDOR->rate.bucket_tag, p->account_id);
    if (msp_key(key, sizeof(key), tag, "rl") < 0) {
        gw_held_reply_error(p->held, 400, "the Syncro base URL is too long");
        put_free(p);
        return;
    }
    if (msp_redis_ensure(&gw->redis, gw->cfg.redis_url, err, sizeof(err)) != 0) {
        gw_held_reply_error(p->held, 503, "redis unavailable: %s", err);
        put_free(p);
        return;
    }
    int64_t retry_after_ms = 0;
    int rc = msp_gcra_take(gw->redis, key, msp_vendor_rate_per_s(&gw->cfg.svc.rates, VENDOR),
                           msp_vendor_rate_burst(&gw->cfg.svc.rates, VENDOR), 1, &retry_after_ms,
                           err, sizeof(err));
    if (rc < 0) {
        gw_held_reply_error(p->held, 503, "redis unavailable: %s", err);
        put_free(p);
        return;
    }
    if (rc == 1) {
        put_call(p);
        return;
    }
    if (retry_after_ms < 1)
        retry_after_ms = 1;
    if (msp_now_ms() - p->started_ms + retry_after_ms > gw->cfg.vendor_timeout_ms) {
        vendor_metric(gw, "rate_limited");
        gw_held_reply_error(p->held, 502,
                            "the Syncro API rate limit for this account is "
                            "exhausted; try again in %lld s",
                            (long long)(retry_after_ms + 999) / 1000);
        put_free(p);
        return;
    }
    MSP_DEBUG("integration.rate_wait", p->tenant, "waiting %lld ms for a Syncro token",
              (long long)retry_after_ms);
    struct timeval tv = {(time_t)(retry_after_ms / 1000),
                         (suseconds_t)(retry_after_ms % 1000) * 1000};
    if (!p->timer)
        p->timer = evtimer_new(gw->base, put_rate_step, p);
    if (!p->timer || evtimer_add(p->timer, &tv) != 0) {
        gw_held_reply_error(p->held, 500, "could not schedule the rate-limit wait");
        put_free(p);
    }
}

/* Seal and store the key, reset the status, queue the first full sync. Answers held. */
static void put_store(put_t *p) {
    gw_t *gw = p->gw;
    char aad[96], err[256], now[32], job_id[33];
    snprintf(aad, sizeof(aad), "%s/%s", p->tenant, VENDOR->name);
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    if (msp_random_hex(job_id, 16) != 0) {
        gw_held_reply_error(p->held, 500, "could not draw a job id");
        return;
    }
    char *sealed = msp_secret_seal(&gw->key, aad, p->api_key, p->api_key_len);
    if (!sealed) {
        gw_held_reply_error(p->held, 500, "could not encrypt the API key");
        return;
    }
    /* every type: the fetcher leaves out those whose feature is off and says so in the status */
    const char *types[MSP_VENDOR_TYPES_MAX + 1];
    gw_integ_all_types(VENDOR, types);
    const char *fields[] = {
        "base_url", p->base_url, "account_id", p->account_id, VENDOR->sealed_field,
        sealed,     "enabled",   "1",          "updated_at",  now,
        "features", p->wanted,   "granted",    p->granted,    NULL};
    int created;
    int rc = gw_integ_store(gw, p->tenant, gw_integ_of(VENDOR), fields, p->interval,
                            p->writeback_purchase, p->writeback_warranty, job_id, now, &created,
                            err, sizeof(err));
    free(sealed);
    if (rc != 0) {
        gw_held_reply_error(p->held, 503, "redis unavailable: %s", err);
        return;
    }
    gw_held_on_shutdown(p->held, NULL, NULL); /* the job owns the request from here on */
    gw_secret_keep(gw, p->tenant, VENDOR->name, p->api_key); /* stored: now it is ours to redact */
    MSP_INFO("integration.saved", p->tenant, "syncro integration saved (base %s)", p->base_url);
    json_t *body = json_pack("{s:s,s:s,s:s,s:s,s:o}", "integration", VENDOR->name, "base_url",
                             p->base_url, "state", "Syncing", "job_id", job_id, "features",
                             gw_integ_features_json(VENDOR, p->wanted, p->granted));
    gw_job_queue(gw, p->held, p->tenant, VENDOR->name, job_id, types, "full", "integration_saved",
                 201, body);
}

/*
 * Every permission is known: choose the features (those asked for, or else every one the key
 * serves) and store, or answer 422 naming per feature what the key lacks. Answers held.
 */
static void put_decide(put_t *p) {
    if (p->wanted[0]) {
        json_t *missing = gw_integ_missing_json(VENDOR, p->wanted, p->granted);
        if (missing) {
            MSP_INFO("integration.rejected", p->tenant, "%s",
                     json_string_value(json_object_get(missing, "error")));
            gw_held_reply(p->held, 422, missing);
            return;
        }
    } else {
        char all[GW_FEATURES_MAX] = "";
        for (const msp_vendor_feature_t *f = VENDOR->features; f->feature; f++) {
            const char *miss[16];
            if (f->option_of)
                continue;
            gw_list_add(all, sizeof(all), f->feature);
            if (msp_vendor_missing(f, p->granted, miss, 16) == 0)
                gw_list_add(p->wanted, sizeof(p->wanted), f->feature);
        }
        if (!p->wanted[0]) { /* the key serves nothing at all: say what each feature needs */
            json_t *missing = gw_integ_missing_json(VENDOR, all, p->granted);
            MSP_INFO("integration.rejected", p->tenant, "%s",
                     json_string_value(json_object_get(missing, "error")));
            gw_held_reply(p->held, 422, missing);
            return;
        }
    }
    put_store(p);
}

/* Note what a check found and go on: the next probe (after a rate token), or the decision. */
static void put_next(put_t *p) {
    if (p->step < p->probes_cnt) {
        p->step++;
        put_rate_step(-1, 0, p);
        return;
    }
    put_decide(p);
    put_free(p);
}

/* A call of the check failed in a way that says nothing about a permission. Answers held. */
static void put_call_failed(put_t *p, msp_http_response_t *res, const char *method,
                            const char *path) {
    char desc[768];
    long st = res->status;
    msp_syncro_describe(res, method, path, desc, sizeof(desc));
    MSP_INFO("integration.rejected", p->tenant, "%s", desc);
    if (msp_vcall_refused(st))
        gw_held_reply(p->held, 422,
                      json_pack("{s:s,s:I}", "error", desc, "vendor_status", (json_int_t)st));
    else
        gw_held_reply_error(p->held, 502, "%s", desc);
}

/* GET /me answered: read its flags, list the permissions only a probe can tell. */
static void put_me_answered(put_t *p, msp_http_response_t *res) {
    char err[256];
    if (!(p->me_perms = msp_syncro_me_permissions(res->body, res->body_len, err, sizeof(err)))) {
        MSP_WARN("integration.me_unexpected", p->tenant, "GET /me body: %s", err);
        gw_held_reply_error(p->held, 502, "Syncro answered GET /me with an unexpected body: %s",
                            err);
        put_free(p);
        return;
    }
    /* every permission of every feature, once, in the row's order */
    for (const msp_vendor_feature_t *f = VENDOR->features; f->feature; f++)
        for (const char *const *perm = f->permissions; *perm; perm++) {
            msp_syncro_probe_t pr;
            size_t k = 0;
            while (k < p->probes_cnt && strcmp(p->probes[k], *perm) != 0)
                k++;
            if (msp_vendor_list_has(p->granted, *perm) || k < p->probes_cnt ||
                msp_syncro_probe_for(*perm, &pr) != 0)
                continue;
            if (pr.me_area) {
                if (msp_syncro_me_grants(p->me_perms, pr.me_area, pr.me_flag))
                    gw_list_add(p->granted, sizeof(p->granted), *perm);
            } else if (p->probes_cnt < sizeof(p->probes) / sizeof(p->probes[0])) {
                p->probes[p->probes_cnt++] = *perm;
            }
        }
    put_next(p);
}

static void put_call_cb(msp_http_response_t *res, void *arg) {
    put_t *p = arg;
    gw_t *gw = p->gw;
    msp_http_outcome_t outcome = msp_http_classify(res);
    vendor_metric(gw, msp_http_outcome_name(outcome));
    if (gw->stopping) {
        gw_held_reply_error(p->held, 503, "the gateway is shutting down");
        put_free(p);
        return;
    }
    long st = res->status;
    if (p->step == 0) {
        if (st >= 200 && st < 300) {
            put_me_answered(p, res);
            return;
        }
        put_call_failed(p, res, "GET", "/me");
        put_free(p);
        return;
    }
    /* a probe: 401 = the permission is missing; any other answer of Syncro's = it is held */
    msp_syncro_probe_t pr;
    msp_syncro_probe_for(p->probes[p->step - 1], &pr);
    if (st == 401) {
        put_next(p);
    } else if (st >= 200 && st < 500 && st != 429 && st != 408) {
        gw_list_add(p->granted, sizeof(p->granted), p->probes[p->step - 1]);
        put_next(p);
    } else {
        char path[64];
        snprintf(path, sizeof(path), "/%s", pr.path);
        put_call_failed(p, res, pr.method, path);
        put_free(p);
    }
}

/* The check's current call: GET /me, then one probe per permission /me does not name. */
static void put_call(put_t *p) {
    gw_t *gw = p->gw;
    char url[600], auth[4 * MAX_API_KEY + 64]; /* up to 4 bytes per character */
    msp_syncro_probe_t pr = {.method = "GET", .path = "me"};
    if (p->step > 0)
        msp_syncro_probe_for(p->probes[p->step - 1], &pr);
    snprintf(url, sizeof(url), "%s/%s", p->base_url, pr.path);
    msp_syncro_auth_header(p->api_key, auth, sizeof(auth));
    const char *headers[] = {auth, "Accept: application/json",
                             pr.body ? "Content-Type: application/json" : NULL, NULL};
    /* the whole check (token waits + calls) stays within MSPSYNC_VENDOR_TIMEOUT_MS */
    int64_t left = gw->cfg.vendor_timeout_ms - (msp_now_ms() - p->started_ms);
    msp_http_request_t r = {.method = pr.method,
                            .url = url,
                            .headers = headers,
                            .body = pr.body,
                            .body_len = pr.body ? strlen(pr.body) : 0,
                            .timeout_ms = (long)(left < 1000 ? 1000 : left)};
    int rc = msp_http_request(gw->vendor, &r, put_call_cb, p);
    msp_secure_zero(auth, sizeof(auth));
    if (rc != 0) {
        gw_held_reply_error(p->held, 502, "could not start the request to Syncro");
        put_free(p);
    }
}

/*
 * A subdomain's base URL as MSPSYNC_SYNCRO_SUBDOMAIN_URL spells it: base holds the normalized
 * "https://<name>.syncromsp.com/api/v1" (msp_syncro_base_url) and is rewritten with <name> in
 * place of {subdomain}. @returns 0, or -1 (err) when the result does not fit.
 */
static int subdomain_url(const char *tmpl, char *base, size_t base_size, char *err,
                         size_t err_size) {
    const char *at = tmpl ? strstr(tmpl, "{subdomain}") : NULL;
    char name[80];
    if (!at)
        return 0;
    const char *host = base + strlen("https://");
    snprintf(name, sizeof(name), "%.*s", (int)strcspn(host, "."), host);
    int n = snprintf(base, base_size, "%.*s%s%s", (int)(at - tmpl), tmpl, name,
                     at + strlen("{subdomain}"));
    if (n < 0 || (size_t)n >= base_size) {
        snprintf(err, err_size, "the Syncro base URL is too long");
        return -1;
    }
    return 0;
}

void api_syncro_put(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "integration";
    json_t *in;
    if (gw_read_json(gw, req, route, 0, &in) != 0)
        return;
    json_t *jsub = json_object_get(in, "subdomain"), *jbase = json_object_get(in, "base_url"),
           *jkey = json_object_get(in, "api_key");
    const char *api_key = json_string_value(jkey);
    char base[512], err[300];
    int wb_purchase = -1, wb_warranty = -1, interval = 0;
    char wanted[GW_FEATURES_MAX] = "";
    const json_t *jf = json_object_get(in, "features");
    if (gw_integ_parse_writeback(json_object_get(in, "writeback"), &wb_purchase, &wb_warranty, err,
                                 sizeof(err)) < 0 ||
        (jf &&
         gw_integ_parse_features(VENDOR, jf, wanted, sizeof(wanted), err, sizeof(err)) != 0) ||
        gw_integ_parse_interval(json_object_get(in, "sync_interval_minutes"), &interval, err,
                                sizeof(err)) != 0) {
        gw_reply_error(gw, req, route, 400, "%s", err);
    } else if ((jsub && !json_is_string(jsub)) || (jbase && !json_is_string(jbase))) {
        gw_reply_error(gw, req, route, 400, "\"subdomain\" and \"base_url\" must be strings");
    } else if ((jsub && !json_string_length(jsub)) || (jbase && !json_string_length(jbase))) {
        /* an empty one is not "absent": the document's oneOf counts the keys sent */
        gw_reply_error(gw, req, route, 400, "\"subdomain\" and \"base_url\" must not be empty");
    } else if (!api_key || !api_key[0] || msp_utf8_chars(api_key) > MAX_API_KEY ||
               strlen(api_key) != json_string_length(jkey)) {
        gw_reply_error(gw, req, route, 400,
                       "\"api_key\" must be a non-empty string of at most "
                       "%d characters",
                       MAX_API_KEY);
    } else if (msp_syncro_base_url(json_string_value(jsub), json_string_value(jbase), base,
                                   sizeof(base), err, sizeof(err)) != 0 ||
               (jsub && subdomain_url(gw->cfg.syncro_subdomain_url, base, sizeof(base), err,
                                      sizeof(err)) != 0)) {
        gw_reply_error(gw, req, route, 400, "%s", err);
    } else {
        put_t *p = calloc(1, sizeof(*p));
        if (p)
            p->api_key = strdup(api_key);
        if (!p || !p->api_key) {
            put_free(p);
            gw_reply_error(gw, req, route, 500, "out of memory");
        } else {
            p->gw = gw;
            p->api_key_len = strlen(p->api_key);
            p->writeback_purchase = wb_purchase;
            p->writeback_warranty = wb_warranty;
            p->interval = interval;
            snprintf(p->wanted, sizeof(p->wanted), "%s", wanted);
            p->started_ms = msp_now_ms();
            snprintf(p->tenant, sizeof(p->tenant), "%s", tenant);
            snprintf(p->base_url, sizeof(p->base_url), "%s", base);
            msp_syncro_account_id(base, p->account_id, sizeof(p->account_id));
            p->held = gw_hold(gw, req, route);
            if (!p->held) {
                put_free(p);
                gw_reply_error(gw, req, route, 500, "out of memory");
            } else {
                gw_held_on_shutdown(p->held, put_cancel, p);
                put_rate_step(-1, 0, p);
            }
        }
    }
    /* the parsed body holds the key too: wipe it before letting go */
    if (api_key)
        msp_secure_zero((char *)api_key, strlen(api_key));
    json_decref(in);
}

const gw_integ_t gw_syncro_integ = {VENDOR, api_syncro_put};
