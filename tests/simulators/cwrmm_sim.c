/*
 * cwrmm_sim.c — a ConnectWise RMM ("Asio" platform API) vendor simulator for integration tests.
 *
 * One process serves any number of simulated partners. Partner `acme` lives under `/acme/...`
 * (a client is given base_url `http://127.0.0.1:PORT/acme`), so its token endpoint is
 * `/acme/v1/token` and its API `/acme/api/platform/...`; the control plane lives under `/_sim/...`
 * and is never rate limited, faulted or counted. Paths, JSON field names and shapes follow
 * shared/vendor-specs/connectwise-rmm-openapi.yaml (Asio 2.2.8); behaviour the documents leave
 * open follows the "ConnectWise RMM" section of shared/vendor-specs/NOTES.md, and where NOTES
 * calls it unconfirmed it is a switch in /_sim/config.
 *
 * Served: POST /v1/token (JSON client credentials, 401 bad secret, 423 when one client asks for
 * too many tokens in a window), GET /v1/rate_limits, companies and their sites, the device list
 * (POST .../v2/device/categories/{category}/endpoints: Link rel="next" paging, `field=`
 * projection, 404 past the end), device detail, custom-field definitions (list, get, create) and
 * device custom-field values (GET/PUT). Every API call needs a bearer token from /v1/token that
 * has not expired and carries the route's scope (403 naming the missing scope otherwise).
 *
 * Every vendor request goes through the same pipeline, in this order:
 *   count it (stats) -> rate limit (429) -> injected faults -> bearer token (401)
 *   -> scope (403) -> strict checks (400) -> handler -> hang / malformed / latency applied.
 *
 * Control plane (JSON in and out; errors are {"error": msg}):
 *   GET  /_sim/health                        {"ok": true}
 *   GET  /_sim/config, PUT /_sim/config      the switches below; PUT is partial, all or nothing
 *   GET  /_sim/stats                         {"requests","status",partners:{name:{requests,
 *        status, paths, tokens_issued, token_locks, custom_field_gets, device_list_requests,
 *        custom_field_puts, custom_field_values_written, custom_field_definitions_created,
 *        resets, hangs, malformed}}}. custom_field_gets (GET .../endpoints/{id}/custom-fields)
 *        and device_list_requests (POST .../categories/{c}/endpoints) count requests that got
 *        past rate limit, faults, token, scope and strict checks, whatever the handler
 *        answered (a 404 end page included); custom_field_puts counts applied PUTs,
 *        custom_field_values_written their items; custom_field_definitions_created counts only
 *        vendor-API creations.
 *   POST /_sim/stats/reset                   zeroes the counters, empties the write logs and
 *                                            the rate-limit and token-lock windows
 *   POST /_sim/partners                      {partner, client_id, client_secret, companies?=3,
 *        sites_per_company?=2, devices?=20, scopes?=[all], seed_overlap?=[{serial,
 *        manufacturer, mac?, model?, purchase?, warranty?}]} -> 201 summary with company_list
 *        and seed_overlap_endpoint_ids. purchase / warranty (datetime strings) set the device's
 *        "Purchase Date" / "Warranty Expiration" as the admin custom-field PUT below does.
 *        date_field_names?={purchase, warranty}: the partner's own spelling of those two
 *        definitions (e.g. "Purchase date", "warranty expiration"), created with the partner as
 *        a technician would, and used for seed_overlap's dates.
 *        Recreating a partner invalidates its tokens.
 *   GET  /_sim/partners, GET|DELETE /_sim/partners/{p}
 *   POST /_sim/partners/{p}/expire-tokens    every live token of p expires now -> {"expired": n}
 *   PUT  /_sim/partners/{p}/scopes           {"scopes":[...]}: the API client's scopes from now on
 *                                            (issued tokens keep theirs) -> {"scopes": [...]}
 *   GET  /_sim/partners/{p}/writes           every value written through the vendor PUT, oldest
 *        first: [{"endpointID","attributeId","name","value","at"}] ("at": ISO-8601 UTC)
 *   GET  /_sim/partners/{p}/devices?offset=&limit=   {"total", "devices": [admin view]}
 *   GET|PUT /_sim/partners/{p}/devices/{id}  admin view; PUT edits as the agent would
 *        ({friendlyName, deviceName, serialNumber, manufacturer, model, osProduct, osVersion,
 *        endpointType, macAddress, custom_fields: {attributeId|name: value|null}})
 *   GET  /_sim/partners/{p}/devices/{id}/custom-fields   {"endpointID","puts","values":[...]}
 *   PUT  /_sim/partners/{p}/devices/{id}/custom-fields   {"<definition name>": value | null}:
 *        a name without an endpoint definition gets a `datetime` one (created by "admin", not
 *        counted); values are checked against the definition's type (a datetime is "YYYY-MM-DD"
 *        or RFC 3339, e.g. "2024-03-01T00:00:00Z"), stored as given, null clears. Not counted,
 *        not rate limited. Answers like the GET.
 *
 * Switches (/_sim/config): token_expires_in (s, default 3599), token_lock_threshold (tokens
 * per client id per window before 423; 0 off; default 5), token_lock_window_ms, rate_limit
 * (requests per partner per window; 0 off, the default), rate_window_ms, retry_after,
 * ratelimit_body ("text": text/plain as NOTES reports, the default; "json": the spec's error
 * object), opaque_cursor (false: the spec's integer offset, the default), full_page_link (a
 * full page always carries rel="next", so the page after the last full one is a 404; default
 * on), latency_ms, latency_jitter_ms, hang_ms, and the one-shot fail_next (fail_status),
 * ratelimit_next, reset_next, hang_next, malformed_next, and outage_ms (outage_status), and
 * strict (default on): after the scope check, a request the document refuses gets a 400 in the
 * operation's error shape ({"code","message"} on the device paths, {"error","description"} on
 * the custom-field paths) instead of being served; see strict_check() for the list. Off, the
 * simulator is as lenient as before (repeated field=, no X-Request-ID, ...).
 *
 * Invariants:
 *  - Single-threaded: everything runs on one libevent loop; delays use evtimers, never sleep.
 *  - Generated data is a pure function of (seed, partner, index): two simulators started with
 *    the same --seed and the same admin calls serve identical pages. Only admin edits, custom
 *    field writes and definitions stamp "now". Devices are created with the partner and never
 *    added or removed, so device pointers stay valid for the partner's lifetime.
 *  - Devices are ordered by index; device i belongs to site floor(i * sites / devices), so each
 *    site's devices are contiguous and a page groups them by (companyID, siteID) as the spec does.
 *  - Tokens are random-looking but drawn from a PRNG seeded by --seed; faults draw from another.
 *  - Everything allocated is freed on SIGTERM/SIGINT (the ASan build must stay leak-free).
 *
 * Usage: cwrmm-sim [--port N] [--port-file PATH] [--bind ADDR] [--seed N]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <inttypes.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <jansson.h>

#include "sim_util.h"

#define SIM_MAX_PAGE         500        /* spec: at most 500 endpoints per page */
#define SIM_MAX_FIELDS       15         /* spec: at most 15 projection fields */
#define SIM_MAX_COMPANIES    100000
#define SIM_MAX_DEVICES      1000000
#define SIM_MAX_CF_VALUES    25         /* spec x-note: 25 attributes per request */
#define SIM_MAX_DEFINITIONS  1000

/* Per resourceType, how many ids one device-list request may name (spec requestBody text). */
#define SIM_MAX_RES_COMPANY  4
#define SIM_MAX_RES_SITE     10
#define SIM_MAX_RES_ENDPOINT 500

/* The scopes NOTES lists for asset sync and write-back, plus a read scope for values. */
enum scope_bit {
    SC_COMPANIES_READ = 1u << 0,
    SC_SITES_READ = 1u << 1,
    SC_DEVICES_READ = 1u << 2,
    SC_CFD_READ = 1u << 3,
    SC_CFD_WRITE = 1u << 4,
    SC_CFV_READ = 1u << 5,
    SC_CFV_WRITE = 1u << 6,
};
static const char *const SCOPE_NAMES[] = {
    "platform.companies.read",
    "platform.sites.read",
    "platform.devices.read",
    "platform.custom_fields_definitions.read",
    "platform.custom_fields_definitions.write",
    "platform.custom_fields_values.read",
    "platform.custom_fields_values.write",
};
#define N_SCOPES  (sizeof(SCOPE_NAMES) / sizeof(SCOPE_NAMES[0]))
#define SC_ALL    ((1u << N_SCOPES) - 1)

typedef struct sim sim;

/* ------------------------------------------------------------------------------------------ */
/* configuration: one table serves GET and PUT /_sim/config                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct sim_config {
    int64_t token_expires_in;     /* seconds, as answered in expires_in */
    int64_t token_lock_threshold; /* tokens per client id per window before 423; 0 = off */
    int64_t token_lock_window_ms;
    bool ratelimit_json; /* 429 body: false text/plain (NOTES), true the spec's JSON error */
    bool opaque_cursor;  /* false: the spec's integer offset cursor */
    bool full_page_link; /* a full page always carries rel="next"; the next one may 404 */
    bool strict;         /* refuse what the document refuses (see strict_check) */
    sim_faults fx; /* latency, fail_next, ratelimit_next, outage */
} sim_config;

#define CFG_OFF(f) offsetof(sim_config, f)
static const cfg_entry CONFIG_TABLE[] = {
    {"token_expires_in", CT_INT, CFG_OFF(token_expires_in), 1, 86400},
    {"token_lock_threshold", CT_INT, CFG_OFF(token_lock_threshold), 0, 1000000},
    {"token_lock_window_ms", CT_INT, CFG_OFF(token_lock_window_ms), 1, 86400000},
    {"ratelimit_body", CT_CHOICE, CFG_OFF(ratelimit_json), 0, 0, {"text", "json"}},
    {"opaque_cursor", CT_BOOL, CFG_OFF(opaque_cursor), 0, 0},
    {"full_page_link", CT_BOOL, CFG_OFF(full_page_link), 0, 0},
    {"strict", CT_BOOL, CFG_OFF(strict), 0, 0},
    SIM_FAULT_ROWS(sim_config, fx),
};

static void config_defaults(sim_config *c)
{
    sim_faults_defaults(&c->fx); /* the rate limit off: NOTES knows no number */
    c->token_expires_in = 3599;
    c->token_lock_threshold = 5;
    c->token_lock_window_ms = 60000;
    c->ratelimit_json = false;
    c->opaque_cursor = false; /* the spec: an integer offset */
    c->full_page_link = true;
    c->strict = true;
}

/* ------------------------------------------------------------------------------------------ */
/* data model                                                                                  */
/* ------------------------------------------------------------------------------------------ */

#define UUID_LEN 37 /* 36 characters and the NUL */

/* A device. Every string is owned and never NULL; generation fills them, admin edits replace. */
typedef struct device {
    uint32_t idx, site; /* generation index; global site index (company = site / per company) */
    char id[UUID_LEN];
    char *device_name, *friendly_name, *serial, *manufacturer, *model, *os_product, *os_version;
    char *endpoint_type, *ip;
    json_t *macs;       /* array of strings (owned) */
    json_t *cf;         /* object: attributeId -> {"value","updatedAt","updatedBy"} (owned) */
    int64_t created_ms, modified_ms;
    uint64_t cf_puts;   /* vendor PUTs that touched this device (test-only) */
} device;

enum path_class {
    PC_TOKEN, PC_RATE_LIMITS, PC_COMPANIES, PC_SITES, PC_DEVICES, PC_DEVICE, PC_CF_DEFS,
    PC_CF_DEF, PC_CF_VALUES, PC_OTHER, PC__N
};
static const char *const PATH_CLASS_NAMES[PC__N] = {
    "/v1/token",
    "/v1/rate_limits",
    "/api/platform/v1/company/companies",
    "/api/platform/v1/company/companies/{companyId}/sites",
    "/api/platform/v2/device/categories/{category}/endpoints",
    "/api/platform/v2/device/companies/{companyID}/sites/{siteID}/endpoints/{endpointID}",
    "/api/platform/v1/custom-field/definitions",
    "/api/platform/v1/custom-field/definitions/{definitionID}",
    "/api/platform/v2/device/endpoints/{endpointID}/custom-fields",
    "other",
};

typedef struct partner_stats {
    uint64_t requests;
    statusc status;
    req_stats cls[PC__N]; /* per path class */
    uint64_t tokens_issued, token_locks;
    uint64_t custom_field_puts, custom_field_values_written, custom_field_definitions_created;
    uint64_t custom_field_gets, device_list_requests; /* requests their handler served */
    uint64_t resets, hangs, malformed;                /* injected faults */
} partner_stats;

typedef struct partner {
    char *name, *client_id, *client_secret;
    unsigned scopes; /* what the client may be granted */
    uint64_t salt;
    uint64_t gen; /* tokens of an earlier partner with this name are not valid */
    size_t ncompanies, sites_per_company, nsites, ndevices;
    char (*company_ids)[UUID_LEN];
    char (*site_ids)[UUID_LEN];
    device *devices;
    strmap company_ix; /* company id -> (void *)(index + 1) */
    strmap site_ix;    /* site id -> (void *)(index + 1) */
    strmap device_ix;  /* endpoint id -> device* */
    json_t *defs;      /* array of PartnerAttributeDefinition objects (owned) */
    json_t *writes;    /* test-only log of vendor value writes, oldest first (owned) */
    uint64_t next_def;
    tsring token_times; /* tokens issued to client_id in the lock window */
    tsring rl;          /* admitted API requests in the rate window */
    partner_stats st;
} partner;

typedef struct token {
    char *partner; /* owned name; the partner may be deleted and recreated */
    uint64_t gen; /* partner->gen at issue time */
    unsigned scopes;
    int64_t expires_mono;
} token;

struct sim {
    sim_server srv;
    uint64_t seed;
    uint64_t rng;     /* fault PRNG state */
    uint64_t tok_rng; /* token PRNG state */
    sim_config cfg;
    strmap partners; /* name -> partner* */
    strmap tokens;   /* access_token -> token* */
    uint64_t next_gen;
    uint64_t requests;
    statusc status;
};

/* ------------------------------------------------------------------------------------------ */
/* error bodies: the spec has two shapes                                                        */
/* ------------------------------------------------------------------------------------------ */

/* The `error` schema of the company and v2 device paths: {"code","message"}. */
static void reply_code(reply *r, int status, const char *msg)
{
    char code[16];
    snprintf(code, sizeof(code), "%d", status);
    reply_json(r, status, json_pack("{s:s,s:s}", "code", code, "message", msg));
}

/* The `Error` schema of the custom-field paths: {"error","description"}. */
static void reply_err(reply *r, int status, const char *error, const char *desc)
{
    reply_json(r, status, json_pack("{s:s,s:s}", "error", error, "description", desc));
}


/* ------------------------------------------------------------------------------------------ */
/* deterministic data generation                                                               */
/* ------------------------------------------------------------------------------------------ */

static const char *const SITE_NAMES[] = {
    "Head Office", "Warehouse", "Branch North", "Branch South", "Clinic", "Remote Staff",
};
static const struct {
    const char *manufacturer, *model, *type, *serial_prefix;
} HW[] = {
    {"Dell Inc.", "OptiPlex 7090", "Desktop", ""},
    {"HP", "HP EliteDesk 800 G6 Small Form Factor PC", "Desktop", "CZC"},
    {"LENOVO", "ThinkCentre M720q", "Desktop", "MJ"},
    {"LENOVO", "ThinkPad T14 Gen 2", "Laptop", "PF"},
    {"Dell Inc.", "Latitude 5520", "Laptop", ""},
    {"HP", "HP EliteBook 840 G8 Notebook PC", "Laptop", "5CG"},
    {"Microsoft Corporation", "Surface Laptop 4", "Laptop", "0F"},
    {"Dell Inc.", "PowerEdge R740", "Server", ""},
    {"HPE", "ProLiant DL380 Gen10", "Server", "MXQ"},
};

#define T_2019 1546300800000LL /* 2019-01-01T00:00:00Z */
#define DAY_MS 86400000LL

/* Tags keep the id streams of companies, sites, devices and definitions apart. */
#define TAG_COMPANY 0xC0000000000ULL
#define TAG_SITE    0x5100000000ULL
#define TAG_DEVICE  0xDE00000000ULL
#define TAG_DEF     0xDEF0000000ULL

/** Writes a version-4-shaped UUID derived from (salt, n). */
static void gen_uuid(uint64_t salt, uint64_t n, char out[UUID_LEN])
{
    uint64_t a = hash2(salt, n), b = hash2(salt ^ 0x5EED5EEDULL, n);
    snprintf(out, UUID_LEN, "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-%04" PRIx64 "-%012" PRIx64,
             a >> 32, (a >> 16) & 0xFFFF, a & 0xFFF, 0x8000 | ((b >> 48) & 0x3FFF),
             (uint64_t)(b & 0xFFFFFFFFFFFFULL));
}

static void fmt_mac(uint64_t h, char out[18])
{
    /* a locally plausible OUI-looking prefix, then 3 bytes from h */
    snprintf(out, 18, "%02X:%02X:%02X:%02X:%02X:%02X", (unsigned)((h >> 40) & 0xFC),
             (unsigned)((h >> 32) & 0xFF), (unsigned)((h >> 24) & 0xFF),
             (unsigned)((h >> 16) & 0xFF), (unsigned)((h >> 8) & 0xFF), (unsigned)(h & 0xFF));
}

static void company_name(const partner *p, size_t ci, char *out, size_t outsz)
{
    uint64_t h = hash2(p->salt, TAG_COMPANY + ci);
    snprintf(out, outsz, "%s %s %zu", BIZ_A[h % NELEM(BIZ_A)], BIZ_B[(h >> 8) % NELEM(BIZ_B)],
             ci + 1);
}

static void device_generate(partner *p, device *d, uint32_t idx)
{
    uint64_t h = hash2(p->salt ^ 0xA55E7ULL, idx);
    d->idx = idx;
    d->site = (uint32_t)((uint64_t)idx * p->nsites / p->ndevices);
    gen_uuid(p->salt, TAG_DEVICE + idx, d->id);
    size_t hw = h % NELEM(HW);
    bool server = strcmp(HW[hw].type, "Server") == 0;
    char prefix[8];
    snprintf(prefix, sizeof(prefix), "%.6s", BIZ_A[hash2(p->salt, TAG_COMPANY + d->site /
                                                         p->sites_per_company) % NELEM(BIZ_A)]);
    for (char *c = prefix; *c; c++)
        *c = *c == ' ' ? 'X' : (char)((*c >= 'a' && *c <= 'z') ? *c - 32 : *c);
    const char *kind = server ? "SRV" : strcmp(HW[hw].type, "Laptop") == 0 ? "LT" : "WS";
    d->friendly_name = xprintf("%s-%s-%04u", prefix, kind, idx + 1);
    d->device_name = xprintf("DESKTOP-%07" PRIX64, (uint64_t)((h >> 20) & 0xFFFFFFFULL));
    /* base-36 serial body: unique per (salt, idx) with overwhelming probability */
    static const char b36[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    char body[12];
    uint64_t sh = hash2(p->salt ^ 0x5E7A1ULL, idx);
    size_t blen = *HW[hw].serial_prefix ? 8 : 7;
    for (size_t i = 0; i < blen; i++, sh /= 36)
        body[i] = b36[sh % 36];
    body[blen] = 0;
    d->serial = xprintf("%s%s", HW[hw].serial_prefix, body);
    d->manufacturer = xstrdup(HW[hw].manufacturer);
    d->model = xstrdup(HW[hw].model);
    d->endpoint_type = xstrdup(HW[hw].type);
    if (server) {
        const sim_os *os = &OS_SERVER[(h >> 12) % NELEM(OS_SERVER)];
        d->os_product = xstrdup(os->name + strlen("Microsoft ")); /* "Windows Server ..." */
        d->os_version = xstrdup(os->build);
    } else {
        const sim_os *os = &OS_WORKSTATION[(h >> 12) % NELEM(OS_WORKSTATION)];
        d->os_product = xstrdup(os->name + strlen("Microsoft "));
        d->os_version = xstrdup(os->build);
    }
    d->ip = xprintf("10.%u.%u.%u", (unsigned)(d->site % 250), (unsigned)((idx >> 8) % 250),
                    (unsigned)(idx % 250 + 2));
    d->macs = json_array();
    char mac[18];
    uint64_t mh = hash2(p->salt ^ 0x3AC0ULL, idx);
    fmt_mac(mh, mac);
    json_array_append_new(d->macs, json_string(mac));
    if ((h >> 40) % 3 == 0) { /* a third have a second adapter (wifi) */
        fmt_mac(mix64(mh), mac);
        json_array_append_new(d->macs, json_string(mac));
    }
    d->cf = json_object();
    d->created_ms = T_2019 + (int64_t)((h >> 24) % (3 * 365)) * DAY_MS + (int64_t)(h % DAY_MS);
    d->modified_ms = d->created_ms + (int64_t)((h >> 32) % (300 * DAY_MS));
}

static void device_free_fields(device *d)
{
    char *strs[] = {d->device_name, d->friendly_name, d->serial,        d->manufacturer, d->model,
                    d->os_product,  d->os_version,    d->endpoint_type, d->ip};
    for (size_t i = 0; i < NELEM(strs); i++)
        free(strs[i]);
    json_decref(d->macs);
    json_decref(d->cf);
}

static void partner_free(void *v)
{
    partner *p = v;
    if (!p)
        return;
    for (size_t i = 0; i < p->ndevices; i++)
        device_free_fields(&p->devices[i]);
    free(p->devices);
    free(p->company_ids);
    free(p->site_ids);
    sm_destroy(&p->company_ix, NULL);
    sm_destroy(&p->site_ix, NULL);
    sm_destroy(&p->device_ix, NULL);
    json_decref(p->defs);
    json_decref(p->writes);
    tsring_free(&p->token_times);
    tsring_free(&p->rl);
    free(p->name);
    free(p->client_id);
    free(p->client_secret);
    free(p);
}

static void token_free(void *v)
{
    token *t = v;
    if (!t)
        return;
    free(t->partner);
    free(t);
}

/* Seeds the fault and token PRNGs; partners come later, through /_sim/partners. */
static void sim_init(void *arg, const sim_opts *o)
{
    sim *s = arg;
    s->tok_rng = mix64(o->seed ^ 0x70CE7ULL);
    s->rng = mix64(o->seed ^ 0xFA0175ULL);
    s->seed = o->seed;
    config_defaults(&s->cfg);
}

static void sim_destroy(void *arg)
{
    sim *s = arg;
    sm_destroy(&s->partners, partner_free);
    sm_destroy(&s->tokens, token_free);
}

/* ------------------------------------------------------------------------------------------ */
/* rendering                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static json_t *json_iso(int64_t ms)
{
    char buf[48];
    fmt_iso(ms, buf);
    return json_string(buf);
}

static const char *device_company_id(const partner *p, const device *d)
{
    return p->company_ids[d->site / p->sites_per_company];
}

/** The full platform endpoint (platformEndpoint/platformEndpointDetail shape). @returns new. */
static json_t *device_full(const partner *p, const device *d)
{
    json_t *o = json_object();
    json_object_set_new(o, "endpointID", json_string(d->id));
    json_object_set_new(o, "deviceName", json_string(d->device_name));
    json_object_set_new(o, "friendlyName", json_string(d->friendly_name));
    json_object_set_new(o, "resourceType", json_string("Managed"));
    json_object_set_new(o, "endpointType", json_string(d->endpoint_type));
    json_object_set_new(o, "ipAddress", json_pack("[s]", d->ip));
    json_object_set_new(o, "macAddress", json_deep_copy(d->macs));
    json_object_set_new(o, "createdAt", json_iso(d->created_ms));
    json_object_set_new(o, "createdBy", json_string("agent"));
    json_object_set_new(o, "modifiedAt", json_iso(d->modified_ms));
    json_object_set_new(o, "modifiedBy", json_string("agent"));
    json_object_set_new(o, "remoteAddress",
                        json_string("203.0.113.10"));
    json_object_set_new(o, "system",
                        json_pack("{s:s,s:s,s:s,s:s}", "product", d->model, "model", d->model,
                                  "serialNumber", d->serial, "systemName", d->device_name));
    json_object_set_new(o, "baseboard",
                        json_pack("{s:s,s:s,s:s}", "manufacturer", d->manufacturer, "product",
                                  d->model, "serialNumber", d->serial));
    json_object_set_new(o, "os",
                        json_pack("{s:s,s:s,s:s,s:s}", "product", d->os_product, "manufacturer",
                                  "Microsoft Corporation", "version", d->os_version, "type",
                                  "windows"));
    return o;
}

/* Top-level fields a projection may name (dotted names select inside the objects): every
 * property of the spec's platformEndpoint. The simulator has data for the first fifteen; the
 * others are accepted and simply absent from the answer. */
static const char *const PROJECTABLE[] = {
    "endpointID", "deviceName", "friendlyName", "resourceType", "endpointType", "ipAddress",
    "macAddress", "createdAt", "createdBy", "modifiedAt", "modifiedBy", "remoteAddress",
    "system", "baseboard", "os", "type", "subResourceType", "virtualType", "power", "bios",
    "drives", "physicalMemory", "networks", "ethernet", "firewall", "locations", "cardReaders",
    "graphicCards", "bluetooth", "usbs", "diagnostic", "discBurning", "thunderbolts",
    "processors", "raidController", "keyboards", "mouse", "monitors", "physicalDrives",
    "shares", "pciDevices", "logicalVolume", "antiViruses", "rolesFeatures",
    "agentInstalledUTC", "createTimeUTC",
};
/* Without field=, the list answers only these (the spec's "minimal fields (metadata)"). */
static const char *const LIST_METADATA[] = {
    "endpointID", "resourceType", "endpointType", "createdAt", "modifiedAt",
};

typedef struct projection {
    char **f; /* owned */
    size_t n;
} projection;

static void projection_free(projection *pj)
{
    for (size_t i = 0; i < pj->n; i++)
        free(pj->f[i]);
    free(pj->f);
    pj->f = NULL;
    pj->n = 0;
}

/**
 * Collects every `field` query value, repeated or comma separated, into pj.
 * @returns 0, or -1 with err set (too many or unknown fields).
 */
static int projection_parse(const char *query, projection *pj, char *err, size_t errsz)
{
    memset(pj, 0, sizeof(*pj));
    if (!query)
        return 0;
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    if (evhttp_parse_query_str(query, &q) != 0)
        return 0;
    int rc = 0;
    size_t cap = 0;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, &q, next)
    {
        if (strcmp(kv->key, "field") != 0)
            continue;
        char *copy = xstrdup(kv->value), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ')
                t++;
            size_t len = strlen(t);
            while (len && t[len - 1] == ' ')
                t[--len] = 0;
            if (!len)
                continue;
            size_t top = strcspn(t, ".");
            bool known = false;
            for (size_t i = 0; i < NELEM(PROJECTABLE); i++)
                if (strlen(PROJECTABLE[i]) == top && strncmp(PROJECTABLE[i], t, top) == 0)
                    known = true;
            if (!known || (t[top] == '.' && (!t[top + 1] || strchr(t + top + 1, '.')))) {
                snprintf(err, errsz, "invalid projection field '%s'", t);
                rc = -1;
            } else if (pj->n == SIM_MAX_FIELDS) {
                snprintf(err, errsz, "maximum of %d fields are allowed in projection",
                         SIM_MAX_FIELDS);
                rc = -1;
            } else {
                pj->f = vec_grow(pj->f, &cap, pj->n, sizeof(*pj->f));
                pj->f[pj->n++] = xstrdup(t);
            }
        }
        free(copy);
        if (rc)
            break;
    }
    evhttp_clear_headers(&q);
    if (rc)
        projection_free(pj);
    return rc;
}

/** projection_parse on the request's query. @returns 0, or -1 with r set to the 400. */
static int projection_read(const struct evhttp_request *req, projection *pj, reply *r)
{
    char err[200];
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (projection_parse(query, pj, err, sizeof(err)) == 0)
        return 0;
    reply_code(r, 400, err);
    return -1;
}

/** Copies the projected fields of full into out ("a" whole, "a.b" one member of object a). */
static void project_into(json_t *out, json_t *full, const char *field)
{
    const char *dot = strchr(field, '.');
    if (!dot) {
        json_t *v = json_object_get(full, field);
        if (v)
            json_object_set(out, field, v);
        return;
    }
    char top[64];
    snprintf(top, sizeof(top), "%.*s", (int)(dot - field), field);
    json_t *src = json_object_get(full, top);
    json_t *v = src ? json_object_get(src, dot + 1) : NULL;
    if (!v)
        return;
    json_t *dst = json_object_get(out, top);
    if (dst && json_equal(dst, src))
        return; /* the whole object is already projected */
    if (!dst) {
        dst = json_object();
        json_object_set_new(out, top, dst);
    }
    json_object_set(dst, dot + 1, v);
}

/** Renders a device with the projection; with none, `dflt` names the default fields. */
static json_t *device_projected(const partner *p, const device *d, const projection *pj,
                                const char *const *dflt, size_t ndflt)
{
    json_t *full = device_full(p, d);
    json_t *o = json_object();
    json_object_set(o, "endpointID", json_object_get(full, "endpointID"));
    if (pj->n)
        for (size_t i = 0; i < pj->n; i++)
            project_into(o, full, pj->f[i]);
    else
        for (size_t i = 0; i < ndflt; i++)
            project_into(o, full, dflt[i]);
    json_decref(full);
    return o;
}

static json_t *company_json(const partner *p, size_t ci)
{
    char name[128];
    company_name(p, ci, name, sizeof(name));
    uint64_t h = hash2(p->salt, TAG_COMPANY + ci);
    int64_t created = T_2019 + (int64_t)(h % (2 * 365)) * DAY_MS;
    char acct[UUID_LEN], status_id[UUID_LEN];
    gen_uuid(p->salt, 0xACC7ULL, acct);
    gen_uuid(0, 0xAC71FEULL, status_id);
    return json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:s},s:{s:b,s:b,s:s,s:s},s:s,s:o,s:s,s:o,s:[]}",
                     "id", p->company_ids[ci], "name", name, "friendlyName", name, "description",
                     "", "account", "id",
                     acct, "name", p->name, "activityStatus", "activeFlag", 1, "defaultFlag", 0,
                     "id", status_id, "name", "Active", "createdBy", "system", "createdDate",
                     json_iso(created), "updatedBy", "system", "updatedDate",
                     json_iso(created + DAY_MS), "externalIds");
}

static json_t *site_json(const partner *p, size_t si)
{
    size_t ci = si / p->sites_per_company;
    char cname[128];
    company_name(p, ci, cname, sizeof(cname));
    uint64_t h = hash2(p->salt, TAG_SITE + si);
    int64_t created = T_2019 + (int64_t)(h % (2 * 365)) * DAY_MS;
    const char *name = SITE_NAMES[(si % p->sites_per_company) % NELEM(SITE_NAMES)];
    return json_pack("{s:s,s:s,s:s,s:b,s:{s:s,s:s,s:s,s:[]},s:s,s:o,s:s,s:s,s:o,s:[]}", "id",
                     p->site_ids[si], "name", name, "friendlyName", name, "activeFlag", 1,
                     "company", "id", p->company_ids[ci], "name", cname,
                     "friendlyName", cname, "externalIds", "createdBy", "system", "createdDate",
                     json_iso(created), "description", "", "updatedBy", "system", "updatedDate",
                     json_iso(created + DAY_MS), "externalIds");
}

/* ------------------------------------------------------------------------------------------ */
/* custom fields                                                                                */
/* ------------------------------------------------------------------------------------------ */

static json_t *def_find(const partner *p, const char *id)
{
    size_t i;
    json_t *d;
    json_array_foreach(p->defs, i, d)
    {
        if (strcmp(json_string_value(json_object_get(d, "id")), id) == 0)
            return d;
    }
    return NULL;
}

static json_t *def_find_name(const partner *p, const char *entity, const char *name)
{
    size_t i;
    json_t *d;
    json_array_foreach(p->defs, i, d)
    {
        if (strcmp(json_string_value(json_object_get(d, "entityType")), entity) == 0 &&
            strcasecmp(json_string_value(json_object_get(d, "name")), name) == 0)
            return d;
    }
    return NULL;
}

static const char *const ENTITY_TYPES[] = {"client", "site", "endpoint", "contact", "ticket",
                                           "ticketnote"};
static const char *const ATTR_TYPES[] = {"boolean", "string", "enum", "datetime", "integer"};

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

/** Adds a definition to p (id from the partner's stream). @returns it (borrowed). */
static json_t *def_add(partner *p, const char *entity, const char *name, const char *desc,
                       const char *type, json_t *dflt, bool editable, const char *by,
                       int64_t now_ms, bool vendor)
{
    char id[UUID_LEN];
    gen_uuid(p->salt, TAG_DEF + p->next_def++, id);
    json_t *d = json_pack("{s:s,s:s,s:s,s:s,s:s,s:O,s:b,s:o,s:s,s:o,s:s,s:s,s:b}", "id", id,
                          "entityType", entity, "name", name, "description", desc,
                          "attributeType", type, "defaultValue", dflt ? dflt : json_null(),
                          "isEditable", editable, "createdAt", json_iso(now_ms), "createdBy", by,
                          "updatedAt", json_iso(now_ms), "updatedBy", by, "originType",
                          vendor ? "vendor" : "partner", "required", 0);
    json_array_append_new(p->defs, d);
    return d;
}

/** Validates a value against a definition's attributeType. @returns NULL or the complaint. */
static const char *value_invalid(const char *type, const char *v)
{
    if (!strcmp(type, "datetime")) {
        int64_t ms;
        if (parse_when(v, &ms) == 0)
            return "value is not a valid datetime (RFC 3339 expected)";
    } else if (!strcmp(type, "integer")) {
        int64_t x;
        if (parse_i64(v, &x) != 0)
            return "value is not a valid integer";
    } else if (!strcmp(type, "boolean")) {
        if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
            return "value is not a valid boolean";
    }
    return NULL;
}

/** One AttributeValue (spec shape). @returns new. */
static json_t *attr_value_json(const json_t *def, const json_t *stored)
{
    json_t *v = json_object();
    json_object_set(v, "attributeId", json_object_get(def, "id"));
    json_object_set(v, "name", json_object_get(def, "name"));
    json_object_set(v, "type", json_object_get(def, "attributeType"));
    if (stored) {
        json_object_set(v, "value", json_object_get(stored, "value"));
        json_object_set(v, "updatedAt", json_object_get(stored, "updatedAt"));
        json_object_set(v, "updatedBy", json_object_get(stored, "updatedBy"));
    } else {
        json_object_set(v, "value", json_object_get(def, "defaultValue"));
        json_object_set(v, "updatedAt", json_object_get(def, "updatedAt"));
        json_object_set(v, "updatedBy", json_object_get(def, "updatedBy"));
    }
    return v;
}

/** Stores a value (string or null) on d. */
static void device_cf_set(device *d, const char *attr_id, json_t *value, const char *by,
                          int64_t now_ms)
{
    json_object_set_new(d->cf, attr_id,
                        json_pack("{s:O,s:o,s:s}", "value", value, "updatedAt", json_iso(now_ms),
                                  "updatedBy", by));
}

/* ------------------------------------------------------------------------------------------ */
/* vendor API handlers                                                                          */
/* ------------------------------------------------------------------------------------------ */

static void api_token(sim *s, partner *p, struct evhttp_request *req, reply *r)
{
    char err[200];
    json_t *b = read_json_body(req, err, sizeof(err));
    if (!b || !json_is_object(b)) {
        reply_json(r, 400, json_pack("{s:s,s:s}", "error", "invalid_request",
                                     "error_description", b ? "body must be a JSON object" : err));
        json_decref(b);
        return;
    }
    const char *gt = json_string_value(json_object_get(b, "grant_type"));
    const char *cid = json_string_value(json_object_get(b, "client_id"));
    const char *sec = json_string_value(json_object_get(b, "client_secret"));
    json_t *scope_v = json_object_get(b, "scope");
    const char *scope = json_string_value(scope_v);
    if (!gt || strcmp(gt, "client_credentials") != 0) {
        reply_json(r, 400, json_pack("{s:s,s:s}", "error", "unsupported_grant_type",
                                     "error_description",
                                     "grant_type must be client_credentials"));
    } else if (!cid || !sec || strcmp(cid, p->client_id) != 0 ||
               strcmp(sec, p->client_secret) != 0) {
        reply_json(r, 401, json_pack("{s:s,s:s}", "error", "invalid_client",
                                     "error_description", "client authentication failed"));
    } else if (scope_v && !scope) {
        reply_json(r, 400, json_pack("{s:s,s:s}", "error", "invalid_request",
                                     "error_description",
                                     "scope must be a space separated string"));
    } else {
        /* the lock: too many tokens for one client id inside the window */
        int64_t now = mono_ms();
        tsring_prune(&p->token_times, now - s->cfg.token_lock_window_ms);
        if (s->cfg.token_lock_threshold > 0 &&
            (int64_t)p->token_times.len >= s->cfg.token_lock_threshold) {
            p->st.token_locks++;
            int64_t wait = tsring_at(&p->token_times,
                                     p->token_times.len - (size_t)s->cfg.token_lock_threshold) +
                           s->cfg.token_lock_window_ms - now;
            reply_json(r, 423, json_pack("{s:s,s:s}", "error", "locked", "error_description",
                                         "too many token requests for this client id; the key "
                                         "is locked"));
            if (s->cfg.fx.retry_after)
                r->retry_after = (int)((wait + 999) / 1000) < 1 ? 1 : (int)((wait + 999) / 1000);
            json_decref(b);
            return;
        }
        /* grant what was asked and is allowed (everything allowed if no scope was asked) */
        unsigned granted = 0;
        if (!scope || !*scope) {
            granted = p->scopes;
        } else {
            char *copy = xstrdup(scope), *save = NULL;
            for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
                for (size_t i = 0; i < N_SCOPES; i++)
                    if (strcmp(t, SCOPE_NAMES[i]) == 0 && (p->scopes & (1u << i)))
                        granted |= 1u << i;
            free(copy);
        }
        if (!granted) {
            reply_json(r, 400, json_pack("{s:s,s:s}", "error", "invalid_scope",
                                         "error_description",
                                         "none of the requested scopes is granted to this client"));
            json_decref(b);
            return;
        }
        tsring_push(&p->token_times, now);
        char tok[48];
        s->tok_rng = mix64(s->tok_rng);
        uint64_t a = s->tok_rng;
        s->tok_rng = mix64(s->tok_rng);
        snprintf(tok, sizeof(tok), "cw%016" PRIx64 "%016" PRIx64, a, s->tok_rng);
        token *t = xcalloc(1, sizeof(*t));
        t->partner = xstrdup(p->name);
        t->gen = p->gen;
        t->scopes = granted;
        t->expires_mono = now + s->cfg.token_expires_in * 1000;
        token_free(sm_put(&s->tokens, tok, t));
        p->st.tokens_issued++;
        char sc[512] = "";
        for (size_t i = 0; i < N_SCOPES; i++)
            if (granted & (1u << i)) {
                if (sc[0])
                    strcat(sc, " ");
                strcat(sc, SCOPE_NAMES[i]);
            }
        reply_json(r, 200, json_pack("{s:s,s:s,s:I,s:s}", "access_token", tok, "token_type",
                                     "Bearer", "expires_in", (json_int_t)s->cfg.token_expires_in,
                                     "scope", sc));
    }
    json_decref(b);
}

static void api_rate_limits(sim *s, partner *p, reply *r)
{
    int64_t now = mono_ms();
    int64_t limit = s->cfg.fx.rate_limit, remaining = 0, reset = wall_ms() / 1000;
    if (limit > 0) {
        tsring_prune(&p->rl, now - s->cfg.fx.rate_window_ms);
        remaining = limit - (int64_t)p->rl.len;
        if (remaining < 0)
            remaining = 0;
        if (p->rl.len)
            reset += (tsring_at(&p->rl, 0) + s->cfg.fx.rate_window_ms - now + 999) / 1000;
    }
    reply_json(r, 200,
               json_pack("{s:{s:{s:{s:I,s:I,s:I}}}}", "resources", "platform", "partner-api",
                         "limit", (json_int_t)limit, "remaining", (json_int_t)remaining, "reset",
                         (json_int_t)reset));
}

static void api_companies(partner *p, reply *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < p->ncompanies; i++)
        json_array_append_new(a, company_json(p, i));
    reply_json(r, 200, a);
}

static void api_sites(partner *p, const char *cid, reply *r)
{
    uintptr_t ci = (uintptr_t)sm_get(&p->company_ix, cid);
    if (!ci) {
        reply_code(r, 404, "company not found");
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < p->sites_per_company; i++)
        json_array_append_new(a, site_json(p, (ci - 1) * p->sites_per_company + i));
    reply_json(r, 200, a);
}

/* Opaque cursors hide the offset behind the partner salt so a client cannot compute them. */
static void cursor_encode(const sim *s, const partner *p, uint64_t off, char out[40])
{
    if (!s->cfg.opaque_cursor) {
        snprintf(out, 40, "%" PRIu64, off);
        return;
    }
    uint64_t m = mix64(p->salt ^ 0xC0C0ULL);
    snprintf(out, 40, "c%016" PRIx64 "%08" PRIx64, off ^ m,
             (uint64_t)(mix64(off ^ p->salt) & 0xFFFFFFFFULL));
}

static int cursor_decode(const sim *s, const partner *p, const char *c, uint64_t *off)
{
    if (!c || !*c) {
        *off = 0;
        return 0;
    }
    if (!s->cfg.opaque_cursor) {
        int64_t x;
        if (parse_i64(c, &x) != 0 || x < 0)
            return -1;
        *off = (uint64_t)x;
        return 0;
    }
    if (strlen(c) != 25 || c[0] != 'c')
        return -1;
    char a[17], b[9];
    memcpy(a, c + 1, 16);
    a[16] = 0;
    memcpy(b, c + 17, 8);
    b[8] = 0;
    char *end;
    uint64_t x = strtoull(a, &end, 16);
    if (*end)
        return -1;
    uint64_t chk = strtoull(b, &end, 16);
    if (*end)
        return -1;
    x ^= mix64(p->salt ^ 0xC0C0ULL);
    if ((mix64(x ^ p->salt) & 0xFFFFFFFFULL) != chk)
        return -1;
    *off = x;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void api_devices(sim *s, partner *p, struct evhttp_request *req, const char *category,
                        const struct evkeyvalq *q, reply *r)
{
    char err[200];
    bool platform = !strcmp(category, "platform") || !strcmp(category, "all");
    if (!platform && strcmp(category, "network") != 0 && strcmp(category, "cloud") != 0) {
        reply_code(r, 400, "invalid category: must be one of platform, network, cloud, all");
        return;
    }
    const char *lim_s = q ? evhttp_find_header(q, "limit") : NULL;
    int64_t limit = SIM_MAX_PAGE;
    if (lim_s && (parse_i64(lim_s, &limit) != 0 || limit < 1 || limit > SIM_MAX_PAGE)) {
        reply_code(r, 400, "limit must be an integer between 1 and 500");
        return;
    }
    uint64_t off;
    if (cursor_decode(s, p, q ? evhttp_find_header(q, "cursor") : NULL, &off) != 0) {
        reply_code(r, 400, "invalid cursor");
        return;
    }
    projection pj;
    if (projection_read(req, &pj, r) != 0)
        return;
    json_t *b = read_json_body(req, err, sizeof(err));
    const char *rt = b ? json_string_value(json_object_get(b, "resourceType")) : NULL;
    json_t *res = b ? json_object_get(b, "resources") : NULL;
    size_t maxres = !rt ? 0 : !strcmp(rt, "company") ? SIM_MAX_RES_COMPANY
                          : !strcmp(rt, "site")      ? SIM_MAX_RES_SITE
                          : !strcmp(rt, "endpoint")  ? SIM_MAX_RES_ENDPOINT
                                                     : 0;
    if (!b || !json_is_object(b) || !rt || !json_is_array(res)) {
        reply_code(r, 400, b ? "the request body must include resourceType and resources" : err);
        goto out;
    }
    if (!maxres) {
        reply_code(r, 400, "resourceType must be one of company, site, endpoint");
        goto out;
    }
    if (json_array_size(res) == 0 || json_array_size(res) > maxres) {
        snprintf(err, sizeof(err), "resources must hold 1 to %zu ids for resourceType %s", maxres,
                 rt);
        reply_code(r, 400, err);
        goto out;
    }
    size_t i;
    json_t *v;
    json_array_foreach(res, i, v)
    {
        if (!json_is_string(v)) {
            reply_code(r, 400, "resources must be an array of strings");
            goto out;
        }
    }

    /* the matching devices, in index order */
    uint32_t *sel = NULL;
    size_t nsel = 0, cap = 0;
    if (platform) {
        if (!strcmp(rt, "endpoint")) {
            json_array_foreach(res, i, v)
            {
                device *d = sm_get(&p->device_ix, json_string_value(v));
                if (d) {
                    sel = vec_grow(sel, &cap, nsel, sizeof(*sel));
                    sel[nsel++] = d->idx;
                }
            }
            qsort(sel, nsel, sizeof(*sel), cmp_u32);
            size_t w = 0;
            for (size_t k = 0; k < nsel; k++)
                if (w == 0 || sel[w - 1] != sel[k])
                    sel[w++] = sel[k];
            nsel = w;
        } else {
            bool by_company = !strcmp(rt, "company");
            bool *want = xcalloc(by_company ? p->ncompanies + 1 : p->nsites + 1, sizeof(bool));
            json_array_foreach(res, i, v)
            {
                uintptr_t x = (uintptr_t)sm_get(by_company ? &p->company_ix : &p->site_ix,
                                                json_string_value(v));
                if (x)
                    want[x - 1] = true;
            }
            for (size_t k = 0; k < p->ndevices; k++) {
                size_t site = p->devices[k].site;
                if (want[by_company ? site / p->sites_per_company : site]) {
                    sel = vec_grow(sel, &cap, nsel, sizeof(*sel));
                    sel[nsel++] = (uint32_t)k;
                }
            }
            free(want);
        }
    }
    if (off >= nsel) {
        reply_code(r, 404, "no endpoints found");
        free(sel);
        goto out;
    }
    size_t end = off + (size_t)limit < nsel ? off + (size_t)limit : nsel;
    json_t *groups = json_array(), *cur = NULL;
    size_t cur_site = SIZE_MAX;
    for (size_t k = off; k < end; k++) {
        device *d = &p->devices[sel[k]];
        if (d->site != cur_site) {
            cur_site = d->site;
            cur = json_array();
            json_array_append_new(groups, json_pack("{s:s,s:s,s:o}", "companyID",
                                                    device_company_id(p, d), "siteID",
                                                    p->site_ids[d->site], "endpoints", cur));
        }
        json_array_append_new(cur, device_projected(p, d, &pj, LIST_METADATA,
                                                    NELEM(LIST_METADATA)));
    }
    free(sel);
    if (end < nsel || (s->cfg.full_page_link && end - off == (size_t)limit)) {
        char cbuf[40];
        cursor_encode(s, p, end, cbuf);
        const char *host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
        char *fields = xstrdup("");
        for (size_t k = 0; k < pj.n; k++) {
            char *enc = evhttp_encode_uri(pj.f[k]);
            char *n = xprintf("%s%s%s", fields, k ? "," : "&field=", enc ? enc : "");
            free(enc);
            free(fields);
            fields = n;
        }
        r->link = xprintf("<http://%s/%s/api/platform/v2/device/categories/%s/endpoints"
                          "?limit=%" PRId64 "&cursor=%s%s>; rel=\"next\"",
                          host ? host : "127.0.0.1", p->name, category, limit, cbuf, fields);
        free(fields);
    }
    reply_json(r, 200, json_pack("{s:o}", "platform", groups)); /* keeps r->link */
out:
    projection_free(&pj);
    json_decref(b);
}

static void api_device(partner *p, const char *cid, const char *sid, const char *eid,
                       const struct evhttp_request *req, reply *r)
{
    device *d = sm_get(&p->device_ix, eid);
    if (!d || strcmp(device_company_id(p, d), cid) != 0 || strcmp(p->site_ids[d->site], sid) != 0) {
        reply_code(r, 404, "endpoint not found");
        return;
    }
    projection pj;
    if (projection_read(req, &pj, r) != 0)
        return;
    static const char *const DETAIL_DEFAULT[] = {"endpointID", "resourceType", "endpointType",
                                                 "createdAt",  "modifiedAt",   "os",
                                                 "system"};
    json_t *plat = device_projected(p, d, &pj, DETAIL_DEFAULT, NELEM(DETAIL_DEFAULT));
    json_object_del(plat, "endpointID");
    projection_free(&pj);
    reply_json(r, 200, json_pack("{s:s,s:s,s:s,s:s,s:s,s:o}", "companyID", cid, "siteID", sid,
                                 "endpointID", d->id, "endpointType", d->endpoint_type, "osType",
                                 "windows", "platform", plat));
}

static const char *entity_query_map(const char *q)
{
    /* the query documents "device", "company", "site"; definitions say endpoint/client/site */
    if (!q)
        return NULL;
    if (!strcmp(q, "device"))
        return "endpoint";
    if (!strcmp(q, "company"))
        return "client";
    return q;
}

static void api_defs_list(partner *p, const struct evkeyvalq *q, reply *r)
{
    const char *et = entity_query_map(q ? evhttp_find_header(q, "entityType") : NULL);
    const char *ot = q ? evhttp_find_header(q, "originType") : NULL;
    json_t *a = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(p->defs, i, d)
    {
        if (et && strcmp(json_string_value(json_object_get(d, "entityType")), et) != 0)
            continue;
        if (ot && strcmp(json_string_value(json_object_get(d, "originType")), ot) != 0)
            continue;
        json_array_append(a, d);
    }
    reply_json(r, 200, a);
}

static void api_def_create(partner *p, struct evhttp_request *req, reply *r)
{
    char err[200];
    json_t *b = read_json_body(req, err, sizeof(err));
    if (!b || !json_is_object(b)) {
        reply_err(r, 400, "Bad request", b ? "body must be a JSON object" : err);
        json_decref(b);
        return;
    }
    const char *name = json_string_value(json_object_get(b, "name"));
    const char *et = json_string_value(json_object_get(b, "entityType"));
    const char *at = json_string_value(json_object_get(b, "attributeType"));
    if (!at)
        at = json_string_value(json_object_get(b, "type"));
    json_t *desc = json_object_get(b, "description");
    json_t *dflt = json_object_get(b, "defaultValue");
    json_t *ed = json_object_get(b, "isEditable");
    if (!name || !*name) {
        reply_err(r, 400, "Bad request", "name is required");
    } else if (!et || !in_list(et, ENTITY_TYPES, NELEM(ENTITY_TYPES))) {
        reply_err(r, 400, "Bad request",
                  "entityType must be one of client, site, endpoint, contact, ticket, ticketnote");
    } else if (!at || !in_list(at, ATTR_TYPES, NELEM(ATTR_TYPES))) {
        reply_err(r, 400, "Bad request",
                  "attributeType must be one of boolean, string, enum, datetime, integer");
    } else if (desc && !json_is_string(desc)) {
        reply_err(r, 400, "Bad request", "description must be a string");
    } else if (dflt && !json_is_null(dflt) &&
               (!json_is_string(dflt) || value_invalid(at, json_string_value(dflt)))) {
        reply_err(r, 400, "Bad request", "defaultValue does not match attributeType");
    } else if (ed && !json_is_boolean(ed)) {
        reply_err(r, 400, "Bad request", "isEditable must be a boolean");
    } else if (def_find_name(p, et, name)) {
        reply_err(r, 409, "Already exists",
                  "an attribute definition with this name exists for this entityType");
    } else if (json_array_size(p->defs) >= SIM_MAX_DEFINITIONS) {
        reply_err(r, 400, "Bad request", "too many attribute definitions");
    } else {
        json_t *d = def_add(p, et, name, desc ? json_string_value(desc) : "", at,
                            dflt && !json_is_null(dflt) ? dflt : NULL,
                            ed ? json_is_true(ed) : true, p->client_id, wall_ms(), false);
        p->st.custom_field_definitions_created++;
        reply_json(r, 201, json_incref(d));
    }
    json_decref(b);
}

static void api_def_get(partner *p, const char *id, reply *r)
{
    json_t *d = def_find(p, id);
    if (!d)
        reply_err(r, 404, "Not found", "definition not found");
    else
        reply_json(r, 200, json_incref(d));
}

static void api_cf_get(partner *p, const char *eid, const struct evkeyvalq *q, reply *r)
{
    device *d = sm_get(&p->device_ix, eid);
    if (!d) {
        reply_err(r, 404, "Not found", "endpoint not found");
        return;
    }
    const char *ids = q ? evhttp_find_header(q, "attributeIDs") : NULL;
    if (ids) { /* spec: at most 25 ids; one that names no endpoint definition is a 404 */
        char *copy = xstrdup(ids), *save = NULL;
        int n = 0;
        const char *unknown = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            json_t *def = def_find(p, t);
            n++;
            if (!unknown && (!def || strcmp(json_string_value(json_object_get(def, "entityType")),
                                            "endpoint") != 0))
                unknown = t;
        }
        if (n > SIM_MAX_CF_VALUES)
            reply_err(r, 400, "Bad request", "at most 25 attributeIDs are supported per request");
        else if (unknown)
            reply_err(r, 404, "Not found", "attribute definition not found");
        free(copy);
        if (n > SIM_MAX_CF_VALUES || unknown)
            return;
    }
    const char *wd = q ? evhttp_find_header(q, "withDefaults") : NULL;
    bool with_defaults = wd && !strcmp(wd, "true");
    json_t *a = json_array();
    size_t i;
    json_t *def;
    json_array_foreach(p->defs, i, def)
    {
        const char *id = json_string_value(json_object_get(def, "id"));
        if (strcmp(json_string_value(json_object_get(def, "entityType")), "endpoint") != 0)
            continue;
        if (ids) {
            const char *hit = strstr(ids, id);
            size_t n = strlen(id);
            if (!hit || (hit != ids && hit[-1] != ',') || (hit[n] && hit[n] != ','))
                continue;
        }
        json_t *stored = json_object_get(d->cf, id);
        if (stored || with_defaults)
            json_array_append_new(a, attr_value_json(def, stored));
    }
    reply_json(r, 200, a);
}

static void api_cf_put(partner *p, const char *eid, struct evhttp_request *req, reply *r)
{
    char err[300];
    device *d = sm_get(&p->device_ix, eid);
    if (!d) { /* the spec's PUT answers 200, 400 or 500: an unknown entity is a bad request */
        reply_err(r, 400, "Bad request", "endpoint not found");
        return;
    }
    json_t *b = read_json_body(req, err, sizeof(err));
    if (!b || !json_is_array(b) || json_array_size(b) == 0 ||
        json_array_size(b) > SIM_MAX_CF_VALUES) {
        reply_err(r, 400, "Bad request",
                  b ? "body must be an array of 1 to 25 {entityId, attributeId, value}" : err);
        json_decref(b);
        return;
    }
    /* validate everything first: all or nothing */
    size_t i;
    json_t *v;
    json_array_foreach(b, i, v)
    {
        const char *ent = json_string_value(json_object_get(v, "entityId"));
        const char *aid = json_string_value(json_object_get(v, "attributeId"));
        json_t *val = json_object_get(v, "value");
        json_t *def = aid ? def_find(p, aid) : NULL;
        const char *bad = NULL;
        if (!json_is_object(v))
            bad = "each item must be an object";
        else if (!ent || strcmp(ent, eid) != 0)
            bad = "entityId must equal the endpointID of the path";
        else if (!aid)
            bad = "attributeId is required";
        else if (!def || strcmp(json_string_value(json_object_get(def, "entityType")),
                                "endpoint") != 0)
            bad = "attribute definition not found for entity type endpoint";
        else if (!val || (!json_is_string(val) && !json_is_null(val)))
            bad = "value must be a string or null";
        else if (json_is_string(val))
            bad = value_invalid(json_string_value(json_object_get(def, "attributeType")),
                                json_string_value(val));
        if (bad) {
            snprintf(err, sizeof(err), "item %zu: %s", i, bad);
            reply_err(r, 400, "Bad request", err);
            json_decref(b);
            return;
        }
    }
    int64_t now = wall_ms();
    json_t *out = json_array();
    json_array_foreach(b, i, v)
    {
        const char *aid = json_string_value(json_object_get(v, "attributeId"));
        device_cf_set(d, aid, json_object_get(v, "value"), p->client_id, now);
        json_array_append_new(out, attr_value_json(def_find(p, aid), json_object_get(d->cf, aid)));
        p->st.custom_field_values_written++;
        json_array_append_new(p->writes,
                              json_pack("{s:s,s:s,s:O,s:O,s:o}", "endpointID", d->id,
                                        "attributeId", aid, "name",
                                        json_object_get(def_find(p, aid), "name"), "value",
                                        json_object_get(v, "value"), "at", json_iso(now)));
    }
    d->cf_puts++;
    p->st.custom_field_puts++;
    reply_json(r, 200, out);
    json_decref(b);
}

/* ------------------------------------------------------------------------------------------ */
/* strict mode: what connectwise-rmm-openapi.yaml declares for the operations served            */
/* ------------------------------------------------------------------------------------------ */

/* Device list and detail: headerAuthorization, headerHost, headerOrigin, headerUserAgent and
 * headerXRequestID are `required: true`. Authorization is checked as the token; Host is
 * HTTP/1.1's own. Origin is NOT required here: it is a browser's header (RFC 6454), mspsync is
 * no browser and does not invent one (docs/vendor-departures.md). */
static const char *const DEVICE_HEADERS[] = {"User-Agent", "X-Request-ID", NULL};

static const sim_qparam Q_DEVICES[] = {
    {"limit", QP_INTEGER}, {"cursor", QP_INTEGER}, {"sortBy", QP_STRING},
    {"field", QP_STRING},  {"filter", QP_STRING},
};
static const sim_qparam Q_DEVICES_OPAQUE[] = { /* the opaque_cursor switch: a string cursor */
    {"limit", QP_INTEGER}, {"cursor", QP_STRING}, {"sortBy", QP_STRING},
    {"field", QP_STRING},  {"filter", QP_STRING},
};
static const sim_qparam Q_DEVICE[] = {{"field", QP_STRING}};
static const sim_qparam Q_DEFS[] = {{"entityType", QP_STRING}, {"originType", QP_STRING}};
static const sim_qparam Q_CF_VALUES[] = {
    {"attributeIDs", QP_STRING}, {"withDefaults", QP_BOOLEAN}, {"originType", QP_STRING},
    {"ownerID", QP_STRING},
};

/*
 * What the document refuses, for every operation served: a required header missing, a
 * single-valued query parameter repeated or of the wrong type, a JSON body not sent as
 * application/json, a values PUT whose items lack entityId/attributeId or carry an attributeId
 * that is not a uuid (its declared format). Body rules the handlers already enforce (device list
 * resourceType/resources, definition name/entityType/attributeType enums) apply in both modes.
 * @returns 0 to serve the request, -1 with r set to the 400.
 */
static int strict_check(enum path_class pc, enum evhttp_cmd_type m, struct evhttp_request *req,
                        const struct evkeyvalq *q, bool opaque_cursor, reply *r)
{
    char err[300];
    bool cf = pc == PC_CF_DEFS || pc == PC_CF_DEF || pc == PC_CF_VALUES;
    const char *missing = NULL;
    int rc = 0;

    switch (pc) {
    case PC_DEVICES:
        missing = sim_strict_missing_header(req, DEVICE_HEADERS);
        rc = opaque_cursor ? sim_strict_query(q, Q_DEVICES_OPAQUE, NELEM(Q_DEVICES_OPAQUE), err,
                                              sizeof(err))
                           : sim_strict_query(q, Q_DEVICES, NELEM(Q_DEVICES), err, sizeof(err));
        break;
    case PC_DEVICE:
        missing = sim_strict_missing_header(req, DEVICE_HEADERS);
        rc = sim_strict_query(q, Q_DEVICE, NELEM(Q_DEVICE), err, sizeof(err));
        break;
    case PC_CF_DEFS:
        if (m == EVHTTP_REQ_GET)
            rc = sim_strict_query(q, Q_DEFS, NELEM(Q_DEFS), err, sizeof(err));
        break;
    case PC_CF_VALUES:
        if (m == EVHTTP_REQ_GET)
            rc = sim_strict_query(q, Q_CF_VALUES, NELEM(Q_CF_VALUES), err, sizeof(err));
        break;
    default:
        break;
    }
    if (missing) {
        snprintf(err, sizeof(err), "missing required header: %s", missing);
        rc = -1;
    } else if (rc == 0 && (m == EVHTTP_REQ_POST || m == EVHTTP_REQ_PUT) && pc != PC_TOKEN &&
               !sim_strict_json_content_type(req)) {
        snprintf(err, sizeof(err), "the request body must be sent as application/json");
        rc = -1;
    } else if (rc == 0 && pc == PC_CF_VALUES && m == EVHTTP_REQ_PUT) {
        char jerr[200];
        json_t *b = read_json_body(req, jerr, sizeof(jerr));
        size_t i;
        json_t *v;
        json_array_foreach(b, i, v)
        {
            const char *ent = json_string_value(json_object_get(v, "entityId"));
            const char *aid = json_string_value(json_object_get(v, "attributeId"));
            const char *bad = !ent                ? "entityId is required"
                              : !sim_is_uuid(ent) ? "entityId must be a uuid for an endpoint"
                              : !aid              ? "attributeId is required"
                              : !sim_is_uuid(aid) ? "attributeId must be a uuid"
                                                  : NULL;
            if (bad) {
                snprintf(err, sizeof(err), "item %zu: %s", i, bad);
                rc = -1;
                break;
            }
        }
        json_decref(b);
    }
    if (rc == 0)
        return 0;
    if (cf)
        reply_err(r, 400, "Bad request", err);
    else
        reply_code(r, 400, err);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* the vendor pipeline                                                                          */
/* ------------------------------------------------------------------------------------------ */

static int64_t latency_for(sim *s)
{
    return latency_draw(&s->rng, s->cfg.fx.latency_ms, s->cfg.fx.latency_jitter_ms);
}

static void reply_rate_limited(sim *s, reply *r, int retry_after_s)
{
    char text[128];
    if (retry_after_s < 1)
        retry_after_s = 1;
    snprintf(text, sizeof(text), "Rate limit exceeded. Try again in %d seconds.", retry_after_s);
    if (s->cfg.ratelimit_json) {
        reply_code(r, 429, text);
    } else {
        strcat(text, "\n");
        reply_text(r, 429, "text/plain; charset=utf-8", text);
    }
    if (s->cfg.fx.retry_after)
        r->retry_after = retry_after_s;
}

/* Gateway-style failures: a 5xx from the edge is plain text, a 4xx the JSON error shape. */
static void reply_fault_status(sim *s, reply *r, int status, int retry_after_s)
{
    if (status == 429) {
        reply_rate_limited(s, r, retry_after_s);
    } else if (status >= 500) {
        reply_text(r, status, "text/plain; charset=utf-8",
                   status == 503 ? "Service Unavailable\n" : "Upstream error\n");
        if (status == 503 && s->cfg.fx.retry_after)
            r->retry_after = retry_after_s < 1 ? 1 : retry_after_s;
    } else {
        reply_code(r, status, "Simulated failure");
    }
}


static void extract_bearer(struct evhttp_request *req, char *out, size_t outsz)
{
    out[0] = 0;
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!auth)
        return;
    while (*auth == ' ')
        auth++;
    if (strncasecmp(auth, "Bearer ", 7) != 0)
        return;
    auth += 7;
    while (*auth == ' ')
        auth++;
    snprintf(out, outsz, "%s", auth);
    size_t n = strlen(out);
    while (n && out[n - 1] == ' ')
        out[--n] = 0;
}

static void count_status(sim *s, partner *p, enum path_class pc, int status)
{
    statusc_add(&s->status, status);
    statusc_add(&p->st.status, status);
    statusc_add(&p->st.cls[pc].status, status);
}

static void handle_vendor(void *arg, struct evhttp_request *req, char **seg, int nseg,
                          const struct evkeyvalq *q)
{
    sim *s = arg;
    reply r = {0};
    s->requests++;
    partner *p = nseg > 0 ? sm_get(&s->partners, seg[0]) : NULL;
    if (!p) {
        statusc_add(&s->status, 404);
        reply_code(&r, 404, "Not Found");
        send_reply(&s->srv, req, &r, 0);
        return;
    }

    /* route: /{partner}/<rest>; `allowed` is the method the path class answers */
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    enum path_class pc = PC_OTHER;
    int allowed = 0;
    char **a = seg + 1;
    int n = nseg - 1;
#define IS(i, lit) (n > (i) && strcmp(a[i], lit) == 0)
    if (n == 2 && IS(0, "v1") && IS(1, "token"))
        pc = PC_TOKEN, allowed = EVHTTP_REQ_POST;
    else if (n == 2 && IS(0, "v1") && IS(1, "rate_limits"))
        pc = PC_RATE_LIMITS, allowed = EVHTTP_REQ_GET;
    else if (n >= 5 && IS(0, "api") && IS(1, "platform") && IS(2, "v1")) {
        if (n == 5 && IS(3, "company") && IS(4, "companies"))
            pc = PC_COMPANIES, allowed = EVHTTP_REQ_GET;
        else if (n == 7 && IS(3, "company") && IS(4, "companies") && IS(6, "sites"))
            pc = PC_SITES, allowed = EVHTTP_REQ_GET;
        else if (n == 5 && IS(3, "custom-field") && IS(4, "definitions"))
            pc = PC_CF_DEFS, allowed = EVHTTP_REQ_GET | EVHTTP_REQ_POST;
        else if (n == 6 && IS(3, "custom-field") && IS(4, "definitions"))
            pc = PC_CF_DEF, allowed = EVHTTP_REQ_GET;
    } else if (n >= 5 && IS(0, "api") && IS(1, "platform") && IS(2, "v2") && IS(3, "device")) {
        if (n == 7 && IS(4, "categories") && IS(6, "endpoints"))
            pc = PC_DEVICES, allowed = EVHTTP_REQ_POST;
        else if (n == 10 && IS(4, "companies") && IS(6, "sites") && IS(8, "endpoints"))
            pc = PC_DEVICE, allowed = EVHTTP_REQ_GET;
        else if (n == 7 && IS(4, "endpoints") && IS(6, "custom-fields"))
            pc = PC_CF_VALUES, allowed = EVHTTP_REQ_GET | EVHTTP_REQ_PUT;
    }
#undef IS

    /* 1. count */
    fault_kind fk = F_NONE;
    int64_t now = mono_ms();
    p->st.requests++;
    p->st.cls[pc].requests++;

    /* 2. rate limit (per partner; rejected requests do not take a slot) */
    if (s->cfg.fx.rate_limit > 0) {
        int wait = tsring_admit(&p->rl, now, s->cfg.fx.rate_window_ms, s->cfg.fx.rate_limit);
        if (wait > 0) {
            reply_rate_limited(s, &r, wait);
            goto send;
        }
    }

    /* 3. faults (hang and malformed act on the handler's answer) */
    fk = sim_faults_take(&s->cfg.fx, now);
    switch (fk) {
    case F_OUTAGE:
        reply_fault_status(s, &r, (int)s->cfg.fx.outage_status,
                           (int)((s->cfg.fx.outage_until_mono - now + 999) / 1000));
        goto send;
    case F_FAIL:
        reply_fault_status(s, &r, (int)s->cfg.fx.fail_status, 1);
        goto send;
    case F_RATELIMIT:
        reply_rate_limited(s, &r, 1);
        goto send;
    case F_RESET:
        p->st.resets++;
        reset_connection(req);
        return;
    default:
        break;
    }

    if (pc == PC_OTHER) {
        reply_code(&r, 404, "Not Found");
        goto send;
    }
    if (!((int)m & allowed)) {
        reply_code(&r, 405, "Method Not Allowed");
        goto send;
    }
    if (pc == PC_TOKEN) {
        api_token(s, p, req, &r);
        goto send;
    }

    /* 4. bearer token: issued by this partner's /v1/token and not expired */
    char tokbuf[256];
    extract_bearer(req, tokbuf, sizeof(tokbuf));
    token *t = tokbuf[0] ? sm_get(&s->tokens, tokbuf) : NULL;
    bool cf_path = pc == PC_CF_DEFS || pc == PC_CF_DEF || pc == PC_CF_VALUES;
    if (!t || strcmp(t->partner, p->name) != 0 || t->gen != p->gen || t->expires_mono <= now) {
        bool foreign = !t || strcmp(t->partner, p->name) != 0 || t->gen != p->gen;
        const char *why = !tokbuf[0] ? "authorization token is missing"
                          : foreign  ? "authorization token is invalid"
                                     : "authorization token is expired";
        if (cf_path)
            reply_err(&r, 401, "Unauthorized", why);
        else
            reply_code(&r, 401, why);
        goto send;
    }

    /* 5. scope */
    unsigned need = 0;
    switch (pc) {
    case PC_COMPANIES: need = SC_COMPANIES_READ; break;
    case PC_SITES: need = SC_SITES_READ; break;
    case PC_DEVICES:
    case PC_DEVICE: need = SC_DEVICES_READ; break;
    case PC_CF_DEFS: need = m == EVHTTP_REQ_POST ? SC_CFD_WRITE : SC_CFD_READ; break;
    case PC_CF_DEF: need = SC_CFD_READ; break;
    case PC_CF_VALUES: need = m == EVHTTP_REQ_PUT ? SC_CFV_WRITE : SC_CFV_READ; break;
    default: break;
    }
    /* reading values back is also allowed with the write scope (NOTES lists only that one) */
    bool ok = !need || (t->scopes & need) ||
              (need == SC_CFV_READ && (t->scopes & SC_CFV_WRITE));
    if (!ok) {
        const char *sname = "";
        for (size_t i = 0; i < N_SCOPES; i++)
            if (need == 1u << i)
                sname = SCOPE_NAMES[i];
        char msg[160];
        snprintf(msg, sizeof(msg), "missing required scope: %s", sname);
        if (cf_path)
            reply_json(&r, 403, json_pack("{s:s,s:s,s:s}", "error", "Forbidden", "description",
                                          msg, "scope", sname));
        else
            reply_json(&r, 403, json_pack("{s:s,s:s,s:s}", "code", "403", "message", msg, "scope",
                                          sname));
        goto send;
    }

    /* 6. strict: what the document refuses is a 400, never served */
    if (s->cfg.strict && strict_check(pc, m, req, q, s->cfg.opaque_cursor, &r) != 0)
        goto send;

    /* 7. handler */
    switch (pc) {
    case PC_RATE_LIMITS: api_rate_limits(s, p, &r); break;
    case PC_COMPANIES: api_companies(p, &r); break;
    case PC_SITES: api_sites(p, a[5], &r); break;
    case PC_DEVICES:
        p->st.device_list_requests++;
        api_devices(s, p, req, a[5], q, &r);
        break;
    case PC_DEVICE: api_device(p, a[5], a[7], a[9], req, &r); break;
    case PC_CF_DEFS:
        if (m == EVHTTP_REQ_POST)
            api_def_create(p, req, &r);
        else
            api_defs_list(p, q, &r);
        break;
    case PC_CF_DEF: api_def_get(p, a[5], &r); break;
    case PC_CF_VALUES:
        if (m == EVHTTP_REQ_PUT)
            api_cf_put(p, a[5], req, &r);
        else
        {
            p->st.custom_field_gets++;
            api_cf_get(p, a[5], q, &r);
        }
        break;
    default: reply_code(&r, 404, "Not Found"); break;
    }

send:;
    p->st.hangs += fk == F_HANG;
    p->st.malformed += fk == F_MALFORMED;
    int64_t delay = sim_faults_finish(&s->cfg.fx, fk, &r, latency_for(s));
    count_status(s, p, pc, r.status);
    send_reply(&s->srv, req, &r, delay);
}

/* ------------------------------------------------------------------------------------------ */
/* admin API (/_sim)                                                                            */
/* ------------------------------------------------------------------------------------------ */

static bool valid_partner_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '_')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return false;
    return true;
}

static json_t *scopes_json(unsigned sc)
{
    json_t *a = json_array();
    for (size_t i = 0; i < N_SCOPES; i++)
        if (sc & (1u << i))
            json_array_append_new(a, json_string(SCOPE_NAMES[i]));
    return a;
}

static json_t *partner_summary(const partner *p, bool with_companies)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:I}", "partner", p->name,
                          "base_path", "", "client_id", p->client_id, "scopes",
                          scopes_json(p->scopes), "companies", (json_int_t)p->ncompanies,
                          "sites_per_company", (json_int_t)p->sites_per_company, "sites",
                          (json_int_t)p->nsites, "devices", (json_int_t)p->ndevices,
                          "custom_field_definitions", (json_int_t)json_array_size(p->defs));
    char bp[80];
    snprintf(bp, sizeof(bp), "/%s", p->name);
    json_object_set_new(o, "base_path", json_string(bp));
    if (with_companies) {
        json_t *cs = json_array();
        for (size_t ci = 0; ci < p->ncompanies; ci++) {
            char name[128];
            company_name(p, ci, name, sizeof(name));
            json_t *sites = json_array();
            for (size_t k = 0; k < p->sites_per_company; k++)
                json_array_append_new(sites,
                                      json_string(p->site_ids[ci * p->sites_per_company + k]));
            json_array_append_new(cs, json_pack("{s:s,s:s,s:o}", "id", p->company_ids[ci], "name",
                                                name, "site_ids", sites));
        }
        json_object_set_new(o, "company_list", cs);
    }
    return o;
}

/** Everything a test may want to know about a device (not a vendor shape). @returns new. */
static json_t *device_admin_json(const partner *p, const device *d)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:{s:s,s:s},s:{s:s},s:{s:s,s:s},s:O,"
                          "s:O,s:I}",
                          "endpointID", d->id, "companyID", device_company_id(p, d), "siteID",
                          p->site_ids[d->site], "index", (json_int_t)d->idx, "friendlyName",
                          d->friendly_name, "deviceName", d->device_name, "endpointType",
                          d->endpoint_type, "system", "serialNumber", d->serial, "model",
                          d->model, "baseboard", "manufacturer", d->manufacturer, "os",
                          "product", d->os_product, "version", d->os_version, "macAddress",
                          d->macs, "customFields", d->cf, "customFieldPuts",
                          (json_int_t)d->cf_puts);
    json_object_set_new(o, "modifiedAt", json_iso(d->modified_ms));
    return o;
}

static int scopes_parse(json_t *v, unsigned *out, char *err, size_t errsz)
{
    if (!v) {
        *out = SC_ALL;
        return 0;
    }
    if (!json_is_array(v)) {
        snprintf(err, errsz, "scopes must be an array of scope names");
        return -1;
    }
    unsigned sc = 0;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        const char *n = json_string_value(x);
        bool found = false;
        for (size_t k = 0; n && k < N_SCOPES; k++)
            if (!strcmp(n, SCOPE_NAMES[k])) {
                sc |= 1u << k;
                found = true;
            }
        if (!found) {
            snprintf(err, errsz, "unknown scope '%s'", n ? n : "(not a string)");
            return -1;
        }
    }
    *out = sc;
    return 0;
}

static const char *str_field(json_t *o, const char *k, const char *dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : dflt;
}

/*
 * Checks an admin custom-field body {"<definition name>": "<value>" | null, ...} against the
 * endpoint definitions of p (NULL: none yet). A name without a definition gets a datetime one,
 * so its value must be a datetime. @returns 0, or -1 with err set.
 */
static int admin_cf_check(const partner *p, json_t *vals, char *err, size_t errsz)
{
    if (!json_is_object(vals)) {
        snprintf(err, errsz, "body must be an object {\"<definition name>\": value or null}");
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(vals, k, v)
    {
        json_t *def = p ? def_find_name(p, "endpoint", k) : NULL;
        const char *type = def ? json_string_value(json_object_get(def, "attributeType"))
                               : "datetime";
        const char *bad = NULL;
        if (!*k)
            bad = "a name is empty";
        else if (!json_is_string(v) && !json_is_null(v))
            bad = "value must be a string or null";
        else if (json_is_string(v))
            bad = value_invalid(type, json_string_value(v));
        if (bad) {
            snprintf(err, errsz, "custom field '%s': %s", k, bad);
            return -1;
        }
    }
    return 0;
}

/* Applies a checked body to d as the admin: missing definitions are created as endpoint
 * datetime fields (not counted as created by the client); null clears a value. */
static void admin_cf_apply(partner *p, device *d, json_t *vals, int64_t now_ms)
{
    const char *k;
    json_t *v;
    json_object_foreach(vals, k, v)
    {
        json_t *def = def_find_name(p, "endpoint", k);
        if (!def)
            def = def_add(p, "endpoint", k, "", "datetime", NULL, true, "admin", now_ms, false);
        const char *aid = json_string_value(json_object_get(def, "id"));
        if (json_is_null(v))
            json_object_del(d->cf, aid);
        else
            device_cf_set(d, aid, v, "admin", now_ms);
    }
}

/* The admin view of a device's custom-field values. @returns new. */
static json_t *admin_cf_json(const partner *p, const device *d)
{
    json_t *vals = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(d->cf, k, v)
    {
        json_t *def = def_find(p, k);
        if (def)
            json_array_append_new(vals, attr_value_json(def, v));
    }
    return json_pack("{s:s,s:I,s:o}", "endpointID", d->id, "puts", (json_int_t)d->cf_puts,
                     "values", vals);
}

/* seed_overlap's optional dates, as an admin custom-field body. @returns new. */
static json_t *overlap_dates(json_t *x, const char *const names[2])
{
    json_t *o = json_object();
    if (json_object_get(x, "purchase"))
        json_object_set(o, names[0], json_object_get(x, "purchase"));
    if (json_object_get(x, "warranty"))
        json_object_set(o, names[1], json_object_get(x, "warranty"));
    return o;
}

static void admin_create_partner(sim *s, json_t *body, reply *r)
{
    char err[200];
    const char *name = str_field(body, "partner", NULL);
    const char *cid = str_field(body, "client_id", NULL);
    const char *sec = str_field(body, "client_secret", NULL);
    int64_t nc, spc, nd;
    unsigned sc;
    json_t *ov = json_object_get(body, "seed_overlap");
    /* the partner's own spelling of the two date definitions (created with the partner) */
    json_t *dn = json_object_get(body, "date_field_names");
    const char *date_names[2] = {"Purchase Date", "Warranty Expiration"};
    bool own_names = dn != NULL;
    if (dn) {
        const char *pn = json_string_value(json_object_get(dn, "purchase"));
        const char *wn = json_string_value(json_object_get(dn, "warranty"));
        if (!json_is_object(dn) || !pn || !*pn || !wn || !*wn || strlen(pn) > 200 ||
            strlen(wn) > 200 || !strcasecmp(pn, wn)) {
            reply_error(r, 400, "date_field_names must be {purchase, warranty}: two different "
                                "non-empty names");
            return;
        }
        date_names[0] = pn;
        date_names[1] = wn;
    }
    if (!name || !valid_partner_name(name)) {
        reply_error(r, 400, "partner must be 1-63 characters of [a-z0-9_-], not starting "
                                  "with '_'");
        return;
    }
    if (!cid || !*cid || !sec || !*sec) {
        reply_error(r, 400, "client_id and client_secret are required strings");
        return;
    }
    if (opt_int(body, "companies", 3, 1, SIM_MAX_COMPANIES, &nc, err, sizeof(err)) ||
        opt_int(body, "sites_per_company", 2, 1, 1000, &spc, err, sizeof(err)) ||
        opt_int(body, "devices", 20, 0, SIM_MAX_DEVICES, &nd, err, sizeof(err)) ||
        scopes_parse(json_object_get(body, "scopes"), &sc, err, sizeof(err))) {
        reply_error(r, 400, err);
        return;
    }
    if (nc * spc > 10000000) {
        reply_error(r, 400, "companies * sites_per_company is too large");
        return;
    }
    if (ov && (!json_is_array(ov) || (int64_t)json_array_size(ov) > nd)) {
        reply_error(r, 400, "seed_overlap must be an array no longer than devices");
        return;
    }
    size_t i;
    json_t *x;
    json_array_foreach(ov, i, x)
    {
        if (!json_is_object(x) || !json_is_string(json_object_get(x, "serial")) ||
            !json_is_string(json_object_get(x, "manufacturer")) ||
            (json_object_get(x, "mac") && !json_is_string(json_object_get(x, "mac"))) ||
            (json_object_get(x, "model") && !json_is_string(json_object_get(x, "model")))) {
            snprintf(err, sizeof(err),
                     "seed_overlap[%zu] must be {serial, manufacturer, mac?, model?, purchase?, "
                     "warranty?} strings", i);
            reply_error(r, 400, err);
            return;
        }
        json_t *dates = overlap_dates(x, date_names);
        char why[160];
        int bad = admin_cf_check(NULL, dates, why, sizeof(why));
        json_decref(dates);
        if (bad) {
            snprintf(err, sizeof(err), "seed_overlap[%zu]: %s", i, why);
            reply_error(r, 400, err);
            return;
        }
    }

    partner *p = xcalloc(1, sizeof(*p));
    p->name = xstrdup(name);
    p->client_id = xstrdup(cid);
    p->client_secret = xstrdup(sec);
    p->scopes = sc;
    p->salt = hash2(s->seed, fnv1a(name));
    p->gen = ++s->next_gen;
    p->ncompanies = (size_t)nc;
    p->sites_per_company = (size_t)spc;
    p->nsites = (size_t)(nc * spc);
    p->ndevices = (size_t)nd;
    sm_init(&p->company_ix);
    sm_init(&p->site_ix);
    sm_init(&p->device_ix);
    p->company_ids = xcalloc(p->ncompanies, UUID_LEN);
    p->site_ids = xcalloc(p->nsites, UUID_LEN);
    for (size_t k = 0; k < p->ncompanies; k++) {
        gen_uuid(p->salt, TAG_COMPANY + k, p->company_ids[k]);
        sm_put(&p->company_ix, p->company_ids[k], (void *)(uintptr_t)(k + 1));
    }
    for (size_t k = 0; k < p->nsites; k++) {
        gen_uuid(p->salt, TAG_SITE + k, p->site_ids[k]);
        sm_put(&p->site_ix, p->site_ids[k], (void *)(uintptr_t)(k + 1));
    }
    p->devices = xcalloc(p->ndevices ? p->ndevices : 1, sizeof(device));
    for (size_t k = 0; k < p->ndevices; k++) {
        device_generate(p, &p->devices[k], (uint32_t)k);
        sm_put(&p->device_ix, p->devices[k].id, &p->devices[k]);
    }
    /* one vendor-provided definition exists in every real account; partners add their own */
    p->defs = json_array();
    def_add(p, "endpoint", "Asset Tag", "Vendor asset tag", "string", NULL, true, "system",
            T_2019, true);
    p->writes = json_array();
    int64_t now = wall_ms();
    for (int k = 0; k < 2 && own_names; k++) /* as a technician typed them, before any sync */
        def_add(p, "endpoint", date_names[k], "", "datetime", NULL, true, "admin", now, false);

    /* the overlap devices are spread evenly so they land on different pages */
    json_t *ov_ids = json_array();
    size_t nov = json_array_size(ov);
    json_array_foreach(ov, i, x)
    {
        device *d = &p->devices[i * p->ndevices / nov];
        free(d->serial);
        d->serial = xstrdup(json_string_value(json_object_get(x, "serial")));
        free(d->manufacturer);
        d->manufacturer = xstrdup(json_string_value(json_object_get(x, "manufacturer")));
        if (json_object_get(x, "model")) {
            free(d->model);
            d->model = xstrdup(json_string_value(json_object_get(x, "model")));
        }
        if (json_object_get(x, "mac"))
            json_array_set(d->macs, 0, json_object_get(x, "mac"));
        json_t *dates = overlap_dates(x, date_names);
        admin_cf_apply(p, d, dates, now);
        json_decref(dates);
        json_array_append_new(ov_ids, json_string(d->id));
    }

    partner_free(sm_put(&s->partners, name, p));
    json_t *sum = partner_summary(p, true);
    json_object_set_new(sum, "seed_overlap_endpoint_ids", ov_ids);
    reply_json(r, 201, sum);
}

static int set_str(json_t *body, const char *k, char **field, char *err, size_t errsz)
{
    json_t *v = json_object_get(body, k);
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        snprintf(err, errsz, "%s must be a string", k);
        return -1;
    }
    free(*field);
    *field = xstrdup(json_string_value(v));
    return 0;
}

/* Edits a device as if the RMM agent reported a change; all or nothing. */
static void admin_device_put(partner *p, device *d, json_t *body, reply *r)
{
    static const char *const KNOWN[] = {"friendlyName", "deviceName", "serialNumber",
                                        "manufacturer", "model",      "osProduct",
                                        "osVersion",    "endpointType", "macAddress",
                                        "custom_fields"};
    char err[200];
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        if (!in_list(k, KNOWN, NELEM(KNOWN))) {
            snprintf(err, sizeof(err), "unknown device field '%s'", k);
            reply_error(r, 400, err);
            return;
        }
        if (strcmp(k, "macAddress") != 0 && strcmp(k, "custom_fields") != 0 && !json_is_string(v)) {
            snprintf(err, sizeof(err), "%s must be a string", k);
            reply_error(r, 400, err);
            return;
        }
    }
    json_t *macs = json_object_get(body, "macAddress");
    if (macs) {
        size_t i;
        json_t *x;
        bool ok = json_is_array(macs);
        json_array_foreach(macs, i, x) ok = ok && json_is_string(x);
        if (!ok) {
            reply_error(r, 400, "macAddress must be an array of strings");
            return;
        }
    }
    json_t *cf = json_object_get(body, "custom_fields");
    if (cf) {
        if (!json_is_object(cf)) {
            reply_error(r, 400, "custom_fields must be an object {attributeId|name: value}");
            return;
        }
        json_object_foreach(cf, k, v)
        {
            json_t *def = def_find(p, k);
            if (!def)
                def = def_find_name(p, "endpoint", k);
            if (!def || strcmp(json_string_value(json_object_get(def, "entityType")), "endpoint")) {
                snprintf(err, sizeof(err), "no endpoint custom field '%s'", k);
                reply_error(r, 400, err);
                return;
            }
            const char *type = json_string_value(json_object_get(def, "attributeType"));
            const char *bad = !json_is_string(v) && !json_is_null(v)
                                  ? "value must be a string or null"
                              : json_is_string(v) ? value_invalid(type, json_string_value(v))
                                                  : NULL;
            if (bad) {
                snprintf(err, sizeof(err), "custom field '%s': %s", k, bad);
                reply_error(r, 400, err);
                return;
            }
        }
    }
    /* validated: apply */
    set_str(body, "friendlyName", &d->friendly_name, err, sizeof(err));
    set_str(body, "deviceName", &d->device_name, err, sizeof(err));
    set_str(body, "serialNumber", &d->serial, err, sizeof(err));
    set_str(body, "manufacturer", &d->manufacturer, err, sizeof(err));
    set_str(body, "model", &d->model, err, sizeof(err));
    set_str(body, "osProduct", &d->os_product, err, sizeof(err));
    set_str(body, "osVersion", &d->os_version, err, sizeof(err));
    set_str(body, "endpointType", &d->endpoint_type, err, sizeof(err));
    if (macs) {
        json_decref(d->macs);
        d->macs = json_deep_copy(macs);
    }
    int64_t now = wall_ms();
    json_object_foreach(cf, k, v)
    {
        json_t *def = def_find(p, k);
        if (!def)
            def = def_find_name(p, "endpoint", k);
        const char *aid = json_string_value(json_object_get(def, "id"));
        if (json_is_null(v))
            json_object_del(d->cf, aid);
        else
            device_cf_set(d, aid, v, "admin", now);
    }
    d->modified_ms = now;
    reply_json(r, 200, device_admin_json(p, d));
}

static json_t *stats_json(sim *s)
{
    static const int always[] = {200, 401, 429};
    json_t *o = json_object();
    json_object_set_new(o, "requests", json_integer((json_int_t)s->requests));
    json_t *st = json_object();
    statusc_to_json(&s->status, st, always, 3);
    json_object_set_new(o, "status", st);
    json_t *ps = json_object();
    SM_FOREACH(&s->partners, e)
    {
        partner *p = e->val;
        json_t *po = json_object();
        json_object_set_new(po, "requests", json_integer((json_int_t)p->st.requests));
        json_t *pst = json_object();
        statusc_to_json(&p->st.status, pst, always, 3);
        json_object_set_new(po, "status", pst);
        json_t *paths = json_object();
        for (int c = 0; c < PC__N; c++) {
            if (!p->st.cls[c].requests)
                continue;
            json_t *cst = json_object();
            statusc_to_json(&p->st.cls[c].status, cst, NULL, 0);
            json_object_set_new(paths, PATH_CLASS_NAMES[c],
                                json_pack("{s:I,s:o}", "requests",
                                          (json_int_t)p->st.cls[c].requests, "status", cst));
        }
        json_object_set_new(po, "paths", paths);
        json_object_set_new(po, "tokens_issued", json_integer((json_int_t)p->st.tokens_issued));
        json_object_set_new(po, "token_locks", json_integer((json_int_t)p->st.token_locks));
        json_object_set_new(po, "custom_field_puts",
                            json_integer((json_int_t)p->st.custom_field_puts));
        json_object_set_new(po, "custom_field_values_written",
                            json_integer((json_int_t)p->st.custom_field_values_written));
        json_object_set_new(po, "custom_field_gets",
                            json_integer((json_int_t)p->st.custom_field_gets));
        json_object_set_new(po, "device_list_requests",
                            json_integer((json_int_t)p->st.device_list_requests));
        json_object_set_new(po, "resets", json_integer((json_int_t)p->st.resets));
        json_object_set_new(po, "hangs", json_integer((json_int_t)p->st.hangs));
        json_object_set_new(po, "malformed", json_integer((json_int_t)p->st.malformed));
        json_object_set_new(po, "custom_field_definitions_created",
                            json_integer((json_int_t)p->st.custom_field_definitions_created));
        json_object_set_new(ps, p->name, po);
    }
    json_object_set_new(o, "partners", ps);
    return o;
}

/* Zeroes every counter, empties the write logs and the rate-limit and token-lock windows, so
 * a test starts clean. */
static void stats_reset(sim *s)
{
    s->requests = 0;
    memset(&s->status, 0, sizeof(s->status));
    SM_FOREACH(&s->partners, e)
    {
        partner *p = e->val;
        memset(&p->st, 0, sizeof(p->st));
        json_array_clear(p->writes);
        tsring_clear(&p->rl);
        tsring_clear(&p->token_times);
    }
}

/* The control plane: seg[0] is "_sim"; nothing here is counted, limited or faulted. */
static void handle_admin(void *arg, enum evhttp_cmd_type m, char **seg, int nseg,
                         const struct evkeyvalq *q, json_t *body, reply *r)
{
    const char *s1 = nseg > 1 ? seg[1] : "";
    sim *s = arg;
    if (!strcmp(s1, "health") && nseg == 2 && m == EVHTTP_REQ_GET) {
        reply_json(r, 200, json_pack("{s:b}", "ok", 1));
    } else if (!strcmp(s1, "config") && nseg == 2 && m == EVHTTP_REQ_GET) {
        reply_json(r, 200, config_table_json(CONFIG_TABLE, NELEM(CONFIG_TABLE), &s->cfg));
    } else if (!strcmp(s1, "config") && nseg == 2 && m == EVHTTP_REQ_PUT) {
        config_table_put(CONFIG_TABLE, NELEM(CONFIG_TABLE), &s->cfg, sizeof(s->cfg), body, r);
    } else if (!strcmp(s1, "stats") && nseg == 2 && m == EVHTTP_REQ_GET) {
        reply_json(r, 200, stats_json(s));
    } else if (!strcmp(s1, "stats") && nseg == 3 && !strcmp(seg[2], "reset") &&
               m == EVHTTP_REQ_POST) {
        stats_reset(s);
        reply_json(r, 200, stats_json(s));
    } else if (!strcmp(s1, "partners") && nseg == 2 && m == EVHTTP_REQ_POST) {
        admin_create_partner(s, body, r);
    } else if (!strcmp(s1, "partners") && nseg == 2 && m == EVHTTP_REQ_GET) {
        json_t *a = json_array();
        SM_FOREACH(&s->partners, e) json_array_append_new(a, partner_summary(e->val, false));
        reply_json(r, 200, json_pack("{s:o}", "partners", a));
    } else if (!strcmp(s1, "partners") && nseg >= 3) {
        partner *p = sm_get(&s->partners, seg[2]);
        device *d = nseg >= 5 && !strcmp(seg[3], "devices") && p ? sm_get(&p->device_ix, seg[4])
                                                                  : NULL;
        if (!p) {
            reply_error(r, 404, "no such partner");
        } else if (nseg == 3 && m == EVHTTP_REQ_GET) {
            reply_json(r, 200, partner_summary(p, true));
        } else if (nseg == 3 && m == EVHTTP_REQ_DELETE) {
            partner_free(sm_del(&s->partners, seg[2]));
            reply_json(r, 200, json_pack("{s:s}", "deleted", seg[2]));
        } else if (nseg == 4 && !strcmp(seg[3], "scopes") && m == EVHTTP_REQ_PUT) {
            /* The partner's admin changes the API client's scopes; tokens already issued keep
             * theirs until they expire (expire-tokens to make it immediate). */
            char err[200] = "the body must be {\"scopes\":[...]}";
            unsigned sc = 0;
            if (!json_is_object(body) ||
                scopes_parse(json_object_get(body, "scopes"), &sc, err, sizeof(err)) != 0) {
                reply_error(r, 400, err);
            } else {
                p->scopes = sc;
                reply_json(r, 200, json_pack("{s:o}", "scopes", scopes_json(p->scopes)));
            }
        } else if (nseg == 4 && !strcmp(seg[3], "expire-tokens") && m == EVHTTP_REQ_POST) {
            size_t nexp = 0;
            int64_t now = mono_ms();
            SM_FOREACH(&s->tokens, e)
            {
                token *t = e->val;
                if (!strcmp(t->partner, p->name) && t->expires_mono > now) {
                    t->expires_mono = now;
                    nexp++;
                }
            }
            reply_json(r, 200, json_pack("{s:I}", "expired", (json_int_t)nexp));
        } else if (nseg == 4 && !strcmp(seg[3], "writes") && m == EVHTTP_REQ_GET) {
            reply_json(r, 200, json_incref(p->writes));
        } else if (nseg == 4 && !strcmp(seg[3], "devices") && m == EVHTTP_REQ_GET) {
            int64_t off = 0, lim = 100;
            const char *v;
            if (q && (v = evhttp_find_header(q, "offset")))
                parse_i64(v, &off);
            if (q && (v = evhttp_find_header(q, "limit")))
                parse_i64(v, &lim);
            if (off < 0)
                off = 0;
            if (lim < 0)
                lim = 0;
            json_t *a = json_array();
            for (int64_t k = off; k < off + lim && k < (int64_t)p->ndevices; k++)
                json_array_append_new(a, device_admin_json(p, &p->devices[k]));
            reply_json(r, 200, json_pack("{s:I,s:o}", "total", (json_int_t)p->ndevices,
                                          "devices", a));
        } else if (nseg >= 5 && !strcmp(seg[3], "devices") && !d) {
            reply_error(r, 404, "no such device");
        } else if (nseg == 5 && m == EVHTTP_REQ_GET) {
            reply_json(r, 200, device_admin_json(p, d));
        } else if (nseg == 5 && m == EVHTTP_REQ_PUT) {
            admin_device_put(p, d, body, r);
        } else if (nseg == 6 && !strcmp(seg[5], "custom-fields") && m == EVHTTP_REQ_GET) {
            reply_json(r, 200, admin_cf_json(p, d));
        } else if (nseg == 6 && !strcmp(seg[5], "custom-fields") && m == EVHTTP_REQ_PUT) {
            char err[200];
            if (admin_cf_check(p, body, err, sizeof(err)) != 0) {
                reply_error(r, 400, err);
            } else {
                admin_cf_apply(p, d, body, wall_ms());
                reply_json(r, 200, admin_cf_json(p, d));
            }
        } else {
            reply_error(r, 404, "no such admin route");
        }
    } else {
        reply_error(r, 404, "no such admin route");
    }
}

/* What --help says after the common options (sim_main prints those). */
static const char USAGE[] =
    "Vendor API: /{partner}/v1/token, /{partner}/api/platform/...\n"
    "Control:    /_sim/{partners,config,stats,health}\n";

int main(int argc, char **argv)
{
    static sim s;
    const sim_app app = {"cwrmm-sim", USAGE,       &s,           &s.srv,
                         sim_init,    sim_destroy, handle_admin, handle_vendor};
    return sim_main(argc, argv, &app);
}
