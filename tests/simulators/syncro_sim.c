/*
 * syncro_sim.c — a Syncro MSP (PSA) vendor API simulator for integration tests and benchmarks.
 *
 * One process serves any number of simulated Syncro accounts. The vendor API of account
 * `acme` lives under `/acme/api/v1/...` (a client is given base_url
 * `http://127.0.0.1:PORT/acme/api/v1`); the control plane lives under `/_sim/...` and is never
 * rate limited, faulted or counted. The response shapes follow Syncro's published OpenAPI
 * document plus what real traffic shows (see shared/vendor-specs/NOTES.md): 64-bit ids, assets
 * always 50 per page, a missing permission answers 401, RMM trigger flags are strings.
 *
 * Contacts (GET /contacts, "Customers - View Detail") are generated per account like customers,
 * deterministic from the seed ("contacts": N at account creation, round-robin over the
 * customers), and created, edited and deleted through /_sim/accounts/{sub}/contacts[/{id}].
 * An account can also start with N generated tickets ("tickets": N: statuses, problem types and
 * times derived from the seed, created and updated in 2019-2022) beside the ones clients create;
 * GET /tickets serves both with the document's filters, and the stats count its requests and
 * those that carried since_updated_at (ticket_lists, ticket_lists_since) so that a test can
 * tell an incremental pass from a full one.
 *
 * Tickets are the one writable resource a client creates: each account keeps them in memory
 * (POST/GET/PUT /tickets, POST /tickets/{id}/comment, GET /tickets/settings). Beside the vendor
 * shape every ticket records, for tests only and visible only through /_sim, when its create
 * request arrived (received_at_us, CLOCK_REALTIME) and who changed its status when
 * (status_history: by "api" or "admin"). The admin API plays the technician: it edits a ticket
 * and adds comments without touching the vendor counters.
 *
 * Every vendor API request goes through the same pipeline, in this order:
 *   count it (stats) -> rate limit (429) -> injected faults -> auth (401) -> permission (401)
 *   -> strict checks (400/422) -> handler -> (malformed body / hang / latency applied).
 *
 * Strict mode (/_sim/config "strict", default on) refuses what syncro-openapi.json (and, where
 * it is silent, NOTES.md) refuses, in Syncro's shapes: a repeated single-valued or mistyped
 * query parameter is a 400 {"error": msg}; a body without a required field or with a field of
 * the wrong type or format is a 422 {"success":false,"message":[msg],"params":{}}; see
 * strict_check() for the list. Off, the simulator is as lenient as before.
 *
 * Invariants:
 *  - Single-threaded: everything runs on one libevent loop; delays use evtimers, never sleep.
 *  - An account's customers, assets and tickets sit in arrays sorted by id, so paging is stable
 *    and a lookup by id is a binary search. New assets and tickets get ids above every existing
 *    one; asset deletions remove the element (memmove). Tickets are never deleted.
 *  - Generated data is a pure function of (seed, subdomain, index): two simulators started with
 *    the same requests serve byte-identical pages (timestamps of generated records included).
 *    Only admin edits and ticket writes stamp "now"; (re)creating an account drops its tickets.
 *  - Faults draw from one PRNG seeded by --seed; a draw happens only when the matching rate is
 *    above zero, so a run with rates off consumes nothing.
 *  - Everything allocated is freed on SIGTERM/SIGINT (the ASan build must stay leak-free).
 *
 * Usage: syncro-sim [--port N] [--port-file PATH] [--bind ADDR] [--seed N]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/queue.h>
#include <sys/types.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <jansson.h>

#include "sim_util.h"

/* What --help says after the common options (sim_main prints those). */
static const char USAGE[] =
    "Vendor API: /{subdomain}/api/v1/...   Control: /_sim/{accounts,tokens,config,stats}\n"
    "  tickets (test-only fields included): /_sim/accounts/{subdomain}/tickets[/{id}]\n";

#define SIM_ASSETS_PER_PAGE   50         /* real traffic: assets always come 50 per page */
#define SIM_MAX_PER_PAGE      100
#define SIM_MAX_TOKEN_STATS   10000      /* distinct presented tokens tracked in stats */
#define SIM_MAX_IP_LIMITERS   10000

#define SIM_TICKETS_PER_PAGE  50         /* real traffic: tickets come 50 per page, no per_page */
#define SIM_MAX_TICKETS       1000000    /* per account: a runaway client gets 422, not OOM */
#define SIM_MAX_COMMENTS      10000      /* per ticket */
#define SIM_MAX_HISTORY       1000       /* status changes kept per ticket (oldest dropped) */
#define SIM_MAX_STATUSES      100
#define SIM_MAX_USERS         1000

#define CUSTOMER_ID_BASE      5560138523LL
#define ASSET_ID_BASE         7000000000LL
#define TICKET_ID_BASE        9000000000LL /* ticket ids and numbers differ, as in real traffic */
#define TICKET_NUMBER_BASE    1001
#define COMMENT_ID_BASE       12000000000LL
#define CONTACT_ID_BASE 3000000000LL
#define SIM_CONTACTS_PER_PAGE 50 /* the document's example meta: per_page 50 */

/*
 * The permission names of Syncro's group screen that the token recipes MSPs follow tick
 * (docs/setup.md), verbatim: a token made without a list gets them all.
 */
static const char *const ALL_PERMISSIONS[] = {
    "Assets - View Details",
    "Assets - List/Search",
    "Assets - Edit",
    "Assets - Create",
    "Customers - List/Search",
    "Customers - View Detail",
    "Customers - View Total Invoiced",
    "Customers - Edit",
    "Contacts - Import",
    "Tickets - List/Search",
    "Tickets - View Details",
    "Tickets - View 'Their Ticket' Details (assigned to them)",
    "Tickets - Create",
    "Tickets - Edit",
    "Invoices - List/Search",
    "Estimates - List/Search",
    "Payments - View List",
    "Recurring Invoices - List",
    "Recurring Invoices - Edit",
};
#define N_ALL_PERMISSIONS (sizeof(ALL_PERMISSIONS) / sizeof(ALL_PERMISSIONS[0]))

static const char ERR_BAD_TOKEN[] = "Unauthorized: invalid API token";
static const char ERR_NO_PERMISSION[] =
    "Not authorized. Please ask account admin to update your group permissions.";
static const char ERR_RATE_LIMIT[] = "Rate limit exceeded. Please try again later.";

static const char HTML_503[] =
    "<!DOCTYPE html>\n<html>\n<head><title>503 Service Unavailable</title></head>\n"
    "<body>\n<h1>We're sorry, but something went wrong.</h1>\n"
    "<p>The service is temporarily unavailable. Please try again later.</p>\n</body>\n</html>\n";
static const char HTML_UNKNOWN_SUBDOMAIN[] =
    "<!DOCTYPE html>\n<html>\n<head><title>Syncro | Page not found</title></head>\n"
    "<body>\n<h1>Oops! We couldn't find that page.</h1>\n"
    "<p>There is no Syncro account at this address. Check the subdomain and try again.</p>\n"
    "</body>\n</html>\n";

/* ------------------------------------------------------------------------------------------ */
/* configuration: one table serves GET and PUT /_sim/config                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct sim_config {
    bool rate_scope_ip;
    bool strict; /* refuse what the document refuses (see strict_check) */
    sim_faults fx; /* latency, hang_ms, the *_next one-shots, outage */
    double fail_5xx_rate, malformed_rate, reset_rate, hang_rate;
} sim_config;

#define CFG_OFF(f) offsetof(sim_config, f)
static const cfg_entry CONFIG_TABLE[] = {
    {"rate_scope", CT_CHOICE, CFG_OFF(rate_scope_ip), 0, 0, {"account", "ip"}},
    {"strict", CT_BOOL, CFG_OFF(strict), 0, 0},
    {"fail_5xx_rate", CT_RATE, CFG_OFF(fail_5xx_rate), 0, 0},
    {"malformed_rate", CT_RATE, CFG_OFF(malformed_rate), 0, 0},
    {"reset_rate", CT_RATE, CFG_OFF(reset_rate), 0, 0},
    {"hang_rate", CT_RATE, CFG_OFF(hang_rate), 0, 0},
    SIM_FAULT_ROWS(sim_config, fx),
};

static void config_defaults(sim_config *c)
{
    memset(c, 0, sizeof(*c));
    sim_faults_defaults(&c->fx);
    c->fx.rate_limit = 180; /* Syncro: 180 requests per minute */
    c->strict = true;
}

/* ------------------------------------------------------------------------------------------ */
/* data model                                                                                  */
/* ------------------------------------------------------------------------------------------ */

typedef struct customer {
    int64_t id;
    uint32_t idx;        /* generation index: every field derives from (account salt, idx) */
    char *embed_text;    /* lazily written JSON of the customer as nested in assets */
    char *addr_text;     /* lazily written JSON of the asset "address" object */
} customer;

typedef struct asset {
    int64_t id;
    int64_t customer_id;
    uint64_t idx; /* generation index (kabuto facts, timestamps, MACs) */
    char *name, *serial, *type;
    int64_t created_ms, updated_ms;
    json_t *props; /* NULL: the generated properties; else the stored hash (owned) */
    json_t *extra; /* NULL or other top-level fields set through the admin API (owned) */
    bool poison;   /* rendered with "id":"not-a-number" */
} asset;

/* A ticket comment. Strings are owned; tech NULL and user_id 0 render as null. */
typedef struct tcomment {
    int64_t id;
    int64_t created_ms, updated_ms;
    char *subject, *body, *tech;
    bool hidden;
    int64_t user_id;
} tcomment;

/* One entry of a ticket's (test-only) status history. */
typedef struct tstatus_change {
    char *status;  /* owned */
    int64_t at_us; /* CLOCK_REALTIME microseconds */
    bool by_admin; /* false: the vendor API */
} tstatus_change;

typedef struct ticket {
    int64_t id, number, customer_id;
    char *subject, *status;                   /* owned, never NULL */
    char *problem_type, *priority, *due_date; /* owned; NULL renders null */
    int64_t user_id;                          /* 0: unassigned */
    int64_t created_ms, updated_ms, resolved_ms; /* resolved_ms 0: not resolved */
    int64_t received_at_us; /* test-only: when the create request arrived (CLOCK_REALTIME) */
    tcomment *comments;     /* in creation order */
    size_t ncomments, cap_comments;
    tstatus_change *hist;
    size_t nhist, cap_hist;
} ticket;

/* A contact: generated from (salt, idx) at account creation or by the admin; strings owned. */
typedef struct contact {
    int64_t id, customer_id;
    char *name, *email, *phone, *mobile;
    int64_t created_ms, updated_ms;
} contact;

typedef struct sim_user {
    int64_t id;
    char *name; /* owned */
} sim_user;

/* Per-account ticket settings, set through /_sim/accounts. */
typedef struct ticket_settings {
    char **statuses; /* owned strings */
    size_t nstatuses;
    sim_user *users;
    size_t nusers;
    bool require_problem_type;
} ticket_settings;

typedef struct acct_stats {
    uint64_t requests, resets;
    statusc status;
    uint64_t max_in_window;
    uint64_t tickets_created, comments_created, ticket_updates; /* vendor API only */
    uint64_t ticket_lists, ticket_lists_since; /* GET /tickets, and those with since_updated_at */
    uint64_t asset_updates; /* PUT /customer_assets/{id} answered 200 (write-back tests) */
} acct_stats;

typedef struct account {
    char *sub;
    uint64_t seed, salt;
    int64_t account_id; /* Syncro's internal account id (rmm_store / address objects) */
    int customers_per_page;
    customer *cust;
    size_t ncust;
    asset *assets;
    size_t nassets, cap_assets;
    int64_t next_asset_id;
    uint64_t next_asset_idx;
    ticket *tickets; /* sorted by id: ids only grow */
    size_t ntickets, cap_tickets;
    int64_t next_ticket_id, next_ticket_number, next_comment_id;
    ticket_settings tset;
    contact *contacts; /* sorted by id: ids only grow */
    size_t ncontacts, cap_contacts;
    int64_t next_contact_id;
    json_t *scheds; /* recurring invoices (schedules), each with "lines"; NULL = none (owned) */
    json_t *qlog;   /* every line quantity change, in order (test-only, owned) */
    int64_t next_sched_id, next_line_id;
    tsring rl;  /* admitted requests in the current window (scope "account") */
    tsring all; /* every request in the current window (max_in_window) */
    acct_stats st;
} account;

typedef struct token {
    char *token, *sub;
    char **perms;
    size_t nperms;
} token;

typedef req_stats token_stats;

enum path_class {
    PC_ME,
    PC_CUSTOMERS,
    PC_CUSTOMER,
    PC_ASSETS,
    PC_ASSET,
    PC_TICKETS,
    PC_TICKET,
    PC_TICKET_COMMENT,
    PC_TICKET_SETTINGS,
    PC_CONTACTS,
    PC_SCHEDULES,
    PC_SCHEDULE,
    PC_SCHED_ADD,
    PC_SCHED_REMOVE,
    PC_SCHED_LINE,
    PC_OTHER,
    PC__N
};
static const char *const PATH_CLASS_NAMES[PC__N] = {
    "/me",
    "/customers",
    "/customers/{id}",
    "/customer_assets",
    "/customer_assets/{id}",
    "/tickets",
    "/tickets/{id}",
    "/tickets/{id}/comment",
    "/tickets/settings",
    "/contacts",
    "/schedules",
    "/schedules/{id}",
    "/schedules/{id}/add_line_item",
    "/schedules/{id}/remove_line_item",
    "/schedules/{id}/line_items/{line_id}",
    "other",
};

typedef struct sim {
    sim_server srv;
    uint64_t seed;
    uint64_t rng; /* fault PRNG state */
    sim_config cfg;
    strmap accounts;    /* sub -> account* */
    strmap tokens;      /* token -> token* */
    strmap token_stats; /* presented token -> token_stats* */
    strmap ip_rl;       /* client ip -> tsring* (rate_scope "ip") */
    uint64_t requests, resets, hangs, malformed;
    statusc status;
    uint64_t paths[PC__N];
} sim;

/* ------------------------------------------------------------------------------------------ */
/* fault PRNG                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static bool rng_hit(sim *s, double rate) { return rate > 0 && rng01(&s->rng) < rate; }

/* ------------------------------------------------------------------------------------------ */
/* deterministic data generation                                                               */
/* ------------------------------------------------------------------------------------------ */

static const char *const FIRST_NAMES[] = {
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Carlos", "Karen", "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark",
    "Ashley", "Priya", "Chen", "Fatima", "Lukas",
};
static const char *const LAST_NAMES[] = {
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young",
};
static const char *const STREETS[] = {
    "Main St", "Oak Ave", "Pine St", "Maple Dr", "Cedar Ln", "Elm St", "Washington Blvd",
    "Lake Rd", "Hill St", "Park Ave", "2nd St", "Sunset Blvd",
};
static const struct {
    const char *city, *state;
} CITIES[] = {
    {"Austin", "TX"},     {"Denver", "CO"},   {"Portland", "OR"}, {"Raleigh", "NC"},
    {"Columbus", "OH"},   {"Tampa", "FL"},    {"Madison", "WI"},  {"Boise", "ID"},
    {"Sacramento", "CA"}, {"Albany", "NY"},   {"Phoenix", "AZ"},  {"Richmond", "VA"},
};

static const struct {
    const char *manufacturer, *model, *form_factor;
} HW_DESKTOP[] = {
    {"Dell Inc.", "OptiPlex 7090", "Desktop"},
    {"HP", "HP EliteDesk 800 G6 Small Form Factor PC", "Desktop"},
    {"LENOVO", "ThinkCentre M720q", "Desktop"},
    {"Dell Inc.", "Precision 3650 Tower", "Desktop"},
}, HW_LAPTOP[] = {
    {"LENOVO", "ThinkPad T14 Gen 2", "Laptop"},
    {"Dell Inc.", "Latitude 5520", "Laptop"},
    {"HP", "HP EliteBook 840 G8 Notebook PC", "Laptop"},
    {"Microsoft Corporation", "Surface Laptop 4", "Laptop"},
}, HW_SERVER[] = {
    {"Dell Inc.", "PowerEdge R740", "Server"},
    {"HPE", "ProLiant DL380 Gen10", "Server"},
    {"Lenovo", "ThinkSystem SR650", "Server"},
};
static const char *const PRINTERS[] = {
    "HP LaserJet Pro M404dn", "Brother HL-L8360CDW", "Canon imageCLASS MF445dw",
    "Xerox VersaLink C405",
};

#define T_2019 1546300800000LL /* 2019-01-01T00:00:00Z */
#define DAY_MS 86400000LL

static uint64_t cust_hash(const account *a, uint32_t idx) { return hash2(a->salt, 0xC0570000ULL + idx); }
static uint64_t asset_hash(const account *a, uint64_t idx) { return hash2(a->salt ^ 0xA55E7ULL, idx); }

static void lower_alnum(const char *in, char *out, size_t outsz)
{
    size_t j = 0;
    for (; *in && j + 1 < outsz; in++) {
        char c = *in;
        if (c >= 'A' && c <= 'Z')
            out[j++] = (char)(c - 'A' + 'a');
        else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            out[j++] = c;
    }
    out[j] = 0;
}

typedef struct cust_facts {
    const char *first, *last;
    char business[64]; /* empty: business_name is null */
    char fullname[64];
    int64_t created_ms, updated_ms;
    uint64_t h;
} cust_facts;

static void cust_facts_get(const account *a, const customer *c, cust_facts *f)
{
    uint64_t h = cust_hash(a, c->idx);
    f->h = h;
    f->first = FIRST_NAMES[h % NELEM(FIRST_NAMES)];
    f->last = LAST_NAMES[(h >> 8) % NELEM(LAST_NAMES)];
    snprintf(f->fullname, sizeof(f->fullname), "%s %s", f->first, f->last);
    if ((c->idx + 1) % 5 == 0)
        f->business[0] = 0; /* every 5th customer is a person without a business */
    else
        snprintf(f->business, sizeof(f->business), "%s %s", BIZ_A[(h >> 16) % NELEM(BIZ_A)],
                 BIZ_B[(h >> 24) % NELEM(BIZ_B)]);
    f->created_ms = T_2019 + (int64_t)((h >> 12) % (1000 * DAY_MS / 1000)) * 1000 + (int64_t)(h % 1000);
    f->updated_ms = f->created_ms + (int64_t)((h >> 30) % (400 * DAY_MS));
}

/*
 * Rendering. Pages are written as JSON text directly (jansson's dump was 65% of the CPU time of
 * an asset page); the customer fragments nested in every asset are cached per customer. The
 * admin API and the edit paths need trees: they parse this same text back (asset_json,
 * asset_gen_props), so there is one renderer and no second shape to drift.
 */
typedef struct sb {
    char *p;
    size_t len, cap;
} sb;

static void sb_need(sb *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        fprintf(stderr, "syncro-sim: out of memory\n");
        abort();
    }
    b->p = p;
    b->cap = cap;
}

static void sb_raw(sb *b, const char *s, size_t n)
{
    sb_need(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_lit(sb *b, const char *s) { sb_raw(b, s, strlen(s)); }

static void sb_printf(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    sb_need(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/** Appends s as a JSON string (s must be UTF-8: generated, or parsed by jansson). */
static void sb_str(sb *b, const char *s)
{
    size_t n = strlen(s);
    sb_need(b, n * 6 + 2);
    char *o = b->p + b->len;
    *o++ = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            *o++ = '\\';
            *o++ = (char)*c;
        } else if (*c < 0x20) {
            static const char hex[] = "0123456789abcdef";
            *o++ = '\\';
            switch (*c) {
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            default:
                *o++ = 'u', *o++ = '0', *o++ = '0', *o++ = hex[*c >> 4], *o++ = hex[*c & 15];
            }
        } else {
            *o++ = (char)*c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    b->p[b->len] = 0;
}

static void sb_int(sb *b, int64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%" PRId64, v);
    sb_raw(b, buf, (size_t)n);
}

static void sb_iso(sb *b, int64_t ms)
{
    char buf[48];
    fmt_iso(ms, buf);
    sb_raw(b, "\"", 1);
    sb_lit(b, buf);
    sb_raw(b, "\"", 1);
}

static void sb_json(sb *b, const json_t *v)
{
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (t) {
        sb_lit(b, t);
        free(t);
    } else {
        sb_lit(b, "null");
    }
}

/** Writes `,"key":` (the comma unless first). */
static void sb_key(sb *b, const char *key, bool *first)
{
    if (!*first)
        sb_raw(b, ",", 1);
    *first = false;
    sb_str(b, key);
    sb_raw(b, ":", 1);
}

/** Writes a customer object; embedded=true gives the shape nested in assets. */
static void customer_write(sb *b, const account *a, const customer *c, bool embedded)
{
    cust_facts f;
    cust_facts_get(a, c, &f);
    uint64_t h = f.h;
    char lf[32], ll[32], dom[64];
    lower_alnum(f.first, lf, sizeof(lf));
    lower_alnum(f.last, ll, sizeof(ll));
    if (f.business[0])
        lower_alnum(f.business, dom, sizeof(dom));
    else
        snprintf(dom, sizeof(dom), "mail");
    size_t ci = (h >> 36) % NELEM(CITIES);

    sb_lit(b, "{\"id\":");
    sb_int(b, c->id);
    sb_lit(b, ",\"firstname\":");
    sb_str(b, f.first);
    sb_lit(b, ",\"lastname\":");
    sb_str(b, f.last);
    sb_lit(b, ",\"fullname\":");
    sb_str(b, f.fullname);
    sb_lit(b, ",\"business_name\":");
    if (f.business[0])
        sb_str(b, f.business);
    else
        sb_lit(b, "null");
    sb_printf(b, ",\"email\":\"%s.%s%u@%s.example.com\"", lf, ll, c->idx, dom);
    sb_printf(b, ",\"phone\":\"555-%03u-%04u\"", (unsigned)((h >> 20) % 1000),
              (unsigned)((h >> 32) % 10000));
    if (h & 0x10)
        sb_printf(b, ",\"mobile\":\"555-%03u-%04u\"", (unsigned)((h >> 40) % 1000),
                  (unsigned)((h >> 50) % 10000));
    else
        sb_lit(b, ",\"mobile\":null");
    sb_lit(b, ",\"created_at\":");
    sb_iso(b, f.created_ms);
    sb_lit(b, ",\"updated_at\":");
    sb_iso(b, f.updated_ms);
    sb_printf(b, ",\"pdf_url\":null,\"address\":\"%u %s\",\"address_2\":null", 
              (unsigned)(100 + (h >> 3) % 9800), STREETS[(h >> 44) % NELEM(STREETS)]);
    sb_printf(b, ",\"city\":\"%s\",\"state\":\"%s\",\"zip\":\"%05u\"", CITIES[ci].city,
              CITIES[ci].state, (unsigned)(10000 + (h >> 24) % 89999));
    sb_lit(b, ",\"latitude\":null,\"longitude\":null,\"notes\":null,\"get_sms\":false,"
              "\"opt_out\":false,\"disabled\":false,\"no_email\":false");
    if (!embedded)
        sb_lit(b, ",\"location_name\":null");
    sb_lit(b, ",\"location_id\":null,\"properties\":{}");
    {
        static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        char key[21];
        uint64_t k = mix64(h ^ 0x9071A1ULL);
        for (int i = 0; i < 20; i++) {
            if (i % 12 == 0)
                k = mix64(k + (uint64_t)i);
            key[i] = alnum[k % 36];
            k /= 36;
        }
        key[20] = 0;
        sb_printf(b, ",\"online_profile_url\":\"https://%s.syncromsp.com/my_profile/v2/index?portal_key=%s\"",
                  a->sub, key);
    }
    sb_lit(b, ",\"tax_rate_id\":null,\"notification_email\":null,\"invoice_cc_emails\":null,"
              "\"invoice_term_id\":null,\"referred_by\":null,\"ref_customer_id\":null");
    if (f.business[0]) {
        sb_printf(b, ",\"business_and_full_name\":\"%s - %s\"", f.business, f.fullname);
        sb_printf(b, ",\"business_then_name\":\"%s\"", f.business);
    } else {
        sb_printf(b, ",\"business_and_full_name\":\"%s\"", f.fullname);
        sb_printf(b, ",\"business_then_name\":\"%s\"", f.fullname);
    }
    if (!embedded)
        sb_lit(b, ",\"contacts\":[]");
    sb_raw(b, "}", 1);
}

/** Writes the customer's "address" object as nested in assets. */
static void customer_address_write(sb *b, const account *a, const customer *c)
{
    cust_facts f;
    cust_facts_get(a, c, &f);
    uint64_t h = f.h;
    size_t ci = (h >> 36) % NELEM(CITIES);
    sb_printf(b, "{\"id\":%" PRId64 ",\"name\":\"%s\",\"customer_id\":%" PRId64
                 ",\"address_type_id\":2,\"address1\":\"%u %s\",\"address2\":null",
              300000000 + c->id % 100000000, f.business[0] ? "Main Office" : "Home", c->id,
              (unsigned)(100 + (h >> 3) % 9800), STREETS[(h >> 44) % NELEM(STREETS)]);
    sb_printf(b, ",\"city\":\"%s\",\"state\":\"%s\",\"zip\":\"%05u\",\"latitude\":null,\"longitude\":null",
              CITIES[ci].city, CITIES[ci].state, (unsigned)(10000 + (h >> 24) % 89999));
    sb_lit(b, ",\"created_at\":");
    sb_iso(b, f.created_ms);
    sb_lit(b, ",\"updated_at\":");
    sb_iso(b, f.created_ms);
    sb_printf(b, ",\"account_id\":%" PRId64 "}", a->account_id);
}

/** Appends the cached embedded-customer and address fragments (built on first use). */
static void customer_fragments(const account *a, customer *c, const char **embed, const char **addr)
{
    if (!c->embed_text) {
        sb b = {0};
        customer_write(&b, a, c, true);
        c->embed_text = b.p;
        sb b2 = {0};
        customer_address_write(&b2, a, c);
        c->addr_text = b2.p;
    }
    *embed = c->embed_text;
    *addr = c->addr_text;
}

/*
 * Index of the element with `id` in an array sorted by id (customers, assets, tickets), or -1.
 * stride = element size, id_off = offsetof(element, id).
 */
static ssize_t index_by_id(const void *base, size_t n, size_t stride, size_t id_off, int64_t id)
{
    const char *p = base;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t v;
        memcpy(&v, p + mid * stride + id_off, sizeof(v));
        if (v < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    int64_t v = 0;
    if (lo < n)
        memcpy(&v, p + lo * stride + id_off, sizeof(v));
    return (lo < n && v == id) ? (ssize_t)lo : -1;
}

static customer *customer_find(const account *a, int64_t id)
{
    ssize_t i = index_by_id(a->cust, a->ncust, sizeof(*a->cust), offsetof(customer, id), id);
    return i < 0 ? NULL : &a->cust[i];
}

/** @returns the index of the asset with id, or -1. */
static ssize_t asset_index(const account *a, int64_t id)
{
    return index_by_id(a->assets, a->nassets, sizeof(*a->assets), offsetof(asset, id), id);
}

static const char *asset_type_for(uint64_t h)
{
    unsigned r = (unsigned)(h % 20);
    if (r < 8)
        return "Desktop";
    if (r < 15)
        return "Laptop";
    if (r < 18)
        return "Server";
    return "Printer";
}

static bool type_is_printer(const char *t) { return strcasecmp(t, "Printer") == 0; }

/** Serials are a bijection of the index (unique per account), mixed with the account salt. */
static void gen_serial(const account *a, uint64_t idx, char out[24])
{
    uint32_t v = (uint32_t)(idx * 0x9E3779B1u) ^ (uint32_t)(a->salt >> 17);
    snprintf(out, 24, "SN%08X", v);
}

static void fmt_mac(uint64_t h, bool dashes_upper, char out[24])
{
    unsigned char m[6];
    for (int i = 0; i < 6; i++)
        m[i] = (unsigned char)(h >> (8 * i));
    m[0] &= 0xFC; /* unicast, globally administered */
    if (dashes_upper)
        snprintf(out, 24, "%02X-%02X-%02X-%02X-%02X-%02X", m[0], m[1], m[2], m[3], m[4], m[5]);
    else
        snprintf(out, 24, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/**
 * Writes the generated properties of an asset. Agents (not printers) carry kabuto_information;
 * its serial_number is the serial generated for the index, so editing asset_serial does not
 * change what "the agent reported".
 */
static void asset_gen_props_write(sb *b, const account *a, const asset *as)
{
    if (type_is_printer(as->type)) {
        sb_lit(b, "{}");
        return;
    }
    uint64_t h = asset_hash(a, as->idx);
    bool server = strcasecmp(as->type, "Server") == 0;
    bool laptop = strcasecmp(as->type, "Laptop") == 0;
    const char *mf, *model, *ff, *osn, *osb;
    if (server) {
        size_t i = (h >> 8) % NELEM(HW_SERVER);
        mf = HW_SERVER[i].manufacturer, model = HW_SERVER[i].model, ff = HW_SERVER[i].form_factor;
    } else if (laptop) {
        size_t i = (h >> 8) % NELEM(HW_LAPTOP);
        mf = HW_LAPTOP[i].manufacturer, model = HW_LAPTOP[i].model, ff = HW_LAPTOP[i].form_factor;
    } else {
        size_t i = (h >> 8) % NELEM(HW_DESKTOP);
        mf = HW_DESKTOP[i].manufacturer, model = HW_DESKTOP[i].model,
        ff = HW_DESKTOP[i].form_factor;
    }
    if (server) {
        size_t i = (h >> 16) % NELEM(OS_SERVER);
        osn = OS_SERVER[i].name, osb = OS_SERVER[i].build;
    } else {
        size_t i = (h >> 16) % NELEM(OS_WORKSTATION);
        osn = OS_WORKSTATION[i].name, osb = OS_WORKSTATION[i].build;
    }
    char serial[24];
    gen_serial(a, as->idx, serial);
    sb_printf(b,
              "{\"kabuto_information\":{\"general\":{\"manufacturer\":\"%s\",\"model\":\"%s\","
              "\"serial_number\":\"%s\",\"form_factor\":\"%s\"},\"os\":{\"name\":\"%s\","
              "\"build\":\"%s\"},\"network_adapters\":[",
              mf, model, serial, ff, osn, osb);
    /* MAC text formats vary in the wild: dashes upper-case for some, colons lower-case for others */
    bool dashes = ((h >> 24) & 1) == 0;
    char mac[24];
    fmt_mac(mix64(h ^ 0xE7E7ULL), dashes, mac);
    sb_printf(b, "{\"name\":\"Ethernet\",\"physical_address\":\"%s\"}", mac);
    if (laptop) {
        fmt_mac(mix64(h ^ 0x3171ULL), dashes, mac);
        sb_printf(b, ",{\"name\":\"Wi-Fi\",\"physical_address\":\"%s\"}", mac);
    }
    sb_lit(b, "]}}");
}

/** @returns the generated properties as a new object. */
static json_t *asset_gen_props(const account *a, const asset *as)
{
    sb b = {0};
    asset_gen_props_write(&b, a, as);
    json_t *j = json_loadb(b.p, b.len, 0, NULL);
    free(b.p);
    return j ? j : json_object();
}

static const char TRIGGERS_QUIET[] =
    "{\"bsod_triggered\":\"false\",\"time_triggered\":\"false\",\"no_av_triggered\":\"false\","
    "\"defrag_triggered\":\"false\",\"firewall_triggered\":\"false\",\"app_crash_triggered\":"
    "\"false\",\"low_hd_space_triggered\":\"false\",\"smart_failure_triggered\":\"false\","
    "\"device_manager_triggered\":\"false\",\"agent_offline_triggered\":\"false\"}";
static const char TRIGGERS_OFFLINE[] =
    "{\"bsod_triggered\":\"false\",\"time_triggered\":\"false\",\"no_av_triggered\":\"false\","
    "\"defrag_triggered\":\"false\",\"firewall_triggered\":\"false\",\"app_crash_triggered\":"
    "\"false\",\"low_hd_space_triggered\":\"false\",\"smart_failure_triggered\":\"false\","
    "\"device_manager_triggered\":\"false\",\"agent_offline_triggered\":\"true\"}";

/* top-level asset keys, in the official example's order (then the schema's extras) */
static const char *const ASSET_KEYS[] = {
    "id", "name", "customer_id", "contact_id", "created_at", "updated_at", "properties",
    "asset_type", "asset_serial", "external_rmm_link", "customer", "rmm_links", "rmm_store",
    "address", "has_live_chat", "snmp_enabled",
};

/** Writes one asset in the official document's shape; fields set through the admin API win. */
static void asset_write(sb *b, account *a, asset *as)
{
    uint64_t h = asset_hash(a, as->idx);
    customer *c = customer_find(a, as->customer_id);
    const char *cust_text = "null", *addr_text = "null";
    if (c)
        customer_fragments(a, c, &cust_text, &addr_text);
    bool printer = type_is_printer(as->type);
    bool first = true;
    sb_raw(b, "{", 1);
    for (size_t k = 0; k < NELEM(ASSET_KEYS); k++) {
        const char *key = ASSET_KEYS[k];
        json_t *ov = as->extra ? json_object_get(as->extra, key) : NULL;
        sb_key(b, key, &first);
        if (ov) {
            sb_json(b, ov);
            continue;
        }
        switch (k) {
        case 0:
            if (as->poison)
                sb_lit(b, "\"not-a-number\"");
            else
                sb_int(b, as->id);
            break;
        case 1: sb_str(b, as->name); break;
        case 2: sb_int(b, as->customer_id); break;
        case 3: sb_lit(b, "null"); break;
        case 4: sb_iso(b, as->created_ms); break;
        case 5: sb_iso(b, as->updated_ms); break;
        case 6:
            if (as->props)
                sb_json(b, as->props);
            else
                asset_gen_props_write(b, a, as);
            break;
        case 7: sb_str(b, as->type); break;
        case 8: sb_str(b, as->serial); break;
        case 9: sb_lit(b, "null"); break;
        case 10: sb_lit(b, cust_text); break;
        case 11: sb_lit(b, "[]"); break;
        case 12:
            if (printer) {
                sb_lit(b, "null");
                break;
            }
            sb_printf(b, "{\"id\":%" PRId64 ",\"asset_id\":%" PRId64 ",\"account_id\":%" PRId64
                         ",\"triggers\":%s,\"windows_updates\":{},\"emsisoft\":{},\"general\":{}",
                      (int64_t)(as->id - ASSET_ID_BASE + 40000000), as->id, a->account_id,
                      (h % 13 == 0) ? TRIGGERS_OFFLINE : TRIGGERS_QUIET);
            sb_lit(b, ",\"created_at\":");
            sb_iso(b, as->created_ms);
            sb_lit(b, ",\"updated_at\":");
            sb_iso(b, as->updated_ms);
            sb_lit(b, ",\"override_alert_agent_offline_mins\":null,"
                      "\"override_alert_agent_rearm_after_mins\":null,"
                      "\"override_low_hd_threshold\":null,"
                      "\"override_autoresolve_offline_alert\":null}");
            break;
        case 13: sb_lit(b, addr_text); break;
        case 14: sb_lit(b, "false"); break;
        case 15: sb_lit(b, printer ? "true" : "null"); break;
        }
    }
    if (as->extra) {
        const char *key;
        json_t *v;
        json_object_foreach(as->extra, key, v) {
            bool known = false;
            for (size_t k = 0; k < NELEM(ASSET_KEYS) && !known; k++)
                known = strcmp(ASSET_KEYS[k], key) == 0;
            if (!known) {
                sb_key(b, key, &first);
                sb_json(b, v);
            }
        }
    }
    sb_raw(b, "}", 1);
}

/** @returns the asset as a new JSON object (for admin answers). */
static json_t *asset_json(account *a, asset *as)
{
    sb b = {0};
    asset_write(&b, a, as);
    json_t *j = json_loadb(b.p, b.len, 0, NULL);
    free(b.p);
    return j ? j : json_null();
}

static void asset_free_fields(asset *as)
{
    free(as->name);
    free(as->serial);
    free(as->type);
    json_decref(as->props);
    json_decref(as->extra);
}

static void customer_free_fields(customer *c)
{
    free(c->embed_text);
    free(c->addr_text);
}

static void tcomment_free_fields(tcomment *c)
{
    free(c->subject);
    free(c->body);
    free(c->tech);
}

static void ticket_free_fields(ticket *t)
{
    free(t->subject);
    free(t->status);
    free(t->problem_type);
    free(t->priority);
    free(t->due_date);
    for (size_t i = 0; i < t->ncomments; i++)
        tcomment_free_fields(&t->comments[i]);
    free(t->comments);
    for (size_t i = 0; i < t->nhist; i++)
        free(t->hist[i].status);
    free(t->hist);
}

static const char *const DEFAULT_TICKET_STATUSES[] = {
    "New", "In Progress", "Resolved", "Invoiced", "Waiting for Parts", "Waiting on Customer",
    "Scheduled", "Customer Reply",
};
static const struct {
    int64_t id;
    const char *name;
} DEFAULT_USERS[] = {{1001, "Bat Man"}, {1002, "Robin"}};

static void tset_free(ticket_settings *ts)
{
    for (size_t i = 0; i < ts->nstatuses; i++)
        free(ts->statuses[i]);
    free(ts->statuses);
    for (size_t i = 0; i < ts->nusers; i++)
        free(ts->users[i].name);
    free(ts->users);
    memset(ts, 0, sizeof(*ts));
}

static void tset_defaults(ticket_settings *ts)
{
    ts->nstatuses = NELEM(DEFAULT_TICKET_STATUSES);
    ts->statuses = xcalloc(ts->nstatuses, sizeof(char *));
    for (size_t i = 0; i < ts->nstatuses; i++)
        ts->statuses[i] = xstrdup(DEFAULT_TICKET_STATUSES[i]);
    ts->nusers = NELEM(DEFAULT_USERS);
    ts->users = xcalloc(ts->nusers, sizeof(sim_user));
    for (size_t i = 0; i < ts->nusers; i++) {
        ts->users[i].id = DEFAULT_USERS[i].id;
        ts->users[i].name = xstrdup(DEFAULT_USERS[i].name);
    }
    ts->require_problem_type = false;
}

static void tset_copy(ticket_settings *dst, const ticket_settings *src)
{
    dst->nstatuses = src->nstatuses;
    dst->statuses = xcalloc(src->nstatuses ? src->nstatuses : 1, sizeof(char *));
    for (size_t i = 0; i < src->nstatuses; i++)
        dst->statuses[i] = xstrdup(src->statuses[i]);
    dst->nusers = src->nusers;
    dst->users = xcalloc(src->nusers ? src->nusers : 1, sizeof(sim_user));
    for (size_t i = 0; i < src->nusers; i++) {
        dst->users[i].id = src->users[i].id;
        dst->users[i].name = xstrdup(src->users[i].name);
    }
    dst->require_problem_type = src->require_problem_type;
}

static void contacts_free(account *a);

static void account_free_data(account *a)
{
    for (size_t i = 0; i < a->ncust; i++)
        customer_free_fields(&a->cust[i]);
    for (size_t i = 0; i < a->nassets; i++)
        asset_free_fields(&a->assets[i]);
    for (size_t i = 0; i < a->ntickets; i++)
        ticket_free_fields(&a->tickets[i]);
    contacts_free(a);
    free(a->cust);
    free(a->assets);
    free(a->tickets);
    json_decref(a->scheds);
    json_decref(a->qlog);
    a->scheds = a->qlog = NULL;
    a->cust = NULL;
    a->assets = NULL;
    a->tickets = NULL;
    a->ncust = a->nassets = a->cap_assets = 0;
    a->ntickets = a->cap_tickets = 0;
}

static void account_free(void *p)
{
    account *a = p;
    if (!a)
        return;
    account_free_data(a);
    tset_free(&a->tset);
    tsring_free(&a->rl);
    tsring_free(&a->all);
    free(a->sub);
    free(a);
}

/** Reserves room for one more asset and returns a zeroed slot at the end (not yet counted). */
static asset *asset_slot(account *a)
{
    if (a->nassets == a->cap_assets) {
        size_t cap = a->cap_assets ? a->cap_assets * 2 : 64;
        asset *v = realloc(a->assets, cap * sizeof(*v));
        if (!v) {
            fprintf(stderr, "syncro-sim: out of memory\n");
            abort();
        }
        a->assets = v;
        a->cap_assets = cap;
    }
    asset *as = &a->assets[a->nassets];
    memset(as, 0, sizeof(*as));
    return as;
}

/** Fills a new asset with the generated facts of index idx (id/customer chosen by caller). */
static void asset_generate(account *a, asset *as, uint64_t idx)
{
    uint64_t h = asset_hash(a, idx);
    as->idx = idx;
    const char *type = asset_type_for(h);
    as->type = xstrdup(type);
    char buf[96];
    static const char b36[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    char tag[8];
    uint64_t k = mix64(h ^ 0x7A6ULL);
    for (int i = 0; i < 7; i++, k /= 36)
        tag[i] = b36[k % 36];
    tag[7] = 0;
    if (strcmp(type, "Desktop") == 0)
        snprintf(buf, sizeof(buf), "DESKTOP-%s", tag);
    else if (strcmp(type, "Laptop") == 0)
        snprintf(buf, sizeof(buf), "LAPTOP-%s", tag);
    else if (strcmp(type, "Server") == 0)
        snprintf(buf, sizeof(buf), "SRV-%.4s%02u", tag, (unsigned)(idx % 100));
    else
        snprintf(buf, sizeof(buf), "%s #%" PRIu64, PRINTERS[(h >> 8) % NELEM(PRINTERS)], idx + 1);
    as->name = xstrdup(buf);
    char serial[24];
    gen_serial(a, idx, serial);
    as->serial = xstrdup(serial);
    as->created_ms = T_2019 + (int64_t)((h >> 10) % (1200 * DAY_MS));
    as->updated_ms = as->created_ms + (int64_t)((h >> 34) % (300 * DAY_MS)) + 1000;
}

/** (Re)builds the account's data set; stats and rate-limit windows are kept. */
static void account_generate(account *a, uint64_t seed, size_t ncust, size_t nassets, int cpp)
{
    account_free_data(a);
    a->seed = seed;
    a->salt = hash2(seed, fnv1a(a->sub));
    a->account_id = 1000 + (int64_t)(a->salt % 900000);
    a->customers_per_page = cpp;

    a->cust = xcalloc(ncust ? ncust : 1, sizeof(*a->cust));
    a->ncust = ncust;
    int64_t id = CUSTOMER_ID_BASE + (int64_t)(a->salt % 50000);
    for (size_t i = 0; i < ncust; i++) {
        a->cust[i].id = id;
        a->cust[i].idx = (uint32_t)i;
        id += 1 + (int64_t)(cust_hash(a, (uint32_t)i) % 4); /* gaps, like a shared database */
    }

    a->nassets = a->cap_assets = 0;
    id = ASSET_ID_BASE + (int64_t)((a->salt >> 20) % 50000);
    for (size_t i = 0; i < nassets; i++) {
        asset *as = asset_slot(a);
        asset_generate(a, as, i);
        as->id = id;
        as->customer_id = a->cust[i % ncust].id; /* round-robin */
        id += 1 + (int64_t)(asset_hash(a, i) % 3);
        a->nassets++;
    }
    a->next_asset_id = id;
    a->next_asset_idx = nassets;
    a->next_ticket_id = TICKET_ID_BASE + (int64_t)((a->salt >> 28) % 50000);
    a->next_ticket_number = TICKET_NUMBER_BASE;
    a->next_comment_id = COMMENT_ID_BASE + (int64_t)((a->salt >> 36) % 50000);
}

/* ------------------------------------------------------------------------------------------ */
/* tickets: lookup and rendering                                                                */
/* ------------------------------------------------------------------------------------------ */

static ticket *ticket_find(const account *a, int64_t id)
{
    ssize_t i = index_by_id(a->tickets, a->ntickets, sizeof(*a->tickets), offsetof(ticket, id), id);
    return i < 0 ? NULL : &a->tickets[i];
}

/** @returns the index of the account user with id, or -1. */
static ssize_t user_index(const account *a, int64_t id)
{
    for (size_t i = 0; i < a->tset.nusers; i++)
        if (a->tset.users[i].id == id)
            return (ssize_t)i;
    return -1;
}

static bool status_known(const account *a, const char *st)
{
    for (size_t i = 0; i < a->tset.nstatuses; i++)
        if (strcmp(a->tset.statuses[i], st) == 0)
            return true;
    return false;
}

/* "Closed" in Syncro's sense: the "Not Closed" filter leaves these out. */
static bool status_closed(const char *st)
{
    return strcmp(st, "Resolved") == 0 || strcmp(st, "Invoiced") == 0;
}

static void sb_str_or_null(sb *b, const char *s)
{
    if (s)
        sb_str(b, s);
    else
        sb_lit(b, "null");
}

static void sb_id_or_null(sb *b, int64_t id)
{
    if (id)
        sb_int(b, id);
    else
        sb_lit(b, "null");
}

static void tcomment_write(sb *b, int64_t ticket_id, const tcomment *c)
{
    sb_printf(b, "{\"id\":%" PRId64 ",\"created_at\":", c->id);
    sb_iso(b, c->created_ms);
    sb_lit(b, ",\"updated_at\":");
    sb_iso(b, c->updated_ms);
    sb_printf(b, ",\"ticket_id\":%" PRId64 ",\"subject\":", ticket_id);
    sb_str(b, c->subject);
    sb_lit(b, ",\"body\":");
    sb_str(b, c->body);
    sb_lit(b, ",\"tech\":");
    sb_str_or_null(b, c->tech);
    sb_lit(b, c->hidden ? ",\"hidden\":true,\"user_id\":" : ",\"hidden\":false,\"user_id\":");
    sb_id_or_null(b, c->user_id);
    sb_raw(b, "}", 1);
}

/** Writes the "user" object of a ticket (the spec's shape), or null for no/unknown user. */
static void ticket_user_write(sb *b, const account *a, int64_t user_id)
{
    ssize_t i = user_id ? user_index(a, user_id) : -1;
    if (i < 0) {
        sb_lit(b, "null");
        return;
    }
    const sim_user *u = &a->tset.users[i];
    char local[64];
    lower_alnum(u->name, local, sizeof(local));
    sb_printf(b, "{\"id\":%" PRId64 ",\"email\":\"%s%" PRId64 "@%s.example.com\",\"full_name\":",
              u->id, local[0] ? local : "user", u->id, a->sub);
    sb_str(b, u->name);
    sb_lit(b, ",\"created_at\":");
    sb_iso(b, T_2019);
    sb_lit(b, ",\"updated_at\":");
    sb_iso(b, T_2019);
    sb_lit(b, i == 0 ? ",\"group\":\"Admins\",\"admin\":true,\"color\":\"1e3e96\"}"
                     : ",\"group\":\"Technicians\",\"admin\":false,\"color\":\"2e8b57\"}");
}

typedef enum { TK_LIST, TK_FULL } ticket_shape;

/*
 * Writes one ticket. TK_LIST is the shape of GET /tickets (the list example's keys, and only
 * the first comment unless all_comments); TK_FULL is the shape of GET/PUT /tickets/{id} and of
 * the create answer (every comment, the customer and user objects). Keys the simulator does not
 * model carry the spec example's empty values (null, [], {}, false). Comments are listed in
 * creation order (an assumption: the spec examples hold at most one).
 */
static void ticket_write(sb *b, account *a, const ticket *t, ticket_shape shape, bool all_comments)
{
    customer *c = customer_find(a, t->customer_id);
    sb_printf(b, "{\"id\":%" PRId64 ",\"number\":%" PRId64 ",\"subject\":", t->id, t->number);
    sb_str(b, t->subject);
    sb_lit(b, ",\"created_at\":");
    sb_iso(b, t->created_ms);
    sb_printf(b, ",\"customer_id\":%" PRId64 ",\"customer_business_then_name\":", t->customer_id);
    if (c) {
        cust_facts f;
        cust_facts_get(a, c, &f);
        sb_str(b, f.business[0] ? f.business : f.fullname);
    } else {
        sb_lit(b, "null");
    }
    sb_lit(b, ",\"due_date\":");
    sb_str_or_null(b, t->due_date);
    if (shape == TK_LIST) {
        sb_lit(b, ",\"resolved_at\":");
        if (t->resolved_ms)
            sb_iso(b, t->resolved_ms);
        else
            sb_lit(b, "null");
        sb_lit(b, ",\"start_at\":null,\"end_at\":null,\"location_id\":null,\"location_name\":null");
    } else {
        sb_lit(b, ",\"start_at\":null,\"end_at\":null,\"location_id\":null");
    }
    sb_lit(b, ",\"problem_type\":");
    sb_str_or_null(b, t->problem_type);
    sb_lit(b, ",\"status\":");
    sb_str(b, t->status);
    if (shape == TK_LIST)
        sb_lit(b, ",\"ticket_type_id\":null,\"ticket_type_name\":null");
    sb_lit(b, ",\"properties\":{},\"user_id\":");
    sb_id_or_null(b, t->user_id);
    sb_lit(b, ",\"updated_at\":");
    sb_iso(b, t->updated_ms);
    sb_lit(b, ",\"pdf_url\":null");
    if (shape == TK_LIST) {
        sb_lit(b, ",\"priority\":");
        sb_str_or_null(b, t->priority);
        sb_lit(b, ",\"billing_status\":null,\"tag_list\":[],\"sla_name\":null,"
                  "\"creator_name_or_email\":null,\"contact_fullname\":null,"
                  "\"contract_name\":null,\"address_id\":null,\"parent\":false,"
                  "\"parent_id\":null,\"child\":false,\"recurring\":false,");
        sb_lit(b, strcmp(t->status, "Customer Reply") == 0 ? "\"customer_reply\":true"
                                                           : "\"customer_reply\":false");
        sb_lit(b, ",\"total_formatted_billable_time\":null,\"contact_id\":null,"
                  "\"sla_breached\":false,\"sla_breaching_soon\":false,\"contract_id\":null,"
                  "\"sla_id\":null,\"customer_tag_list\":[],\"resolution_time\":null,"
                  "\"response_time\":null,\"customer_icons\":[],\"comments\":[");
        size_t n = all_comments ? t->ncomments : (t->ncomments ? 1 : 0);
        for (size_t i = 0; i < n; i++) {
            if (i)
                sb_raw(b, ",", 1);
            tcomment_write(b, t->id, &t->comments[i]);
        }
        sb_lit(b, "],\"user\":");
        ticket_user_write(b, a, t->user_id);
        sb_raw(b, "}", 1);
        return;
    }
    sb_lit(b, ",\"intake_form_html\":null,\"signature_name\":null,\"signature_date\":null,"
              "\"asset_ids\":[],\"priority\":");
    sb_str_or_null(b, t->priority);
    sb_lit(b, ",\"resolved_at\":");
    if (t->resolved_ms)
        sb_iso(b, t->resolved_ms);
    else
        sb_lit(b, "null");
    sb_lit(b, ",\"outtake_form_name\":null,\"outtake_form_date\":null,"
              "\"outtake_form_html\":null,\"comments\":[");
    for (size_t i = 0; i < t->ncomments; i++) {
        if (i)
            sb_raw(b, ",", 1);
        tcomment_write(b, t->id, &t->comments[i]);
    }
    sb_lit(b, "],\"attachments\":[],\"ticket_timers\":[],\"line_items\":[],"
              "\"worksheet_results\":[],\"assets\":[],\"appointments\":[],"
              "\"ticket_fields\":[],\"ticket_answers\":[],\"tag_list\":[],\"customer\":");
    if (c)
        customer_write(b, a, c, false);
    else
        sb_lit(b, "null");
    sb_lit(b, ",\"contact\":null,\"user\":");
    ticket_user_write(b, a, t->user_id);
    sb_lit(b, ",\"ticket_type\":null,\"address\":null}");
}

/** @returns the full ticket plus its test-only fields as a new object (admin answers). */
static json_t *ticket_admin_json(account *a, const ticket *t)
{
    sb b = {0};
    ticket_write(&b, a, t, TK_FULL, true);
    json_t *j = json_loadb(b.p, b.len, 0, NULL);
    free(b.p);
    if (!j)
        return json_null();
    json_object_set_new(j, "received_at_us", json_integer((json_int_t)t->received_at_us));
    json_t *hist = json_array();
    for (size_t i = 0; i < t->nhist; i++)
        json_array_append_new(hist, json_pack("{s:s, s:I, s:s}", "status", t->hist[i].status,
                                              "at_us", (json_int_t)t->hist[i].at_us, "by",
                                              t->hist[i].by_admin ? "admin" : "api"));
    json_object_set_new(j, "status_history", hist);
    return j;
}

/** Appends a status-history entry; beyond SIM_MAX_HISTORY the oldest entry is dropped. */
static void ticket_hist_push(ticket *t, const char *status, int64_t at_us, bool by_admin)
{
    if (t->nhist == SIM_MAX_HISTORY) {
        free(t->hist[0].status);
        memmove(&t->hist[0], &t->hist[1], (t->nhist - 1) * sizeof(t->hist[0]));
        t->nhist--;
    }
    t->hist = vec_grow(t->hist, &t->cap_hist, t->nhist, sizeof(t->hist[0]));
    t->hist[t->nhist].status = xstrdup(status);
    t->hist[t->nhist].at_us = at_us;
    t->hist[t->nhist].by_admin = by_admin;
    t->nhist++;
}

/** Sets the status (owned copy) and keeps resolved_at and the history in step. */
static void ticket_set_status(ticket *t, const char *status, int64_t now_ms, int64_t now_us,
                              bool by_admin)
{
    if (t->status && strcmp(t->status, status) == 0)
        return;
    free(t->status);
    t->status = xstrdup(status);
    t->resolved_ms = strcmp(status, "Resolved") == 0 ? now_ms : 0;
    ticket_hist_push(t, status, now_us, by_admin);
}

/** Moves updated_at to now, strictly forward (two writes in one millisecond still differ). */
static void ticket_touch(ticket *t, int64_t now_ms)
{
    t->updated_ms = now_ms > t->updated_ms ? now_ms : t->updated_ms + 1;
}

/**
 * Appends a comment (strings copied; tech may be NULL).
 * @returns the comment, borrowed and valid until the next append to this ticket.
 */
static tcomment *ticket_add_comment(account *a, ticket *t, const char *subject, const char *body,
                                    const char *tech, bool hidden, int64_t user_id, int64_t now_ms)
{
    t->comments = vec_grow(t->comments, &t->cap_comments, t->ncomments, sizeof(tcomment));
    tcomment *c = &t->comments[t->ncomments++];
    memset(c, 0, sizeof(*c));
    c->id = a->next_comment_id++;
    c->created_ms = c->updated_ms = now_ms;
    c->subject = xstrdup(subject);
    c->body = xstrdup(body);
    c->tech = tech ? xstrdup(tech) : NULL;
    c->hidden = hidden;
    c->user_id = user_id;
    return c;
}

/* ------------------------------------------------------------------------------------------ */
/* tokens                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void token_free(void *p)
{
    token *t = p;
    if (!t)
        return;
    for (size_t i = 0; i < t->nperms; i++)
        free(t->perms[i]);
    free(t->perms);
    free(t->token);
    free(t->sub);
    free(t);
}

static void token_set_perms(token *t, json_t *perms /* array of strings or NULL = all */)
{
    for (size_t i = 0; i < t->nperms; i++)
        free(t->perms[i]);
    free(t->perms);
    if (!perms) {
        t->nperms = N_ALL_PERMISSIONS;
        t->perms = xcalloc(t->nperms, sizeof(char *));
        for (size_t i = 0; i < t->nperms; i++)
            t->perms[i] = xstrdup(ALL_PERMISSIONS[i]);
        return;
    }
    t->nperms = json_array_size(perms);
    t->perms = xcalloc(t->nperms ? t->nperms : 1, sizeof(char *));
    for (size_t i = 0; i < t->nperms; i++)
        t->perms[i] = xstrdup(json_string_value(json_array_get(perms, i)));
}

static bool token_has(const token *t, const char *perm)
{
    for (size_t i = 0; i < t->nperms; i++)
        if (strcmp(t->perms[i], perm) == 0)
            return true;
    return false;
}

static bool token_has_prefix_any(const token *t, const char *prefix, const char *w1, const char *w2)
{
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < t->nperms; i++)
        if (strncmp(t->perms[i], prefix, pl) == 0 &&
            ((w1 && strstr(t->perms[i] + pl, w1)) || (w2 && strstr(t->perms[i] + pl, w2))))
            return true;
    return false;
}

static json_t *token_json(const token *t)
{
    json_t *perms = json_array();
    for (size_t i = 0; i < t->nperms; i++)
        json_array_append_new(perms, json_string(t->perms[i]));
    return json_pack("{s:s, s:s, s:o}", "token", t->token, "subdomain", t->sub, "permissions",
                     perms);
}

/* ------------------------------------------------------------------------------------------ */
/* replies: immediate or delayed through an evtimer                                            */
/* ------------------------------------------------------------------------------------------ */

static void reply_not_found(reply *r) { reply_json(r, 404, json_pack("{s:s}", "message", "Not found")); }

static void reply_html(reply *r, int status, const char *html)
{
    reply_text(r, status, "text/html; charset=utf-8", html);
}

/** Sets r to a JSON answer whose text is already in b (the buffer is taken over). */
static void reply_sb(reply *r, int status, sb *b)
{
    reply_take(r, status, "application/json; charset=utf-8", b->p, b->len);
    b->p = NULL;
}

/** {"asset":{...}} */
static void reply_asset(reply *r, int status, account *a, asset *as)
{
    sb b = {0};
    sb_lit(&b, "{\"asset\":");
    asset_write(&b, a, as);
    sb_raw(&b, "}", 1);
    reply_sb(r, status, &b);
}

/* ------------------------------------------------------------------------------------------ */
/* request helpers                                                                              */
/* ------------------------------------------------------------------------------------------ */

static int64_t query_int(const struct evkeyvalq *q, const char *name, int64_t dflt)
{
    const char *v = q ? evhttp_find_header(q, name) : NULL;
    int64_t x;
    if (!v || parse_i64(v, &x) != 0)
        return dflt;
    return x;
}

/* ------------------------------------------------------------------------------------------ */
/* vendor API                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/** The /me user_id of the API user behind a token (also the user_id of its comments). */
static int64_t api_user_id(const account *a, const token *t)
{
    uint64_t h = hash2(a->salt, fnv1a(t->token));
    return 100000 + (int64_t)(h % 900000);
}

static json_t *me_render(const account *a, const token *t)
{
    uint64_t h = hash2(a->salt, fnv1a(t->token));
    char uuid[40];
    uint64_t h2 = mix64(h);
    snprintf(uuid, sizeof(uuid), "%08x-%04x-4%03x-%04x-%012" PRIx64, (unsigned)(h >> 32),
             (unsigned)((h >> 16) & 0xFFFF), (unsigned)(h & 0xFFF),
             (unsigned)(0x8000 | ((h2 >> 48) & 0x3FFF)), (uint64_t)(h2 & 0xFFFFFFFFFFFFULL));
    char email[128];
    snprintf(email, sizeof(email), "api@%s.example.com", a->sub);
    bool all = true;
    for (size_t i = 0; i < N_ALL_PERMISSIONS; i++)
        all = all && token_has(t, ALL_PERMISSIONS[i]);

    json_t *perm = json_object();
    json_object_set_new(perm, "asset",
                        json_pack("{s:b, s:b, s:b}", "read", token_has(t, "Assets - List/Search"),
                                  "write", token_has(t, "Assets - Edit"), "delete",
                                  token_has(t, "Assets - Delete")));
    json_object_set_new(
        perm, "customer",
        json_pack("{s:b, s:b, s:b}", "read", token_has(t, "Customers - List/Search"), "write",
                  token_has_prefix_any(t, "Customers - ", "Edit", "Create"), "delete",
                  token_has(t, "Customers - Delete")));
    json_object_set_new(
        perm, "ticket",
        json_pack("{s:b, s:b, s:b}", "read", token_has(t, "Tickets - List/Search"), "write",
                  token_has(t, "Tickets - Create") || token_has(t, "Tickets - Edit"), "delete",
                  token_has(t, "Tickets - Delete")));
    json_object_set_new(
        perm, "invoice",
        json_pack("{s:b, s:b, s:b}", "read", token_has(t, "Invoices - List/Search"), "write",
                  token_has(t, "Recurring Invoices - Edit") ||
                      token_has_prefix_any(t, "Invoices - ", "Edit", "Create"),
                  "delete", token_has(t, "Invoices - Delete")));
    json_object_set_new(perm, "payment",
                        json_pack("{s:b, s:b, s:b}", "read", 0, "write", 0, "delete", 0));
    json_object_set_new(perm, "worksheet",
                        json_pack("{s:b, s:b, s:b}", "add", 0, "manage", 0, "delete", 0));
    json_object_set_new(perm, "script", json_pack("{s:b}", "execute", 0));

    json_t *o = json_object();
    json_object_set_new(o, "user_token", json_string(uuid));
    json_object_set_new(o, "user_email", json_string(email));
    json_object_set_new(o, "user_name", json_string("API User"));
    json_object_set_new(o, "user_id", json_integer((json_int_t)api_user_id(a, t)));
    json_object_set_new(o, "admin", json_boolean(all));
    json_object_set_new(o, "can_use_app", json_true());
    json_object_set_new(o, "two_factor_required", json_false());
    json_object_set_new(o, "subdomain", json_string(a->sub));
    json_object_set_new(o, "default_location", json_null());
    json_object_set_new(o, "enable_multi_locations", json_false());
    json_object_set_new(o, "locations_allowed", json_array());
    json_object_set_new(o, "permissions", perm);
    return o;
}

static int64_t clamp_page(int64_t page)
{
    if (page < 1)
        return 1;
    if (page > 1000000000)
        return 1000000000;
    return page;
}

static void api_customers(account *a, const struct evkeyvalq *q, reply *r)
{
    int64_t per = query_int(q, "per_page", a->customers_per_page);
    if (per < 1)
        per = a->customers_per_page;
    if (per > SIM_MAX_PER_PAGE)
        per = SIM_MAX_PER_PAGE;
    int64_t page = clamp_page(query_int(q, "page", 1));
    int64_t total = (int64_t)a->ncust;
    int64_t pages = (total + per - 1) / per;
    sb b = {0};
    sb_lit(&b, "{\"customers\":[");
    for (int64_t i = (page - 1) * per; i < total && i < page * per; i++) {
        if (i > (page - 1) * per)
            sb_raw(&b, ",", 1);
        customer_write(&b, a, &a->cust[i], false);
    }
    sb_printf(&b,
              "],\"meta\":{\"total_pages\":%" PRId64 ",\"total_entries\":%" PRId64
              ",\"per_page\":%" PRId64 ",\"page\":%" PRId64 "}}",
              pages, total, per, page);
    reply_sb(r, 200, &b);
}

static void api_customer(account *a, int64_t id, reply *r)
{
    customer *c = customer_find(a, id);
    if (!c) {
        reply_not_found(r);
        return;
    }
    sb b = {0};
    sb_lit(&b, "{\"customer\":");
    customer_write(&b, a, c, false);
    sb_raw(&b, "}", 1);
    reply_sb(r, 200, &b);
}

/* Assets come 50 per page whatever per_page says, like real traffic. */
static void api_assets(account *a, const struct evkeyvalq *q, reply *r)
{
    int64_t page = clamp_page(query_int(q, "page", 1));
    const char *cid_s = q ? evhttp_find_header(q, "customer_id") : NULL;
    int64_t cid = 0;
    bool filter = cid_s != NULL;
    if (filter && parse_i64(cid_s, &cid) != 0)
        cid = INT64_MIN; /* matches nothing */
    sb b = {0};
    sb_lit(&b, "{\"assets\":[");
    int64_t start = (page - 1) * SIM_ASSETS_PER_PAGE, end = page * SIM_ASSETS_PER_PAGE;
    int64_t total;
    if (!filter) {
        total = (int64_t)a->nassets;
        for (int64_t i = start; i < total && i < end; i++) {
            if (i > start)
                sb_raw(&b, ",", 1);
            asset_write(&b, a, &a->assets[i]);
        }
    } else {
        total = 0;
        for (size_t i = 0; i < a->nassets; i++) {
            if (a->assets[i].customer_id != cid)
                continue;
            if (total >= start && total < end) {
                if (total > start)
                    sb_raw(&b, ",", 1);
                asset_write(&b, a, &a->assets[i]);
            }
            total++;
        }
    }
    int64_t pages = (total + SIM_ASSETS_PER_PAGE - 1) / SIM_ASSETS_PER_PAGE;
    sb_printf(&b, "],\"meta\":{\"total_pages\":%" PRId64 ",\"page\":%" PRId64 "}}", pages, page);
    reply_sb(r, 200, &b);
}

static asset *asset_by_public_id(account *a, int64_t id)
{
    ssize_t i = asset_index(a, id);
    if (i < 0 || a->assets[i].poison)
        return NULL;
    return &a->assets[i];
}

static void asset_touch(asset *as)
{
    int64_t now = wall_ms();
    as->updated_ms = now > as->updated_ms ? now : as->updated_ms + 1;
}

static void api_asset_get(account *a, int64_t id, reply *r)
{
    asset *as = asset_by_public_id(a, id);
    if (!as) {
        reply_not_found(r);
        return;
    }
    reply_asset(r, 200, a, as);
}

static void unprocessable(reply *r, const char *msg)
{
    reply_json(r, 422, json_pack("{s:b, s:[s]}", "success", 0, "message", msg));
}

static bool json_str_changed(const char *cur, json_t *v) { return strcmp(cur, json_string_value(v)) != 0; }

/*
 * PUT /customer_assets/{id}. Accepts name, asset_serial, asset_type_name, customer_id and
 * properties (flat, or wrapped in {"asset":{...}}). `properties` REPLACES the whole hash (the
 * stricter of the two possible vendor behaviours: a client that does not read-merge-write
 * loses fields here). updated_at moves only when something actually changed, as in Rails.
 */
static void api_asset_put(account *a, int64_t id, struct evhttp_request *req, reply *r)
{
    asset *as = asset_by_public_id(a, id);
    if (!as) {
        reply_not_found(r);
        return;
    }
    char err[200];
    json_t *body = read_json_body(req, err, sizeof(err));
    if (!body || !json_is_object(body)) {
        json_decref(body);
        unprocessable(r, "Request body must be a JSON object");
        return;
    }
    json_t *src = body;
    json_t *wrapped = json_object_get(body, "asset");
    if (json_is_object(wrapped))
        src = wrapped;
    json_t *name = json_object_get(src, "name"), *serial = json_object_get(src, "asset_serial");
    json_t *type = json_object_get(src, "asset_type_name"), *cid = json_object_get(src, "customer_id");
    json_t *props = json_object_get(src, "properties");
    if ((name && !json_is_string(name)) || (serial && !json_is_string(serial)) ||
        (type && !json_is_string(type)) || (cid && !json_is_integer(cid)) ||
        (props && !json_is_object(props))) {
        json_decref(body);
        unprocessable(r, "Invalid field type");
        return;
    }
    if (name && json_string_length(name) == 0) {
        json_decref(body);
        unprocessable(r, "Name can't be blank");
        return;
    }
    if (cid && !customer_find(a, json_integer_value(cid))) {
        json_decref(body);
        unprocessable(r, "Customer must exist");
        return;
    }
    bool changed = false;
    if (name && json_str_changed(as->name, name)) {
        free(as->name);
        as->name = xstrdup(json_string_value(name));
        changed = true;
    }
    if (serial && json_str_changed(as->serial, serial)) {
        free(as->serial);
        as->serial = xstrdup(json_string_value(serial));
        changed = true;
    }
    if (type && json_str_changed(as->type, type)) {
        json_t *cur = as->props ? NULL : asset_gen_props(a, as); /* keep facts across retype */
        if (cur)
            as->props = cur;
        free(as->type);
        as->type = xstrdup(json_string_value(type));
        changed = true;
    }
    if (cid && json_integer_value(cid) != as->customer_id) {
        as->customer_id = json_integer_value(cid);
        changed = true;
    }
    if (props) {
        json_t *cur = as->props ? json_incref(as->props) : asset_gen_props(a, as);
        if (!json_equal(cur, props)) {
            json_decref(as->props);
            as->props = json_deep_copy(props);
            changed = true;
        }
        json_decref(cur);
    }
    if (changed)
        asset_touch(as);
    json_decref(body);
    a->st.asset_updates++;
    reply_asset(r, 200, a, as);
}

/* ------------------------------------------------------------------------------------------ */
/* vendor API: tickets                                                                          */
/* ------------------------------------------------------------------------------------------ */

/* Ticket fields of a create, an update or an admin edit, read and checked before any change. */
typedef struct ticket_input {
    bool has_customer, has_subject, has_status, has_priority, has_problem_type, has_user, has_due;
    int64_t customer_id, user_id;        /* user_id 0: unassign */
    const char *subject, *status;        /* borrowed from the request body */
    const char *priority, *problem_type; /* borrowed; NULL: set null */
    char due[64];                        /* normalised RFC 3339; empty: set null */
} ticket_input;

typedef enum {
    TV_OK, TV_NO_CUSTOMER, TV_BAD_CUSTOMER, TV_BLANK_SUBJECT, TV_BAD_STATUS,
    TV_BLANK_PROBLEM_TYPE, TV_BAD_USER, TV_BAD_DUE_DATE, TV_BAD_FIELD
} tv_result;

/** Reads an id given as a JSON integer or a decimal string (Rails casts both). @returns 0 or -1. */
static int json_id(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    return json_is_string(v) ? parse_i64(json_string_value(v), out) : -1;
}

/** Rails' blank?: NULL, empty or only whitespace. */
static bool is_blank(const char *s)
{
    if (!s)
        return true;
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

/** @returns the string value of a JSON string, else NULL. */
static const char *json_str_or_null(json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/** Reads an optional string-or-null field. @returns 0, or -1 when it has another type. */
static int opt_str_field(json_t *src, const char *k, bool *has, const char **out)
{
    json_t *v = json_object_get(src, k);
    *has = v != NULL;
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *out = json_string_value(v);
    return 0;
}

/**
 * Reads and checks the ticket fields of src against the account. creating applies the create
 * rules (customer_id and subject required, status defaults to "New"). @returns TV_OK or the
 * first failed check, in the order customer, subject, status, problem type, priority, user,
 * due date; for TV_BAD_FIELD *bad names the field.
 */
static tv_result ticket_input_read(const account *a, json_t *src, bool creating, ticket_input *in,
                                   const char **bad)
{
    memset(in, 0, sizeof(*in));
    *bad = NULL;
    json_t *v = json_object_get(src, "customer_id");
    if (v && !json_is_null(v)) {
        in->has_customer = true;
        if (json_id(v, &in->customer_id) != 0 || !customer_find(a, in->customer_id))
            return TV_BAD_CUSTOMER;
    } else if (creating || v) {
        return TV_NO_CUSTOMER;
    }

    v = json_object_get(src, "subject");
    if (v || creating) {
        if (!json_is_string(v) || is_blank(json_string_value(v)))
            return TV_BLANK_SUBJECT;
        in->has_subject = true;
        in->subject = json_string_value(v);
    }

    v = json_object_get(src, "status");
    if (v && !(creating && json_is_null(v))) {
        if (!json_is_string(v) || !status_known(a, json_string_value(v)))
            return TV_BAD_STATUS;
        in->has_status = true;
        in->status = json_string_value(v);
    } else if (creating) {
        if (!status_known(a, "New"))
            return TV_BAD_STATUS;
        in->has_status = true;
        in->status = "New";
    }

    if (opt_str_field(src, "problem_type", &in->has_problem_type, &in->problem_type) != 0) {
        *bad = "Problem type";
        return TV_BAD_FIELD;
    }
    if (a->tset.require_problem_type && (creating || in->has_problem_type) &&
        is_blank(in->problem_type))
        return TV_BLANK_PROBLEM_TYPE;

    if (opt_str_field(src, "priority", &in->has_priority, &in->priority) != 0) {
        *bad = "Priority";
        return TV_BAD_FIELD;
    }

    v = json_object_get(src, "user_id");
    if (v) {
        in->has_user = true;
        bool unassign = json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);
        if (!unassign && (json_id(v, &in->user_id) != 0 || in->user_id == 0 ||
                          user_index(a, in->user_id) < 0))
            return TV_BAD_USER;
    }

    v = json_object_get(src, "due_date");
    if (v) {
        in->has_due = true;
        if (!json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0)) {
            const char *d = json_str_or_null(v);
            int64_t ms;
            int kind = d && strlen(d) < sizeof(in->due) ? parse_when(d, &ms) : 0;
            if (kind == 0)
                return TV_BAD_DUE_DATE;
            if (kind == 1)
                snprintf(in->due, sizeof(in->due), "%.10sT00:00:00.000Z", d);
            else
                snprintf(in->due, sizeof(in->due), "%s", d);
        }
    }
    return TV_OK;
}

/** Sets an optional string field (NULL = null). @returns whether it changed. */
static bool set_opt_str(char **field, const char *v)
{
    if ((!*field && !v) || (*field && v && strcmp(*field, v) == 0))
        return false;
    free(*field);
    *field = v ? xstrdup(v) : NULL;
    return true;
}

/** Applies checked input to t (updated_at is the caller's). @returns whether anything changed. */
static bool ticket_apply(ticket *t, const ticket_input *in, int64_t now_ms, int64_t now_us,
                         bool by_admin)
{
    bool changed = false;
    if (in->has_customer && in->customer_id != t->customer_id) {
        t->customer_id = in->customer_id;
        changed = true;
    }
    if (in->has_subject)
        changed |= set_opt_str(&t->subject, in->subject);
    if (in->has_status && (!t->status || strcmp(t->status, in->status) != 0)) {
        ticket_set_status(t, in->status, now_ms, now_us, by_admin);
        changed = true;
    }
    if (in->has_problem_type)
        changed |= set_opt_str(&t->problem_type, in->problem_type);
    if (in->has_priority)
        changed |= set_opt_str(&t->priority, in->priority);
    if (in->has_user && in->user_id != t->user_id) {
        t->user_id = in->user_id;
        changed = true;
    }
    if (in->has_due)
        changed |= set_opt_str(&t->due_date, in->due[0] ? in->due : NULL);
    return changed;
}

/** 422 {"success":false,"message":[msg]} (plus "params":{} where the create answers so). */
static void reply_success_false(reply *r, const char *msg, bool with_params)
{
    json_t *o = json_pack("{s:b, s:[s]}", "success", 0, "message", msg);
    if (with_params)
        json_object_set_new(o, "params", json_object());
    reply_json(r, 422, o);
}

/** Answers a failed ticket check with the body Syncro gives for it (they differ, see NOTES). */
static void reply_ticket_invalid(reply *r, tv_result tv, const char *bad, json_t *params,
                                 bool creating)
{
    char msg[96];
    switch (tv) {
    case TV_NO_CUSTOMER:
        reply_json(r, 422, json_pack("{s:s}", "error", "Customer required field"));
        break;
    case TV_BAD_CUSTOMER:
        reply_json(r, 422, json_pack("{s:{s:[s]}}", "errors", "customer", "must exist"));
        break;
    case TV_BAD_USER:
        reply_json(r, 422, json_pack("{s:{s:[s]}}", "errors", "user", "must exist"));
        break;
    case TV_BAD_STATUS:
        reply_json(r, 422, json_pack("{s:s}", "errors", "Status is not included in the list"));
        break;
    case TV_BLANK_PROBLEM_TYPE:
        reply_json(r, 422, json_pack("{s:O, s:s}", "record", params, "errors",
                                     "Problem type can't be blank"));
        break;
    case TV_BLANK_SUBJECT:
        reply_success_false(r, "Subject can't be blank", creating);
        break;
    case TV_BAD_DUE_DATE:
        reply_success_false(r, "Due date is invalid", creating);
        break;
    default:
        snprintf(msg, sizeof(msg), "%s is invalid", bad ? bad : "Ticket");
        reply_success_false(r, msg, creating);
        break;
    }
}

/** {"ticket":{...}} in the full shape */
static void reply_ticket(reply *r, account *a, const ticket *t)
{
    sb b = {0};
    sb_lit(&b, "{\"ticket\":");
    ticket_write(&b, a, t, TK_FULL, true);
    sb_raw(&b, "}", 1);
    reply_sb(r, 200, &b);
}

/**
 * Parses the body as a JSON object; *src is it, or its "<wrap>" member when that is an object.
 * @returns the body (new reference, *src borrows from it) or NULL with the 422 answer in r.
 */
static json_t *read_object_body(struct evhttp_request *req, const char *wrap, json_t **src,
                                reply *r)
{
    char err[200];
    json_t *body = read_json_body(req, err, sizeof(err));
    if (!body || !json_is_object(body)) {
        json_decref(body);
        unprocessable(r, "Request body must be a JSON object");
        return NULL;
    }
    json_t *w = wrap ? json_object_get(body, wrap) : NULL;
    *src = json_is_object(w) ? w : body;
    return body;
}

/**
 * Checks comments_attributes (absent, null or an array of comment objects).
 * @returns 0, or -1 with the 422 answer set.
 */
static int check_comment_attrs(json_t *cattrs, reply *r)
{
    if (!cattrs || json_is_null(cattrs))
        return 0;
    if (!json_is_array(cattrs) || json_array_size(cattrs) > SIM_MAX_COMMENTS) {
        reply_success_false(r, "Comments is invalid", true);
        return -1;
    }
    size_t i;
    json_t *ca;
    json_array_foreach(cattrs, i, ca) {
        json_t *tech = json_object_get(ca, "tech"), *hidden = json_object_get(ca, "hidden");
        if (!json_is_object(ca) || (tech && !json_is_null(tech) && !json_is_string(tech)) ||
            (hidden && !json_is_null(hidden) && !json_is_boolean(hidden))) {
            reply_success_false(r, "Comments is invalid", true);
            return -1;
        }
        json_t *msgs = json_array();
        if (is_blank(json_str_or_null(json_object_get(ca, "body"))))
            json_array_append_new(msgs, json_string("Comments body can't be blank"));
        if (is_blank(json_str_or_null(json_object_get(ca, "subject"))))
            json_array_append_new(msgs, json_string("Comments subject can't be blank"));
        if (json_array_size(msgs)) {
            reply_json(r, 422,
                       json_pack("{s:b, s:o, s:{}}", "success", 0, "message", msgs, "params"));
            return -1;
        }
        json_decref(msgs);
    }
    return 0;
}

/*
 * POST /tickets: body per the spec's Ticket request body, flat or wrapped in {"ticket":{...}}.
 * Models customer_id, subject, status, problem_type, priority, user_id, due_date and
 * comments_attributes (the first comments: user_id null, tech as given, as in the spec example);
 * other keys are ignored. Creates answer 200, like real Syncro.
 */
static void api_ticket_create(account *a, int64_t recv_us, struct evhttp_request *req, reply *r)
{
    json_t *src;
    json_t *body = read_object_body(req, "ticket", &src, r);
    if (!body)
        return;
    ticket_input in;
    const char *bad;
    tv_result tv = ticket_input_read(a, src, true, &in, &bad);
    if (tv != TV_OK) {
        reply_ticket_invalid(r, tv, bad, src, true);
        json_decref(body);
        return;
    }
    json_t *cattrs = json_object_get(src, "comments_attributes");
    if (check_comment_attrs(cattrs, r) != 0) {
        json_decref(body);
        return;
    }
    if (a->ntickets >= SIM_MAX_TICKETS) {
        reply_success_false(r, "Simulator limit: too many tickets in this account", true);
        json_decref(body);
        return;
    }
    int64_t now_ms = recv_us / 1000;
    a->tickets = vec_grow(a->tickets, &a->cap_tickets, a->ntickets, sizeof(ticket));
    ticket *t = &a->tickets[a->ntickets];
    memset(t, 0, sizeof(*t));
    t->id = a->next_ticket_id++;
    t->number = a->next_ticket_number++;
    t->created_ms = t->updated_ms = now_ms;
    t->received_at_us = recv_us;
    ticket_apply(t, &in, now_ms, recv_us, false);
    size_t i;
    json_t *ca;
    json_array_foreach(cattrs, i, ca) {
        ticket_add_comment(a, t, json_string_value(json_object_get(ca, "subject")),
                           json_string_value(json_object_get(ca, "body")),
                           json_str_or_null(json_object_get(ca, "tech")),
                           json_is_true(json_object_get(ca, "hidden")), 0, now_ms);
    }
    a->ntickets++;
    a->st.tickets_created++;
    json_decref(body);
    reply_ticket(r, a, t);
}

typedef struct ticket_filter {
    bool none; /* a value that cannot be parsed: nothing matches */
    bool by_customer, by_user, by_number, by_created, by_updated, by_resolved, not_closed;
    int64_t customer_id, user_id, number, created_ms, updated_ms, resolved_ms;
    const char *status, *query; /* borrowed from the query string; NULL: no filter */
} ticket_filter;

static void filter_id(const struct evkeyvalq *q, const char *name, bool *on, int64_t *out,
                      bool *none)
{
    const char *v = q ? evhttp_find_header(q, name) : NULL;
    if (!v || !*v)
        return;
    *on = true;
    if (parse_i64(v, out) != 0)
        *none = true;
}

static void filter_time(const struct evkeyvalq *q, const char *name, bool *on, int64_t *out,
                        bool *none)
{
    const char *v = q ? evhttp_find_header(q, name) : NULL;
    if (!v || !*v)
        return;
    *on = true;
    if (strlen(v) > 64 || parse_when(v, out) == 0)
        *none = true;
}

static bool ticket_matches(const ticket *t, const ticket_filter *f)
{
    if ((f->by_customer && t->customer_id != f->customer_id) ||
        (f->by_user && t->user_id != f->user_id) || (f->by_number && t->number != f->number) ||
        (f->by_created && t->created_ms < f->created_ms) ||
        (f->by_updated && t->updated_ms < f->updated_ms) ||
        (f->by_resolved && (!t->resolved_ms || t->resolved_ms < f->resolved_ms)))
        return false;
    if (f->not_closed ? status_closed(t->status) : (f->status && strcmp(t->status, f->status) != 0))
        return false;
    if (!f->query)
        return true;
    if (strcasestr(t->subject, f->query))
        return true;
    for (size_t i = 0; i < t->ncomments; i++)
        if (strcasestr(t->comments[i].body, f->query))
            return true;
    return false;
}

/*
 * GET /tickets. Filters: customer_id, user_id, number, status ("Not Closed": neither Resolved nor
 * Invoiced), created_after / since_updated_at / resolved_after (a date, meaning 00:00 UTC, or an
 * RFC 3339 time; the ticket's time must be >= it), query (case-insensitive substring of the
 * subject or of any comment body). A value that cannot be parsed matches nothing. Always 50 per
 * page, meta has only total_pages and page, a page past the end is 200 with an empty array.
 * ASSUMPTION: newest first (id descending); neither the documents nor captured traffic say.
 * Each ticket carries only its first comment unless all_comments=true (the spec's default from
 * March 2026).
 */
static void api_tickets(account *a, const struct evkeyvalq *q, reply *r)
{
    int64_t page = clamp_page(query_int(q, "page", 1));
    a->st.ticket_lists++;
    a->st.ticket_lists_since += q && evhttp_find_header(q, "since_updated_at") != NULL;
    ticket_filter f = {0};
    filter_id(q, "customer_id", &f.by_customer, &f.customer_id, &f.none);
    filter_id(q, "user_id", &f.by_user, &f.user_id, &f.none);
    filter_id(q, "number", &f.by_number, &f.number, &f.none);
    filter_time(q, "created_after", &f.by_created, &f.created_ms, &f.none);
    filter_time(q, "since_updated_at", &f.by_updated, &f.updated_ms, &f.none);
    filter_time(q, "resolved_after", &f.by_resolved, &f.resolved_ms, &f.none);
    const char *st = q ? evhttp_find_header(q, "status") : NULL;
    if (st && *st) {
        f.not_closed = strcmp(st, "Not Closed") == 0;
        f.status = st;
    }
    const char *qs = q ? evhttp_find_header(q, "query") : NULL;
    f.query = qs && *qs ? qs : NULL;
    const char *ac = q ? evhttp_find_header(q, "all_comments") : NULL;
    bool all = ac && (strcmp(ac, "true") == 0 || strcmp(ac, "1") == 0);

    sb b = {0};
    sb_lit(&b, "{\"tickets\":[");
    int64_t start = (page - 1) * SIM_TICKETS_PER_PAGE, end = page * SIM_TICKETS_PER_PAGE;
    int64_t total = 0;
    for (size_t i = a->ntickets; i-- > 0 && !f.none;) {
        if (!ticket_matches(&a->tickets[i], &f))
            continue;
        if (total >= start && total < end) {
            if (total > start)
                sb_raw(&b, ",", 1);
            ticket_write(&b, a, &a->tickets[i], TK_LIST, all);
        }
        total++;
    }
    int64_t pages = (total + SIM_TICKETS_PER_PAGE - 1) / SIM_TICKETS_PER_PAGE;
    sb_printf(&b, "],\"meta\":{\"total_pages\":%" PRId64 ",\"page\":%" PRId64 "}}", pages, page);
    reply_sb(r, 200, &b);
}

static void api_ticket_get(account *a, int64_t id, reply *r)
{
    ticket *t = ticket_find(a, id);
    if (!t) {
        reply_not_found(r);
        return;
    }
    reply_ticket(r, a, t);
}

/*
 * PUT /tickets/{id}: the fields of the create (flat or wrapped), each optional. updated_at moves
 * only when something actually changed, as in Rails (and as PUT /customer_assets does here).
 */
static void api_ticket_put(account *a, int64_t id, int64_t recv_us, struct evhttp_request *req,
                           reply *r)
{
    ticket *t = ticket_find(a, id);
    if (!t) {
        reply_not_found(r);
        return;
    }
    json_t *src;
    json_t *body = read_object_body(req, "ticket", &src, r);
    if (!body)
        return;
    ticket_input in;
    const char *bad;
    tv_result tv = ticket_input_read(a, src, false, &in, &bad);
    if (tv != TV_OK) {
        reply_ticket_invalid(r, tv, bad, src, false);
        json_decref(body);
        return;
    }
    if (ticket_apply(t, &in, recv_us / 1000, recv_us, false))
        ticket_touch(t, recv_us / 1000);
    a->st.ticket_updates++;
    json_decref(body);
    reply_ticket(r, a, t);
}

/*
 * POST /tickets/{id}/comment: subject and body required; tech as given (else null), hidden
 * defaults to false, user_id is the API user's (/me). do_not_email and sms_body are accepted and
 * ignored. Moves the ticket's updated_at.
 */
static void api_ticket_comment(account *a, const token *tk, int64_t id, int64_t recv_us,
                               struct evhttp_request *req, reply *r)
{
    ticket *t = ticket_find(a, id);
    if (!t) {
        reply_not_found(r);
        return;
    }
    json_t *src;
    json_t *body = read_object_body(req, "comment", &src, r);
    if (!body)
        return;
    const char *subject = json_str_or_null(json_object_get(src, "subject"));
    const char *text = json_str_or_null(json_object_get(src, "body"));
    json_t *msgs = json_array();
    if (is_blank(text))
        json_array_append_new(msgs, json_string("Body can't be blank"));
    if (is_blank(subject))
        json_array_append_new(msgs, json_string("Subject can't be blank"));
    if (json_array_size(msgs)) {
        reply_json(r, 422, json_pack("{s:b, s:o}", "success", 0, "message", msgs));
        json_decref(body);
        return;
    }
    json_decref(msgs);
    if (t->ncomments >= SIM_MAX_COMMENTS) {
        reply_success_false(r, "Simulator limit: too many comments on this ticket", false);
        json_decref(body);
        return;
    }
    int64_t now_ms = recv_us / 1000;
    tcomment *c = ticket_add_comment(a, t, subject, text,
                                     json_str_or_null(json_object_get(src, "tech")),
                                     json_is_true(json_object_get(src, "hidden")),
                                     api_user_id(a, tk), now_ms);
    ticket_touch(t, now_ms);
    a->st.comments_created++;
    sb b = {0};
    sb_lit(&b, "{\"comment\":");
    tcomment_write(&b, t->id, c);
    sb_raw(&b, "}", 1);
    reply_sb(r, 200, &b);
    json_decref(body);
}

/** GET /tickets/settings: the spec example's shape with the account's statuses and users. */
static json_t *ticket_settings_json(const account *a)
{
    json_t *st = json_array(), *users = json_array();
    for (size_t i = 0; i < a->tset.nstatuses; i++)
        json_array_append_new(st, json_string(a->tset.statuses[i]));
    for (size_t i = 0; i < a->tset.nusers; i++)
        json_array_append_new(users, json_pack("{s:I, s:s}", "id", (json_int_t)a->tset.users[i].id,
                                               "name", a->tset.users[i].name));
    return json_pack("{s:o, s:n, s:n, s:[], s:[], s:[], s:[], s:[], s:o, s:n, s:[], s:n, s:n, s:n,"
                     " s:n}",
                     "ticket_status_list", st, "default_labor_product_id",
                     "ticket_timer_charge_by_default", "saved_searches", "ticket_types",
                     "ticket_type_fields", "ticket_type_field_answers", "appointment_types",
                     "users", users, "dashboard_settings", "worksheet_templates",
                     "require_ticket_type", "require_intake_form_with_ticket",
                     "require_outtake_form_with_ticket", "ticket_workflow_default_id");
}

/** Extracts the presented API token into out (empty when none). */
static void extract_token(struct evhttp_request *req, const struct evkeyvalq *q, char *out,
                          size_t outsz)
{
    out[0] = 0;
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (auth) {
        while (*auth == ' ' || *auth == '\t')
            auth++;
        if (strncasecmp(auth, "Bearer ", 7) == 0)
            auth += 7;
        while (*auth == ' ' || *auth == '\t')
            auth++;
        snprintf(out, outsz, "%s", auth);
        size_t n = strlen(out);
        while (n && (out[n - 1] == ' ' || out[n - 1] == '\t'))
            out[--n] = 0;
        if (n)
            return;
    }
    const char *k = q ? evhttp_find_header(q, "api_key") : NULL;
    if (k)
        snprintf(out, outsz, "%s", k);
}

typedef struct api_ctx {
    sim *s;
    account *a;
    token_stats *ts;
} api_ctx;

static void count_status(api_ctx *c, int status)
{
    statusc_add(&c->s->status, status);
    statusc_add(&c->a->st.status, status);
    if (c->ts)
        statusc_add(&c->ts->status, status);
}

static int64_t latency_for(sim *s)
{
    return latency_draw(&s->rng, s->cfg.fx.latency_ms, s->cfg.fx.latency_jitter_ms);
}

static void reply_rate_limited(sim *s, reply *r, int retry_after_s)
{
    reply_error(r, 429, ERR_RATE_LIMIT);
    if (s->cfg.fx.retry_after)
        r->retry_after = retry_after_s < 1 ? 1 : retry_after_s;
}

/** Sliding-window check. @returns 0 when admitted (and records it), else Retry-After seconds. */
static int rate_check(sim *s, tsring *ring, int64_t now)
{
    return tsring_admit(ring, now, s->cfg.fx.rate_window_ms, s->cfg.fx.rate_limit);
}

static tsring *ip_ring(sim *s, struct evhttp_request *req)
{
    char *addr = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon)
        evhttp_connection_get_peer(evcon, &addr, &port);
    const char *ip = addr ? addr : "?";
    tsring *r = sm_get(&s->ip_rl, ip);
    if (!r) {
        if (s->ip_rl.n >= SIM_MAX_IP_LIMITERS)
            ip = "overflow";
        r = sm_get(&s->ip_rl, ip);
        if (!r) {
            r = xcalloc(1, sizeof(*r));
            sm_put(&s->ip_rl, ip, r);
        }
    }
    return r;
}

static fault_kind pick_fault(sim *s, int64_t now)
{
    sim_config *c = &s->cfg;
    fault_kind fk = sim_faults_take(&c->fx, now);
    if (fk != F_NONE)
        return fk;
    if (rng_hit(s, c->fail_5xx_rate))
        return F_FAIL;
    if (rng_hit(s, c->reset_rate))
        return F_RESET;
    if (rng_hit(s, c->hang_rate))
        return F_HANG;
    if (rng_hit(s, c->malformed_rate))
        return F_MALFORMED;
    return F_NONE;
}

static void reply_fault_status(sim *s, reply *r, int status, int retry_after_s)
{
    if (status == 429)
        reply_rate_limited(s, r, retry_after_s);
    else if (status >= 500)
        reply_html(r, status, HTML_503);
    else
        reply_error(r, status, "Simulated failure");
}

/* ------------------------------------------------------------------------------------------ */
/* contacts and generated tickets                                                               */
/* ------------------------------------------------------------------------------------------ */

static const char *const PROBLEM_TYPES[] = {"Hardware", "Software", "Network", "Virus", "Other"};
static const char *const PRIORITIES[] = {"0 Urgent", "1 High", "2 Normal", "3 Low"};
static const char *const TICKET_TOPICS[] = {"Printer offline", "Password reset",
                                            "Slow laptop",     "VPN drops",
                                            "Email bounce",    "Disk almost full"};

static void contact_free_fields(contact *c) {
    free(c->name);
    free(c->email);
    free(c->phone);
    free(c->mobile);
}

static void contacts_free(account *a) {
    for (size_t i = 0; i < a->ncontacts; i++)
        contact_free_fields(&a->contacts[i]);
    free(a->contacts);
    a->contacts = NULL;
    a->ncontacts = a->cap_contacts = 0;
}

/** Reserves room for one more contact and returns a zeroed slot at the end (not yet counted). */
static contact *contact_slot(account *a) {
    a->contacts = vec_grow(a->contacts, &a->cap_contacts, a->ncontacts, sizeof(contact));
    contact *c = &a->contacts[a->ncontacts];
    memset(c, 0, sizeof(*c));
    return c;
}

/** Fills c with the generated facts of index idx: a pure function of (salt, idx). */
static void contact_generate(account *a, contact *c, uint64_t idx) {
    uint64_t h = hash2(a->salt ^ 0xC0C0ULL, idx);
    const char *first = FIRST_NAMES[h % NELEM(FIRST_NAMES)];
    const char *last = LAST_NAMES[(h >> 8) % NELEM(LAST_NAMES)];
    char buf[160], lf[32], ll[32];
    snprintf(buf, sizeof(buf), "%s %s", first, last);
    c->name = xstrdup(buf);
    lower_alnum(first, lf, sizeof(lf));
    lower_alnum(last, ll, sizeof(ll));
    snprintf(buf, sizeof(buf), "%s.%s%" PRIu64 "@example.com", lf, ll, idx);
    c->email = xstrdup(buf);
    snprintf(buf, sizeof(buf), "555-%04u", (unsigned)((h >> 20) % 10000));
    c->phone = xstrdup(buf);
    c->mobile = NULL;
    c->customer_id = a->cust[idx % a->ncust].id;
    c->created_ms = T_2019 + (int64_t)((h >> 24) % (1000 * DAY_MS));
    c->updated_ms = c->created_ms + (int64_t)((h >> 40) % (200 * DAY_MS)) + 1000;
}

static void contacts_generate(account *a, size_t n) {
    contacts_free(a);
    a->next_contact_id = CONTACT_ID_BASE + (int64_t)((a->salt >> 12) % 50000);
    for (size_t i = 0; i < n; i++) {
        contact *c = contact_slot(a);
        contact_generate(a, c, i);
        c->id = a->next_contact_id;
        a->next_contact_id += 1 + (int64_t)(hash2(a->salt, i) % 3);
        a->ncontacts++;
    }
}

/** n tickets as technicians made them in 2019-2022, statuses from the account's settings. */
static void tickets_generate(account *a, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint64_t h = hash2(a->salt ^ 0x71C4E7ULL, i);
        a->tickets = vec_grow(a->tickets, &a->cap_tickets, a->ntickets, sizeof(ticket));
        ticket *t = &a->tickets[a->ntickets++];
        memset(t, 0, sizeof(*t));
        t->id = a->next_ticket_id++;
        t->number = a->next_ticket_number++;
        t->customer_id = a->cust[i % a->ncust].id;
        char buf[96];
        snprintf(buf, sizeof(buf), "%s #%zu", TICKET_TOPICS[h % NELEM(TICKET_TOPICS)], i + 1);
        t->subject = xstrdup(buf);
        t->status =
            xstrdup(a->tset.nstatuses ? a->tset.statuses[(h >> 8) % a->tset.nstatuses] : "New");
        t->problem_type = xstrdup(PROBLEM_TYPES[(h >> 16) % NELEM(PROBLEM_TYPES)]);
        t->priority = xstrdup(PRIORITIES[(h >> 20) % NELEM(PRIORITIES)]);
        t->created_ms = T_2019 + (int64_t)((h >> 24) % (1200 * DAY_MS));
        t->updated_ms = t->created_ms + (int64_t)((h >> 40) % (60 * DAY_MS)) + 1000;
        t->resolved_ms = strcmp(t->status, "Resolved") == 0 ? t->updated_ms : 0;
    }
}

static ssize_t contact_index(const account *a, int64_t id) {
    return index_by_id(a->contacts, a->ncontacts, sizeof(contact), offsetof(contact, id), id);
}

/** A contact as GET /contacts lists it (the document's example keys; flat, like real traffic). */
static void contact_write(sb *b, const account *a, const contact *c) {
    sb_printf(b, "{\"id\":%" PRId64 ",\"name\":", c->id);
    sb_str_or_null(b, c->name);
    sb_lit(b, ",\"address1\":null,\"address2\":null,\"city\":null,\"state\":null,\"zip\":null,"
              "\"email\":");
    sb_str_or_null(b, c->email);
    sb_lit(b, ",\"phone\":");
    sb_str_or_null(b, c->phone);
    sb_lit(b, ",\"mobile\":");
    sb_str_or_null(b, c->mobile);
    sb_printf(b,
              ",\"latitude\":null,\"longitude\":null,\"customer_id\":%" PRId64
              ",\"account_id\":%" PRId64 ",\"notes\":null,\"created_at\":",
              c->customer_id, a->account_id);
    sb_iso(b, c->created_ms);
    sb_lit(b, ",\"updated_at\":");
    sb_iso(b, c->updated_ms);
    sb_lit(b, ",\"vendor_id\":null,\"properties\":{},\"opt_out\":false,\"extension\":null}");
}

static json_t *contact_json(const account *a, const contact *c) {
    sb b = {0};
    contact_write(&b, a, c);
    json_t *j = json_loadb(b.p, b.len, 0, NULL);
    free(b.p);
    return j ? j : json_null();
}

/*
 * GET /contacts: customer_id filters (a value that is no id matches nothing), 50 per page in id
 * order, meta as the document's example (total_pages, total_entries, per_page, page).
 */
static void api_contacts(account *a, const struct evkeyvalq *q, reply *r) {
    int64_t page = clamp_page(query_int(q, "page", 1));
    const char *cid_s = q ? evhttp_find_header(q, "customer_id") : NULL;
    int64_t cid = 0;
    if (cid_s && parse_i64(cid_s, &cid) != 0)
        cid = INT64_MIN;
    int64_t start = (page - 1) * SIM_CONTACTS_PER_PAGE, end = page * SIM_CONTACTS_PER_PAGE;
    int64_t total = 0;
    sb b = {0};
    sb_lit(&b, "{\"contacts\":[");
    for (size_t i = 0; i < a->ncontacts; i++) {
        if (cid_s && a->contacts[i].customer_id != cid)
            continue;
        if (total >= start && total < end) {
            if (total > start)
                sb_raw(&b, ",", 1);
            contact_write(&b, a, &a->contacts[i]);
        }
        total++;
    }
    int64_t pages = (total + SIM_CONTACTS_PER_PAGE - 1) / SIM_CONTACTS_PER_PAGE;
    sb_printf(&b,
              "],\"meta\":{\"total_pages\":%" PRId64 ",\"total_entries\":%" PRId64
              ",\"per_page\":%d,\"page\":%" PRId64 "}}",
              pages, total, SIM_CONTACTS_PER_PAGE, page);
    reply_sb(r, 200, &b);
}

/* Set the admin body's contact fields on c (name, email, phone, mobile: strings or null;
 * customer_id: a customer of the account). @returns 0, or -1 with err (c unchanged). */
static int contact_apply_admin(const account *a, contact *c, json_t *body, char *err,
                               size_t errsz) {
    static const char *const strs[] = {"name", "email", "phone", "mobile"};
    char **fields[] = {&c->name, &c->email, &c->phone, &c->mobile};
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        size_t i = 0;
        while (i < NELEM(strs) && strcmp(k, strs[i]))
            i++;
        if (i == NELEM(strs) && strcmp(k, "customer_id")) {
            snprintf(err, errsz,
                     "field '%s' cannot be set (name, email, phone, mobile, "
                     "customer_id)",
                     k);
            return -1;
        }
        if (i < NELEM(strs) && !json_is_string(v) && !json_is_null(v)) {
            snprintf(err, errsz, "%s must be a string or null", k);
            return -1;
        }
    }
    json_t *cj = json_object_get(body, "customer_id");
    int64_t cid = 0;
    if (cj && (json_id(cj, &cid) != 0 || !customer_find(a, cid))) {
        snprintf(err, errsz, "customer_id must be the id of a customer of this account");
        return -1;
    }
    if (cj)
        c->customer_id = cid;
    for (size_t i = 0; i < NELEM(strs); i++) {
        json_t *sv = json_object_get(body, strs[i]);
        if (!sv)
            continue;
        free(*fields[i]);
        *fields[i] = json_is_string(sv) ? xstrdup(json_string_value(sv)) : NULL;
    }
    return 0;
}

/*
 * /_sim/accounts/{sub}/contacts: GET lists them; POST {name, email, phone, mobile,
 * customer_id} adds one (id after the last, customer_id defaulting to the first customer);
 * /contacts/{id}: GET, PUT (the same fields; updated_at moves to now) and DELETE.
 */
static void admin_contacts(account *a, enum evhttp_cmd_type m, char **seg, int nseg, json_t *body,
                           reply *r) {
    char err[200];
    int64_t now = wall_ms();
    if (nseg == 4 && m == EVHTTP_REQ_GET) {
        json_t *arr = json_array();
        for (size_t i = 0; i < a->ncontacts; i++)
            json_array_append_new(arr, contact_json(a, &a->contacts[i]));
        reply_json(r, 200, json_pack("{s:o}", "contacts", arr));
        return;
    }
    if (nseg == 4 && m == EVHTTP_REQ_POST) {
        if (a->ncust == 0) {
            reply_error(r, 400, "the account has no customers");
            return;
        }
        contact *c = contact_slot(a);
        c->customer_id = a->cust[0].id;
        if (contact_apply_admin(a, c, body, err, sizeof(err)) != 0) {
            contact_free_fields(c);
            reply_error(r, 400, err);
            return;
        }
        c->id = a->next_contact_id++;
        c->created_ms = c->updated_ms = now;
        a->ncontacts++;
        reply_json(r, 201, json_pack("{s:o}", "contact", contact_json(a, c)));
        return;
    }
    int64_t id;
    ssize_t i = nseg == 5 && parse_i64(seg[4], &id) == 0 ? contact_index(a, id) : -1;
    if (i < 0) {
        reply_error(r, 404, "no such contact");
        return;
    }
    contact *c = &a->contacts[i];
    if (m == EVHTTP_REQ_GET) {
        reply_json(r, 200, json_pack("{s:o}", "contact", contact_json(a, c)));
    } else if (m == EVHTTP_REQ_PUT) {
        contact tmp = *c; /* all or nothing: apply to copies of the strings */
        tmp.name = c->name ? xstrdup(c->name) : NULL;
        tmp.email = c->email ? xstrdup(c->email) : NULL;
        tmp.phone = c->phone ? xstrdup(c->phone) : NULL;
        tmp.mobile = c->mobile ? xstrdup(c->mobile) : NULL;
        if (contact_apply_admin(a, &tmp, body, err, sizeof(err)) != 0) {
            contact_free_fields(&tmp);
            reply_error(r, 400, err);
            return;
        }
        contact_free_fields(c);
        *c = tmp;
        c->updated_ms = now > c->updated_ms ? now : c->updated_ms + 1;
        reply_json(r, 200, json_pack("{s:o}", "contact", contact_json(a, c)));
    } else if (m == EVHTTP_REQ_DELETE) {
        contact_free_fields(c);
        memmove(c, c + 1, (a->ncontacts - (size_t)i - 1) * sizeof(contact));
        a->ncontacts--;
        reply_json(r, 200, json_pack("{s:I}", "deleted", (json_int_t)id));
    } else {
        reply_error(r, 405, "GET, PUT or DELETE");
    }
}

/* ------------------------------------------------------------------------------------------ */
/* strict mode: what syncro-openapi.json declares for the operations served                     */
/* ------------------------------------------------------------------------------------------ */

static const sim_qparam Q_CUSTOMERS[] = {
    {"sort", QP_STRING},      {"query", QP_STRING},         {"firstname", QP_STRING},
    {"lastname", QP_STRING},  {"business_name", QP_STRING}, {"id", QP_ARRAY},
    {"not_id", QP_ARRAY},     {"email", QP_STRING},         {"include_disabled", QP_STRING},
    {"page", QP_INTEGER},
};
static const sim_qparam Q_ASSETS[] = {
    {"snmp_enabled", QP_BOOLEAN}, {"customer_id", QP_INTEGER}, {"asset_type_id", QP_INTEGER},
    {"query", QP_STRING},         {"page", QP_INTEGER},
};
static const sim_qparam Q_CONTACTS[] = {{"customer_id", QP_INTEGER}, {"page", QP_INTEGER}};
static const sim_qparam Q_TICKETS[] = {
    {"customer_id", QP_INTEGER},        {"contact_id", QP_INTEGER},
    {"number", QP_STRING},              {"resolved_after", QP_DATE_TIME},
    {"created_after", QP_DATE_TIME},    {"since_updated_at", QP_DATE_TIME},
    {"status", QP_STRING},              {"query", QP_STRING},
    {"user_id", QP_INTEGER},            {"mine", QP_BOOLEAN},
    {"ticket_search_id", QP_INTEGER},   {"page", QP_INTEGER},
    {"comment_format", QP_STRING},      {"all_comments", QP_BOOLEAN},
};

/* A body field's schema (requestBodies Ticket and the customer_assets PUT). */
typedef enum { BF_INTEGER, BF_STRING, BF_DATE, BF_DATE_TIME, BF_OBJECT, BF_INT_ARRAY,
               BF_STR_ARRAY, BF_OBJ_ARRAY } bf_type;
typedef struct body_field {
    const char *name, *label; /* label: Syncro's wording in its messages */
    bf_type type;
} body_field;

static const body_field B_TICKET[] = {
    {"customer_id", "Customer", BF_INTEGER},       {"ticket_type_id", "Ticket type", BF_INTEGER},
    {"number", "Number", BF_STRING},               {"subject", "Subject", BF_STRING},
    {"due_date", "Due date", BF_DATE},             {"start_at", "Start at", BF_DATE_TIME},
    {"end_at", "End at", BF_DATE_TIME},            {"location_id", "Location", BF_INTEGER},
    {"problem_type", "Problem type", BF_STRING},   {"status", "Status", BF_STRING},
    {"user_id", "User", BF_INTEGER},               {"properties", "Properties", BF_OBJECT},
    {"asset_ids", "Asset ids", BF_INT_ARRAY},      {"sla_id", "Sla", BF_INTEGER},
    {"contact_id", "Contact", BF_INTEGER},         {"priority", "Priority", BF_STRING},
    {"outtake_form_date", "Outtake form date", BF_DATE_TIME},
    {"tag_list", "Tag list", BF_STR_ARRAY},
    {"comments_attributes", "Comments", BF_OBJ_ARRAY},
};
static const body_field B_ASSET[] = {
    {"asset_type_name", "Asset type name", BF_STRING}, {"asset_type_id", "Asset type", BF_INTEGER},
    {"properties", "Properties", BF_OBJECT},           {"name", "Name", BF_STRING},
    {"customer_id", "Customer", BF_INTEGER},           {"asset_serial", "Asset serial", BF_STRING},
};
static const body_field B_COMMENT[] = {
    {"subject", "Subject", BF_STRING}, {"tech", "Tech", BF_STRING}, {"body", "Body", BF_STRING},
};

static bool bf_ok(bf_type t, json_t *v)
{
    size_t i;
    json_t *x;
    switch (t) {
    case BF_INTEGER: return json_is_integer(v);
    case BF_STRING: return json_is_string(v);
    case BF_DATE: return json_is_string(v) && sim_is_date(json_string_value(v));
    case BF_DATE_TIME: return json_is_string(v) && sim_is_date_time(json_string_value(v));
    case BF_OBJECT: return json_is_object(v);
    case BF_INT_ARRAY:
    case BF_STR_ARRAY:
    case BF_OBJ_ARRAY:
        if (!json_is_array(v))
            return false;
        json_array_foreach(v, i, x)
        {
            if ((t == BF_INT_ARRAY && !json_is_integer(x)) ||
                (t == BF_STR_ARRAY && !json_is_string(x)) ||
                (t == BF_OBJ_ARRAY && !json_is_object(x)))
                return false;
        }
        return true;
    }
    return false;
}

/* Checks a JSON body (flat, or wrapped in {"<wrap>": {...}} as Rails also accepts) against the
 * declared fields and the required ones. @returns NULL or the 422 message (in msg). */
static const char *strict_body(struct evhttp_request *req, const char *wrap,
                               const body_field *f, size_t n, const char *const *required,
                               char *msg, size_t msgsz)
{
    char err[200];
    json_t *b = read_json_body(req, err, sizeof(err));
    const char *bad = NULL;
    if (!json_is_object(b)) {
        json_decref(b);
        return NULL; /* the handler answers a body that is not an object */
    }
    json_t *src = json_is_object(json_object_get(b, wrap)) ? json_object_get(b, wrap) : b;
    for (const char *const *rq = required; rq && *rq && !bad; rq++) {
        json_t *v = json_object_get(src, *rq);
        if ((json_is_string(v) && json_string_length(v) > 0) || json_is_integer(v))
            continue;
        const char *label = *rq;
        for (size_t i = 0; i < n; i++)
            if (!strcmp(f[i].name, *rq))
                label = f[i].label;
        snprintf(msg, msgsz, "%s can't be blank", label);
        bad = msg;
    }
    for (size_t i = 0; i < n && !bad; i++) {
        json_t *v = json_object_get(src, f[i].name);
        if (!v || bf_ok(f[i].type, v))
            continue;
        snprintf(msg, msgsz, "%s is invalid: %s expected", f[i].label,
                 f[i].type == BF_DATE        ? "a date (YYYY-MM-DD)"
                 : f[i].type == BF_DATE_TIME ? "a date-time (RFC 3339)"
                 : f[i].type == BF_INTEGER   ? "an integer"
                 : f[i].type == BF_STRING    ? "a string"
                 : f[i].type == BF_OBJECT    ? "an object"
                                             : "a list");
        bad = msg;
    }
    json_decref(b);
    return bad;
}

/*
 * What the document refuses, for every operation mspsync calls: GET /customers,
 * /customer_assets, /contacts (customer_id, page) and /tickets take each declared single-valued
 * query parameter once and in its
 * type (page, customer_id integers; created_after, since_updated_at, resolved_after date-times;
 * booleans true/false); a JSON body must come as application/json; PUT /customer_assets/{id}
 * requires `name` (its schema's only required field) and types its fields; POST /tickets
 * requires customer_id and subject (NOTES.md: "422 Customer required field") and, like
 * PUT /tickets/{id}, types every declared field (due_date a date, start_at a date-time, ids
 * integers); POST /tickets/{id}/comment requires subject and body (NOTES.md).
 * @returns 0 to serve the request, -1 with r set.
 */
static int strict_check(enum path_class pc, enum evhttp_cmd_type m, struct evhttp_request *req,
                        const struct evkeyvalq *q, reply *r)
{
    static const char *const REQ_ASSET[] = {"name", NULL};
    static const char *const REQ_TICKET[] = {"customer_id", "subject", NULL};
    static const char *const REQ_COMMENT[] = {"subject", "body", NULL};
    char err[300];
    int rc = 0;
    const char *bad = NULL;

    if (m == EVHTTP_REQ_GET && pc == PC_CUSTOMERS)
        rc = sim_strict_query(q, Q_CUSTOMERS, NELEM(Q_CUSTOMERS), err, sizeof(err));
    else if (m == EVHTTP_REQ_GET && pc == PC_ASSETS)
        rc = sim_strict_query(q, Q_ASSETS, NELEM(Q_ASSETS), err, sizeof(err));
    else if (m == EVHTTP_REQ_GET && pc == PC_TICKETS)
        rc = sim_strict_query(q, Q_TICKETS, NELEM(Q_TICKETS), err, sizeof(err));
    else if (m == EVHTTP_REQ_GET && pc == PC_CONTACTS)
        rc = sim_strict_query(q, Q_CONTACTS, NELEM(Q_CONTACTS), err, sizeof(err));
    if (rc != 0) {
        reply_error(r, 400, err);
        return -1;
    }
    if (m != EVHTTP_REQ_POST && m != EVHTTP_REQ_PUT)
        return 0;
    if (!sim_strict_json_content_type(req)) {
        reply_error(r, 400, "the request body must be sent as application/json");
        return -1;
    }
    if (pc == PC_ASSET && m == EVHTTP_REQ_PUT)
        bad = strict_body(req, "asset", B_ASSET, NELEM(B_ASSET), REQ_ASSET, err, sizeof(err));
    else if (pc == PC_TICKETS && m == EVHTTP_REQ_POST)
        bad = strict_body(req, "ticket", B_TICKET, NELEM(B_TICKET), REQ_TICKET, err, sizeof(err));
    else if (pc == PC_TICKET && m == EVHTTP_REQ_PUT)
        bad = strict_body(req, "ticket", B_TICKET, NELEM(B_TICKET), NULL, err, sizeof(err));
    else if (pc == PC_TICKET_COMMENT && m == EVHTTP_REQ_POST)
        bad = strict_body(req, "comment", B_COMMENT, NELEM(B_COMMENT), REQ_COMMENT, err,
                          sizeof(err));
    if (!bad)
        return 0;
    reply_json(r, 422, json_pack("{s:b, s:[s], s:{}}", "success", 0, "message", bad, "params"));
    return -1;
}

/*
 * The permission each vendor route needs, as syncro-openapi.json gives it (its "permission:"
 * lines), for every route the document names whether or not this simulator serves it, so that a
 * call the key may not make is refused with 401 before anything else is looked at. A path
 * pattern's "#" is one id segment; alt is the document's "or" permission.
 */
typedef struct perm_route {
    enum evhttp_cmd_type method;
    const char *pattern; /* below /api/v1, segments separated by '/' */
    const char *perm, *alt;
} perm_route;

static const perm_route PERM_ROUTES[] = {
    {EVHTTP_REQ_GET, "customers", "Customers - List/Search", NULL},
    {EVHTTP_REQ_POST, "customers", "Customers - Create", NULL},
    {EVHTTP_REQ_GET, "customers/#", "Customers - View Detail", NULL},
    {EVHTTP_REQ_PUT, "customers/#", "Customers - Edit", NULL},
    {EVHTTP_REQ_DELETE, "customers/#", "Customers - Delete", NULL},
    {EVHTTP_REQ_GET, "customer_assets", "Assets - List/Search", NULL},
    {EVHTTP_REQ_POST, "customer_assets", "Assets - Create", NULL},
    {EVHTTP_REQ_GET, "customer_assets/#", "Assets - View Details", NULL},
    {EVHTTP_REQ_PUT, "customer_assets/#", "Assets - Edit", NULL},
    {EVHTTP_REQ_GET, "contacts", "Customers - View Detail", NULL},
    {EVHTTP_REQ_POST, "contacts", "Customers - Edit", NULL},
    {EVHTTP_REQ_GET, "contacts/#", "Customers - View Detail", NULL},
    {EVHTTP_REQ_PUT, "contacts/#", "Customers - Edit", NULL},
    {EVHTTP_REQ_DELETE, "contacts/#", "Customers - Edit", NULL},
    {EVHTTP_REQ_GET, "tickets", "Tickets - List/Search", NULL},
    {EVHTTP_REQ_POST, "tickets", "Tickets - Create", NULL},
    {EVHTTP_REQ_GET, "tickets/#", "Tickets - View Details",
     "Tickets - View 'Their Ticket' Details (assigned to them)"},
    {EVHTTP_REQ_PUT, "tickets/#", "Tickets - Edit", NULL},
    {EVHTTP_REQ_DELETE, "tickets/#", "Tickets - Delete", NULL},
    {EVHTTP_REQ_GET, "tickets/#/comments", "Tickets - View Details",
     "Tickets - View 'Their Ticket' Details (assigned to them)"},
    {EVHTTP_REQ_POST, "tickets/#/comment", "Tickets - Edit", NULL},
    {EVHTTP_REQ_GET, "invoices", "Invoices - List/Search", NULL},
    {EVHTTP_REQ_GET, "invoices/#", "Invoices - View Details", NULL},
    {EVHTTP_REQ_GET, "estimates", "Estimates - List/Search", NULL},
    {EVHTTP_REQ_GET, "payments", "Payments - View List", NULL},
    {EVHTTP_REQ_GET, "schedules", "Recurring Invoices - List", NULL},
    {EVHTTP_REQ_POST, "schedules", "Recurring Invoices - New", NULL},
    {EVHTTP_REQ_GET, "schedules/#", "Recurring Invoices - List", NULL},
    {EVHTTP_REQ_PUT, "schedules/#", "Recurring Invoices - Edit", NULL},
    {EVHTTP_REQ_DELETE, "schedules/#", "Recurring Invoices - Delete", NULL},
    {EVHTTP_REQ_POST, "schedules/#/add_line_item", "Recurring Invoices - Edit", NULL},
    {EVHTTP_REQ_POST, "schedules/#/remove_line_item", "Recurring Invoices - Edit", NULL},
    {EVHTTP_REQ_PUT, "schedules/#/line_items/#", "Recurring Invoices - Edit", NULL},
};

/** The permission a call needs (and its alternative in *alt), or NULL: none is documented. */
static const char *permission_needed(enum evhttp_cmd_type method, char **seg, int nseg,
                                     const char **alt) {
    *alt = NULL;
    for (size_t i = 0; i < sizeof(PERM_ROUTES) / sizeof(PERM_ROUTES[0]); i++) {
        const perm_route *pr = &PERM_ROUTES[i];
        if (pr->method != method)
            continue;
        const char *p = pr->pattern;
        int k = 0;
        for (; k < nseg && *p; k++) {
            size_t len = strcspn(p, "/");
            int64_t id;
            bool ok = (len == 1 && *p == '#') ? parse_i64(seg[k], &id) == 0
                                              : strlen(seg[k]) == len && !strncmp(seg[k], p, len);
            if (!ok)
                break;
            p += len + (p[len] == '/');
        }
        if (k == nseg && !*p) {
            *alt = pr->alt;
            return pr->perm;
        }
    }
    return NULL;
}
static void api_schedules(account *a, enum path_class pc, int64_t id, int64_t lid,
                          const struct evkeyvalq *q, struct evhttp_request *req, reply *r);

static void handle_vendor(void *arg, struct evhttp_request *req, char **seg, int nseg,
                          const struct evkeyvalq *q)
{
    sim *s = arg;
    reply r = {0};
    int64_t recv_us = wall_us(); /* when the request arrived: tickets record it */
    s->requests++;
    account *a = nseg > 0 ? sm_get(&s->accounts, seg[0]) : NULL;
    if (!a) {
        statusc_add(&s->status, 404);
        reply_html(&r, 404, HTML_UNKNOWN_SUBDOMAIN);
        send_reply(&s->srv, req, &r, 0);
        return;
    }

    /* route: /{sub}/api/v1/<rest> */
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    enum path_class pc = PC_OTHER;
    int64_t id = 0, line_id = 0;
    bool id_ok = false;
    if (nseg >= 4 && strcmp(seg[1], "api") == 0 && strcmp(seg[2], "v1") == 0) {
        const char *res = seg[3];
        if (nseg == 4 && strcmp(res, "me") == 0)
            pc = PC_ME;
        else if (nseg == 4 && strcmp(res, "customers") == 0)
            pc = PC_CUSTOMERS;
        else if (nseg == 5 && strcmp(res, "customers") == 0)
            pc = PC_CUSTOMER;
        else if (nseg == 4 && strcmp(res, "customer_assets") == 0)
            pc = PC_ASSETS;
        else if (nseg == 5 && strcmp(res, "customer_assets") == 0)
            pc = PC_ASSET;
        else if (nseg == 4 && strcmp(res, "tickets") == 0)
            pc = PC_TICKETS;
        else if (nseg == 4 && strcmp(res, "contacts") == 0)
            pc = PC_CONTACTS;
        else if (nseg == 5 && strcmp(res, "tickets") == 0 && strcmp(seg[4], "settings") == 0)
            pc = PC_TICKET_SETTINGS;
        else if (nseg == 5 && strcmp(res, "tickets") == 0)
            pc = PC_TICKET;
        else if (nseg == 6 && strcmp(res, "tickets") == 0 && strcmp(seg[5], "comment") == 0)
            pc = PC_TICKET_COMMENT;
        else if (nseg == 4 && strcmp(res, "schedules") == 0)
            pc = PC_SCHEDULES;
        else if (nseg == 5 && strcmp(res, "schedules") == 0)
            pc = PC_SCHEDULE;
        else if (nseg == 6 && strcmp(res, "schedules") == 0 && strcmp(seg[5], "add_line_item") == 0)
            pc = PC_SCHED_ADD;
        else if (nseg == 6 && strcmp(res, "schedules") == 0 &&
                 strcmp(seg[5], "remove_line_item") == 0)
            pc = PC_SCHED_REMOVE;
        else if (nseg == 7 && strcmp(res, "schedules") == 0 && strcmp(seg[5], "line_items") == 0)
            pc = PC_SCHED_LINE;
        if (nseg == 5 || pc == PC_TICKET_COMMENT || pc == PC_SCHED_ADD || pc == PC_SCHED_REMOVE ||
            pc == PC_SCHED_LINE)
            id_ok = parse_i64(seg[4], &id) == 0;
        if (pc == PC_SCHED_LINE && id_ok)
            id_ok = parse_i64(seg[6], &line_id) == 0;
    }

    char tokbuf[512];
    extract_token(req, q, tokbuf, sizeof(tokbuf));
    api_ctx ctx = {.s = s, .a = a, .ts = NULL};
    if (tokbuf[0]) {
        ctx.ts = sm_get(&s->token_stats, tokbuf);
        if (!ctx.ts && s->token_stats.n < SIM_MAX_TOKEN_STATS) {
            ctx.ts = xcalloc(1, sizeof(*ctx.ts));
            sm_put(&s->token_stats, tokbuf, ctx.ts);
        }
    }

    /* 1. count */
    int64_t now = mono_ms();
    a->st.requests++;
    if (ctx.ts)
        ctx.ts->requests++;
    s->paths[pc]++;
    tsring_prune(&a->all, now - s->cfg.fx.rate_window_ms);
    tsring_push(&a->all, now);
    if (a->all.len > a->st.max_in_window)
        a->st.max_in_window = a->all.len;

    /* 2. rate limit (rejected requests do not take a slot) */
    if (s->cfg.fx.rate_limit > 0) {
        tsring *ring = s->cfg.rate_scope_ip ? ip_ring(s, req) : &a->rl;
        int wait = rate_check(s, ring, now);
        if (wait > 0) {
            reply_rate_limited(s, &r, wait);
            count_status(&ctx, 429);
            send_reply(&s->srv, req, &r, latency_for(s));
            return;
        }
    }

    /* 3. faults */
    fault_kind fk = pick_fault(s, now);
    switch (fk) {
    case F_OUTAGE: {
        int left = (int)((s->cfg.fx.outage_until_mono - now + 999) / 1000);
        reply_fault_status(s, &r, (int)s->cfg.fx.outage_status, left);
        count_status(&ctx, r.status);
        send_reply(&s->srv, req, &r, latency_for(s));
        return;
    }
    case F_FAIL:
        reply_fault_status(s, &r, (int)s->cfg.fx.fail_status, 1);
        count_status(&ctx, r.status);
        send_reply(&s->srv, req, &r, latency_for(s));
        return;
    case F_RATELIMIT:
        reply_rate_limited(s, &r, 1);
        count_status(&ctx, 429);
        send_reply(&s->srv, req, &r, latency_for(s));
        return;
    case F_RESET:
        s->resets++;
        a->st.resets++;
        reset_connection(req);
        return;
    default:
        break;
    }

    /* 4. auth: the token must exist and belong to this account */
    token *t = tokbuf[0] ? sm_get(&s->tokens, tokbuf) : NULL;
    if (!t || strcmp(t->sub, a->sub) != 0) {
        reply_error(&r, 401, ERR_BAD_TOKEN);
    } else {
        /* 5. permission, 6. handler */
        const char *alt = NULL;
        const char *need = nseg >= 4 && strcmp(seg[1], "api") == 0 && strcmp(seg[2], "v1") == 0
                               ? permission_needed(method, seg + 3, nseg - 3, &alt)
                               : NULL;
        if (need && !token_has(t, need) && !(alt && token_has(t, alt)))
            reply_error(&r, 401, ERR_NO_PERMISSION);
        else if (s->cfg.strict && strict_check(pc, method, req, q, &r) != 0)
            ; /* r holds the refusal */
        else if (pc == PC_ME && method == EVHTTP_REQ_GET)
            reply_json(&r, 200, me_render(a, t));
        else if (need && pc == PC_CUSTOMERS)
            api_customers(a, q, &r);
        else if (need && pc == PC_CUSTOMER)
            id_ok ? api_customer(a, id, &r) : reply_not_found(&r);
        else if (need && pc == PC_ASSETS)
            api_assets(a, q, &r);
        else if (need && pc == PC_ASSET && method == EVHTTP_REQ_GET)
            id_ok ? api_asset_get(a, id, &r) : reply_not_found(&r);
        else if (need && pc == PC_ASSET && method == EVHTTP_REQ_PUT)
            id_ok ? api_asset_put(a, id, req, &r) : reply_not_found(&r);
        else if (need && pc == PC_TICKETS && method == EVHTTP_REQ_GET)
            api_tickets(a, q, &r);
        else if (need && pc == PC_CONTACTS)
            api_contacts(a, q, &r);
        else if (need && pc == PC_TICKETS && method == EVHTTP_REQ_POST)
            api_ticket_create(a, recv_us, req, &r);
        else if (need && pc == PC_TICKET && method == EVHTTP_REQ_GET)
            id_ok ? api_ticket_get(a, id, &r) : reply_not_found(&r);
        else if (need && pc == PC_TICKET && method == EVHTTP_REQ_PUT)
            id_ok ? api_ticket_put(a, id, recv_us, req, &r) : reply_not_found(&r);
        else if (need && pc == PC_TICKET_COMMENT)
            id_ok ? api_ticket_comment(a, t, id, recv_us, req, &r) : reply_not_found(&r);
        else if (pc == PC_TICKET_SETTINGS && method == EVHTTP_REQ_GET)
            reply_json(&r, 200, ticket_settings_json(a));
        else if (need && pc >= PC_SCHEDULES && pc <= PC_SCHED_LINE)
            (id_ok || pc == PC_SCHEDULES) ? api_schedules(a, pc, id, line_id, q, req, &r)
                                          : reply_not_found(&r);
        else
            reply_not_found(&r);
    }

    /* a malformed answer is a 200 whose JSON body is cut in half, whatever the handler said */
    s->malformed += fk == F_MALFORMED;
    s->hangs += fk == F_HANG;
    int64_t delay = sim_faults_finish(&s->cfg.fx, fk, &r, latency_for(s));
    count_status(&ctx, r.status);
    send_reply(&s->srv, req, &r, delay);
}

/* ------------------------------------------------------------------------------------------ */
/* recurring invoices (schedules) — usage billing                                              */
/* ------------------------------------------------------------------------------------------ */
/*
 * An account's schedules live as JSON in the document's shape (GET /schedules example): each
 * with "lines" of ScheduleLineItem objects, quantities as strings ("9.99", "12.0"), and
 * recurring_type_id null for a plain fixed-quantity line or 1-6 for a counted line (Syncro
 * computes its quantity from assets, contacts or a saved search: NOTES.md "counted line types
 * ignore quantity" — a PUT of its quantity answers 200 and changes nothing). Tests create
 * schedules through /_sim/accounts/{sub}/schedules; the vendor API reads them, adds, updates and
 * removes lines. Every quantity written (by PUT or add_line_item, changed or not) is appended to
 * a test-only log (/_sim/accounts/{sub}/quantity_changes) with the time and the old and new
 * quantity, so a test can prove that each change was written exactly once and nothing twice.
 */

#define SCHED_ID_BASE 4100000000LL
#define LINE_ID_BASE 4200000000LL
#define SCHED_PER_PAGE 25

static json_t *sched_all(account *a) {
    if (!a->scheds)
        a->scheds = json_array();
    return a->scheds;
}

static json_t *qlog_all(account *a) {
    if (!a->qlog)
        a->qlog = json_array();
    return a->qlog;
}

/* Syncro renders quantities as decimal strings: "12.0", "9.99". */
static json_t *qty_string(double q) {
    char buf[64];
    if (q == (double)(int64_t)q)
        snprintf(buf, sizeof(buf), "%" PRId64 ".0", (int64_t)q);
    else
        snprintf(buf, sizeof(buf), "%.2f", q);
    return json_string(buf);
}

static json_t *sched_find(account *a, int64_t id) {
    size_t i;
    json_t *sc;
    json_array_foreach(sched_all(a), i,
                       sc) if (json_integer_value(json_object_get(sc, "id")) == id) return sc;
    return NULL;
}

static json_t *line_find(json_t *sc, int64_t lid, size_t *at) {
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(sc, "lines"), i, l) {
        if (json_integer_value(json_object_get(l, "id")) == lid) {
            if (at)
                *at = i;
            return l;
        }
    }
    return NULL;
}

static void reply_sched_invalid(reply *r, const char *msg) {
    reply_json(r, 422, json_pack("{s:[s]}", "error", msg));
}

/* A quantity as the document types it (number); Syncro also takes a decimal string. */
static int qty_read(json_t *v, double *out) {
    if (json_is_number(v)) {
        *out = json_number_value(v);
    } else if (json_is_string(v)) {
        char *end;
        *out = strtod(json_string_value(v), &end);
        if (end == json_string_value(v) || *end)
            return -1;
    } else {
        return -1;
    }
    return *out >= 0 && *out < 1e12 ? 0 : -1;
}

static void qlog_add(account *a, json_t *sc, json_t *l, const char *from, double to,
                     const char *via) {
    json_t *c =
        json_pack("{s:I, s:I, s:O, s:O, s:s?, s:o, s:I, s:s}", "seq",
                  (json_int_t)json_array_size(qlog_all(a)) + 1, "at_us", (json_int_t)wall_us(),
                  "schedule_id", json_object_get(sc, "id"), "line_id", json_object_get(l, "id"),
                  "from", from, "to", qty_string(to), "customer_id",
                  json_integer_value(json_object_get(sc, "customer_id")), "via", via);
    json_array_append_new(qlog_all(a), c);
}

/* Fill line l from the ScheduleLineItem body src. @returns NULL or the 422 message. */
static const char *line_apply(json_t *l, json_t *src, bool creating, double *qty, bool *has_qty) {
    static const char *const INTS[] = {"product_id",       "cost_cents", "position",
                                       "retail_cents",     "user_id",    "asset_type_id",
                                       "recurring_type_id"};
    json_t *name = json_object_get(src, "name");
    if (creating && (!json_is_string(name) || !json_string_length(name)))
        return "Name can't be blank";
    if (name && !json_is_string(name))
        return "Name is invalid";
    for (size_t i = 0; i < NELEM(INTS); i++) {
        json_t *v = json_object_get(src, INTS[i]);
        if (v && !json_is_null(v) && !json_is_integer(v))
            return !strcmp(INTS[i], "recurring_type_id") ? "Recurring type is invalid"
                                                         : "Invalid integer field";
    }
    json_t *rt = json_object_get(src, "recurring_type_id");
    if (json_is_integer(rt) && (json_integer_value(rt) < 1 || json_integer_value(rt) > 6))
        return "Recurring type is not included in the list";
    json_t *q = json_object_get(src, "quantity");
    *has_qty = q && !json_is_null(q);
    if (*has_qty && qty_read(q, qty) != 0)
        return "Quantity is not a number";
    json_t *d = json_object_get(src, "description");
    if (d && !json_is_null(d) && !json_is_string(d))
        return "Description is invalid";
    if (name)
        json_object_set(l, "name", name);
    if (d)
        json_object_set(l, "description", d);
    for (size_t i = 0; i < NELEM(INTS); i++) {
        json_t *v = json_object_get(src, INTS[i]);
        if (v)
            json_object_set(l, INTS[i], v);
    }
    return NULL;
}

static json_t *line_new(account *a, json_t *sc) {
    if (!a->next_line_id)
        a->next_line_id = LINE_ID_BASE;
    return json_pack("{s:I, s:i, s:s, s:s, s:i, s:n, s:s, s:i, s:O, s:b, s:i, s:i, s:i, s:n, "
                     "s:n, s:n, s:[], s:b}",
                     "id", (json_int_t)++a->next_line_id, "cost_cents", 0, "description", "",
                     "name", "", "position", (int)json_array_size(json_object_get(sc, "lines")),
                     "product_id", "quantity", "0.0", "retail_cents", 0, "schedule_id",
                     json_object_get(sc, "id"), "taxable", 0, "user_id", 1, "price_cost", 0,
                     "price_retail", 0, "product_category", "asset_type_id", "recurring_type_id",
                     "device_ids", "one_time_charge", 0);
}

static void api_schedules(account *a, enum path_class pc, int64_t id, int64_t lid,
                          const struct evkeyvalq *q, struct evhttp_request *req, reply *r) {
    if (pc == PC_SCHEDULES) {
        int64_t cid = query_int(q, "customer_id", 0), page = clamp_page(query_int(q, "page", 1));
        json_t *out = json_array(), *sc;
        size_t i, n = 0;
        json_array_foreach(sched_all(a), i, sc) {
            if (cid && json_integer_value(json_object_get(sc, "customer_id")) != cid)
                continue;
            if (n >= (size_t)(page - 1) * SCHED_PER_PAGE && n < (size_t)page * SCHED_PER_PAGE)
                json_array_append(out, sc);
            n++;
        }
        int64_t pages = ((int64_t)n + SCHED_PER_PAGE - 1) / SCHED_PER_PAGE;
        reply_json(r, 200,
                   json_pack("{s:o, s:{s:I, s:I, s:i, s:I}}", "schedules", out, "meta",
                             "total_pages", (json_int_t)pages, "total_entries", (json_int_t)n,
                             "per_page", SCHED_PER_PAGE, "page", (json_int_t)page));
        return;
    }
    json_t *sc = sched_find(a, id);
    if (!sc) {
        reply_not_found(r);
        return;
    }
    if (pc == PC_SCHEDULE) {
        reply_json(r, 200, json_pack("{s:O}", "schedule", sc));
        return;
    }
    char err[200];
    json_t *body = read_json_body(req, err, sizeof(err));
    if (!body) {
        reply_sched_invalid(r, err);
        return;
    }
    if (pc == PC_SCHED_REMOVE) {
        /* the document's body is the bare line id; {"line_item_id": id} is accepted too */
        json_t *v = json_is_integer(body) ? body : json_object_get(body, "line_item_id");
        size_t at;
        if (!json_is_integer(v) || !line_find(sc, json_integer_value(v), &at)) {
            json_decref(body);
            reply_not_found(r);
            return;
        }
        json_array_remove(json_object_get(sc, "lines"), at);
        json_decref(body);
        reply_json(r, 200, json_pack("{s:b}", "success", 1));
        return;
    }
    json_t *src = json_is_object(json_object_get(body, "schedule_line_item"))
                      ? json_object_get(body, "schedule_line_item")
                      : body;
    double qty = 0;
    bool has_qty = false;
    if (!json_is_object(src)) {
        json_decref(body);
        reply_sched_invalid(r, "the body must be a JSON object");
        return;
    }
    if (pc == PC_SCHED_ADD) {
        json_t *l = line_new(a, sc);
        const char *bad = line_apply(l, src, true, &qty, &has_qty);
        if (bad) {
            json_decref(l);
            json_decref(body);
            reply_sched_invalid(r, bad);
            return;
        }
        if (has_qty && json_is_null(json_object_get(l, "recurring_type_id"))) {
            json_object_set_new(l, "quantity", qty_string(qty));
            qlog_add(a, sc, l, NULL, qty, "api");
        }
        json_array_append(json_object_get(sc, "lines"), l);
        json_decref(body);
        reply_json(r, 200, json_pack("{s:o}", "schedule_line_item", l));
        return;
    }
    json_t *l = line_find(sc, lid, NULL);
    if (!l) {
        json_decref(body);
        reply_not_found(r);
        return;
    }
    json_t *upd = json_deep_copy(l);
    const char *bad = line_apply(upd, src, false, &qty, &has_qty);
    json_decref(body);
    if (bad) {
        json_decref(upd);
        reply_sched_invalid(r, bad);
        return;
    }
    /* counted types ignore quantity (NOTES.md); every quantity written is logged, also one
     * that equals the old value (a repeated write shows) */
    if (has_qty && json_is_null(json_object_get(upd, "recurring_type_id"))) {
        char from[64];
        json_t *old = json_object_get(l, "quantity");
        snprintf(from, sizeof(from), "%s", json_string_value(old) ? json_string_value(old) : "");
        json_object_set_new(upd, "quantity", qty_string(qty));
        qlog_add(a, sc, upd, from, qty, "api");
    }
    json_object_update(l, upd);
    json_decref(upd);
    reply_json(r, 200, json_pack("{s:O}", "schedule_line_item", l));
}

/*
 * POST /_sim/accounts/{sub}/schedules {"customer_id", "name"?, "frequency"?, "lines":
 * [{"name", "quantity"?, "recurring_type_id"?, "product_id"?, "retail_cents"?}]}: a customer's
 * recurring invoice, as an MSP sets it up in Syncro's UI (not logged as a quantity change).
 */
static void admin_schedule_create(account *a, json_t *body, reply *r) {
    json_t *cid = json_object_get(body, "customer_id"), *lines = json_object_get(body, "lines");
    if (!json_is_integer(cid) || !customer_find(a, json_integer_value(cid))) {
        reply_error(r, 400, "customer_id must name a customer of the account");
        return;
    }
    if (lines && !json_is_array(lines)) {
        reply_error(r, 400, "lines must be an array");
        return;
    }
    if (!a->next_sched_id)
        a->next_sched_id = SCHED_ID_BASE;
    json_t *name = json_object_get(body, "name"), *freq = json_object_get(body, "frequency");
    json_t *sc =
        json_pack("{s:I, s:I, s:O, s:b, s:s, s:s, s:s, s:b, s:b, s:i, s:b, s:b, s:n, "
                  "s:[]}",
                  "id", (json_int_t)++a->next_sched_id, "account_id", (json_int_t)a->account_id,
                  "customer_id", cid, "email_customer", 0, "frequency",
                  json_is_string(freq) ? json_string_value(freq) : "Monthly", "name",
                  json_is_string(name) ? json_string_value(name) : "Monthly services", "next_run",
                  "2027-01-01T00:00:00.000Z", "snail_mail", 0, "charge_mop", 0, "subtotal", 0,
                  "invoice_unbilled_ticket_charges", 0, "paused", 0, "last_invoice_paid", "lines");
    size_t i;
    json_t *src;
    json_array_foreach(lines, i, src) {
        json_t *l = line_new(a, sc);
        double qty = 0;
        bool has_qty = false;
        const char *bad = json_is_object(src) ? line_apply(l, src, true, &qty, &has_qty)
                                              : "a line must be an object";
        if (bad) {
            json_decref(l);
            json_decref(sc);
            a->next_sched_id--;
            reply_error(r, 400, bad);
            return;
        }
        if (has_qty)
            json_object_set_new(l, "quantity", qty_string(qty));
        json_array_append_new(json_object_get(sc, "lines"), l);
    }
    json_array_append_new(sched_all(a), sc);
    reply_json(r, 201, json_pack("{s:O}", "schedule", sc));
}

/* ------------------------------------------------------------------------------------------ */
/* admin API (/_sim)                                                                            */
/* ------------------------------------------------------------------------------------------ */

static bool valid_subdomain(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '_' || s[0] == '-')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

static json_t *account_summary(const account *a)
{
    size_t poison = 0;
    for (size_t i = 0; i < a->nassets; i++)
        poison += a->assets[i].poison;
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "subdomain", a->sub, "customers",
                          (json_int_t)a->ncust, "assets", (json_int_t)a->nassets, "poison",
                          (json_int_t)poison, "customers_per_page",
                          (json_int_t)a->customers_per_page, "first_customer_id",
                          (json_int_t)(a->ncust ? a->cust[0].id : 0), "first_asset_id",
                          (json_int_t)(a->nassets ? a->assets[0].id : 0));
    json_t *st = json_array(), *users = json_array();
    for (size_t i = 0; i < a->tset.nstatuses; i++)
        json_array_append_new(st, json_string(a->tset.statuses[i]));
    for (size_t i = 0; i < a->tset.nusers; i++)
        json_array_append_new(users, json_pack("{s:I, s:s}", "id", (json_int_t)a->tset.users[i].id,
                                               "name", a->tset.users[i].name));
    json_object_set_new(o, "tickets", json_integer((json_int_t)a->ntickets));
    json_object_set_new(o, "require_problem_type", json_boolean(a->tset.require_problem_type));
    json_object_set_new(o, "ticket_statuses", st);
    json_object_set_new(o, "users", users);
    return o;
}

/** Characters of a UTF-8 string (jansson's strings are valid UTF-8): Syncro's limits count them. */
static size_t chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/**
 * Reads the optional ticket settings of an admin body (ticket_statuses, users,
 * require_problem_type; null counts as absent) over a copy of base, or of the defaults when
 * base is NULL. @returns 0 with out filled (caller frees), or -1 with err set and out untouched.
 */
static int tset_read(json_t *body, const ticket_settings *base, ticket_settings *out, char *err,
                     size_t errsz)
{
    json_t *st = json_object_get(body, "ticket_statuses"), *us = json_object_get(body, "users");
    json_t *rpt = json_object_get(body, "require_problem_type");
    if (json_is_null(st))
        st = NULL;
    if (json_is_null(us))
        us = NULL;
    if (st) {
        bool ok = json_is_array(st) && json_array_size(st) >= 1 &&
                  json_array_size(st) <= SIM_MAX_STATUSES;
        for (size_t i = 0; ok && i < json_array_size(st); i++) {
            json_t *v = json_array_get(st, i);
            ok = json_is_string(v) && !is_blank(json_string_value(v)) &&
                 chars(json_string_value(v)) <= 100 &&
                 strcmp(json_string_value(v), "Not Closed") != 0;
            for (size_t j = 0; ok && j < i; j++)
                ok = !json_equal(v, json_array_get(st, j));
        }
        if (!ok) {
            snprintf(err, errsz, "ticket_statuses must be an array of 1-%d distinct non-blank "
                                 "strings (not \"Not Closed\")", SIM_MAX_STATUSES);
            return -1;
        }
    }
    if (us) {
        bool ok = json_is_array(us) && json_array_size(us) <= SIM_MAX_USERS;
        for (size_t i = 0; ok && i < json_array_size(us); i++) {
            json_t *u = json_array_get(us, i), *id = json_object_get(u, "id");
            json_t *name = json_object_get(u, "name");
            ok = json_is_integer(id) && json_integer_value(id) > 0 && json_is_string(name) &&
                 !is_blank(json_string_value(name)) && json_string_length(name) <= 200;
            for (size_t j = 0; ok && j < i; j++)
                ok = json_integer_value(json_object_get(json_array_get(us, j), "id")) !=
                     json_integer_value(id);
        }
        if (!ok) {
            snprintf(err, errsz, "users must be an array of at most %d {\"id\": positive integer, "
                                 "\"name\": non-blank string} with distinct ids", SIM_MAX_USERS);
            return -1;
        }
    }
    if (rpt && !json_is_null(rpt) && !json_is_boolean(rpt)) {
        snprintf(err, errsz, "require_problem_type must be a boolean");
        return -1;
    }
    if (base)
        tset_copy(out, base);
    else
        tset_defaults(out);
    if (st) {
        for (size_t i = 0; i < out->nstatuses; i++)
            free(out->statuses[i]);
        free(out->statuses);
        out->nstatuses = json_array_size(st);
        out->statuses = xcalloc(out->nstatuses, sizeof(char *));
        for (size_t i = 0; i < out->nstatuses; i++)
            out->statuses[i] = xstrdup(json_string_value(json_array_get(st, i)));
    }
    if (us) {
        for (size_t i = 0; i < out->nusers; i++)
            free(out->users[i].name);
        free(out->users);
        out->nusers = json_array_size(us);
        out->users = xcalloc(out->nusers ? out->nusers : 1, sizeof(sim_user));
        for (size_t i = 0; i < out->nusers; i++) {
            json_t *u = json_array_get(us, i);
            out->users[i].id = json_integer_value(json_object_get(u, "id"));
            out->users[i].name = xstrdup(json_string_value(json_object_get(u, "name")));
        }
    }
    if (json_is_boolean(rpt))
        out->require_problem_type = json_is_true(rpt);
    return 0;
}

static void admin_create_account(sim *s, json_t *body, reply *r)
{
    char err[200];
    json_t *sub = json_object_get(body, "subdomain");
    if (!json_is_string(sub) || !valid_subdomain(json_string_value(sub))) {
        reply_error(r, 400, "subdomain must be 1-63 characters of [A-Za-z0-9_-], not starting with _ or -");
        return;
    }
    int64_t nc, na, cpp, seed, ncontacts, ntickets;
    if (opt_int(body, "contacts", 0, 0, 1000000, &ncontacts, err, sizeof(err)) ||
        opt_int(body, "tickets", 0, 0, SIM_MAX_TICKETS, &ntickets, err, sizeof(err)) ||
        opt_int(body, "customers", 10, 0, 1000000, &nc, err, sizeof(err)) ||
        opt_int(body, "assets", 50, 0, 5000000, &na, err, sizeof(err)) ||
        opt_int(body, "customers_per_page", 25, 1, SIM_MAX_PER_PAGE, &cpp, err, sizeof(err)) ||
        opt_int(body, "seed", (int64_t)s->seed, INT64_MIN, INT64_MAX, &seed, err, sizeof(err))) {
        reply_error(r, 400, err);
        return;
    }
    if ((na > 0 || ncontacts > 0 || ntickets > 0) && nc == 0) {
        reply_error(r, 400, "assets, contacts and tickets need at least one customer");
        return;
    }
    ticket_settings ts;
    if (tset_read(body, NULL, &ts, err, sizeof(err)) != 0) {
        reply_error(r, 400, err);
        return;
    }
    const char *name = json_string_value(sub);
    account *a = sm_get(&s->accounts, name);
    if (!a) {
        a = xcalloc(1, sizeof(*a));
        a->sub = xstrdup(name);
        sm_put(&s->accounts, name, a);
    }
    account_generate(a, (uint64_t)seed, (size_t)nc, (size_t)na, (int)cpp);
    tset_free(&a->tset);
    a->tset = ts;
    contacts_generate(a, (size_t)ncontacts);
    tickets_generate(a, (size_t)ntickets);
    reply_json(r, 201,
               json_pack("{s:s, s:I, s:I, s:I, s:I}", "subdomain", a->sub, "customers",
                         (json_int_t)a->ncust, "assets", (json_int_t)a->nassets, "contacts",
                         (json_int_t)a->ncontacts, "tickets", (json_int_t)a->ntickets));
}

static int perms_valid(json_t *perms)
{
    if (!json_is_array(perms))
        return 0;
    size_t i;
    json_t *v;
    json_array_foreach(perms, i, v) if (!json_is_string(v)) return 0;
    return 1;
}

static void admin_create_token(sim *s, json_t *body, reply *r)
{
    json_t *sub = json_object_get(body, "subdomain"), *tok = json_object_get(body, "token");
    json_t *perms = json_object_get(body, "permissions");
    if (!json_is_string(sub) || !json_is_string(tok) || json_string_length(tok) == 0 ||
        json_string_length(tok) > 400) {
        reply_error(r, 400, "subdomain and token (1-400 characters) are required strings");
        return;
    }
    if (perms && !json_is_null(perms) && !perms_valid(perms)) {
        reply_error(r, 400, "permissions must be an array of strings");
        return;
    }
    token *t = xcalloc(1, sizeof(*t));
    t->token = xstrdup(json_string_value(tok));
    t->sub = xstrdup(json_string_value(sub));
    token_set_perms(t, json_is_array(perms) ? perms : NULL);
    token_free(sm_put(&s->tokens, t->token, t));
    reply_json(r, 201, token_json(t));
}

/** Applies admin field changes to an asset. @returns 0, or -1 with err set (nothing changed). */
static int asset_apply_admin(account *a, asset *as, json_t *body, bool creating, char *err,
                             size_t errsz)
{
    const char *k;
    json_t *v;
    /* validate everything first so that a bad request changes nothing */
    json_object_foreach(body, k, v) {
        if (!strcmp(k, "id") || !strcmp(k, "created_at") || !strcmp(k, "updated_at") ||
            !strcmp(k, "customer")) {
            snprintf(err, errsz, "field '%s' cannot be set", k);
            return -1;
        }
        if ((!strcmp(k, "name") || !strcmp(k, "asset_serial") || !strcmp(k, "asset_type") ||
             !strcmp(k, "asset_type_name")) &&
            !json_is_string(v)) {
            snprintf(err, errsz, "%s must be a string", k);
            return -1;
        }
        if (!strcmp(k, "customer_id") && (!json_is_integer(v) || !customer_find(a, json_integer_value(v)))) {
            snprintf(err, errsz, "customer_id must be the id of a customer of this account");
            return -1;
        }
        if (!strcmp(k, "properties") && !json_is_object(v)) {
            snprintf(err, errsz, "properties must be an object");
            return -1;
        }
    }
    json_object_foreach(body, k, v) {
        if (!strcmp(k, "name")) {
            free(as->name);
            as->name = xstrdup(json_string_value(v));
        } else if (!strcmp(k, "asset_serial")) {
            free(as->serial);
            as->serial = xstrdup(json_string_value(v));
        } else if (!strcmp(k, "asset_type") || !strcmp(k, "asset_type_name")) {
            if (!as->props && !creating)
                as->props = asset_gen_props(a, as); /* keep the agent facts across a retype */
            free(as->type);
            as->type = xstrdup(json_string_value(v));
        } else if (!strcmp(k, "customer_id")) {
            as->customer_id = json_integer_value(v);
        } else if (!strcmp(k, "properties")) {
            if (creating) {
                json_decref(as->props);
                as->props = json_deep_copy(v);
                continue;
            }
            /* merge: keys given replace, a null value removes the key */
            if (!as->props)
                as->props = asset_gen_props(a, as);
            const char *pk;
            json_t *pv;
            json_object_foreach(v, pk, pv) {
                if (json_is_null(pv))
                    json_object_del(as->props, pk);
                else
                    json_object_set_new(as->props, pk, json_deep_copy(pv));
            }
        } else {
            if (!as->extra)
                as->extra = json_object();
            json_object_set_new(as->extra, k, json_deep_copy(v));
        }
    }
    return 0;
}

static void admin_asset_create(account *a, json_t *body, reply *r)
{
    char err[200];
    if (a->ncust == 0 && !json_object_get(body, "customer_id")) {
        reply_error(r, 400, "the account has no customers");
        return;
    }
    asset *as = asset_slot(a);
    uint64_t idx = a->next_asset_idx;
    asset_generate(a, as, idx);
    as->id = a->next_asset_id;
    as->customer_id = a->ncust ? a->cust[idx % a->ncust].id : 0;
    /* without "properties", the generated ones follow the (possibly requested) asset_type */
    if (asset_apply_admin(a, as, body, true, err, sizeof(err)) != 0) {
        asset_free_fields(as);
        reply_error(r, 400, err);
        return;
    }
    int64_t now = wall_ms();
    as->created_ms = as->updated_ms = now;
    a->nassets++;
    a->next_asset_id += 1;
    a->next_asset_idx += 1;
    reply_asset(r, 201, a, as);
}

static void admin_asset_update(account *a, int64_t id, json_t *body, reply *r)
{
    char err[200];
    ssize_t i = asset_index(a, id);
    if (i < 0) {
        reply_error(r, 404, "no such asset");
        return;
    }
    asset *as = &a->assets[i];
    if (asset_apply_admin(a, as, body, false, err, sizeof(err)) != 0) {
        reply_error(r, 400, err);
        return;
    }
    asset_touch(as);
    reply_asset(r, 200, a, as);
}

/* POST /_sim/accounts/{sub}/assets/generate {"count":N}: N more generated assets (round-robin
 * over the customers, ids after the last one), as if technicians had added them since the last
 * sync; the account's other data and its tickets stay. */
static void admin_assets_generate(account *a, json_t *body, reply *r)
{
    char err[200];
    int64_t n;
    if (opt_int(body, "count", 1, 1, 5000000, &n, err, sizeof(err))) {
        reply_error(r, 400, err);
        return;
    }
    if (a->ncust == 0) {
        reply_error(r, 400, "the account has no customers");
        return;
    }
    for (int64_t k = 0; k < n; k++) {
        asset *as = asset_slot(a);
        uint64_t idx = a->next_asset_idx;
        asset_generate(a, as, idx);
        as->id = a->next_asset_id;
        as->customer_id = a->cust[idx % a->ncust].id;   /* times: generated from idx */
        a->nassets++;
        a->next_asset_id += 1 + (int64_t)(asset_hash(a, idx) % 3);
        a->next_asset_idx += 1;
    }
    reply_json(r, 201, json_pack("{s:I, s:I}", "generated", (json_int_t)n, "assets",
                                 (json_int_t)a->nassets));
}

static void admin_asset_delete(account *a, int64_t id, reply *r)
{
    ssize_t i = asset_index(a, id);
    if (i < 0) {
        reply_error(r, 404, "no such asset");
        return;
    }
    asset_free_fields(&a->assets[i]);
    memmove(&a->assets[i], &a->assets[i + 1], (a->nassets - (size_t)i - 1) * sizeof(asset));
    a->nassets--;
    reply_json(r, 200, json_pack("{s:I}", "deleted", (json_int_t)id));
}

static void admin_poison(account *a, reply *r)
{
    if (a->ncust == 0) {
        reply_error(r, 400, "the account has no customers");
        return;
    }
    asset *as = asset_slot(a);
    uint64_t idx = a->next_asset_idx;
    asset_generate(a, as, idx);
    as->id = a->next_asset_id;
    as->customer_id = a->cust[idx % a->ncust].id;
    as->poison = true;
    a->nassets++;
    a->next_asset_id += 1;
    a->next_asset_idx += 1;
    json_t *rendered = asset_json(a, as);
    reply_json(r, 201, json_pack("{s:I, s:o}", "sim_id", (json_int_t)as->id, "asset", rendered));
}

/* PUT /_sim/accounts/{sub}: changes the ticket settings only, keeping data and tickets. */
static void admin_account_settings(account *a, json_t *body, reply *r)
{
    char err[200];
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        if (strcmp(k, "ticket_statuses") && strcmp(k, "users") &&
            strcmp(k, "require_problem_type")) {
            snprintf(err, sizeof(err),
                     "field '%s' cannot be changed here (only ticket_statuses, users, "
                     "require_problem_type; POST /_sim/accounts rebuilds)", k);
            reply_error(r, 400, err);
            return;
        }
    }
    ticket_settings ts;
    if (tset_read(body, &a->tset, &ts, err, sizeof(err)) != 0) {
        reply_error(r, 400, err);
        return;
    }
    tset_free(&a->tset);
    a->tset = ts;
    reply_json(r, 200, account_summary(a));
}

static void admin_tickets(account *a, reply *r)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < a->ntickets; i++)
        json_array_append_new(arr, ticket_admin_json(a, &a->tickets[i]));
    reply_json(r, 200, json_pack("{s:o}", "tickets", arr));
}

static const char *ticket_check_text(tv_result tv)
{
    switch (tv) {
    case TV_NO_CUSTOMER: return "customer_id cannot be null";
    case TV_BAD_CUSTOMER: return "customer_id must be the id of a customer of this account";
    case TV_BLANK_SUBJECT: return "subject must be a non-blank string";
    case TV_BAD_STATUS: return "status must be one of the account's ticket_statuses";
    case TV_BLANK_PROBLEM_TYPE: return "problem_type can't be blank: the account requires it";
    case TV_BAD_USER: return "user_id must be the id of one of the account's users, or null";
    case TV_BAD_DUE_DATE: return "due_date must be YYYY-MM-DD or an RFC 3339 time, or null";
    case TV_BAD_FIELD: return "priority and problem_type must be strings or null";
    default: return "invalid ticket";
    }
}

/*
 * PUT /_sim/accounts/{sub}/tickets/{id}: a technician's edit. Takes the vendor PUT's fields and
 * an optional "comment": {"subject", "body", "hidden", "tech"} (body required; subject defaults
 * to "Update", tech to "Technician", hidden to false; user_id is the ticket's assignee). Status
 * changes are recorded as by "admin". All or nothing: a bad field answers 400 and changes nothing.
 */
static void admin_ticket_update(account *a, int64_t id, json_t *body, reply *r)
{
    static const char *const allowed[] = {"subject", "status", "priority", "problem_type",
                                          "user_id", "due_date", "customer_id", "comment"};
    char err[200];
    ticket *t = ticket_find(a, id);
    if (!t) {
        reply_error(r, 404, "no such ticket");
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        bool ok = false;
        for (size_t i = 0; i < NELEM(allowed) && !ok; i++)
            ok = strcmp(k, allowed[i]) == 0;
        if (!ok) {
            snprintf(err, sizeof(err), "field '%s' cannot be set", k);
            reply_error(r, 400, err);
            return;
        }
    }
    ticket_input in;
    const char *bad;
    tv_result tv = ticket_input_read(a, body, false, &in, &bad);
    if (tv != TV_OK) {
        reply_error(r, 400, ticket_check_text(tv));
        return;
    }
    json_t *cm = json_object_get(body, "comment");
    if (json_is_null(cm))
        cm = NULL;
    const char *csubj = NULL, *cbody = NULL, *ctech = NULL;
    if (cm) {
        json_t *subj = json_object_get(cm, "subject"), *hidden = json_object_get(cm, "hidden");
        json_t *tech = json_object_get(cm, "tech");
        cbody = json_str_or_null(json_object_get(cm, "body"));
        csubj = json_str_or_null(subj);
        ctech = json_str_or_null(tech);
        if (!json_is_object(cm) || is_blank(cbody) ||
            (subj && !json_is_null(subj) && is_blank(csubj)) ||
            (tech && !json_is_null(tech) && !ctech) ||
            (hidden && !json_is_null(hidden) && !json_is_boolean(hidden))) {
            reply_error(r, 400, "comment must be {\"body\": non-blank string, optional \"subject\" "
                                "(non-blank string), \"tech\" (string), \"hidden\" (boolean)}");
            return;
        }
        if (t->ncomments >= SIM_MAX_COMMENTS) {
            reply_error(r, 400, "too many comments on this ticket");
            return;
        }
    }
    int64_t now_us = wall_us(), now_ms = now_us / 1000;
    bool changed = ticket_apply(t, &in, now_ms, now_us, true);
    if (cm) {
        ticket_add_comment(a, t, csubj ? csubj : "Update", cbody, ctech ? ctech : "Technician",
                           json_is_true(json_object_get(cm, "hidden")), t->user_id, now_ms);
        changed = true;
    }
    if (changed)
        ticket_touch(t, now_ms);
    reply_json(r, 200, json_pack("{s:o}", "ticket", ticket_admin_json(a, t)));
}

static json_t *stats_json(sim *s)
{
    static const int always_global[] = {200, 401, 429, 503};
    json_t *o = json_object();
    json_object_set_new(o, "requests", json_integer((json_int_t)s->requests));
    json_t *st = json_object();
    statusc_to_json(&s->status, st, always_global, 4);
    json_object_set_new(o, "status", st);
    json_object_set_new(o, "resets", json_integer((json_int_t)s->resets));
    json_object_set_new(o, "hangs", json_integer((json_int_t)s->hangs));
    json_object_set_new(o, "malformed", json_integer((json_int_t)s->malformed));

    json_t *accts = json_object();
    SM_FOREACH(&s->accounts, e) {
        account *a = e->val;
        json_t *ao = json_object();
        json_object_set_new(ao, "requests", json_integer((json_int_t)a->st.requests));
        statusc_to_json(&a->st.status, ao, always_global, 4);
        json_object_set_new(ao, "resets", json_integer((json_int_t)a->st.resets));
        json_object_set_new(ao, "max_in_window", json_integer((json_int_t)a->st.max_in_window));
        json_object_set_new(ao, "tickets_created", json_integer((json_int_t)a->st.tickets_created));
        json_object_set_new(ao, "comments_created",
                            json_integer((json_int_t)a->st.comments_created));
        json_object_set_new(ao, "ticket_updates", json_integer((json_int_t)a->st.ticket_updates));
        json_object_set_new(ao, "ticket_lists", json_integer((json_int_t)a->st.ticket_lists));
        json_object_set_new(ao, "ticket_lists_since",
                            json_integer((json_int_t)a->st.ticket_lists_since));
        json_object_set_new(ao, "asset_updates", json_integer((json_int_t)a->st.asset_updates));
        json_object_set_new(accts, a->sub, ao);
    }
    json_object_set_new(o, "accounts", accts);

    static const int always_tok[] = {200, 401};
    json_t *toks = json_object();
    SM_FOREACH(&s->token_stats, e) {
        token_stats *ts = e->val;
        json_t *to = json_object();
        json_object_set_new(to, "requests", json_integer((json_int_t)ts->requests));
        statusc_to_json(&ts->status, to, always_tok, 2);
        json_object_set_new(toks, e->key, to);
    }
    json_object_set_new(o, "tokens", toks);

    json_t *paths = json_object();
    for (int i = 0; i < PC__N; i++)
        json_object_set_new(paths, PATH_CLASS_NAMES[i], json_integer((json_int_t)s->paths[i]));
    json_object_set_new(o, "paths", paths);
    return o;
}

static void tsring_free_p(void *p)
{
    tsring_free(p);
    free(p);
}

/* The simulator's start: accounts and tokens come later, through /_sim. */
static void sim_init(void *arg, const sim_opts *o)
{
    sim *s = arg;
    s->seed = o->seed;
    s->rng = mix64(o->seed ^ 0xFA0175ULL);
    config_defaults(&s->cfg);
}

/* Frees every account, token and window (the server is closed already). */
static void sim_destroy(void *arg)
{
    sim *s = arg;
    sm_destroy(&s->accounts, account_free);
    sm_destroy(&s->tokens, token_free);
    sm_destroy(&s->token_stats, free);
    sm_destroy(&s->ip_rl, tsring_free_p);
}

/* Zeroes every counter and also empties the rate-limit windows, so a test starts clean. */
static void stats_reset(sim *s)
{
    s->requests = s->resets = s->hangs = s->malformed = 0;
    memset(&s->status, 0, sizeof(s->status));
    memset(s->paths, 0, sizeof(s->paths));
    sm_clear(&s->token_stats, free);
    sm_clear(&s->ip_rl, tsring_free_p);
    SM_FOREACH(&s->accounts, e) {
        account *a = e->val;
        memset(&a->st, 0, sizeof(a->st));
        tsring_clear(&a->all);
        tsring_clear(&a->rl);
    }
}

static void handle_admin(void *arg, enum evhttp_cmd_type m, char **seg, int nseg,
                         const struct evkeyvalq *q, json_t *body, reply *r)
{
    sim *s = arg;
    const char *s1 = nseg > 1 ? seg[1] : ""; /* seg[0] is "_sim" */
    if (!strcmp(s1, "accounts")) {
        if (nseg == 2 && m == EVHTTP_REQ_POST) {
            admin_create_account(s, body, r);
            return;
        }
        if (nseg == 2 && m == EVHTTP_REQ_GET) {
            json_t *arr = json_array();
            SM_FOREACH(&s->accounts, e) json_array_append_new(arr, account_summary(e->val));
            reply_json(r, 200, json_pack("{s:o}", "accounts", arr));
            return;
        }
        account *a = nseg > 2 ? sm_get(&s->accounts, seg[2]) : NULL;
        if (nseg > 2 && !a) {
            reply_error(r, 404, "no such account");
            return;
        }
        if (nseg == 3 && m == EVHTTP_REQ_GET) {
            reply_json(r, 200, account_summary(a));
            return;
        }
        if (nseg == 3 && m == EVHTTP_REQ_DELETE) {
            account_free(sm_del(&s->accounts, seg[2]));
            reply_json(r, 200, json_pack("{s:s}", "deleted", seg[2]));
            return;
        }
        if (nseg == 3 && m == EVHTTP_REQ_PUT) {
            admin_account_settings(a, body, r);
            return;
        }
        if (nseg == 4 && !strcmp(seg[3], "tickets") && m == EVHTTP_REQ_GET) {
            admin_tickets(a, r);
            return;
        }
        if (nseg == 5 && !strcmp(seg[3], "tickets")) {
            int64_t id;
            ticket *t = parse_i64(seg[4], &id) == 0 ? ticket_find(a, id) : NULL;
            if (!t) {
                reply_error(r, 404, "no such ticket");
                return;
            }
            if (m == EVHTTP_REQ_GET) {
                reply_json(r, 200, json_pack("{s:o}", "ticket", ticket_admin_json(a, t)));
                return;
            }
            if (m == EVHTTP_REQ_PUT) {
                admin_ticket_update(a, id, body, r);
                return;
            }
            if (m == EVHTTP_REQ_DELETE) {
                /* A technician deletes the ticket: later calls on its id answer 404. */
                size_t i = (size_t)(t - a->tickets);
                ticket_free_fields(t);
                memmove(&a->tickets[i], &a->tickets[i + 1],
                        (a->ntickets - i - 1) * sizeof(a->tickets[0]));
                a->ntickets--;
                reply_json(r, 204, NULL);
                return;
            }
        }
        if (nseg >= 4 && !strcmp(seg[3], "contacts")) {
            admin_contacts(a, m, seg, nseg, body, r);
            return;
        }
        if (nseg == 4 && !strcmp(seg[3], "schedules") && m == EVHTTP_REQ_POST) {
            admin_schedule_create(a, body, r);
            return;
        }
        if (nseg == 4 && !strcmp(seg[3], "schedules") && m == EVHTTP_REQ_GET) {
            reply_json(r, 200, json_pack("{s:O}", "schedules", sched_all(a)));
            return;
        }
        if (nseg == 4 && !strcmp(seg[3], "quantity_changes") && m == EVHTTP_REQ_GET) {
            reply_json(r, 200, json_pack("{s:O}", "changes", qlog_all(a)));
            return;
        }
        if (nseg == 4 && !strcmp(seg[3], "poison") && m == EVHTTP_REQ_POST) {
            admin_poison(a, r);
            return;
        }
        if (nseg == 4 && !strcmp(seg[3], "assets") && m == EVHTTP_REQ_POST) {
            admin_asset_create(a, body, r);
            return;
        }
        if (nseg == 5 && !strcmp(seg[3], "assets") && !strcmp(seg[4], "generate") &&
            m == EVHTTP_REQ_POST) {
            admin_assets_generate(a, body, r);
            return;
        }
        if (nseg == 5 && !strcmp(seg[3], "assets")) {
            int64_t id;
            if (parse_i64(seg[4], &id) != 0) {
                reply_error(r, 404, "no such asset");
                return;
            }
            if (m == EVHTTP_REQ_PUT) {
                admin_asset_update(a, id, body, r);
                return;
            }
            if (m == EVHTTP_REQ_DELETE) {
                admin_asset_delete(a, id, r);
                return;
            }
        }
    } else if (!strcmp(s1, "tokens")) {
        if (nseg == 2 && m == EVHTTP_REQ_POST) {
            admin_create_token(s, body, r);
            return;
        }
        if (nseg == 3) {
            token *t = sm_get(&s->tokens, seg[2]);
            if (!t) {
                reply_error(r, 404, "no such token");
                return;
            }
            if (m == EVHTTP_REQ_GET) {
                reply_json(r, 200, token_json(t));
                return;
            }
            if (m == EVHTTP_REQ_PUT) {
                json_t *perms = json_object_get(body, "permissions");
                if (!perms_valid(perms)) {
                    reply_error(r, 400, "permissions must be an array of strings");
                    return;
                }
                token_set_perms(t, perms);
                reply_json(r, 200, token_json(t));
                return;
            }
            if (m == EVHTTP_REQ_DELETE) {
                token_free(sm_del(&s->tokens, seg[2]));
                reply_json(r, 200, json_pack("{s:s, s:b}", "token", seg[2], "revoked", 1));
                return;
            }
        }
    } else if (!strcmp(s1, "config") && nseg == 2) {
        if (m == EVHTTP_REQ_GET) {
            reply_json(r, 200, config_table_json(CONFIG_TABLE, NELEM(CONFIG_TABLE), &s->cfg));
            return;
        }
        if (m == EVHTTP_REQ_PUT) {
            config_table_put(CONFIG_TABLE, NELEM(CONFIG_TABLE), &s->cfg, sizeof(s->cfg), body, r);
            return;
        }
    } else if (!strcmp(s1, "stats")) {
        if (nseg == 2 && m == EVHTTP_REQ_GET) {
            reply_json(r, 200, stats_json(s));
            return;
        }
        if (nseg == 3 && !strcmp(seg[2], "reset") && m == EVHTTP_REQ_POST) {
            stats_reset(s);
            reply_json(r, 200, stats_json(s));
            return;
        }
    }
    reply_error(r, 404, "no such admin endpoint");
}

int main(int argc, char **argv)
{
    static sim s;
    const sim_app app = {"syncro-sim", USAGE,       &s,           &s.srv,
                         sim_init,     sim_destroy, handle_admin, handle_vendor};
    return sim_main(argc, argv, &app);
}
