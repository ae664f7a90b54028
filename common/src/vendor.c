/*
 * vendor.c — the list of vendor rows, the lookups over it, and the calls that go through a row.
 *
 * The rows themselves live beside their clients (vendor_syncro.c, vendor_cwrmm.c); this file only
 * lists them, from the registry (vendors.def) in msp_vendor_id_t order, and is the one place that
 * walks the list. The wrappers
 * below exist so that callers never touch a row's optional callbacks (a NULL auth_rejected means
 * "a 401 is final") or a credential's impl.
 */
#include "mspsync/vendor.h"

#include "mspsync/aredis.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"

#include <stdio.h>
#include <string.h>

static const msp_vendor_t *const ROWS[MSP_VENDOR_COUNT] = {
#define MSP_VENDOR(ID, name) [MSP_VENDOR_##ID] = &msp_vendor_##name,
#include "mspsync/vendors.def"
};

const msp_vendor_t *msp_vendor_at(size_t i) { return i < MSP_VENDOR_COUNT ? ROWS[i] : NULL; }

const msp_vendor_t *msp_vendor_find(const char *name) {
    for (size_t i = 0; name && i < MSP_VENDOR_COUNT; i++)
        if (strcmp(ROWS[i]->name, name) == 0)
            return ROWS[i];
    return NULL;
}

const msp_vendor_t *msp_vendor_implied(void) { return ROWS[MSP_VENDOR_SYNCRO]; }

/* Append name, quoted, as item i of n of a list ("a", "b" <last> "c") to out. */
static void join_quoted(char *out, size_t out_size, size_t *len, size_t i, size_t n,
                        const char *last, const char *name) {
    const char *sep = i == 0 ? "" : i + 1 == n ? last : ", ";
    if (*len >= out_size)
        return;
    int k = snprintf(out + *len, out_size - *len, "%s\"%s\"", sep, name);
    if (k > 0)
        *len += (size_t)k;
}

char *msp_vendor_names(char *out, size_t out_size) {
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < MSP_VENDOR_COUNT; i++)
        join_quoted(out, out_size, &len, i, MSP_VENDOR_COUNT, " or ", ROWS[i]->name);
    return out;
}

char *msp_vendor_type_names(const msp_vendor_t *v, const char *last, char *out, size_t out_size) {
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < v->types_cnt; i++)
        join_quoted(out, out_size, &len, i, v->types_cnt, last, v->types[i].plural);
    return out;
}

const msp_vendor_type_t *msp_vendor_type(const msp_vendor_t *v, const char *type) {
    for (size_t i = 0; v && type && i < v->types_cnt; i++)
        if (!strcmp(v->types[i].type, type) || !strcmp(v->types[i].plural, type))
            return &v->types[i];
    return NULL;
}

int msp_vendor_types_wanted(const msp_vendor_t *v, const json_t *names, int *idx, size_t *n) {
    int want[MSP_VENDOR_TYPES_MAX] = {0};
    size_t i, k;
    const json_t *name;
    *n = 0;
    json_array_foreach(names, i, name) {
        const char *s = json_string_value(name);
        for (k = 0; s && k < v->types_cnt && k < MSP_VENDOR_TYPES_MAX; k++)
            if (!strcmp(s, v->types[k].plural))
                break;
        if (!s || k == v->types_cnt || k == MSP_VENDOR_TYPES_MAX)
            return (int)i;
        want[k] = 1;
    }
    for (k = 0; k < v->types_cnt && k < MSP_VENDOR_TYPES_MAX; k++)
        if (want[k])
            idx[(*n)++] = (int)k;
    return -1;
}

const char *const *msp_vendor_permissions(const msp_vendor_t *v, const char *feature) {
    for (const msp_vendor_feature_t *f = v ? v->features : NULL; feature && f && f->feature; f++)
        if (!strcmp(f->feature, feature))
            return f->permissions;
    return NULL;
}

const msp_vendor_feature_t *msp_vendor_feature(const msp_vendor_t *v, const char *name) {
    for (const msp_vendor_feature_t *f = v ? v->features : NULL; name && f && f->feature; f++)
        if (!strcmp(f->feature, name))
            return f;
    return NULL;
}

int msp_vendor_list_has(const char *list, const char *item) {
    size_t n = item ? strlen(item) : 0;
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && n && !strncmp(p, item, n))
            return 1;
        p = e ? e + 1 : p + len;
    }
    return 0;
}

void msp_vendor_list_add(char *list, size_t list_size, const char *item) {
    size_t len = strlen(list);
    if (!msp_vendor_list_has(list, item))
        snprintf(list + len, list_size - len, "%s%s", len ? "," : "", item);
}

int msp_vendor_type_enabled(const msp_vendor_type_t *t, const char *features) {
    return !features || msp_vendor_list_has(features, t->feature);
}

size_t msp_vendor_missing(const msp_vendor_feature_t *f, const char *granted, const char **out,
                          size_t max) {
    size_t n = 0;
    for (const char *const *p = f ? f->permissions : NULL; p && *p && n < max; p++)
        if (!msp_vendor_list_has(granted, *p))
            out[n++] = *p;
    return n;
}

/* ---- rate settings ----------------------------------------------------------------------- */

size_t msp_vendor_rate_rows(void *rates, msp_config_entry_t *out, size_t max) {
    msp_vendor_rates_t *r = rates;
    size_t n = 0;
    for (size_t i = 0; i < MSP_VENDOR_COUNT; i++) {
        const msp_vendor_rate_t *vr = &ROWS[i]->rate;
        const msp_config_entry_t rows[2] = {
            {vr->rate_env, MSP_CFG_INT, vr->rate_def, vr->rate_help, r ? &r->milli[i] : NULL, 1,
             vr->rate_max, 0, NULL},
            {vr->burst_env, MSP_CFG_INT, vr->burst_def, vr->burst_help, r ? &r->burst[i] : NULL, 1,
             vr->burst_max, 0, NULL},
        };
        for (size_t k = 0; k < 2; k++, n++)
            if (out && n < max)
                out[n] = rows[k];
    }
    return n;
}

size_t msp_vendor_put_setting_rows(void *settings, msp_config_entry_t *out, size_t max) {
    msp_vendor_put_settings_t *ps = settings;
    size_t n = 0;
    for (size_t i = 0; i < MSP_VENDOR_COUNT; i++) {
        if (!ROWS[i]->put || !ROWS[i]->put->setting.name)
            continue;
        if (out && n < max) {
            out[n] = ROWS[i]->put->setting;
            out[n].dest = ps ? &ps->value[i] : NULL;
        }
        n++;
    }
    return n;
}

double msp_vendor_rate_per_s(const msp_vendor_rates_t *r, const msp_vendor_t *v) {
    return (double)r->milli[v->id] / 1000.0;
}

int msp_vendor_rate_burst(const msp_vendor_rates_t *r, const msp_vendor_t *v) {
    return (int)r->burst[v->id];
}

/* ---- credentials ------------------------------------------------------------------------- */

#define CRED_ARGV_MAX 16

/* HMGET integration:<name> <the row's fields>: argv into key (the caller's buffer). */
static int cred_argv(const msp_vendor_t *v, const char *tenant, char *key, size_t key_size,
                     const char **argv) {
    if (msp_key(key, key_size, tenant, "integration:%s", v->name) < 0)
        return -1;
    int argc = 0;
    argv[argc++] = "HMGET";
    argv[argc++] = key;
    for (const char *const *f = v->cred_fields; *f && argc < CRED_ARGV_MAX; f++)
        argv[argc++] = *f;
    return argc;
}

static int cred_start(const msp_vendor_t *v, msp_vendor_cred_t *out, char *err, size_t err_size) {
    msp_vendor_cred_clear(out);
    void *impl = v->cred_new();
    if (!impl) {
        snprintf(err, err_size, "out of memory loading the %s integration", v->label);
        return -1;
    }
    out->vendor = v;
    out->impl = impl;
    return 0;
}

/* No integration, but Redis lost its state and the gateway is restoring it (statekeys.h). */
static int cred_lost(const msp_vendor_t *v, const char *tenant, char *err, size_t err_size) {
    snprintf(err, err_size,
             "Redis is being restored from Kafka; the %s integration of %s "
             "will be back",
             v->label, tenant);
    return -1;
}

static void cred_fields_reply(void *arg, redisReply *r, const char *why) {
    msp_vendor_cred_async_t *op = arg;
    op->rc = op->v->cred_from_reply(r, why, op->key, op->tenant, op->out->impl, op->err,
                                    sizeof(op->err));
}

static void cred_epoch_reply(void *arg, redisReply *r, const char *why) {
    (void)why;
    msp_vendor_cred_async_t *op = arg;
    if (op->rc == 1 && r && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
        op->rc = cred_lost(op->v, op->tenant, op->err, sizeof(op->err));
    op->cb(op->arg, op->rc, op->err);
}

int msp_vendor_cred_load_async(const msp_vendor_t *v, msp_aredis_t *a, const msp_secret_key_t *key,
                               const char *tenant, msp_vendor_cred_t *out,
                               msp_vendor_cred_async_t *op, msp_vendor_cred_cb *cb, void *arg) {
    if (!tenant || strlen(tenant) >= sizeof(op->tenant) || !msp_aredis_up(a))
        return -1;
    char k[256], epoch[64];
    const char *argv[CRED_ARGV_MAX];
    int argc = cred_argv(v, tenant, k, sizeof(k), argv);
    if (argc < 0 || cred_start(v, out, op->err, sizeof(op->err)) != 0)
        return -1;
    *op = (msp_vendor_cred_async_t){
        .v = v, .a = a, .key = key, .out = out, .cb = cb, .arg = arg, .rc = -1};
    snprintf(op->tenant, sizeof(op->tenant), "%s", tenant);
    msp_key(epoch, sizeof(epoch), "_", MSP_STATE_EPOCH_SUFFIX);
    if (msp_aredis_cmdargv(a, cred_fields_reply, op, argc, argv, NULL) != 0)
        return -1;
    if (msp_aredis_cmd(a, cred_epoch_reply, op, "EXISTS %s", epoch) != 0) {
        msp_aredis_cancel(a, op);
        return -1;
    }
    return 0;
}

void msp_vendor_cred_cancel(msp_vendor_cred_async_t *op) {
    if (op && op->a)
        msp_aredis_cancel(op->a, op);
}

void msp_vendor_cred_clear(msp_vendor_cred_t *cred) {
    if (!cred || !cred->vendor)
        return;
    cred->vendor->cred_free(cred->impl);
    cred->vendor = NULL;
    cred->impl = NULL;
}

const char *msp_vendor_cred_base_url(const msp_vendor_cred_t *cred) {
    return cred && cred->vendor ? cred->vendor->cred_base_url(cred->impl) : "";
}

const char *msp_vendor_cred_bucket(const msp_vendor_cred_t *cred) {
    return cred && cred->vendor ? cred->vendor->cred_bucket(cred->impl) : "";
}

/* ---- authentication ---------------------------------------------------------------------- */

int msp_vendor_auth_open(msp_vendor_auth_t *a, const msp_vendor_auth_env_t *env) {
    memset(a, 0, sizeof(*a));
    for (size_t i = 0; i < MSP_VENDOR_COUNT; i++)
        if (ROWS[i]->auth_new && !(a->state[i] = ROWS[i]->auth_new(env))) {
            msp_vendor_auth_close(a);
            return -1;
        }
    return 0;
}

void msp_vendor_auth_close(msp_vendor_auth_t *a) {
    for (size_t i = 0; a && i < MSP_VENDOR_COUNT; i++) {
        if (a->state[i] && ROWS[i]->auth_free)
            ROWS[i]->auth_free(a->state[i]);
        a->state[i] = NULL;
    }
}

void *msp_vendor_auth_state(const msp_vendor_auth_t *a, const msp_vendor_t *v) {
    return a && v ? a->state[v->id] : NULL;
}

int msp_vendor_auth_get(const msp_vendor_auth_t *a, const char *tenant,
                        const msp_vendor_cred_t *cred, char *header, size_t header_size,
                        msp_vendor_auth_cb *cb, void *opaque) {
    return cred->vendor->auth_get(msp_vendor_auth_state(a, cred->vendor), tenant, cred->impl,
                                  header, header_size, cb, opaque);
}

int msp_vendor_auth_rejected(const msp_vendor_auth_t *a, const char *tenant,
                             const msp_vendor_cred_t *cred, const char *header) {
    if (!cred->vendor->auth_rejected)
        return 0;
    cred->vendor->auth_rejected(msp_vendor_auth_state(a, cred->vendor), tenant, cred->impl, header);
    return 1;
}

void msp_vendor_auth_cancel(const msp_vendor_auth_t *a, const msp_vendor_cred_t *cred,
                            void *opaque) {
    if (cred && cred->vendor && cred->vendor->auth_cancel)
        cred->vendor->auth_cancel(msp_vendor_auth_state(a, cred->vendor), opaque);
}

/* ---- errors ------------------------------------------------------------------------------ */

char *msp_vendor_hint(const msp_vendor_t *v, msp_vendor_hint_t kind, const char *method,
                      const char *path, char *out, size_t out_size) {
    if (kind == MSP_HINT_FORBIDDEN)
        return v->forbidden(method, path, out, out_size);
    snprintf(out, out_size, "%s", kind < MSP_HINT_COUNT && v->hints[kind] ? v->hints[kind] : "");
    return out;
}

char *msp_vendor_describe(const msp_vendor_t *v, const msp_http_response_t *res, const char *method,
                          const char *path, char *out, size_t out_size) {
    return v->describe(res, method, path, out, out_size);
}
