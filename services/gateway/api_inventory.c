/*
 * api_inventory.c — GET /v1/tenants/{t}/customers[/{id}] and /assets[/{id}].
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

#include "mspsync/log.h"
#include "mspsync/redis.h"

#define CHUNK 500
#define MAX_PER_PAGE 500
#define MAX_ID 256 /* gw_valid_record_id */

typedef struct filter_s {
    const char *customer;  /* customer_ref, exact */
    const char *serial;    /* case-insensitive exact */
    const char *type;      /* asset_type, case-insensitive exact */
    int         include_gone;
} filter_t;

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

void api_inventory_list(gw_t *gw, struct evhttp_request *req, const char *tenant,
                        const char *type) {
    int asset = strcmp(type, "asset") == 0;
    const char *route = asset ? "assets" : "customers";
    char *qpage = gw_query_param(req, "page"), *qper = gw_query_param(req, "per_page");
    char *qcust = asset ? gw_query_param(req, "customer") : NULL;
    char *qserial = asset ? gw_query_param(req, "serial") : NULL;
    char *qtype = asset ? gw_query_param(req, "type") : NULL;
    char *qgone = asset ? gw_query_param(req, "include_gone") : NULL;
    long long page, per_page;
    filter_t f = {qcust && *qcust ? qcust : NULL, qserial && *qserial ? qserial : NULL,
                  qtype && *qtype ? qtype : NULL, 0};
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
    int filtered = asset && (f.customer || f.serial || f.type || !f.include_gone);
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
             json_pack("{s:o,s:{s:I,s:I,s:I,s:I}}", asset ? "assets" : "customers", items, "meta",
                       "page", (json_int_t)page, "per_page", (json_int_t)per_page,
                       "total_entries", (json_int_t)total, "total_pages",
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
}

void api_inventory_get(gw_t *gw, struct evhttp_request *req, const char *tenant,
                       const char *type, const char *id) {
    const char *route = strcmp(type, "asset") == 0 ? "asset" : "customer";
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
    if (!rec)
        gw_reply_error(gw, req, route, 404, "no %s \"%s\" for tenant \"%s\"", type, id, tenant);
    else
        gw_reply(gw, req, route, 200, rec);
}
