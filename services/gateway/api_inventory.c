/*
 * api_inventory.c — GET /v1/tenants/{t}/customers[/{id}], /assets[/{id}], /contacts[/{id}],
 * /tickets[/{id}] and /ticket-settings: the inventory the normalizer keeps, read back.
 *
 * Each list is a row of LISTS (the record type, its route and array key, the filters it takes);
 * the reading is the same for every type.
 *
 * The normalizer keeps, per tenant and type, a zset of ids (score 0, so lexicographic order)
 * and one string per record holding its canonical JSON. An unfiltered page is a ZRANGE window
 * plus one MGET. Filtered asset lists (customer, serial, type, and the default that hides gone
 * assets) walk every id in chunks of 500 (ZRANGE + MGET), keep the matches, and cut the page out
 * of them; total_entries counts the matches. Records vanished between ZRANGE and MGET are skipped.
 */
#include "gateway.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>

#include "mspsync/log.h"
#include "mspsync/redis.h"

#define CHUNK 500
#define MAX_PER_PAGE 500
#define MAX_ID 256 /* gw_valid_record_id */

typedef struct filter_s {
    const char *customer;  /* customer_ref, exact */
    const char *serial;    /* case-insensitive exact */
    const char *type;      /* asset_type, case-insensitive exact */
    const char *status;    /* a ticket's status, case-insensitive exact */
    const char *since;     /* updated_at at or after it (ISO 8601 strings compare in order) */
    const char *q;         /* case-insensitive substring of name or email */
    int         include_gone;
} filter_t;

/* The query parameters a list takes. */
enum {
    P_CUSTOMER = 1,
    P_SERIAL = 2,
    P_TYPE = 4,
    P_GONE = 8,
    P_STATUS = 16,
    P_SINCE = 32,
    P_Q = 64
};

/* One list route per record type. */
static const struct list_s {
    const char *type;  /* the record type: inv:<type>s, inv:<type>:<id> */
    const char *route; /* the metrics label and the answer's array */
    unsigned params;   /* P_*: a list with P_GONE hides gone records unless asked */
} LISTS[] = {
    {"customer", "customers", 0},
    {"asset", "assets", P_CUSTOMER | P_SERIAL | P_TYPE | P_GONE},
    {"contact", "contacts", P_CUSTOMER | P_Q | P_GONE},
    {"ticket", "tickets", P_CUSTOMER | P_STATUS | P_SINCE | P_GONE},
    {"setting", "ticket_settings", 0},
};

static const struct list_s *list_of(const char *type) {
    for (size_t i = 0; i < sizeof(LISTS) / sizeof(LISTS[0]); i++)
        if (strcmp(LISTS[i].type, type) == 0)
            return &LISTS[i];
    return &LISTS[0];
}

/* The query parameter name when the list takes it, else NULL (new string or NULL). */
static char *param(struct evhttp_request *req, const struct list_s *l, unsigned p,
                   const char *name) {
    return l->params & p ? gw_query_param(req, name) : NULL;
}

static const char *given(const char *s) { return s && *s ? s : NULL; }

static int str_icontains(const json_t *j, const char *want) {
    const char *s = json_string_value(j);
    return s && strcasestr(s, want) != NULL;
}

static int parse_int(const char *s, long long min, long long max, long long def, long long *out) {
    if (!s) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int str_ieq(const json_t *j, const char *want) {
    const char *s = json_string_value(j);
    return s && strcasecmp(s, want) == 0;
}

static int keep(const json_t *o, const filter_t *f) {
    if (!f->include_gone && json_is_true(json_object_get(o, "gone")))
        return 0;
    if (f->customer) {
        const char *c = json_string_value(json_object_get(o, "customer_ref"));
        if (!c || strcmp(c, f->customer) != 0)
            return 0;
    }
    if (f->serial && !str_ieq(json_object_get(o, "serial"), f->serial))
        return 0;
    if (f->type && !str_ieq(json_object_get(o, "asset_type"), f->type))
        return 0;
    if (f->status && !str_ieq(json_object_get(o, "status"), f->status))
        return 0;
    if (f->since) {
        const char *u = json_string_value(json_object_get(o, "updated_at"));
        if (!u || strcmp(u, f->since) < 0)
            return 0;
    }
    if (f->q && !str_icontains(json_object_get(o, "name"), f->q) &&
        !str_icontains(json_object_get(o, "email"), f->q))
        return 0;
    return 1;
}

/*
 * Load the records of a ZRANGE reply's ids with one MGET. Calls fn for each parsed record
 * (stolen by fn). @returns 0 or -1 (err).
 */
static int load_records(gw_t *gw, const char *tenant, const char *type, const redisReply *ids,
                        void (*fn)(json_t *rec, void *arg), void *arg, char *err,
                        size_t err_size) {
    size_t n = ids->elements;
    if (n == 0)
        return 0;
    const char **argv = calloc(n + 1, sizeof(*argv));
    char **keys = calloc(n, sizeof(*keys));
    int rc = -1;
    if (!argv || !keys) {
        snprintf(err, err_size, "out of memory");
        goto out;
    }
    argv[0] = "MGET";
    for (size_t i = 0; i < n; i++) {
        char buf[MAX_ID + 128];
        msp_key(buf, sizeof(buf), tenant, "inv:%s:%s", type, ids->element[i]->str);
        keys[i] = strdup(buf);
        if (!keys[i]) {
            snprintf(err, err_size, "out of memory");
            goto out;
        }
        argv[i + 1] = keys[i];
    }
    redisReply *r = gw_redis_argv(gw, err, err_size, (int)n + 1, argv, NULL);
    if (!r)
        goto out;
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;  /* removed since ZRANGE */
        json_t *rec = json_loadb(r->element[i]->str, r->element[i]->len, 0, NULL);
        if (!json_is_object(rec)) {
            MSP_WARN("inventory.bad_record", tenant, "%s record %s is not a JSON object", type,
                     ids->element[i]->str);
            json_decref(rec);
            continue;
        }
        fn(rec, arg);
    }
    freeReplyObject(r);
    rc = 0;
out:
    for (size_t i = 0; keys && i < n; i++)
        free(keys[i]);
    free(keys);
    free(argv);
    return rc;
}

typedef struct page_s {
    json_t         *items;
    const filter_t *filter;  /* NULL: keep everything */
    long long       matched, start, per_page;
} page_t;

static void collect(json_t *rec, void *arg) {
    page_t *p = arg;
    if (p->filter && !keep(rec, p->filter)) {
        json_decref(rec);
        return;
    }
    long long idx = p->matched++;
    if (!p->filter || (idx >= p->start && idx < p->start + p->per_page))
        json_array_append_new(p->items, rec);
    else
        json_decref(rec);
}

void gw_reply_rebuilding(gw_t *gw, struct evhttp_request *req, const char *route) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "2");
    gw_reply_error(gw, req, route, 503,
                   "the inventory is being rebuilt from Kafka after a loss of Redis; retry");
}

void api_inventory_list(gw_t *gw, struct evhttp_request *req, const char *tenant,
                        const char *type) {
    const struct list_s *l = list_of(type);
    const char *route = l->route;
    char *qpage = gw_query_param(req, "page"), *qper = gw_query_param(req, "per_page");
    char *qcust = param(req, l, P_CUSTOMER, "customer");
    char *qserial = param(req, l, P_SERIAL, "serial");
    char *qtype = param(req, l, P_TYPE, "type");
    char *qgone = param(req, l, P_GONE, "include_gone");
    char *qstatus = param(req, l, P_STATUS, "status");
    char *qsince = param(req, l, P_SINCE, "updated_since");
    char *qq = param(req, l, P_Q, "q");
    long long page, per_page;
    filter_t f = {
        given(qcust), given(qserial), given(qtype), given(qstatus), given(qsince), given(qq), 0};
    char zkey[128], err[256];
    msp_key(zkey, sizeof(zkey), tenant, "inv:%ss", type);
    json_t *items = NULL;
    long long total = 0;

    if (parse_int(qpage, 1, 1000000, 1, &page) != 0) {
        gw_reply_error(gw, req, route, 400, "\"page\" must be an integer >= 1");
        goto out;
    }
    if (parse_int(qper, 1, MAX_PER_PAGE, 50, &per_page) != 0) {
        gw_reply_error(gw, req, route, 400, "\"per_page\" must be an integer between 1 and %d",
                       MAX_PER_PAGE);
        goto out;
    }
    if (qgone) {
        /* a bare "?include_gone" (no '=') is the flag set */
        if (!*qgone || !strcmp(qgone, "1") || !strcasecmp(qgone, "true"))
            f.include_gone = 1;
        else if (strcmp(qgone, "0") && strcasecmp(qgone, "false")) {
            gw_reply_error(gw, req, route, 400, "\"include_gone\" must be 0 or 1");
            goto out;
        }
    }
    if (f.since && strlen(f.since) < 10) {
        gw_reply_error(gw, req, route, 400,
                       "\"updated_since\" must be an ISO 8601 date or time (2026-12-01, "
                       "2026-12-01T08:00:00Z)");
        goto out;
    }
    int filtered = f.customer || f.serial || f.type || f.status || f.since || f.q ||
                   ((l->params & P_GONE) && !f.include_gone);
    if (gw_inventory_pending(gw) == 1) { /* an empty or partial list would be wrong */
        gw_reply_rebuilding(gw, req, route);
        goto out;
    }
    long long start = (page - 1) * per_page;
    page_t pg = {json_array(), filtered ? &f : NULL, 0, start, per_page};
    items = pg.items;

    if (!filtered) {
        redisReply *c = gw_redis(gw, err, sizeof(err), "ZCARD %s", zkey);
        if (!c)
            goto redis_error;
        total = c->integer;
        freeReplyObject(c);
        if (start < total) {
            redisReply *ids = gw_redis(gw, err, sizeof(err), "ZRANGE %s %lld %lld", zkey, start,
                                       start + per_page - 1);
            if (!ids)
                goto redis_error;
            int rc = load_records(gw, tenant, type, ids, collect, &pg, err, sizeof(err));
            freeReplyObject(ids);
            if (rc != 0)
                goto redis_error;
        }
    } else {
        for (long long off = 0;; off += CHUNK) {
            redisReply *ids = gw_redis(gw, err, sizeof(err), "ZRANGE %s %lld %lld", zkey, off,
                                       off + CHUNK - 1);
            if (!ids)
                goto redis_error;
            size_t n = ids->elements;
            int rc = load_records(gw, tenant, type, ids, collect, &pg, err, sizeof(err));
            freeReplyObject(ids);
            if (rc != 0)
                goto redis_error;
            if (n < CHUNK)
                break;
        }
        total = pg.matched;
    }
    gw_reply(gw, req, route, 200,
             json_pack("{s:o,s:{s:I,s:I,s:I,s:I}}", l->route, items, "meta", "page",
                       (json_int_t)page, "per_page", (json_int_t)per_page, "total_entries",
                       (json_int_t)total, "total_pages",
                       (json_int_t)((total + per_page - 1) / per_page)));
    items = NULL;
    goto out;

redis_error:
    gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
out:
    json_decref(items);
    free(qpage);
    free(qper);
    free(qcust);
    free(qserial);
    free(qtype);
    free(qgone);
    free(qstatus);
    free(qsince);
    free(qq);
}

void api_inventory_get(gw_t *gw, struct evhttp_request *req, const char *tenant,
                       const char *type, const char *id) {
    const char *route = type; /* "customer", "asset", "contact", "ticket": the routes' labels */
    if (!gw_valid_record_id(id)) {
        gw_reply_error(gw, req, route, 404, "no %s with that id", type);
        return;
    }
    char key[MAX_ID + 128], err[256];
    msp_key(key, sizeof(key), tenant, "inv:%s:%s", type, id);
    redisReply *r = gw_redis(gw, err, sizeof(err), "GET %s", key);
    if (!r) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    json_t *rec = r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
    freeReplyObject(r);
    if (!rec && gw_inventory_pending(gw) == 1)
        gw_reply_rebuilding(gw, req, route); /* it may simply not be back yet */
    else if (!rec)
        gw_reply_error(gw, req, route, 404, "no %s \"%s\" for tenant \"%s\"", type, id, tenant);
    else
        gw_reply(gw, req, route, 200, rec);
}
