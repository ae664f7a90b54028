/*
 * router.c — maps method + path to a handler.
 *
 * Order of checks, so that answers never leak more than the caller may know:
 *   0. a header section that cannot be trusted (too many fields, ambiguous body length) → 431 or
 *      400 before anything else (gw_check_framing; libevent has already bounded its bytes);
 *   1. paths outside /v1/ (other than the ops endpoints mounted by msp_ops_mount) → 404;
 *   2. /v1/... without a valid bearer token — the operator token or a tenant key that is not
 *      revoked or expired (access.c) — → 401, whatever the path (503 for a key while Redis is
 *      being restored: the key may simply not be back yet); except exactly
 *      POST /v1/webhooks/mtp/{t}, which the sender authenticates with an HMAC signature
 *      instead (webhook.c checks the tenant and the signature itself);
 *   3. unknown path → 404, known path with another method → 405 (with Allow) — TRACE
 *      and OPTIONS included;
 *   3b. a malformed query string → 400 (gw_check_query), so no handler reads a half-parsed one;
 *   4. /v1/tenants/{t}/... (not /v1/tenants, /v1/secrets, the webhook): a tenant that does not
 *      exist (or cannot, by its syntax) → 404; so does a tenant other than the key's own, with
 *      the same answer, so a key learns nothing of other tenants;
 *   5. access: the route table's column `need` names, per method, the least role the caller
 *      must have (access.c: gw_role_allows). A method without an entry is refused to everyone,
 *      the operator included (403): a route added without its access rule cannot open a hole.
 *      A missing role → 403 naming it;
 *   6. a change (not GET) of a tenant's data opens its audit record (audit.c) before dispatch.
 * Path segments are percent-decoded one by one, so "syncro%3A123" arrives as "syncro:123" and an
 * encoded '/' cannot split a segment.
 */
#include "gateway.h"

#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#define MAX_SEGS 8

typedef enum {
    R_NONE = 0,
    R_TENANTS,         /* /v1/tenants                              POST GET */
    R_TENANT,          /* /v1/tenants/{t}                          GET */
    R_INTEGRATION,     /* /v1/tenants/{t}/integrations/{syncro|cwrmm}  PUT GET PATCH DELETE */
    R_SYNC,            /* /v1/tenants/{t}/integrations/{i}/sync    POST */
    R_DISABLE,         /* /v1/tenants/{t}/integrations/{i}/disable POST */
    R_CUSTOMERS,       /* /v1/tenants/{t}/customers                GET */
    R_CUSTOMER,        /* /v1/tenants/{t}/customers/{id}           GET */
    R_ASSETS,          /* /v1/tenants/{t}/assets                   GET */
    R_ASSET,           /* /v1/tenants/{t}/assets/{id}              GET */
    R_ASSET_DATES,     /* /v1/tenants/{t}/assets/{id}/dates        PUT */
    R_ASSET_WRITEBACK, /* /v1/tenants/{t}/assets/{id}/writeback    GET */
    R_CONTACTS,        /* /v1/tenants/{t}/contacts                 GET */
    R_CONTACT,         /* /v1/tenants/{t}/contacts/{id}            GET */
    R_TICKETS,         /* /v1/tenants/{t}/tickets                  GET */
    R_TICKET,          /* /v1/tenants/{t}/tickets/{id}             GET */
    R_TICKET_SETTINGS, /* /v1/tenants/{t}/ticket-settings          GET */
    R_WH_CONFIG,       /* /v1/tenants/{t}/webhooks/mtp             GET */
    R_WH_SECRET,       /* /v1/tenants/{t}/webhooks/mtp/secret      POST */
    R_WH_PREVIOUS,     /* /v1/tenants/{t}/webhooks/mtp/secret/previous DELETE */
    R_TICKETING,       /* /v1/tenants/{t}/ticketing                GET PUT */
    R_TK_ORGS,         /* /v1/tenants/{t}/ticketing/orgs           GET */
    R_TK_ORG,          /* /v1/tenants/{t}/ticketing/orgs/{org_id}  PUT DELETE */
    R_WEBHOOK_MTP,     /* /v1/webhooks/mtp/{t}                     POST, no bearer */
    R_SECRETS,         /* /v1/secrets                              GET */
    R_SECRETS_RESEAL,  /* /v1/secrets/reseal                       POST */
    R_WEBHOOK_USAGE,   /* /v1/webhooks/mtp/{t}/usage               POST, no bearer */
    R_BILLING,         /* /v1/tenants/{t}/billing                  GET PUT */
    R_BILLING_PUSH,    /* /v1/tenants/{t}/billing/push             POST */
    R_BILLING_STATUS,  /* /v1/tenants/{t}/billing/status           GET */
    R_BILLING_PREVIEW, /* /v1/tenants/{t}/billing/preview          GET */
    R_BILLING_HISTORY, /* /v1/tenants/{t}/billing/history          GET */
    R_KEYS,            /* /v1/tenants/{t}/keys                     GET POST */
    R_KEY,             /* /v1/tenants/{t}/keys/{id}                DELETE */
    R_AUDIT,           /* /v1/tenants/{t}/audit                    GET */
    R_JOBS,            /* /v1/tenants/{t}/integrations/{i}/jobs    GET */
    R_JOB,             /* /v1/tenants/{t}/integrations/{i}/jobs/{job_id} GET */
    R_DEAD_LETTERS,    /* /v1/tenants/{t}/dead-letters             GET */
    R_DEAD_LETTER,     /* /v1/tenants/{t}/dead-letters/{id}        GET */
    R_DEAD_REPLAY,     /* /v1/tenants/{t}/dead-letters/replay      POST */
    R_INCIDENT_TRACE,  /* /v1/tenants/{t}/incidents/{ref}          GET */
    R_ASSET_HISTORY,   /* /v1/tenants/{t}/assets/{id}/history      GET */
} route_id_t;

/* The least role per method (access.c); GW_ROLE_UNSET (left out) = refused to everyone. */
typedef struct {
    gw_role_t get, post, put, patch, del;
} need_t;

#define OPERATOR GW_ROLE_OPERATOR
#define OWNER GW_ROLE_OWNER
#define SYNC GW_ROLE_SYNC
#define BILLING GW_ROLE_BILLING
#define VIEWER GW_ROLE_VIEWER

static const struct {
    const char *name;  /* the metrics label */
    const char *allow; /* the Allow header for 405 */
    need_t need;       /* who may call it: one row per route, also for the routes to come */
    int data;          /* 1: its changes are data, never a setting (audited without snapshots) */
} routes[] = {
    [R_NONE] = {"unmatched", "", {0}},
    [R_TENANTS] = {"tenants", "GET, POST", {.get = OPERATOR, .post = OPERATOR}},
    [R_TENANT] = {"tenant", "GET, DELETE", {.get = VIEWER, .del = OPERATOR}},
    [R_INTEGRATION] = {"integration",
                       "GET, PUT, PATCH, DELETE",
                       {.get = VIEWER, .put = SYNC, .patch = SYNC, .del = SYNC}},
    [R_SYNC] = {"integration_sync", "POST", {.post = SYNC}},
    [R_DISABLE] = {"integration_disable", "POST", {.post = SYNC}},
    [R_CUSTOMERS] = {"customers", "GET", {.get = VIEWER}},
    [R_CUSTOMER] = {"customer", "GET", {.get = VIEWER}},
    [R_ASSETS] = {"assets", "GET", {.get = VIEWER}},
    [R_ASSET] = {"asset", "GET", {.get = VIEWER}},
    [R_ASSET_DATES] = {"asset_dates", "PUT", {.put = SYNC}, .data = 1},
    [R_ASSET_WRITEBACK] = {"asset_writeback", "GET", {.get = VIEWER}},
    [R_CONTACTS] = {"contacts", "GET", {.get = VIEWER}},
    [R_CONTACT] = {"contact", "GET", {.get = VIEWER}},
    [R_TICKETS] = {"tickets", "GET", {.get = VIEWER}},
    [R_TICKET] = {"ticket", "GET", {.get = VIEWER}},
    [R_TICKET_SETTINGS] = {"ticket_settings", "GET", {.get = VIEWER}},
    [R_WH_CONFIG] = {"webhook_config", "GET", {.get = VIEWER}},
    [R_WH_SECRET] = {"webhook_secret", "POST", {.post = OWNER}},
    [R_WH_PREVIOUS] = {"webhook_secret_previous", "DELETE", {.del = OWNER}},
    [R_TICKETING] = {"ticketing", "GET, PUT", {.get = VIEWER, .put = SYNC}},
    [R_TK_ORGS] = {"ticketing_orgs", "GET", {.get = VIEWER}},
    [R_TK_ORG] = {"ticketing_org", "PUT, DELETE", {.put = SYNC, .del = SYNC}},
    [R_WEBHOOK_MTP] = {"webhook_mtp", "POST", {.post = GW_ROLE_PUBLIC}},
    [R_WEBHOOK_USAGE] = {"webhook_usage", "POST", {.post = GW_ROLE_PUBLIC}},
    [R_BILLING] = {"billing", "GET, PUT", {.get = VIEWER, .put = BILLING}},
    [R_BILLING_PUSH] = {"billing_push", "POST", {.post = BILLING}},
    [R_BILLING_STATUS] = {"billing_status", "GET", {.get = VIEWER}},
    [R_BILLING_PREVIEW] = {"billing_preview", "GET", {.get = VIEWER}},
    [R_BILLING_HISTORY] = {"billing_history", "GET", {.get = VIEWER}},
    [R_SECRETS] = {"secrets", "GET", {.get = OPERATOR}},
    [R_SECRETS_RESEAL] = {"secrets_reseal", "POST", {.post = OPERATOR}},
    [R_KEYS] = {"keys", "GET, POST", {.get = OWNER, .post = OWNER}},
    [R_KEY] = {"key", "DELETE", {.del = OWNER}},
    [R_AUDIT] = {"audit", "GET", {.get = OWNER}},
    [R_JOBS] = {"integration_jobs", "GET", {.get = VIEWER}},
    [R_JOB] = {"integration_job", "GET", {.get = VIEWER}},
    [R_DEAD_LETTERS] = {"dead_letters", "GET", {.get = VIEWER}},
    [R_DEAD_LETTER] = {"dead_letter", "GET", {.get = VIEWER}},
    [R_DEAD_REPLAY] = {"dead_letters_replay", "POST", {.post = SYNC}},
    [R_INCIDENT_TRACE] = {"incident_trace", "GET", {.get = VIEWER}},
    [R_ASSET_HISTORY] = {"asset_history", "GET", {.get = VIEWER}},
};

/* The least role route r needs for method m; GW_ROLE_UNSET when the table has none. */
static gw_role_t route_need(route_id_t r, enum evhttp_cmd_type m) {
    const need_t *n = &routes[r].need;
    switch (m) {
    case EVHTTP_REQ_GET: return n->get;
    case EVHTTP_REQ_POST: return n->post;
    case EVHTTP_REQ_PUT: return n->put;
    case EVHTTP_REQ_PATCH: return n->patch;
    case EVHTTP_REQ_DELETE: return n->del;
    default: return GW_ROLE_UNSET;
    }
}

/* Split the path into decoded segments (new strings). @returns count, or -1 when unusable. */
static int split_path(const char *path, char **seg, int max) {
    int n = 0;
    if (!path || path[0] != '/')
        return -1;
    const char *p = path + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (n == max)
            return -1;
        char *raw = strndup(p, len);
        size_t outlen = 0;
        char *dec = raw ? evhttp_uridecode(raw, 0, &outlen) : NULL;
        free(raw);
        if (!dec)
            return -1;
        seg[n++] = dec;
        if (outlen != strlen(dec))  /* an encoded NUL */
            return -1;
        if (!slash)
            break;
        p = slash + 1;
    }
    return n;
}

static route_id_t match(char **s, int n) {
    if (n == 4 && strcmp(s[0], "v1") == 0 && strcmp(s[1], "webhooks") == 0 &&
        strcmp(s[2], "mtp") == 0)
        return R_WEBHOOK_MTP;
    if (n >= 2 && n <= 3 && strcmp(s[0], "v1") == 0 && strcmp(s[1], "secrets") == 0)
        return n == 2 ? R_SECRETS : strcmp(s[2], "reseal") == 0 ? R_SECRETS_RESEAL : R_NONE;
    if (n == 5 && strcmp(s[0], "v1") == 0 && strcmp(s[1], "webhooks") == 0 &&
        strcmp(s[2], "mtp") == 0 && strcmp(s[4], "usage") == 0)
        return R_WEBHOOK_USAGE;
    if (n < 2 || strcmp(s[0], "v1") != 0 || strcmp(s[1], "tenants") != 0)
        return R_NONE;
    if (n == 2)
        return R_TENANTS;
    if (s[2][0] == '\0')
        return R_NONE;
    if (n == 3)
        return R_TENANT;
    if (strcmp(s[3], "integrations") == 0 && n >= 5 && gw_integ_find(s[4])) {
        if (n == 5)
            return R_INTEGRATION;
        if (n == 6 && strcmp(s[5], "sync") == 0)
            return R_SYNC;
        if (n == 6 && strcmp(s[5], "disable") == 0)
            return R_DISABLE;
        if (n >= 6 && strcmp(s[5], "jobs") == 0)
            return n == 6 ? R_JOBS : n == 7 && s[6][0] != '\0' ? R_JOB : R_NONE;
        return R_NONE;
    }
    if (strcmp(s[3], "webhooks") == 0 && n >= 5 && strcmp(s[4], "mtp") == 0) {
        if (n == 5)
            return R_WH_CONFIG;
        if (strcmp(s[5], "secret") != 0)
            return R_NONE;
        if (n == 6)
            return R_WH_SECRET;
        return n == 7 && strcmp(s[6], "previous") == 0 ? R_WH_PREVIOUS : R_NONE;
    }
    if (strcmp(s[3], "keys") == 0)
        return n == 4 ? R_KEYS : n == 5 && s[4][0] != '\0' ? R_KEY : R_NONE;
    if (strcmp(s[3], "audit") == 0)
        return n == 4 ? R_AUDIT : R_NONE;
    if (strcmp(s[3], "dead-letters") == 0) {
        if (n == 4)
            return R_DEAD_LETTERS;
        if (n != 5 || s[4][0] == '\0')
            return R_NONE;
        return strcmp(s[4], "replay") == 0 ? R_DEAD_REPLAY : R_DEAD_LETTER;
    }
    if (strcmp(s[3], "incidents") == 0)
        return n == 5 && s[4][0] != '\0' ? R_INCIDENT_TRACE : R_NONE;
    if (strcmp(s[3], "ticketing") == 0) {
        if (n == 4)
            return R_TICKETING;
        if (strcmp(s[4], "orgs") != 0)
            return R_NONE;
        if (n == 5)
            return R_TK_ORGS;
        return n == 6 && s[5][0] != '\0' ? R_TK_ORG : R_NONE;
    }
    /* the synced record types without sub-resources: a list and one record */
    static const struct {
        const char *seg;
        route_id_t list, one;
    } records[] = {{"contacts", R_CONTACTS, R_CONTACT},
                   {"tickets", R_TICKETS, R_TICKET},
                   {"ticket-settings", R_TICKET_SETTINGS, R_NONE}};
    for (size_t i = 0; i < sizeof(records) / sizeof(records[0]); i++)
        if (strcmp(s[3], records[i].seg) == 0)
            return n == 4 ? records[i].list : n == 5 && s[4][0] != '\0' ? records[i].one : R_NONE;
    if (strcmp(s[3], "billing") == 0) {
        if (n == 4)
            return R_BILLING;
        if (n != 5)
            return R_NONE;
        if (strcmp(s[4], "push") == 0)
            return R_BILLING_PUSH;
        if (strcmp(s[4], "status") == 0)
            return R_BILLING_STATUS;
        if (strcmp(s[4], "preview") == 0)
            return R_BILLING_PREVIEW;
        return strcmp(s[4], "history") == 0 ? R_BILLING_HISTORY : R_NONE;
    }
    int cust = strcmp(s[3], "customers") == 0, asset = strcmp(s[3], "assets") == 0;
    if (!cust && !asset)
        return R_NONE;
    if (n == 4)
        return cust ? R_CUSTOMERS : R_ASSETS;
    if (n == 5 && s[4][0] != '\0')
        return cust ? R_CUSTOMER : R_ASSET;
    if (asset && n == 6 && s[4][0] != '\0' && strcmp(s[5], "dates") == 0)
        return R_ASSET_DATES;
    if (asset && n == 6 && s[4][0] != '\0' && strcmp(s[5], "writeback") == 0)
        return R_ASSET_WRITEBACK;
    if (asset && n == 6 && s[4][0] != '\0' && strcmp(s[5], "history") == 0)
        return R_ASSET_HISTORY;
    return R_NONE;
}

static int method_ok(route_id_t r, enum evhttp_cmd_type m) {
    switch (r) {
    case R_TENANTS:
    case R_KEYS: return m == EVHTTP_REQ_GET || m == EVHTTP_REQ_POST;
    case R_TENANT: return m == EVHTTP_REQ_GET || m == EVHTTP_REQ_DELETE;
    case R_KEY: return m == EVHTTP_REQ_DELETE;
    case R_INTEGRATION:
        return m == EVHTTP_REQ_GET || m == EVHTTP_REQ_PUT || m == EVHTTP_REQ_DELETE ||
               m == EVHTTP_REQ_PATCH;
    case R_ASSET_DATES: return m == EVHTTP_REQ_PUT;
    case R_SYNC:
    case R_DISABLE:
    case R_WH_SECRET:
    case R_SECRETS_RESEAL:
    case R_WEBHOOK_MTP:
    case R_WEBHOOK_USAGE:
    case R_BILLING_PUSH:
    case R_DEAD_REPLAY: return m == EVHTTP_REQ_POST;
    case R_BILLING: return m == EVHTTP_REQ_GET || m == EVHTTP_REQ_PUT;
    case R_WH_PREVIOUS: return m == EVHTTP_REQ_DELETE;
    case R_TICKETING: return m == EVHTTP_REQ_GET || m == EVHTTP_REQ_PUT;
    case R_TK_ORG: return m == EVHTTP_REQ_PUT || m == EVHTTP_REQ_DELETE;
    case R_NONE: return 0;
    default: return m == EVHTTP_REQ_GET;
    }
}

static void dispatch(gw_t *gw, struct evhttp_request *req, route_id_t r, char **s) {
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const char *t = s[2];
    switch (r) {
    case R_TENANTS:
        if (m == EVHTTP_REQ_POST)
            api_tenants_create(gw, req);
        else
            api_tenants_list(gw, req);
        return;
    case R_TENANT:
        if (m == EVHTTP_REQ_DELETE)
            api_tenant_delete(gw, req, t);
        else
            api_tenant_get(gw, req, t);
        return;
    case R_KEYS:
        if (m == EVHTTP_REQ_POST)
            api_keys_create(gw, req, t);
        else
            api_keys_list(gw, req, t);
        return;
    case R_KEY: api_key_delete(gw, req, t, s[4]); return;
    case R_AUDIT: api_audit_list(gw, req, t); return;
    case R_INCIDENT_TRACE: api_incident_trace_get(gw, req, t, s[4]); return;
    case R_ASSET_HISTORY: api_asset_history_get(gw, req, t, s[4]); return;
    case R_INTEGRATION: {
        const gw_integ_t *in = gw_integ_find(s[4]); /* found: the route matched it */
        if (m == EVHTTP_REQ_PATCH)
            api_integration_patch(gw, req, t, s[4]);
        else if (m == EVHTTP_REQ_PUT)
            api_integration_put(gw, req, t, in);
        else if (m == EVHTTP_REQ_DELETE)
            api_integration_delete(gw, req, t, in);
        else
            api_integration_get(gw, req, t, s[4]);
        return;
    }
    case R_SYNC: api_integration_sync(gw, req, t, s[4]); return;
    case R_DISABLE: api_integration_disable(gw, req, t, s[4]); return;
    case R_ASSET_DATES: api_asset_dates_put(gw, req, t, s[4]); return;
    case R_ASSET_WRITEBACK: api_asset_writeback_get(gw, req, t, s[4]); return;
    case R_CUSTOMERS: api_inventory_list(gw, req, t, "customer"); return;
    case R_ASSETS: api_inventory_list(gw, req, t, "asset"); return;
    case R_CUSTOMER: api_inventory_get(gw, req, t, "customer", s[4]); return;
    case R_ASSET: api_inventory_get(gw, req, t, "asset", s[4]); return;
    case R_CONTACTS: api_inventory_list(gw, req, t, "contact"); return;
    case R_CONTACT: api_inventory_get(gw, req, t, "contact", s[4]); return;
    case R_TICKETS: api_inventory_list(gw, req, t, "ticket"); return;
    case R_TICKET: api_inventory_get(gw, req, t, "ticket", s[4]); return;
    case R_TICKET_SETTINGS: api_inventory_list(gw, req, t, "setting"); return;
    case R_WH_CONFIG: api_webhook_get(gw, req, t); return;
    case R_WH_SECRET: api_webhook_secret_create(gw, req, t); return;
    case R_WH_PREVIOUS: api_webhook_previous_delete(gw, req, t); return;
    case R_TICKETING:
        if (m == EVHTTP_REQ_PUT)
            api_ticketing_put(gw, req, t);
        else
            api_ticketing_get(gw, req, t);
        return;
    case R_TK_ORGS: api_ticketing_orgs_list(gw, req, t); return;
    case R_TK_ORG:
        if (m == EVHTTP_REQ_PUT)
            api_ticketing_org_put(gw, req, t, s[5]);
        else
            api_ticketing_org_delete(gw, req, t, s[5]);
        return;
    case R_WEBHOOK_MTP: api_webhook_mtp(gw, req, s[3]); return;
    case R_SECRETS: api_secrets_get(gw, req); return;
    case R_SECRETS_RESEAL: api_secrets_reseal(gw, req); return;
    case R_WEBHOOK_USAGE: api_webhook_usage(gw, req, s[3]); return;
    case R_BILLING:
        if (m == EVHTTP_REQ_PUT)
            api_billing_put(gw, req, t);
        else
            api_billing_get(gw, req, t);
        return;
    case R_BILLING_PUSH: api_billing_push(gw, req, t); return;
    case R_BILLING_STATUS: api_billing_status(gw, req, t); return;
    case R_BILLING_PREVIEW: api_billing_preview(gw, req, t); return;
    case R_BILLING_HISTORY: api_billing_history(gw, req, t); return;
    case R_JOBS: api_history_jobs(gw, req, t, s[4]); return;
    case R_JOB: api_history_job(gw, req, t, s[4], s[6]); return;
    case R_DEAD_LETTERS: api_dead_letters_list(gw, req, t); return;
    case R_DEAD_LETTER: api_dead_letter_get(gw, req, t, s[4]); return;
    case R_DEAD_REPLAY: api_dead_letters_replay(gw, req, t); return;
    case R_NONE: break;
    }
}

/* Step 5 of the file comment, then the audit record and the handler. */
static void admit(gw_t *gw, struct evhttp_request *req, route_id_t r, char **s,
                  const gw_actor_t *actor, int tenant_route) {
    const char *name = routes[r].name;
    gw_role_t need = route_need(r, evhttp_request_get_command(req));
    if (need == GW_ROLE_UNSET)
        gw_reply_error(gw, req, name, 403, "no access rule for this route and method (refused)");
    else if (need == GW_ROLE_OPERATOR && !gw_role_allows(actor->role, need))
        gw_reply_error(gw, req, name, 403, "this route needs the operator token");
    else if (!gw_role_allows(actor->role, need))
        gw_reply_error(gw, req, name, 403, "this route needs the %s role (the key has %s)",
                       gw_role_name(need), gw_role_name(actor->role));
    else {
        if (tenant_route && r != R_TENANT)
            gw_audit_begin(gw, req, actor, name, s[2], !routes[r].data);
        dispatch(gw, req, r, s);
    }
}

void gw_route(struct evhttp_request *req, void *arg) {
    gw_t *gw = arg;
    char *seg[MAX_SEGS] = {0};
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    int n = split_path(uri ? evhttp_uri_get_path(uri) : NULL, seg, MAX_SEGS);
    int is_v1 = n >= 1 && strcmp(seg[0], "v1") == 0;
    route_id_t r = n > 0 ? match(seg, n) : R_NONE;
    const char *name = routes[r].name;
    gw_actor_t actor = {.role = GW_ROLE_PUBLIC};
    char err[256];
    int auth = 1;

    if (gw->stopping) {
        gw_reply_error(gw, req, name, 503, "the gateway is shutting down");
    } else if (gw_check_framing(gw, req, name) != 0) {
        /* replied */
    } else if (!is_v1) {
        gw_reply_error(gw, req, name, 404, "no such route");
    } else if (r != R_WEBHOOK_MTP && r != R_WEBHOOK_USAGE &&
               (auth = gw_actor_identify(gw, req, &actor, err, sizeof(err))) <= 0) {
        const char *bearer = gw_bearer(req);
        if (auth < 0)
            gw_reply_error(gw, req, name, 503, "redis unavailable: %s", err);
        else if (bearer && strncmp(bearer, "msk_", 4) == 0 && gw_journal_check(gw))
            gw_reply_error(gw, req, name, 503, /* its key may not be back yet: not final */
                           "restoring the configuration from Kafka after a loss of Redis; retry");
        else
            gw_reply_error(gw, req, name, 401,
                           "missing or invalid bearer token (or a revoked or expired key)");
    } else if (r == R_NONE) {
        gw_reply_error(gw, req, name, 404, "no such route");
    } else if (!method_ok(r, evhttp_request_get_command(req))) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", routes[r].allow);
        gw_reply_error(gw, req, name, 405, "method not allowed; allowed: %s", routes[r].allow);
    } else if (gw_check_query(gw, req, name) != 0) {
        /* replied */
    } else if (r != R_TENANTS && r != R_WEBHOOK_MTP && r != R_WEBHOOK_USAGE && r != R_SECRETS &&
               r != R_SECRETS_RESEAL) {
        int exists = gw_valid_tenant_id(seg[2]) ? gw_tenant_exists(gw, seg[2], err, sizeof(err))
                                                : 0;
        if (exists < 0)
            gw_reply_error(gw, req, name, 503, "redis unavailable: %s", err);
        else if (exists == 0 && gw_journal_check(gw)) /* wiped since the last check */
            gw_reply_error(gw, req, name, 503,
                           "restoring the configuration from Kafka after a "
                           "loss of Redis; retry");
        else if (exists == 0 ||
                 (actor.role != GW_ROLE_OPERATOR && strcmp(actor.tenant, seg[2]) != 0))
            gw_reply_error(gw, req, name, 404, "unknown tenant \"%s\"", seg[2]);
        else
            admit(gw, req, r, seg, &actor, 1);
    } else {
        admit(gw, req, r, seg, &actor, 0);
    }
    for (int i = 0; i < MAX_SEGS; i++)
        free(seg[i]);
}
