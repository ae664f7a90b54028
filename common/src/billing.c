/*
 * billing.c — the billing config's validation, periods and quantities (billing.h).
 */
#include "mspsync/billing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mspsync/backoff.h"
#include "mspsync/redis.h"
#include "mspsync/tzif.h"

static const char *kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

void msp_billing_conf_clear(msp_billing_conf_t *c) {
    if (!c)
        return;
    json_decref(c->doc);
    free(c->products);
    memset(c, 0, sizeof(*c));
}

static int parse_products(msp_billing_conf_t *c, json_t *ps, char *err, size_t err_size) {
    static const char *const keys[] = {"line_name", "create", "retail_cents", NULL};
    if (!json_is_object(ps)) {
        snprintf(err, err_size, "\"products\" must be an object of product → line (got %s)",
                 kind(ps));
        return -1;
    }
    if (json_object_size(ps) > MSP_BILLING_MAX_PRODUCTS) {
        snprintf(err, err_size, "\"products\" maps at most %d products", MSP_BILLING_MAX_PRODUCTS);
        return -1;
    }
    c->products = calloc(json_object_size(ps) + 1, sizeof(*c->products));
    if (!c->products) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    const char *name;
    json_t *m;
    json_object_foreach(ps, name, m) {
        if (!name[0] || strlen(name) > 128) {
            snprintf(err, err_size, "products: a product name has 1 to 128 characters");
            return -1;
        }
        if (!json_is_object(m)) {
            snprintf(err, err_size, "products.%s must be an object (got %s)", name, kind(m));
            return -1;
        }
        const char *k;
        json_t *v;
        json_object_foreach(m, k, v) {
            int ok = 0;
            for (int i = 0; keys[i] && !ok; i++)
                ok = !strcmp(k, keys[i]);
            if (!ok) {
                snprintf(err, err_size,
                         "products.%s: unknown key \"%.64s\" (known: line_name, "
                         "create, retail_cents)",
                         name, k);
                return -1;
            }
        }
        json_t *ln = json_object_get(m, "line_name"), *cr = json_object_get(m, "create");
        json_t *rc = json_object_get(m, "retail_cents");
        if (!json_is_string(ln) || !json_string_length(ln) || json_string_length(ln) > 255) {
            snprintf(err, err_size,
                     "products.%s.line_name must be the name of the recurring "
                     "invoice line (1 to 255 characters)",
                     name);
            return -1;
        }
        if (cr && !json_is_boolean(cr)) {
            snprintf(err, err_size, "products.%s.create must be a boolean (got %s)", name,
                     kind(cr));
            return -1;
        }
        if (rc && (!json_is_integer(rc) || json_integer_value(rc) < 0)) {
            snprintf(err, err_size, "products.%s.retail_cents must be a non-negative integer",
                     name);
            return -1;
        }
        if (!cr)
            json_object_set_new(m, "create", json_false());
        if (!rc)
            json_object_set_new(m, "retail_cents", json_integer(0));
        for (size_t i = 0; i < c->nproducts; i++) {
            if (!strcasecmp(c->products[i].line_name, json_string_value(ln))) {
                /* two marks on one line would overwrite each other at every push */
                snprintf(err, err_size,
                         "products.%s.line_name: line \"%s\" is already the line "
                         "of product \"%s\"; one line holds one product's quantity",
                         name, json_string_value(ln), c->products[i].product);
                return -1;
            }
        }
        msp_billing_product_t *p = &c->products[c->nproducts++];
        p->product = name;
        p->line_name = json_string_value(ln);
        p->create = json_is_true(json_object_get(m, "create"));
        p->retail_cents = json_integer_value(json_object_get(m, "retail_cents"));
    }
    return 0;
}

int msp_billing_conf_parse(const json_t *in, msp_billing_conf_t *out, char *err, size_t err_size) {
    static const char *const keys[] = {"enabled",    "time_zone", "push_time",
                                       "grace_days", "products",  NULL};
    memset(out, 0, sizeof(*out));
    if (!json_is_object(in)) {
        snprintf(err, err_size, "the billing config must be a JSON object (got %s)",
                 in ? kind(in) : "nothing");
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)in, k, v) {
        int ok = 0;
        for (int i = 0; keys[i] && !ok; i++)
            ok = !strcmp(k, keys[i]);
        if (!ok) {
            snprintf(err, err_size,
                     "unknown key \"%.64s\" (known: enabled, time_zone, push_time, "
                     "grace_days, products)",
                     k);
            return -1;
        }
    }
    out->doc = json_deep_copy(in);
    json_t *d = out->doc;
    json_t *en = json_object_get(d, "enabled"), *tz = json_object_get(d, "time_zone");
    json_t *pt = json_object_get(d, "push_time"), *gr = json_object_get(d, "grace_days");
    if (en && !json_is_boolean(en)) {
        snprintf(err, err_size, "\"enabled\" must be a boolean (got %s)", kind(en));
        goto bad;
    }
    if (!en)
        json_object_set_new(d, "enabled", json_false());
    if (tz && !json_is_string(tz)) {
        snprintf(err, err_size, "\"time_zone\" must be a string (got %s)", kind(tz));
        goto bad;
    }
    if (!tz)
        json_object_set_new(d, "time_zone", json_string(MSP_BILLING_TZ_DEFAULT));
    out->time_zone = json_string_value(json_object_get(d, "time_zone"));
    if (!msp_tz_valid(out->time_zone, err, err_size)) {
        char why[300];
        snprintf(why, sizeof(why), "\"time_zone\": %s", err);
        snprintf(err, err_size, "%s", why);
        goto bad;
    }
    if (pt && !json_is_string(pt)) {
        snprintf(err, err_size, "\"push_time\" must be a string \"HH:MM\" (got %s)", kind(pt));
        goto bad;
    }
    if (!pt)
        json_object_set_new(d, "push_time", json_string(MSP_BILLING_PUSH_TIME_DEFAULT));
    const char *s = json_string_value(json_object_get(d, "push_time"));
    if (strlen(s) != 5 || s[2] != ':' || s[0] < '0' || s[0] > '2' || s[1] < '0' || s[1] > '9' ||
        s[3] < '0' || s[3] > '5' || s[4] < '0' || s[4] > '9' ||
        (s[0] - '0') * 10 + (s[1] - '0') > 23) {
        snprintf(err, err_size,
                 "\"push_time\" must be a local time \"HH:MM\" from 00:00 to "
                 "23:59 (got \"%.16s\")",
                 s);
        goto bad;
    }
    out->push_hour = (s[0] - '0') * 10 + (s[1] - '0');
    out->push_minute = (s[3] - '0') * 10 + (s[4] - '0');
    if (gr && (!json_is_integer(gr) || json_integer_value(gr) < 0 || json_integer_value(gr) > 60)) {
        snprintf(err, err_size, "\"grace_days\" must be an integer from 0 to 60");
        goto bad;
    }
    if (!gr)
        json_object_set_new(d, "grace_days", json_integer(MSP_BILLING_GRACE_DEFAULT));
    out->grace_days = (int)json_integer_value(json_object_get(d, "grace_days"));
    out->enabled = json_is_true(json_object_get(d, "enabled"));
    if (!json_object_get(d, "products"))
        json_object_set_new(d, "products", json_object());
    if (parse_products(out, json_object_get(d, "products"), err, err_size) != 0)
        goto bad;
    return 0;
bad:
    msp_billing_conf_clear(out);
    return -1;
}

const msp_billing_product_t *msp_billing_product(const msp_billing_conf_t *c, const char *product) {
    for (size_t i = 0; i < c->nproducts; i++)
        if (!strcmp(c->products[i].product, product))
            return &c->products[i];
    return NULL;
}

int msp_billing_period(const char *zone, int64_t ms, char out[8], char *err, size_t err_size) {
    struct tm tm;
    int64_t s = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    if (msp_tz_local(zone, s, &tm, err, err_size) != 0)
        return -1;
    if (tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
        snprintf(err, err_size, "date out of range");
        return -1;
    }
    char buf[32];
    snprintf(buf, sizeof(buf), "%04d-%02d", tm.tm_year + 1900, tm.tm_mon + 1);
    memcpy(out, buf, 7);
    out[7] = '\0';
    return 0;
}

int msp_billing_period_end_ms(const char *zone, const char *period, int64_t *ms, char *err,
                              size_t err_size) {
    int y, m;
    if (sscanf(period, "%4d-%2d", &y, &m) != 2 || m < 1 || m > 12) {
        snprintf(err, err_size, "\"%.16s\" is not a period (YYYY-MM)", period);
        return -1;
    }
    struct tm tm = {.tm_year = y - 1900 + (m == 12), .tm_mon = m % 12, .tm_mday = 1};
    int64_t s;
    if (msp_tz_utc(zone, &tm, &s, err, err_size) != 0)
        return -1;
    *ms = s * 1000;
    return 0;
}

int msp_billing_late(const msp_billing_conf_t *c, int64_t as_of_ms, int64_t received_ms, char *err,
                     size_t err_size) {
    char period[8];
    int64_t end;
    if (msp_billing_period(c->time_zone, as_of_ms, period, err, err_size) != 0 ||
        msp_billing_period_end_ms(c->time_zone, period, &end, err, err_size) != 0)
        return -1;
    return received_ms > end + (int64_t)c->grace_days * 86400000LL;
}

int msp_billing_qty(const json_t *v, double *out) {
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || !s[0])
        return -1;
    char *end;
    *out = strtod(s, &end);
    return *end ? -1 : 0;
}

int64_t msp_billing_now_ms(void) {
    static __thread int64_t read_at, value;
    const char *path = getenv("MSPSYNC_TEST_CLOCK_FILE");
    if (!path || !path[0])
        return msp_wall_ms();
    int64_t now = msp_wall_ms();
    if (read_at && now - read_at < 100)
        return value;
    FILE *f = fopen(path, "r");
    long long v = 0;
    int ok = f && fscanf(f, "%lld", &v) == 1;
    if (f)
        fclose(f);
    read_at = now;
    value = ok ? (int64_t)v : now;
    return value;
}

char *msp_billing_field(const char *org, const char *product) {
    json_t *a = json_pack("[s,s]", org, product);
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

/* The string of a hash reply's element i, or NULL. */
static const char *el(const redisReply *r, size_t i) {
    return r && r->type == REDIS_REPLY_ARRAY && i < r->elements &&
                   r->element[i]->type == REDIS_REPLY_STRING
               ? r->element[i]->str
               : NULL;
}

static const char *hget(const redisReply *r, const char *field) {
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (el(r, i) && !strcmp(el(r, i), field))
            return el(r, i + 1);
    return NULL;
}

void msp_billing_plan_keys(const char *tenant, const char *period, char keys[3][300]) {
    msp_key(keys[0], 300, tenant, "billing:marks:%s", period);
    msp_key(keys[1], 300, tenant, "ticketing:orgmap");
    msp_key(keys[2], 300, tenant, "billing:seen");
}

json_t *msp_billing_plan(redisContext *c, const char *tenant, const msp_billing_conf_t *conf,
                         const char *period, char *err, size_t err_size) {
    char keys[3][300];
    msp_billing_plan_keys(tenant, period, keys);
    redisReply *r[3] = {0};
    for (int i = 0; i < 3; i++)
        redisAppendCommand(c, "HGETALL %s", keys[i]);
    for (int i = 0; i < 3; i++) {
        void *p = NULL;
        if (redisGetReply(c, &p) != REDIS_OK || !p ||
            ((redisReply *)p)->type != REDIS_REPLY_ARRAY) {
            snprintf(err, err_size, "redis: %s", c->err ? c->errstr : "unexpected reply");
            if (p)
                freeReplyObject(p);
            for (int j = 0; j < i; j++)
                freeReplyObject(r[j]);
            return NULL;
        }
        r[i] = p;
    }
    json_t *plan = msp_billing_plan_of(r, conf, period);
    for (int i = 0; i < 3; i++)
        freeReplyObject(r[i]);
    if (!plan)
        snprintf(err, err_size, "out of memory");
    return plan;
}

json_t *msp_billing_plan_of(redisReply *const r[3], const msp_billing_conf_t *conf,
                            const char *period) {
    json_t *plan = json_pack("{s:s,s:{},s:[]}", "period", period, "customers", "unmapped");
    if (!plan)
        return NULL;
    json_t *customers = json_object_get(plan, "customers");
    json_t *unmapped = json_object_get(plan, "unmapped");
    /* every (org, product) ever reported: its mark in this period goes to its customer's line,
     * or it is listed as unmapped with its latest count */
    for (size_t i = 0; i + 1 < r[2]->elements; i += 2) {
        json_t *f = json_loads(el(r[2], i), 0, NULL);
        json_t *seen = json_loads(el(r[2], i + 1), 0, NULL);
        const char *org = json_string_value(json_array_get(f, 0));
        const char *product = json_string_value(json_array_get(f, 1));
        if (!org || !product || !json_is_object(seen)) {
            json_decref(f);
            json_decref(seen);
            continue;
        }
        const char *m = hget(r[0], el(r[2], i));
        json_int_t mark = m ? strtoll(m, NULL, 10) : 0;
        const char *map = hget(r[1], org);
        json_t *mj = map ? json_loads(map, 0, NULL) : NULL;
        json_t *cid = json_object_get(mj, "customer_id");
        const msp_billing_product_t *bp = msp_billing_product(conf, product);
        char cidbuf[32] = "";
        if (json_is_integer(cid))
            snprintf(cidbuf, sizeof(cidbuf), "%" JSON_INTEGER_FORMAT, json_integer_value(cid));
        else if (json_is_string(cid))
            snprintf(cidbuf, sizeof(cidbuf), "%s", json_string_value(cid));
        if (!cidbuf[0] || !bp) {
            json_array_append_new(
                unmapped,
                json_pack("{s:s,s:O,s:s,s:O,s:O,s:I,s:s}", "org_id", org, "org_name",
                          json_object_get(seen, "org_name") ? json_object_get(seen, "org_name")
                                                            : json_null(),
                          "product", product, "count", json_object_get(seen, "count"), "as_of",
                          json_object_get(seen, "as_of"), "mark", mark, "why",
                          !cidbuf[0] && !bp ? "org and product not mapped"
                          : !cidbuf[0]      ? "org not mapped to a Syncro customer"
                                            : "product not mapped to an invoice line"));
        } else if (m) {
            json_t *cu = json_object_get(customers, cidbuf);
            if (!cu) {
                json_t *cn = json_object_get(mj, "customer_name");
                cu = json_pack("{s:O,s:{}}", "customer_name", cn ? cn : json_null(), "lines");
                json_object_set_new(customers, cidbuf, cu);
            }
            json_t *lines = json_object_get(cu, "lines");
            json_t *ln = json_object_get(lines, product);
            if (!ln) {
                ln = json_pack("{s:s,s:b,s:I,s:I,s:[]}", "line_name", bp->line_name, "create",
                               bp->create, "retail_cents", (json_int_t)bp->retail_cents, "quantity",
                               (json_int_t)0, "orgs");
                json_object_set_new(lines, product, ln);
            }
            /* several orgs of one customer: their marks add up on its one line */
            json_object_set_new(
                ln, "quantity",
                json_integer(json_integer_value(json_object_get(ln, "quantity")) + mark));
            json_array_append_new(json_object_get(ln, "orgs"), json_string(org));
        }
        json_decref(mj);
        json_decref(f);
        json_decref(seen);
    }
    return plan;
}
