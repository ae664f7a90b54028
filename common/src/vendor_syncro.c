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
 *
 * Record types, in the order the setup guides promise ("tickets and users sync alongside
 * customer data; devices and additional settings after customers"): customers, contacts,
 * tickets, settings, assets. Of their list endpoints only GET /tickets has a change filter
 * (since_updated_at, a date-time; granularity disputed: NOTES.md), so tickets are the one
 * incremental type: the pager keeps the latest updated_at it read as its mark, and an
 * incremental pass asks for since_updated_at = 00:00 UTC of the day before the mark's date (a
 * superset whether Syncro compares dates or times, in whatever zone; the normalizer drops what
 * did not change). Contacts (GET /contacts:
 * customer_id and page only) and customers and assets are full passes, gone-swept by the
 * normalizer. GET /tickets/settings is one object without an id, one request.
 */
#include "mspsync/vendor.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mspsync/model.h"
#include "mspsync/syncro.h"
#include "mspsync/syncro_store.h"

/* ---- credentials and authentication ------------------------------------------------------ */

static void *sy_cred_new(void) { return calloc(1, sizeof(msp_syncro_integration_t)); }

static int sy_cred_from_reply(const redisReply *r, const char *rerr, const msp_secret_key_t *key,
                              const char *tenant, void *impl, char *err, size_t err_size) {
    return msp_syncro_integration_from_reply(r, rerr, key, tenant, impl, err, err_size);
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

static int sy_auth_get(void *state, const char *tenant, const void *impl, char *header,
                       size_t header_size, msp_vendor_auth_cb *cb, void *opaque) {
    (void)state, (void)tenant, (void)cb, (void)opaque;
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
    const char *type;        /* canonical type, the cursor's prefix */
    const char *resource;    /* list resource */
    const char *list_key;    /* array key of the list body */
    const char *since_param; /* the document's change filter of the list, or NULL (full only) */
} sy_list_t;

static const sy_list_t SY_CUSTOMERS = {"customer", "customers", "customers", NULL};
static const sy_list_t SY_ASSETS = {"asset", "customer_assets", "assets", NULL};
static const sy_list_t SY_CONTACTS = {"contact", "contacts", "contacts", NULL};
static const sy_list_t SY_TICKETS = {"ticket", "tickets", "tickets", "since_updated_at"};

/* A msp_pager_t of this file is an sy_pager_t (msp_pager_t stays incomplete everywhere). */
typedef struct sy_pager_s {
    const sy_list_t *list;
    char base_url[512];
    int page;                /* the page being read, 1-based */
    int total_pages;         /* meta.total_pages of the last answer */
    char since[24];          /* "YYYY-MM-DDT00:00:00Z" asked by an incremental pass, or "" */
    char mark[MSP_MARK_MAX]; /* the latest updated_at read (or the given mark), or "" */
} sy_pager_t;

/* The start of the day before the date that starts mark ("2026-12-05T…" →
 * "2026-12-04T00:00:00Z": the document types the filter a date-time). @returns 0 or -1. */
static int sy_since_date(const char *mark, char out[24]) {
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (sscanf(mark, "%4d-%2d-%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3 ||
        tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm) - 86400;
    return gmtime_r(&t, &tm) && strftime(out, 24, "%Y-%m-%dT00:00:00Z", &tm) == 20 ? 0 : -1;
}

static msp_pager_t *sy_pager_new(const msp_pager_conf_t *conf, const sy_list_t *list) {
    sy_pager_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->list = list;
    snprintf(p->base_url, sizeof(p->base_url), "%s", conf->base_url);
    p->page = 1;
    p->total_pages = 1;
    /* A mark that is no date (a corrupt key) makes the pass full: never less than asked. */
    if (list->since_param && conf->since && sy_since_date(conf->since, p->since) == 0)
        snprintf(p->mark, sizeof(p->mark), "%s", conf->since);
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

static msp_pager_t *sy_contacts_new(const msp_pager_conf_t *conf, const msp_pager_t *before) {
    (void)before;
    return sy_pager_new(conf, &SY_CONTACTS);
}

static msp_pager_t *sy_tickets_new(const msp_pager_conf_t *conf, const msp_pager_t *before) {
    (void)before;
    return sy_pager_new(conf, &SY_TICKETS);
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
    char resource[128];
    if (p->since[0])
        snprintf(resource, sizeof(resource), "%s?%s=%s", p->list->resource, p->list->since_param,
                 p->since);
    else
        snprintf(resource, sizeof(resource), "%s", p->list->resource);
    msp_syncro_list_url(p->base_url, resource, p->page, 0, req->url, sizeof(req->url));
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
    size_t i;
    const json_t *item;
    json_array_foreach(p->list->since_param ? page.items : NULL, i, item) {
        /* ISO 8601 times of one account compare as strings; keep the latest */
        const char *u = json_string_value(json_object_get(item, "updated_at"));
        if (u && strlen(u) < sizeof(p->mark) && strcmp(u, p->mark) > 0)
            snprintf(p->mark, sizeof(p->mark), "%s", u);
    }
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

static int sy_mark(const msp_pager_t *pp, char *out, size_t out_size) {
    const sy_pager_t *p = (const sy_pager_t *)pp;
    if (!p->mark[0])
        return 0;
    snprintf(out, out_size, "%s", p->mark);
    return 1;
}

static int sy_partial(const msp_pager_t *pp) { return ((const sy_pager_t *)pp)->since[0] != 0; }

/* ---- the ticket settings: one object, one request ----------------------------------------- */

/* Its cursor is "setting:1"; the list pager's seek, cursor and progress serve it. */
static const sy_list_t SY_SETTINGS = {"setting", "tickets/settings", NULL, NULL};

static msp_pager_t *sy_settings_new(const msp_pager_conf_t *conf, const msp_pager_t *before) {
    (void)before;
    return sy_pager_new(conf, &SY_SETTINGS);
}

static int sy_settings_request(msp_pager_t *pp, msp_pager_req_t *req) {
    const sy_pager_t *p = (const sy_pager_t *)pp;
    req->method = "GET";
    req->body = NULL;
    snprintf(req->path, sizeof(req->path), "%s", p->list->resource);
    snprintf(req->url, sizeof(req->url), "%s/%s", p->base_url, p->list->resource);
    return 0;
}

static msp_pager_step_t sy_settings_response(msp_pager_t *pp, const msp_http_response_t *res,
                                             json_t **records, int *last, char *errstr,
                                             size_t errstr_size) {
    (void)pp;
    json_error_t jerr;
    json_t *root = res->body ? json_loadb(res->body, res->body_len, 0, &jerr) : NULL;
    if (!json_is_object(root)) {
        snprintf(errstr, errstr_size, "Syncro GET /tickets/settings: unreadable response: %s",
                 root        ? "not a JSON object"
                 : res->body ? jerr.text
                             : "empty body");
        json_decref(root);
        return MSP_PAGER_BAD;
    }
    *records = json_array();
    json_array_append_new(*records, root);
    *last = 1;
    return MSP_PAGER_PAGE;
}

static const msp_pager_ops_t SY_CUSTOMER_PAGER = {sy_customers_new, sy_seek,     sy_cursor,
                                                  sy_request,       sy_classify, sy_response,
                                                  sy_progress,      sy_advance,  sy_destroy};
static const msp_pager_ops_t SY_ASSET_PAGER = {sy_assets_new, sy_seek,     sy_cursor,
                                               sy_request,    sy_classify, sy_response,
                                               sy_progress,   sy_advance,  sy_destroy};
static const msp_pager_ops_t SY_CONTACT_PAGER = {sy_contacts_new, sy_seek,     sy_cursor,
                                                 sy_request,      sy_classify, sy_response,
                                                 sy_progress,     sy_advance,  sy_destroy};
static const msp_pager_ops_t SY_TICKET_PAGER = {
    sy_tickets_new, sy_seek,    sy_cursor,  sy_request, sy_classify, sy_response,
    sy_progress,    sy_advance, sy_destroy, sy_mark,    sy_partial};
static const msp_pager_ops_t SY_SETTINGS_PAGER = {
    sy_settings_new,      sy_seek,     sy_cursor,  sy_settings_request, sy_classify,
    sy_settings_response, sy_progress, sy_advance, sy_destroy};

/* ---- the row ----------------------------------------------------------------------------- */

/* The settings go with the "tickets" feature: GET /tickets/settings names no permission in the
 * document (any key reads it), and the statuses it lists are those of the tickets synced. */
static const msp_vendor_type_t SY_TYPES[] = {
    {"customer", "customers", "customers", NULL, NULL, msp_map_syncro_customer, &SY_CUSTOMER_PAGER},
    {"contact", "contacts", "contacts", NULL, NULL, msp_map_syncro_contact, &SY_CONTACT_PAGER},
    {"ticket", "tickets", "tickets", NULL, NULL, msp_map_syncro_ticket, &SY_TICKET_PAGER},
    {"setting", "settings", "tickets", NULL, NULL, msp_map_syncro_settings, &SY_SETTINGS_PAGER},
    {"asset", "assets", "assets", NULL, msp_syncro_asset_members, msp_map_syncro_asset,
     &SY_ASSET_PAGER, "customer"},
};

/*
 * The permissions each feature needs, in Syncro's words (the group permission screen; the
 * official document names the one each call needs). A feature needs what its calls need and no
 * more, so that the token recipes MSPs follow serve what they were made for (docs/setup.md,
 * generated from this table and checked against it by test_setup_doc):
 *   assets      GET /customer_assets (the pager; customers then come from the assets' own fields)
 *   customers   GET /customers
 *   contacts    GET /contacts ("Customers - View Detail" in the document)
 *   tickets     GET /tickets (ticket sync)
 *   ticketing   the ticket-creator: the org mapping reads customers (list, detail), tickets are
 *               found by their marker (GET /tickets), created (POST) and commented / reopened
 *               (POST .../comment, PUT) — the incident token of the portals, exactly
 *   auto_resolve (an option of ticketing) reads the ticket before resolving it: GET /tickets/{id}
 *   writeback   GET and PUT /customer_assets/{id} (read, merge, write the properties)
 *   billing     the recurring invoices (GET /schedules, PUT .../line_items/{id}) of a customer
 */
static const char *const SY_ASSETS_PERMS[] = {"Assets - List/Search", NULL};
static const char *const SY_CUSTOMERS_PERMS[] = {"Customers - List/Search", NULL};
static const char *const SY_CONTACTS_PERMS[] = {"Customers - View Detail", NULL};
static const char *const SY_TICKETS_PERMS[] = {"Tickets - List/Search", NULL};
static const char *const SY_TICKETING_PERMS[] = {
    "Customers - List/Search", "Customers - View Detail", "Tickets - Create",
    "Tickets - Edit",          "Tickets - List/Search",   NULL};
static const char *const SY_AUTO_RESOLVE_PERMS[] = {"Tickets - View Details", NULL};
static const char *const SY_WRITEBACK_PERMS[] = {"Assets - View Details", "Assets - Edit", NULL};
/* Usage billing (services/billing): GET /schedules needs "Recurring Invoices - List", PUT
 * /schedules/{id}/line_items/{line_id} and POST .../add_line_item "Recurring Invoices - Edit"
 * (syncro-openapi.json); the customer mapping reads the synced customers. */
static const char *const SY_BILLING_PERMS[] = {
    "Recurring Invoices - List", "Recurring Invoices - Edit", "Customers - List/Search", NULL};

static const msp_vendor_feature_t SY_FEATURES[] = {
    {"assets", SY_ASSETS_PERMS, NULL},
    {"customers", SY_CUSTOMERS_PERMS, NULL},
    {"contacts", SY_CONTACTS_PERMS, NULL},
    {"tickets", SY_TICKETS_PERMS, NULL},
    {"ticketing", SY_TICKETING_PERMS, NULL},
    {"auto_resolve", SY_AUTO_RESOLVE_PERMS, "ticketing"},
    {"writeback", SY_WRITEBACK_PERMS, NULL},
    {"billing", SY_BILLING_PERMS, NULL},
    {NULL, NULL, NULL},
};

/* The gateway's GET shows where the account is and the tenant's ticketing block (tickets are
 * made in Syncro); the tenant's only integration is purged at once on DELETE, with the ticketing
 * org → customer mappings (their customer ids would dangle) and the ticket marks. */
static const msp_vendor_shown_t SY_SHOWN[] = {
    {"base_url", MSP_SHOWN_NULL}, {"account_id", MSP_SHOWN_NULL}, {NULL, 0}};
static const char *const SY_PURGE_KEYS[] = {"ticketing:orgmap", "mark:syncro:ticket", NULL};
static const msp_vendor_admin_t SY_ADMIN = {.shown = SY_SHOWN,
                                            .show_ticketing = 1,
                                            .delete_alone_purges = 1,
                                            .purge_keys = SY_PURGE_KEYS,
                                            .removal_keys = NULL};

const msp_vendor_t msp_vendor_syncro = {
    .id = MSP_VENDOR_SYNCRO,
    .name = "syncro",
    .label = "Syncro",
    .sealed_field = "api_key_sealed",
    .stats_prefix = "",
    .extra_keys = NULL,
    .merge_primary = 1,
    .rate = {"MSPSYNC_SYNCRO_RATE_MILLI", "2900", 10000000,
             "Syncro requests per 1000 s for one account, shared by the fetchers, the gateway, the "
             "ticket-creators and the write-backs: set it the same in every service (Syncro allows "
             "180/min = 3000)",
             "MSPSYNC_SYNCRO_BURST", "3", 10000,
             "Requests a Syncro account's bucket allows at once", "syncro:"},
    .features = SY_FEATURES,
    .types = SY_TYPES,
    .types_cnt = sizeof(SY_TYPES) / sizeof(SY_TYPES[0]),
    .admin = &SY_ADMIN,
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
    .cred_fields = msp_syncro_integration_fields,
    .cred_from_reply = sy_cred_from_reply,
    .cred_free = sy_cred_free,
    .cred_base_url = sy_base_url,
    .cred_bucket = sy_bucket,
    .id_valid = sy_id_valid,
    .auth_get = sy_auth_get,
    .auth_rejected = NULL,
    .auth_cancel = NULL,
    .auth_new = NULL, /* the key is the header: no per-process state */
};
