/*
 * vendor_cwrmm.c — ConnectWise RMM's row of the vendor table, and its two pagers.
 *
 * The row wraps cwrmm.h: the stored integration, the OAuth token cache (one per process: the
 * row's state of msp_vendor_auth_t, made by cw_auth_new), error texts, scopes and the mapping. A 401 on an API call drops
 * the cached token (once for every caller that saw it), so a fresh token may be asked for.
 *
 * The company pager is one GET of /api/platform/v1/company/companies (the API does not page it);
 * its cursor is "customer:<page>". The device pager owns ConnectWise RMM's paging plan:
 *
 *   definitions ─► companies ─► per group of 4 companies: device pages (POST, Link rel="next",
 *   404 = no more) ─► per device of a page: its custom-field values (only when the partner has
 *   a "Purchase Date" or "Warranty Expiration" definition) ─► the page is complete
 *
 * Its cursor is "asset:<group>:<vendor cursor or ->". It takes the company ids from the company
 * pager that ran before it in the same job; a job resumed at a device group lists the
 * definitions and the companies again.
 */
#include "mspsync/vendor.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/cwrmm.h"

/* ---- credentials and authentication ------------------------------------------------------ */

static void *cw_cred_new(void) { return calloc(1, sizeof(msp_cwrmm_integration_t)); }

static int cw_cred_from_reply(const redisReply *r, const char *rerr, const msp_secret_key_t *key,
                              const char *tenant, void *impl, char *err, size_t err_size) {
    return msp_cwrmm_integration_from_reply(r, rerr, key, tenant, impl, err, err_size);
}

static void cw_cred_free(void *impl) {
    msp_cwrmm_integration_clear(impl);
    free(impl);
}

static const char *cw_base_url(const void *impl) {
    return ((const msp_cwrmm_integration_t *)impl)->base_url;
}

static const char *cw_bucket(const void *impl) {
    return ((const msp_cwrmm_integration_t *)impl)->bucket_key;
}

/* ConnectWise RMM's ids are UUID-like: letters, digits, '-' and '_'. */
static int cw_id_valid(const char *id) {
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return 0;
    return id[0] != '\0';
}

/* The state is the process's token cache (msp_cwrmm_tokens_t), made by cw_auth_new. */
static int cw_auth_get(void *state, const char *tenant, const void *impl, char *header,
                       size_t header_size, msp_vendor_auth_cb *cb, void *opaque) {
    (void)header, (void)header_size;
    if (!state)
        return -1;
    return msp_cwrmm_token_get(state, tenant, impl, cb, opaque) == 0 ? 1 : -1;
}

static void cw_auth_rejected(void *state, const char *tenant, const void *impl,
                             const char *header) {
    if (state)
        msp_cwrmm_token_rejected(state, tenant, impl, header);
}

static void cw_auth_cancel(void *state, void *opaque) {
    if (state)
        msp_cwrmm_token_cancel(state, opaque);
}

static void *cw_auth_new(const msp_vendor_auth_env_t *env) {
    return msp_cwrmm_tokens_new(env->base, env->http, env->redis, env->key, env->token_margin_ms);
}

static void cw_auth_free(void *state) { msp_cwrmm_tokens_destroy(state); }

static uint64_t cw_auth_requested(const void *state) { return msp_cwrmm_tokens_requested(state); }

static char *cw_forbidden(const char *method, const char *path, char *out, size_t out_size) {
    const char *scope = msp_cwrmm_scope_for(method, path);
    snprintf(out, out_size,
             "grant the API client the scope \"%s\" in ConnectWise RMM (or fix its credentials), "
             "then save the integration again",
             scope ? scope : "needed");
    return out;
}

/* ---- the pagers -------------------------------------------------------------------------- */

enum { CW_LIST = 0, CW_DEFS, CW_COMPANIES, CW_CF };
#define CW_GROUP 4 /* companies per device-list request (resourceType company allows 4) */
#define CW_COMPANIES_PATH "/api/platform/v1/company/companies"

/* A msp_pager_t of this file is a cw_pager_t (msp_pager_t stays incomplete everywhere). */
typedef struct cw_pager_s {
    int devices; /* the device pager (else the company pager) */
    char base_url[512];
    int page_size;
    int page;           /* the company pager's page (its cursor) */
    int step;           /* CW_LIST, CW_DEFS, CW_COMPANIES, CW_CF */
    int group;          /* index of the group of 4 companies being listed */
    char *vcursor;      /* vendor cursor of the current list request; NULL = first page */
    char *next_vcursor; /* Link rel="next" cursor of the last answer; NULL = group ended */
    json_t *companies;  /* company ids, NULL until known */
    int defs_loaded;
    char def_ids[2][MSP_CWRMM_ATTR_ID_SIZE]; /* msp_cwrmm_date_definitions */
    json_t *page_items;                      /* devices of the page being completed */
    size_t cf_idx;                           /* next device whose custom fields are read */
} cw_pager_t;

static msp_pager_t *cw_pager_new(const msp_pager_conf_t *conf, const msp_pager_t *before,
                                 int devices) {
    cw_pager_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    const cw_pager_t *b = (const cw_pager_t *)before;
    p->devices = devices;
    snprintf(p->base_url, sizeof(p->base_url), "%s", conf->base_url);
    p->page_size = conf->page_size;
    p->page = 1;
    p->companies = b ? json_incref(b->companies) : NULL; /* ids are replaced, never edited */
    return (msp_pager_t *)p;
}

static msp_pager_t *cw_companies_new(const msp_pager_conf_t *conf, const msp_pager_t *before) {
    return cw_pager_new(conf, before, 0);
}

static msp_pager_t *cw_devices_new(const msp_pager_conf_t *conf, const msp_pager_t *before) {
    return cw_pager_new(conf, before, 1);
}

static void cw_destroy(msp_pager_t *pp) {
    cw_pager_t *p = (cw_pager_t *)pp;
    if (!p)
        return;
    free(p->vcursor);
    free(p->next_vcursor);
    json_decref(p->companies);
    json_decref(p->page_items);
    free(p);
}

static size_t cw_group_count(const cw_pager_t *p) {
    return (json_array_size(p->companies) + CW_GROUP - 1) / CW_GROUP;
}

static int cw_page_seek(cw_pager_t *p, const char *type, const char *cursor) {
    char tname[32];
    int page = 0;
    if (sscanf(cursor, "%31[a-z]:%d", tname, &page) != 2 || page < 1 || strcmp(tname, type))
        return -1;
    p->page = page;
    return page;
}

static int cw_companies_seek(msp_pager_t *pp, const char *cursor) {
    return cw_page_seek((cw_pager_t *)pp, "customer", cursor);
}

/* "asset:<group>:<vendor cursor or ->"; a plain "asset:<page>" starts over at the first group. */
static int cw_devices_seek(msp_pager_t *pp, const char *cursor) {
    cw_pager_t *p = (cw_pager_t *)pp;
    int group = 0, used = 0;
    if (sscanf(cursor, "asset:%d:%n", &group, &used) != 1 || used <= 0 || group < 0)
        return cw_page_seek(p, "asset", cursor);
    free(p->vcursor);
    free(p->next_vcursor);
    p->vcursor = strcmp(cursor + used, "-") ? strdup(cursor + used) : NULL;
    p->next_vcursor = NULL;
    p->group = group;
    p->step = CW_LIST;
    return 1;
}

static void cw_companies_cursor(const msp_pager_t *pp, int next, char *out, size_t out_size) {
    snprintf(out, out_size, "customer:%d", ((const cw_pager_t *)pp)->page + (next ? 1 : 0));
}

static void cw_devices_cursor(const msp_pager_t *pp, int next, char *out, size_t out_size) {
    const cw_pager_t *p = (const cw_pager_t *)pp;
    if (!next)
        snprintf(out, out_size, "asset:%d:%s", p->group, p->vcursor ? p->vcursor : "-");
    else
        snprintf(out, out_size, "asset:%d:%s", p->group + !p->next_vcursor,
                 p->next_vcursor ? p->next_vcursor : "-");
}

static void cw_get(const cw_pager_t *p, msp_pager_req_t *req, const char *path) {
    req->method = "GET";
    req->body = NULL;
    snprintf(req->path, sizeof(req->path), "%s", path);
    snprintf(req->url, sizeof(req->url), "%s%s", p->base_url, path);
}

static int cw_companies_request(msp_pager_t *pp, msp_pager_req_t *req) {
    cw_get((const cw_pager_t *)pp, req, CW_COMPANIES_PATH);
    return 0;
}

/* The custom-field values of the next device of the page, only the date definitions' ids. */
static void cw_cf_request(const cw_pager_t *p, msp_pager_req_t *req) {
    const char *eid =
        json_string_value(json_object_get(json_array_get(p->page_items, p->cf_idx), "endpointID"));
    snprintf(req->path, sizeof(req->path), "/api/platform/v2/device/endpoints/%s/custom-fields",
             eid ? eid : "");
    char ids[200] = "";
    for (int i = 0; i < 2; i++)
        if (p->def_ids[i][0])
            snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids), "%s%s", ids[0] ? "," : "",
                     p->def_ids[i]);
    req->method = "GET";
    req->body = NULL;
    snprintf(req->url, sizeof(req->url), "%s%s?attributeIDs=%s", p->base_url, req->path, ids);
}

/* One page of the devices of the current group of 4 companies. */
static void cw_list_request(const cw_pager_t *p, msp_pager_req_t *req) {
    req->method = "POST";
    snprintf(req->path, sizeof(req->path), "/api/platform/v2/device/categories/all/endpoints");
    msp_cwrmm_devices_url(p->base_url, p->page_size, p->vcursor, req->url, sizeof(req->url));
    const char *ids[CW_GROUP];
    size_t n = 0;
    for (size_t i = (size_t)p->group * CW_GROUP; i < json_array_size(p->companies) && n < CW_GROUP;
         i++)
        ids[n++] = json_string_value(json_array_get(p->companies, i));
    req->body = msp_cwrmm_devices_body(ids, n);
}

static int cw_devices_request(msp_pager_t *pp, msp_pager_req_t *req) {
    cw_pager_t *p = (cw_pager_t *)pp;
    /* No entityType filter on the definitions: the document's values for it ("device",
     * "company", "site") differ from the definitions' own ("endpoint", "client");
     * msp_cwrmm_date_definitions keeps the endpoint ones. */
    if (p->step == CW_LIST && !p->defs_loaded)
        p->step = CW_DEFS;
    else if (p->step == CW_LIST && !p->companies)
        p->step = CW_COMPANIES;
    if (p->step == CW_LIST && (size_t)p->group >= cw_group_count(p))
        return 1; /* no company (left): the pull is complete */
    if (p->step == CW_DEFS)
        cw_get(p, req, "/api/platform/v1/custom-field/definitions");
    else if (p->step == CW_COMPANIES)
        cw_get(p, req, CW_COMPANIES_PATH);
    else if (p->step == CW_CF)
        cw_cf_request(p, req);
    else
        cw_list_request(p, req);
    return 0;
}

static msp_http_outcome_t cw_companies_classify(const msp_pager_t *pp,
                                                const msp_http_response_t *res) {
    (void)pp;
    return msp_http_classify(res);
}

/* A device list answering 404 means "no (more) devices": the group ended. */
static int cw_list_end(const cw_pager_t *p, const msp_http_response_t *res) {
    return p->step == CW_LIST && res->status == 404;
}

static msp_http_outcome_t cw_devices_classify(const msp_pager_t *pp,
                                              const msp_http_response_t *res) {
    return cw_list_end((const cw_pager_t *)pp, res) ? MSP_HTTP_OK : msp_http_classify(res);
}

static json_t *cw_parse(const msp_http_response_t *res, const char *method, const char *path,
                        char *errstr, size_t errstr_size) {
    json_error_t jerr;
    json_t *doc = json_loadb(res->body, res->body_len, 0, &jerr);
    if (!doc)
        snprintf(errstr, errstr_size, "ConnectWise RMM %s %s: unreadable response: %s", method,
                 path, jerr.text);
    return doc;
}

/* Keep the company ids of a companies answer. @returns 0, or -1 (errstr) when not an array. */
static int cw_take_companies(cw_pager_t *p, const json_t *doc, char *errstr, size_t errstr_size) {
    if (!json_is_array(doc)) {
        snprintf(errstr, errstr_size,
                 "ConnectWise RMM GET " CW_COMPANIES_PATH ": not a JSON array");
        return -1;
    }
    json_t *ids = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(doc, i, c) {
        const char *id = json_string_value(json_object_get(c, "id"));
        if (id && id[0])
            json_array_append_new(ids, json_string(id));
    }
    json_decref(p->companies);
    p->companies = ids;
    return 0;
}

static msp_pager_step_t cw_companies_response(msp_pager_t *pp, const msp_http_response_t *res,
                                              json_t **records, int *last, char *errstr,
                                              size_t errstr_size) {
    cw_pager_t *p = (cw_pager_t *)pp;
    json_t *doc = cw_parse(res, "GET", CW_COMPANIES_PATH, errstr, errstr_size);
    if (!doc)
        return MSP_PAGER_BAD;
    if (cw_take_companies(p, doc, errstr, errstr_size) != 0) {
        json_decref(doc);
        return MSP_PAGER_BAD;
    }
    *records = doc;
    *last = 1;
    return MSP_PAGER_PAGE;
}

/* The devices of a list answer {"platform":[{"companyID","siteID","endpoints":[...]}]}, each
 * with its group's companyID and siteID. @returns a new array. */
static json_t *cw_devices_of(const json_t *doc) {
    json_t *items = json_array();
    size_t gi;
    json_t *g;
    json_array_foreach(json_object_get(doc, "platform"), gi, g) {
        size_t ei;
        json_t *e;
        json_array_foreach(json_object_get(g, "endpoints"), ei, e) {
            json_t *d = json_deep_copy(e);
            json_object_set(d, "companyID", json_object_get(g, "companyID"));
            json_object_set(d, "siteID", json_object_get(g, "siteID"));
            json_array_append_new(items, d);
        }
    }
    return items;
}

/* The page's devices are complete: hand them over. */
static msp_pager_step_t cw_page_done(cw_pager_t *p, json_t **records, int *last) {
    p->step = CW_LIST;
    *records = p->page_items;
    p->page_items = NULL;
    *last = !p->next_vcursor && (size_t)p->group + 1 >= cw_group_count(p);
    return MSP_PAGER_PAGE;
}

static msp_pager_step_t cw_list_response(cw_pager_t *p, const msp_http_response_t *res, json_t *doc,
                                         json_t **records, int *last) {
    int end = cw_list_end(p, res);
    free(p->next_vcursor);
    p->next_vcursor = end ? NULL : msp_cwrmm_cursor_from_link(res->link_next);
    json_decref(p->page_items);
    p->page_items = cw_devices_of(doc);
    if (json_array_size(p->page_items) && (p->def_ids[0][0] || p->def_ids[1][0])) {
        p->step = CW_CF;
        p->cf_idx = 0;
        return MSP_PAGER_NEXT;
    }
    return cw_page_done(p, records, last);
}

/* Custom-field values of one device: attach them, then go on to the next device. */
static msp_pager_step_t cw_cf_response(cw_pager_t *p, json_t *doc, json_t **records, int *last) {
    json_object_set_new(json_array_get(p->page_items, p->cf_idx), "customFieldValues",
                        json_is_array(doc) ? json_incref(doc) : json_array());
    if (++p->cf_idx < json_array_size(p->page_items))
        return MSP_PAGER_NEXT;
    return cw_page_done(p, records, last);
}

static msp_pager_step_t cw_devices_step(cw_pager_t *p, const msp_http_response_t *res, json_t *doc,
                                        json_t **records, int *last, char *errstr,
                                        size_t errstr_size) {
    switch (p->step) {
    case CW_COMPANIES: /* only the ids were needed */
        if (cw_take_companies(p, doc, errstr, errstr_size) != 0)
            return MSP_PAGER_BAD;
        p->step = CW_LIST;
        return MSP_PAGER_NEXT;
    case CW_DEFS: /* the same rule as the write-back's: a partner's "Purchase date" is read too */
        msp_cwrmm_date_definitions(doc, p->def_ids);
        p->defs_loaded = 1;
        p->step = CW_LIST;
        return MSP_PAGER_NEXT;
    case CW_CF: return cw_cf_response(p, doc, records, last);
    default: return cw_list_response(p, res, doc, records, last);
    }
}

static msp_pager_step_t cw_devices_response(msp_pager_t *pp, const msp_http_response_t *res,
                                            json_t **records, int *last, char *errstr,
                                            size_t errstr_size) {
    cw_pager_t *p = (cw_pager_t *)pp;
    json_t *doc = NULL;
    if (!cw_list_end(p, res)) {
        msp_pager_req_t req;
        cw_devices_request(pp, &req); /* the request answered: its method and path */
        free(req.body);
        if (!(doc = cw_parse(res, req.method, req.path, errstr, errstr_size)))
            return MSP_PAGER_BAD;
    }
    msp_pager_step_t step = cw_devices_step(p, res, doc, records, last, errstr, errstr_size);
    json_decref(doc);
    return step;
}

static int cw_companies_progress(const msp_pager_t *pp, json_t *event) {
    (void)pp, (void)event;
    return -1;
}

static int cw_devices_progress(const msp_pager_t *pp, json_t *event) {
    const cw_pager_t *p = (const cw_pager_t *)pp;
    json_object_set_new(event, "group", json_integer(p->group));
    return (int)cw_group_count(p);
}

static void cw_companies_advance(msp_pager_t *pp) { ((cw_pager_t *)pp)->page++; }

static void cw_devices_advance(msp_pager_t *pp) {
    cw_pager_t *p = (cw_pager_t *)pp;
    int next_group = !p->next_vcursor;
    free(p->vcursor);
    p->vcursor = p->next_vcursor;
    p->next_vcursor = NULL;
    p->group += next_group;
    p->step = CW_LIST;
}

static const msp_pager_ops_t CW_COMPANY_PAGER = {
    cw_companies_new,      cw_companies_seek,     cw_companies_cursor,
    cw_companies_request,  cw_companies_classify, cw_companies_response,
    cw_companies_progress, cw_companies_advance,  cw_destroy};
static const msp_pager_ops_t CW_DEVICE_PAGER = {
    cw_devices_new,      cw_devices_seek,     cw_devices_cursor,
    cw_devices_request,  cw_devices_classify, cw_devices_response,
    cw_devices_progress, cw_devices_advance,  cw_destroy};

/* ---- the row ----------------------------------------------------------------------------- */

static const msp_vendor_type_t CW_TYPES[] = {
    {"customer", "customers", "customers", "id", NULL, msp_map_cwrmm_company, &CW_COMPANY_PAGER},
    {"asset", "assets", "assets", "endpointID", NULL, msp_map_cwrmm_device, &CW_DEVICE_PAGER},
};

static const char *const CW_CUSTOMERS_SCOPES[] = {"platform.companies.read", NULL};
static const char *const CW_ASSETS_SCOPES[] = {"platform.devices.read",
                                               "platform.custom_fields_definitions.read",
                                               "platform.custom_fields_values.read", NULL};
static const char *const CW_WRITEBACK_SCOPES[] = {
    "platform.custom_fields_definitions.read", "platform.custom_fields_definitions.write",
    "platform.custom_fields_values.read", "platform.custom_fields_values.write", NULL};

static const msp_vendor_feature_t CW_FEATURES[] = {
    {"customers", CW_CUSTOMERS_SCOPES, NULL},
    {"assets", CW_ASSETS_SCOPES, NULL},
    {"writeback", CW_WRITEBACK_SCOPES, NULL},
    {NULL, NULL, NULL},
};

static const char *const CW_EXTRA_KEYS[] = {"token:cwrmm", "token:cwrmm:lock", NULL};

/* The gateway's GET shows the region (null for a base URL given as such), the API client and
 * its account; DELETE is always a removal through the normalizer, and drops the custom-field
 * definitions the write-back cached besides the tokens (extra_keys). */
static const msp_vendor_shown_t CW_SHOWN[] = {{"region", MSP_SHOWN_NULL_EMPTY},
                                              {"base_url", MSP_SHOWN_EMPTY},
                                              {"client_id", MSP_SHOWN_EMPTY},
                                              {"account_id", MSP_SHOWN_EMPTY},
                                              {NULL, 0}};
static const char *const CW_REMOVAL_KEYS[] = {"cwrmm:defs", NULL};
static const msp_vendor_admin_t CW_ADMIN = {.shown = CW_SHOWN,
                                            .show_ticketing = 0,
                                            .delete_alone_purges = 0,
                                            .purge_keys = NULL,
                                            .removal_keys = CW_REMOVAL_KEYS};

const msp_vendor_t msp_vendor_cwrmm = {
    .id = MSP_VENDOR_CWRMM,
    .name = "cwrmm",
    .label = "ConnectWise RMM",
    .sealed_field = "client_secret_sealed",
    .stats_prefix = "cwrmm_",
    .extra_keys = CW_EXTRA_KEYS,
    .merge_primary = 0,
    .rate = {"MSPSYNC_CWRMM_RATE_MILLI", "10000", 100000000,
             "ConnectWise RMM requests per 1000 s for one API client (client id), shared by the "
             "fetchers and the write-backs: set it the same in every service",
             "MSPSYNC_CWRMM_BURST", "10", 100000,
             "Requests a ConnectWise RMM client's bucket allows at once", "cwrmm:"},
    .features = CW_FEATURES,
    .types = CW_TYPES,
    .types_cnt = sizeof(CW_TYPES) / sizeof(CW_TYPES[0]),
    .admin = &CW_ADMIN,
    .hints =
        {
            [MSP_HINT_REFUSED] =
                "ConnectWise RMM refused the request; check the integration settings",
            [MSP_HINT_KEPT_FAILING] =
                "ConnectWise RMM kept failing; check its status page or the network",
            [MSP_HINT_AUTH] = "check the client id and secret (and their scopes) in ConnectWise "
                              "RMM, then save the integration again",
            [MSP_HINT_MISSING] = "no enabled ConnectWise RMM integration for this tenant",
            [MSP_HINT_SEALED] = "save the integration again with its client secret",
        },
    .describe = msp_cwrmm_describe,
    .forbidden = cw_forbidden,
    .cred_new = cw_cred_new,
    .cred_fields = msp_cwrmm_integration_fields,
    .cred_from_reply = cw_cred_from_reply,
    .cred_free = cw_cred_free,
    .cred_base_url = cw_base_url,
    .cred_bucket = cw_bucket,
    .id_valid = cw_id_valid,
    .auth_get = cw_auth_get,
    .auth_rejected = cw_auth_rejected,
    .auth_cancel = cw_auth_cancel,
    .auth_new = cw_auth_new,
    .auth_free = cw_auth_free,
    .auth_requested = cw_auth_requested,
};
