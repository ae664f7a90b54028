/*
 * integration_put.c — PUT /v1/tenants/{t}/integrations/{name}: saving any vendor's integration.
 *
 * The vendor's part is data and callbacks of its row (vendor.h msp_vendor_put_part_t, in
 * common/src/vendor_<name>.c): the body's members, the validation a field table cannot say (where
 * the account is), and the proof of the credentials, run through the vendor-call engine
 * (vcall.h: the account's shared rate-limit bucket, its token source, the vendor's words for a
 * failure). What is the same for every vendor is here, once:
 *
 *   read the body → check each member as the row lists it (unknown members refused when the row
 *   says so; the first fault answers 400) → the row's validate → hold the request → the row's
 *   prove (every wait and call bounded by MSPSYNC_VENDOR_TIMEOUT_MS) → choose the features from
 *   what the credentials hold (rows that say so: 422 naming what is lacking) → seal the secret
 *   (AES-256-GCM, AAD "<t>/<name>") → store integration:<name> (journaled by the store), drop the
 *   row's account_keys when the account changed → reset the status → queue a full sync → answer
 *   once the job is in Kafka (201, or the row's GET body with 201 new / 200 replaced).
 *
 * The plaintext secret lives in the row's put state (zeroed when freed) and in the parsed body,
 * which is wiped before it is let go; neither is logged. Once stored (not before: a refused
 * secret may be any word) it is registered with msp_log_redact (gw_secret_keep), and forgotten
 * when the integration is removed, disabled or saved with another secret.
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
#include "mspsync/vcall.h"

#define ROUTE "integration"

typedef struct gw_put_s {
    msp_vendor_put_t p; /* first: the row's callbacks get &p */
    gw_t *gw;
    gw_held_t *held;
    msp_vcall_env_t env;
    char tenant[64];
    char wanted[GW_FEATURES_MAX]; /* requested features; "" = what the credentials serve */
    int interval;                 /* sync_interval_minutes, 0 = not given */
} gw_put_t;

static void put_free(gw_put_t *g) {
    if (!g)
        return;
    g->p.vendor->put->free(&g->p);
    free(g);
}

/* Shutdown while the proof waits (a bucket, a token): the vendor calls answered before. */
static void put_cancel(void *arg) {
    gw_put_t *g = arg;
    g->p.vendor->put->stop(&g->p);
    gw_held_reply_error(g->held, 503, "the gateway is shutting down");
    put_free(g);
}

static void put_answered(msp_vendor_put_t *p, const char *outcome) {
    gw_put_t *g = (gw_put_t *)p;
    gw_vendor_metric(g->gw, p->vendor->name, outcome);
}

/*
 * The features to store: those asked for, or else every one the credentials serve. @returns 0,
 * or answers held 422 naming per feature what the credentials lack and @returns -1.
 */
static int put_choose(gw_put_t *g) {
    const msp_vendor_t *v = g->p.vendor;
    json_t *missing = NULL;
    if (g->wanted[0]) {
        missing = gw_integ_missing_json(v, g->wanted, g->p.granted);
    } else {
        char all[GW_FEATURES_MAX] = "";
        for (const msp_vendor_feature_t *f = v->features; f->feature; f++) {
            const char *miss[16];
            if (f->option_of)
                continue;
            gw_list_add(all, sizeof(all), f->feature);
            if (msp_vendor_missing(f, g->p.granted, miss, 16) == 0)
                gw_list_add(g->wanted, sizeof(g->wanted), f->feature);
        }
        if (!g->wanted[0]) /* they serve nothing at all: say what each feature needs */
            missing = gw_integ_missing_json(v, all, g->p.granted);
    }
    if (!missing)
        return 0;
    MSP_INFO("integration.rejected", g->tenant, "%s",
             json_string_value(json_object_get(missing, "error")));
    gw_held_reply(g->held, 422, missing);
    return -1;
}

/* Another account than the stored one: its keys (custom-field ids, tokens) do not carry over. */
static int put_drop_account_keys(gw_put_t *g, char *err, size_t err_size) {
    const char *const *keys = g->p.vendor->put->account_keys;
    char ikey[128], key[128];
    if (!keys)
        return 0;
    msp_key(ikey, sizeof(ikey), g->tenant, "integration:%s", g->p.vendor->name);
    redisReply *old = gw_redis(g->gw, err, err_size, "HGET %s account_id", ikey);
    int ok = old != NULL;
    if (old && old->type == REDIS_REPLY_STRING && strcmp(old->str, g->p.account_id) != 0) {
        for (int i = 0; ok && keys[i]; i++) {
            msp_key(key, sizeof(key), g->tenant, "%s", keys[i]);
            redisReply *d = gw_redis(g->gw, err, err_size, "DEL %s", key);
            ok = d != NULL;
            if (d)
                freeReplyObject(d);
        }
    }
    if (old)
        freeReplyObject(old);
    return ok ? 0 : -1;
}

/* Seal and store the credentials, reset the status, queue the first full sync. Answers held. */
static void put_store(gw_put_t *g) {
    gw_t *gw = g->gw;
    const msp_vendor_t *v = g->p.vendor;
    const gw_integ_t *integ = gw_integ_of(v);
    char aad[96], err[256], now[32], job_id[33];
    snprintf(aad, sizeof(aad), "%s/%s", g->tenant, v->name);
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    if (msp_random_hex(job_id, 16) != 0) {
        gw_held_reply_error(g->held, 500, "could not draw a job id");
        return;
    }
    char *sealed = msp_secret_seal(&gw->key, aad, g->p.secret, strlen(g->p.secret));
    if (!sealed) {
        gw_held_reply_error(g->held, 500, "could not encrypt the credentials");
        return;
    }
    const char *fields[2 * MSP_PUT_STORED_MAX + 12];
    size_t n = 0;
    for (size_t i = 0; g->p.stored[i] && g->p.stored[i + 1]; i += 2) {
        fields[n++] = g->p.stored[i];
        fields[n++] = g->p.stored[i + 1];
    }
    const char *common[] = {v->sealed_field, sealed, "enabled", "1", "updated_at", now};
    memcpy(fields + n, common, sizeof(common));
    n += sizeof(common) / sizeof(common[0]);
    if (v->put->chooses_features) {
        const char *chosen[] = {"features", g->wanted, "granted", g->p.granted};
        memcpy(fields + n, chosen, sizeof(chosen));
        n += sizeof(chosen) / sizeof(chosen[0]);
    }
    fields[n] = NULL;
    int created = 0;
    int ok = put_drop_account_keys(g, err, sizeof(err)) == 0 &&
             gw_integ_store(gw, g->tenant, integ, fields, g->interval, g->p.writeback_purchase,
                            g->p.writeback_warranty, job_id, now, &created, err, sizeof(err)) == 0;
    free(sealed);
    if (!ok) {
        gw_held_reply_error(g->held, 503, "redis unavailable: %s", err);
        return;
    }
    gw_held_on_shutdown(g->held, NULL, NULL);            /* the job owns the request from here on */
    gw_secret_keep(gw, g->tenant, v->name, g->p.secret); /* stored: now it is ours to redact */
    MSP_INFO("integration.saved", g->tenant, "%s integration saved (base %s, account %s)", v->name,
             g->p.base_url, g->p.account_id);
    json_t *body;
    int code = 201;
    if (v->put->answer_full) {
        body = gw_integ_render(gw, g->tenant, integ, &code, err, sizeof(err));
        if (!body) {
            gw_held_reply_error(g->held, code, "%s", err);
            return;
        }
        code = created ? 201 : 200;
    } else {
        body = json_pack("{s:s,s:s,s:s,s:s,s:o}", "integration", v->name, "base_url", g->p.base_url,
                         "state", "Syncing", "job_id", job_id, "features",
                         gw_integ_features_json(v, g->wanted, g->p.granted));
    }
    const char *types[MSP_VENDOR_TYPES_MAX + 1];
    gw_integ_all_types(v, types);
    gw_job_queue(gw, g->held, g->tenant, v->name, job_id, types, "full", "integration_saved", code,
                 body);
}

/* The row's proof ended: store, or answer what it found. Frees g. */
static void put_end(msp_vendor_put_t *p, int code, json_t *body) {
    gw_put_t *g = (gw_put_t *)p;
    if (code == 503 && !body)
        gw_held_reply_error(g->held, 503, "the gateway is shutting down");
    else if (code)
        gw_held_reply(g->held, code, body);
    else if (!p->vendor->put->chooses_features || put_choose(g) == 0)
        put_store(g);
    put_free(g);
}

typedef struct {
    msp_vendor_put_t *p;
    int code;
    json_t *body;
} put_ended_t;

static void put_end_task(gw_t *gw, void *arg) {
    (void)gw;
    put_ended_t e = *(put_ended_t *)arg;
    free(arg);
    put_end(e.p, e.code, e.body);
}

/* The vendor's answer comes on the loop: the store and its answer run on a coroutine. */
static void put_done(msp_vendor_put_t *p, int code, json_t *body) {
    gw_put_t *g = (gw_put_t *)p;
    put_ended_t *e = malloc(sizeof(*e));
    if (!e) {
        put_end(p, code, body);
        return;
    }
    *e = (put_ended_t){p, code, body};
    gw_admin_call(g->gw, put_end_task, e);
}

/* The consecutive MSP_PUT_WHERE members from f on: strings, then not empty. @returns how many
 * there are, or -1 with err. */
static int check_where(const json_t *in, const msp_vendor_put_field_t *f, char *err,
                       size_t err_size) {
    char names[160] = "";
    int n = 0, strings = 1, filled = 1;
    for (; f[n].name && f[n].kind == MSP_PUT_WHERE; n++) {
        const json_t *j = json_object_get(in, f[n].name);
        size_t len = strlen(names);
        snprintf(names + len, sizeof(names) - len, "%s\"%s\"", n ? " and " : "", f[n].name);
        strings = strings && (!j || json_is_string(j));
        filled = filled && (!j || !json_is_string(j) || json_string_length(j));
    }
    if (!strings)
        snprintf(err, err_size, "%s must be strings", names);
    else if (!filled) /* an empty one is not "absent": the document's oneOf counts the keys sent */
        snprintf(err, err_size, "%s must not be empty", names);
    return strings && filled ? n : -1;
}

/* The body against the row's fields, in their order; the first fault in err. @returns 0 or -1. */
static int check_body(gw_put_t *g, const json_t *in, char *err, size_t err_size) {
    const msp_vendor_put_part_t *put = g->p.vendor->put;
    const char *known[MSP_PUT_FIELDS_MAX + 1];
    size_t nk = 0;
    for (const msp_vendor_put_field_t *f = put->fields; f->name && nk < MSP_PUT_FIELDS_MAX; f++)
        known[nk++] = f->name;
    known[nk] = NULL;
    if (put->closed && gw_json_only_keys(in, known, err, err_size) != 0)
        return -1;
    for (const msp_vendor_put_field_t *f = put->fields; f->name; f++) {
        const json_t *j = json_object_get(in, f->name);
        const char *s = json_string_value(j);
        int n;
        switch (f->kind) {
        case MSP_PUT_WRITEBACK:
            if (gw_integ_parse_writeback(j, &g->p.writeback_purchase, &g->p.writeback_warranty, err,
                                         err_size) < 0)
                return -1;
            break;
        case MSP_PUT_FEATURES:
            if (j && gw_integ_parse_features(g->p.vendor, j, g->wanted, sizeof(g->wanted), err,
                                             err_size) != 0)
                return -1;
            break;
        case MSP_PUT_INTERVAL:
            if (gw_integ_parse_interval(j, &g->interval, err, err_size) != 0)
                return -1;
            break;
        case MSP_PUT_WHERE:
            if ((n = check_where(in, f, err, err_size)) < 0)
                return -1;
            f += n - 1;
            break;
        case MSP_PUT_TEXT:
            if (!s || !s[0] || strlen(s) != json_string_length(j) || msp_utf8_chars(s) > f->max) {
                snprintf(err, err_size,
                         "\"%s\" must be a non-empty string of at most %zu characters", f->name,
                         f->max);
                return -1;
            }
            break;
        }
    }
    return 0;
}

/* Wipe the secret members of the parsed body before letting it go. */
static void wipe_secrets(const msp_vendor_t *v, json_t *in) {
    for (const msp_vendor_put_field_t *f = v->put->fields; f->name; f++) {
        const json_t *j = json_object_get(in, f->name);
        if (f->secret && json_string_value(j))
            msp_secure_zero((char *)json_string_value(j), json_string_length(j));
    }
}

void api_integration_put(gw_t *gw, struct evhttp_request *req, const char *tenant,
                         const gw_integ_t *integ) {
    const msp_vendor_t *v = integ->vendor;
    json_t *in;
    char err[300];
    if (gw_read_json(gw, req, ROUTE, 0, &in) != 0)
        return;
    gw_put_t *g = calloc(1, sizeof(*g));
    if (!g) {
        gw_reply_error(gw, req, ROUTE, 500, "out of memory");
        goto out;
    }
    g->gw = gw;
    snprintf(g->tenant, sizeof(g->tenant), "%s", tenant);
    g->p.vendor = v;
    g->p.tenant = g->tenant;
    g->p.setting = gw->cfg.put_settings.value[v->id];
    g->p.writeback_purchase = g->p.writeback_warranty = -1;
    int rc = check_body(g, in, err, sizeof(err)) != 0
                 ? -1
                 : v->put->validate(&g->p, in, err, sizeof(err));
    if (rc == 0 && !(g->held = gw_hold(gw, req, ROUTE)))
        rc = -2;
    if (rc != 0) {
        if (rc == -1)
            gw_reply_error(gw, req, ROUTE, 400, "%s", err);
        else
            gw_reply_error(gw, req, ROUTE, 500, "out of memory");
        put_free(g);
        goto out;
    }
    g->env = (msp_vcall_env_t){.base = gw->base,
                               .http = &gw->vendor,
                               .redis = &gw->redis,
                               .aredis = gw->aredis, /* tokens taken without holding the loop */
                               .redis_url = gw->cfg.redis_url,
                               .backoff_base_ms = 1000,
                               .backoff_cap_ms = 1000,
                               .stopping = &gw->stopping};
    g->p.env = &g->env;
    g->p.auth = &gw->auth;
    g->p.rate = msp_vendor_rate_per_s(&gw->cfg.svc.rates, v);
    g->p.burst = msp_vendor_rate_burst(&gw->cfg.svc.rates, v);
    g->p.deadline_ms = msp_now_ms() + gw->cfg.vendor_timeout_ms;
    g->p.answered = put_answered;
    g->p.done = put_done;
    g->p.owner = g;
    gw_held_on_shutdown(g->held, put_cancel, g);
    v->put->prove(&g->p);
out:
    wipe_secrets(v, in); /* the parsed body holds the secret too */
    json_decref(in);
}
