/*
 * vendor_syncro.c — Syncro's row of the vendor table, and its list pager.
 *
 * Everything here wraps syncro.h (requests, errors, permissions), syncro_store.h (the stored
 * integration) and model.h (the mapping); nothing is re-implemented. Syncro authenticates with
 * the API key itself ("Authorization: Bearer <key>"), so authentication never waits and a 401 is
 * final: the user must fix the key.
 *
 * The pager walks GET /<resource>?page=N until meta.total_pages (an empty page past the end also
 * ends the type). Its cursor is "<type>:<page>" ("customer:3"), the format sync cursors have
 * always had, so a job resumes across versions.
 */
#include "mspsync/vendor.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/model.h"
#include "mspsync/syncro.h"
#include "mspsync/syncro_store.h"

/* ---- credentials and authentication ------------------------------------------------------ */

static void *sy_cred_new(void) { return calloc(1, sizeof(msp_syncro_integration_t)); }

static int sy_cred_load(redisContext *c, const msp_secret_key_t *key, const char *tenant,
                        void *impl, char *err, size_t err_size) {
    return msp_syncro_integration_load(c, key, tenant, impl, err, err_size);
}

static void sy_cred_free(void *impl) {
    msp_syncro_integration_clear(impl);
    free(impl);
}

static const char *sy_base_url(const void *impl) {
    return ((const msp_syncro_integration_t *)impl)->base_url;
}

static const char *sy_bucket(const void *impl) {
    return ((const msp_syncro_integration_t *)impl)->bucket_key;
}

/* Syncro's ids are integers (64-bit): digits only. */
static int sy_id_valid(const char *id) {
    for (const char *p = id; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    return id[0] != '\0';
}

static int sy_auth_get(const msp_vendor_auth_t *a, const char *tenant, const void *impl,
                       char *header, size_t header_size, msp_vendor_auth_cb *cb, void *opaque) {
    (void)a, (void)tenant, (void)cb, (void)opaque;
    snprintf(header, header_size, "%s", ((const msp_syncro_integration_t *)impl)->auth_header);
    return 0;
}

static char *sy_forbidden(const char *method, const char *path, char *out, size_t out_size) {
    const char *perm = msp_syncro_permission_for(method, path);
    snprintf(out, out_size,
             "update the API key or grant its group \"%s\" in Syncro, then save the integration "
             "again",
             perm ? perm : "the needed permission");
    return out;
}

/* ---- the list pager ---------------------------------------------------------------------- */

typedef struct sy_list_s {
    const char *type;     /* canonical type, the cursor's prefix */
    const char *resource; /* list resource */
    const char *list_key; /* array key of the list body */
} sy_list_t;

static const sy_list_t SY_CUSTOMERS = {"customer", "customers", "customers"};
static const sy_list_t SY_ASSETS = {"asset", "customer_assets", "assets"};

/* A msp_pager_t of this file is an sy_pager_t (msp_pager_t stays incomplete everywhere). */
typedef struct sy_pager_s {
    const sy_list_t *list;
    char base_url[512];
    int page;        /* the page being read, 1-based */
    int total_pages; /* meta.total_pages of the last answer */
} sy_pager_t;

static msp_pager_t *sy_pager_new(const msp_pager_conf_t *conf, const sy_list_t *list) {
    sy_pager_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->list = list;
    snprintf(p->base_url, sizeof(p->base_url), "%s", conf->base_url);
    p->page = 1;
    p->total_pages = 1;
    return (msp_pager_t *)p;
}

static msp_pager_t *sy_customers_new(const msp_pager_conf_t *conf, const msp_pager_t *before) {
    (void)before;
    return sy_pager_new(conf, &SY_CUSTOMERS);
}

static msp_pager_t *sy_assets_new(const msp_pager_conf_t *conf, const msp_pager_t *before) {
    (void)before;
    return sy_pager_new(conf, &SY_ASSETS);
}

static int sy_seek(msp_pager_t *pp, const char *cursor) {
    sy_pager_t *p = (sy_pager_t *)pp;
    char tname[32];
    int page = 0;
    if (sscanf(cursor, "%31[a-z]:%d", tname, &page) != 2 || page < 1 ||
        strcmp(tname, p->list->type) != 0)
        return -1;
    p->page = page;
    return page;
}

static void sy_cursor(const msp_pager_t *pp, int next, char *out, size_t out_size) {
    const sy_pager_t *p = (const sy_pager_t *)pp;
    snprintf(out, out_size, "%s:%d", p->list->type, p->page + (next ? 1 : 0));
}

static int sy_request(msp_pager_t *pp, msp_pager_req_t *req) {
    const sy_pager_t *p = (const sy_pager_t *)pp;
    req->method = "GET";
    req->body = NULL;
    snprintf(req->path, sizeof(req->path), "%s", p->list->resource);
    msp_syncro_list_url(p->base_url, p->list->resource, p->page, 0, req->url, sizeof(req->url));
    return 0;
}

static msp_http_outcome_t sy_classify(const msp_pager_t *p, const msp_http_response_t *res) {
    (void)p;
    return msp_http_classify(res);
}

static msp_pager_step_t sy_response(msp_pager_t *pp, const msp_http_response_t *res,
                                    json_t **records, int *last, char *errstr, size_t errstr_size) {
    sy_pager_t *p = (sy_pager_t *)pp;
    msp_syncro_page_t page;
    char err[256];
    if (msp_syncro_parse_page(res->body, res->body_len, p->list->list_key, p->page, &page, err,
                              sizeof(err)) != 0) {
        snprintf(errstr, errstr_size, "Syncro GET /%s page %d: unreadable response: %s",
                 p->list->resource, p->page, err);
        return MSP_PAGER_BAD;
    }
    p->total_pages = page.total_pages;
    *records = page.items;
    /* Loop on meta.total_pages; an empty page (past the end) also ends the type. */
    *last = p->page >= p->total_pages || json_array_size(page.items) == 0;
    return MSP_PAGER_PAGE;
}

static int sy_progress(const msp_pager_t *pp, json_t *event) {
    const sy_pager_t *p = (const sy_pager_t *)pp;
    json_object_set_new(event, "total_pages", json_integer(p->total_pages));
    return p->total_pages;
}

static void sy_advance(msp_pager_t *pp) { ((sy_pager_t *)pp)->page++; }

static void sy_destroy(msp_pager_t *p) { free(p); }

static const msp_pager_ops_t SY_CUSTOMER_PAGER = {sy_customers_new, sy_seek,     sy_cursor,
                                                  sy_request,       sy_classify, sy_response,
                                                  sy_progress,      sy_advance,  sy_destroy};
static const msp_pager_ops_t SY_ASSET_PAGER = {sy_assets_new, sy_seek,     sy_cursor,
                                               sy_request,    sy_classify, sy_response,
                                               sy_progress,   sy_advance,  sy_destroy};

/* ---- the row ----------------------------------------------------------------------------- */

static const msp_vendor_type_t SY_TYPES[] = {
    {"customer", "customers", "customers", NULL, NULL, msp_map_syncro_customer, &SY_CUSTOMER_PAGER},
    {"asset", "assets", "assets", NULL, msp_syncro_asset_members, msp_map_syncro_asset,
     &SY_ASSET_PAGER},
};

static const char *const SY_CUSTOMERS_PERMS[] = {"Customers - List/Search", NULL};
static const char *const SY_ASSETS_PERMS[] = {"Assets - List/Search", NULL};
static const char *const SY_WRITEBACK_PERMS[] = {"Assets - View Details", "Assets - Edit", NULL};
static const char *const SY_TICKETS_PERMS[] = {"Tickets - List/Search", "Tickets - Create",
                                               "Tickets - Edit", NULL};

/* Usage billing (services/billing): GET /schedules needs "Recurring Invoices - List", PUT
 * /schedules/{id}/line_items/{line_id} and POST .../add_line_item "Recurring Invoices - Edit"
 * (syncro-openapi.json); the customer mapping reads the synced customers. */
static const char *const SY_BILLING_PERMS[] = {
    "Recurring Invoices - List", "Recurring Invoices - Edit", "Customers - List/Search", NULL};

static const msp_vendor_feature_t SY_FEATURES[] = {
    {"customers", SY_CUSTOMERS_PERMS}, {"assets", SY_ASSETS_PERMS},
    {"writeback", SY_WRITEBACK_PERMS}, {"tickets", SY_TICKETS_PERMS},
    {"billing", SY_BILLING_PERMS},     {NULL, NULL},
};

const msp_vendor_t msp_vendor_syncro = {
    .id = MSP_VENDOR_SYNCRO,
    .name = "syncro",
    .label = "Syncro",
    .sealed_field = "api_key_sealed",
    .stats_prefix = "",
    .extra_keys = NULL,
    .merge_primary = 1,
    .rate = {"MSPSYNC_SYNCRO_RATE_MILLI", 2900, "MSPSYNC_SYNCRO_BURST", 3, "syncro:"},
    .features = SY_FEATURES,
    .types = SY_TYPES,
    .types_cnt = sizeof(SY_TYPES) / sizeof(SY_TYPES[0]),
    .hints =
        {
            [MSP_HINT_REFUSED] = "Syncro refused the request; check the integration settings",
            [MSP_HINT_KEPT_FAILING] = "Syncro kept failing; check status.syncro.com or the network",
            [MSP_HINT_AUTH] = "update the API key in Syncro, then save the integration again",
            [MSP_HINT_MISSING] = "no Syncro integration for this tenant (removed?)",
            [MSP_HINT_SEALED] = "save the integration again with its API key",
        },
    .describe = msp_syncro_describe,
    .forbidden = sy_forbidden,
    .cred_new = sy_cred_new,
    .cred_load = sy_cred_load,
    .cred_free = sy_cred_free,
    .cred_base_url = sy_base_url,
    .cred_bucket = sy_bucket,
    .id_valid = sy_id_valid,
    .auth_get = sy_auth_get,
    .auth_rejected = NULL,
    .auth_cancel = NULL,
};
